"""Drawing poses and heat maps on images (OpenCV, BGR uint8); no ROS.

The node's `~/overlay`, the demo's annotated frames and the bag tool all draw through these functions,
so a person looks the same everywhere: the schema's drawing links and keypoints above a score threshold,
in a colour chosen by the person's track id (or by rank when tracking is off and ids are 0).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from strongpose_ros.decode import PersonPose
from strongpose_ros.schema import KeypointSchema

__all__ = ["DrawingConfig", "blend_heatmap", "color_for_id", "colorize_heatmap", "draw_poses"]

# Golden-ratio hue steps spread consecutive ids far apart on the colour wheel.
_GOLDEN = 0.618033988749895
# Fixed-point bits for sub-pixel drawing (cv2's `shift`): keypoints are floats.
_SHIFT = 4


@dataclass(frozen=True)
class DrawingConfig:
    """How poses are drawn.

    - `keypoint_threshold`: keypoints scoring below are not drawn, nor links touching them (the
      decoder's default keypoint threshold);
    - `line_thickness`, `keypoint_radius`: in pixels; 0 scales them with the image (about 1/300 and
      1/200 of the shorter side, at least 1 and 2);
    - `draw_ids`: write each person's track id next to its box;
    - `heatmap_alpha`: weight of the colourised heat map in `blend_heatmap`;
    - `colormap`: OpenCV colormap for heat maps.
    """

    keypoint_threshold: float = 0.1
    line_thickness: int = 0
    keypoint_radius: int = 0
    draw_ids: bool = True
    heatmap_alpha: float = 0.5
    colormap: int = cv2.COLORMAP_JET

    def __post_init__(self) -> None:
        if not 0.0 <= self.heatmap_alpha <= 1.0:
            raise ValueError(f"DrawingConfig.heatmap_alpha must be in [0, 1], got {self.heatmap_alpha!r}")
        if self.line_thickness < 0 or self.keypoint_radius < 0:
            raise ValueError("DrawingConfig.line_thickness and keypoint_radius must be >= 0 (0: automatic)")


class _Transform(Protocol):
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def color_for_id(track_id: int) -> tuple[int, int, int]:
    """A bright, deterministic BGR colour for a track id (neighbouring ids get distant hues)."""
    hue = (int(track_id) * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return round(b * 255), round(g * 255), round(r * 255)


def _check_bgr(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {shape} of {getattr(image, 'dtype', None)}")


def _fixed(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0]) * (1 << _SHIFT)), round(float(xy[1]) * (1 << _SHIFT))


def draw_poses(
    image: np.ndarray,
    people: Sequence[PersonPose],
    schema: KeypointSchema,
    ids: Sequence[int] | None = None,
    config: DrawingConfig | None = None,
    *,
    copy: bool = True,
) -> np.ndarray:
    """Draw each person's skeleton (schema links) and keypoints on a BGR image.

    Colours follow `ids` (track ids); a person whose id is 0 or missing is coloured by its rank instead,
    offset so that rank colours do not collide with the first track ids. Returns the drawn image (a copy
    unless `copy=False`).
    """
    _check_bgr(image)
    config = config or DrawingConfig()
    if ids is not None and len(ids) != len(people):
        raise ValueError(f"draw_poses: {len(ids)} ids for {len(people)} people")
    out = image.copy() if copy else image
    short_side = min(out.shape[:2])
    thickness = config.line_thickness or max(1, round(short_side / 300))
    radius = config.keypoint_radius or max(2, round(short_side / 200))
    threshold = config.keypoint_threshold
    for rank, person in enumerate(people):
        kp = person.keypoints
        if kp.shape[0] != schema.num_keypoints:
            raise ValueError(f"draw_poses: person {rank} has {kp.shape[0]} keypoints, schema {schema.name!r} "
                             f"has {schema.num_keypoints}")
        track_id = int(ids[rank]) if ids is not None else 0
        color = color_for_id(track_id if track_id else 1_000_003 + rank)
        visible = kp[:, 2] >= threshold
        for a, b in schema.skeleton:
            if visible[a] and visible[b]:
                cv2.line(out, _fixed(kp[a]), _fixed(kp[b]), color, thickness, cv2.LINE_AA, _SHIFT)
        for k in np.flatnonzero(visible):
            cv2.circle(out, _fixed(kp[k]), radius << _SHIFT, color, -1, cv2.LINE_AA, _SHIFT)
        if config.draw_ids and track_id and visible.any():
            x = int(np.min(kp[visible, 0]))
            y = int(np.min(kp[visible, 1])) - 2 * radius
            scale = max(0.4, short_side / 1000)
            cv2.putText(out, str(track_id), (x, max(y, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale, color,
                        max(1, thickness), cv2.LINE_AA)
    return out


def colorize_heatmap(heatmap: np.ndarray, colormap: int = cv2.COLORMAP_JET,
                     value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """An (H, W) map of values in `value_range` as a BGR uint8 picture; NaN shows as the low end."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"colorize_heatmap: expected a non-empty (H, W) array, got shape {heatmap.shape}")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"colorize_heatmap: value_range must be (low, high) with high > low, got {value_range}")
    scaled = (np.nan_to_num(heatmap.astype(np.float32), nan=low, posinf=high, neginf=low) - low) / (high - low)
    gray = np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, colormap)


def blend_heatmap(image: np.ndarray, heatmap: np.ndarray, transform: _Transform,
                  config: DrawingConfig | None = None) -> np.ndarray:
    """The image with a colourised heat map laid over it.

    `transform` maps heat-map cells to image pixels (image_x = heatmap_x * scale_x + offset_x, as in
    `PoseResult.heatmap_transform` and the BodyHeatmap message); the map is resampled bilinearly onto the
    image grid.
    """
    _check_bgr(image)
    config = config or DrawingConfig()
    colored = colorize_heatmap(heatmap, config.colormap)
    # warpAffine's matrix maps source (heat-map) coordinates to destination (image) coordinates.
    matrix = np.array([[transform.scale_x, 0.0, transform.offset_x], [0.0, transform.scale_y, transform.offset_y]],
                      dtype=np.float64)
    h, w = image.shape[:2]
    warped = cv2.warpAffine(colored, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = config.heatmap_alpha
    return cv2.addWeighted(image, 1.0 - alpha, warped, alpha, 0.0)
