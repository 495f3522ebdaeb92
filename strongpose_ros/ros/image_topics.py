"""Topic names around a camera image, as image_transport and camera drivers name them.

- the compressed stream of an image topic is `<image topic>/compressed` (`/camera/image_raw` ->
  `/camera/image_raw/compressed`), named from the image topic *after* remapping, so remapping `image` moves
  both;
- the camera's CameraInfo is the sibling `camera_info` (`/camera/image_raw` -> `/camera/camera_info`,
  `/image` -> `/camera_info`), for raw and compressed streams alike.
Explicit remapping rules for `image/compressed` or `camera_info` still win (`camera_topics`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["camera_info_topic", "camera_topics", "compressed_topic"]

COMPRESSED_SUFFIX = "/compressed"


def compressed_topic(image_topic: str) -> str:
    """image_transport's compressed topic of a (resolved) image topic."""
    return image_topic.rstrip("/") + COMPRESSED_SUFFIX


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic beside a (resolved) image topic or its compressed stream."""
    base = image_topic.rstrip("/")
    if base.endswith(COMPRESSED_SUFFIX):
        base = base[: -len(COMPRESSED_SUFFIX)]
    parent = base.rsplit("/", 1)[0]
    return f"{parent}/camera_info"


def _remapped(node: Any, name: str) -> str | None:
    """The target of an explicit remapping rule for `name`, or None."""
    resolved = node.resolve_topic_name(name)
    return resolved if resolved != node.resolve_topic_name(name, only_expand=True) else None


def camera_topics(node: Any, transport: str = "raw", image: str = "image") -> tuple[str, str]:
    """(image topic for `transport` 'raw' or 'compressed', its camera_info topic), resolved by `node`.

    'compressed' follows image_transport: `<resolved image>/compressed`. An explicit remapping of
    `image/compressed` or `camera_info` themselves wins (the launch file and older command lines give them).
    """
    if transport not in ("raw", "compressed"):
        raise ValueError(f"camera_topics: transport must be 'raw' or 'compressed', got {transport!r}")
    topic = node.resolve_topic_name(image)
    if transport == "compressed":
        topic = _remapped(node, image + COMPRESSED_SUFFIX) or compressed_topic(topic)
    parent = image.rsplit("/", 1)[0] + "/" if "/" in image else ""
    return topic, _remapped(node, parent + "camera_info") or camera_info_topic(topic)
