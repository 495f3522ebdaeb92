"""A camera's CameraInfo beside its image stream: the newest one, and the pinhole intrinsics it gives.

`CameraInfoListener` subscribes the camera_info topic (`image_topics.camera_topics` names it: the sibling of
the image topic) and keeps the newest message. Best effort, depth 1: it matches reliable and best-effort
drivers alike, and a CameraInfo is a few hundred bytes, one UDP datagram, so best effort does not lose it
the way it loses fragmented images.

`intrinsics(info, image_size)` reads fx, fy, cx, cy from K, scaled when the CameraInfo describes another
resolution than the image (a resized stream); None for an uncalibrated camera (K all zeros).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo

__all__ = ["CAMERA_INFO_QOS", "CameraInfoListener", "PinholeIntrinsics", "intrinsics"]

CAMERA_INFO_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Focal lengths and principal point in pixels of the image they apply to: a pixel (u, v) at depth z
    in the optical frame is x = (u - cx) / fx * z, y = (v - cy) / fy * z."""

    fx: float
    fy: float
    cx: float
    cy: float

    def point(self, u: float, v: float, z: float) -> tuple[float, float, float]:
        return (u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z


def intrinsics(info: CameraInfo | None, image_size: tuple[int, int]) -> PinholeIntrinsics | None:
    """The intrinsics of `info` (its K matrix) for an image of `image_size` (height, width); None without a
    usable K. K is scaled by image / CameraInfo size when the two differ and the CameraInfo gives its size."""
    if info is None:
        return None
    k = [float(v) for v in info.k]
    if len(k) != 9 or not (k[0] > 0 and k[4] > 0):
        return None
    height, width = image_size
    scale_x = width / info.width if info.width else 1.0
    scale_y = height / info.height if info.height else 1.0
    return PinholeIntrinsics(fx=k[0] * scale_x, fy=k[4] * scale_y, cx=k[2] * scale_x, cy=k[5] * scale_y)


class CameraInfoListener:
    """The newest CameraInfo on `topic` (fully qualified); `latest` is None until one arrives."""

    def __init__(self, node: Node, topic: str, callback_group: CallbackGroup | None = None) -> None:
        self.node, self.topic = node, topic
        self._lock = threading.Lock()
        self._latest: CameraInfo | None = None
        self.received = 0
        self._subscription = node.create_subscription(CameraInfo, topic, self._on_info, CAMERA_INFO_QOS,
                                                      callback_group=callback_group)

    def _on_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._latest = msg
            self.received += 1

    @property
    def latest(self) -> CameraInfo | None:
        with self._lock:
            return self._latest

    def close(self) -> None:
        """Unsubscribe; the newest CameraInfo is kept (idempotent)."""
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
            self._subscription = None

    def describe(self) -> str:
        info = self.latest
        if info is None:
            return f"{self.topic}: none yet"
        return f"{self.topic}: {info.width}x{info.height}, fx {info.k[0]:.1f} fy {info.k[4]:.1f}"

