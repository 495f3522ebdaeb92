"""People in 3D: keypoints in colour-image pixels + an aligned depth frame + the camera -> metres.

    positions = lift_people(result.people, depth, camera, result.image_size,
                            body_heatmap=result.body_heatmap, heatmap_transform=result.heatmap_transform)

Each keypoint's depth comes from the robust read (`sampling.py`); its pixel is undistorted into a ray
with the camera's lens model (`CameraModel.normalized`), and the point is ray * depth in the camera's
optical frame (x right, y down, z forward; the colour image's header frame_id). A keypoint with no valid
depth gets no position: NaN and marked invalid, never a zero that looks like a point. Each person also
gets a robust centre: the per-axis median of its valid keypoints (with at least `min_person_keypoints`
of them), for following and safety zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from strongpose_ros.depth.camera import CameraModel
from strongpose_ros.depth.config import LiftingConfig
from strongpose_ros.depth.depth_image import DepthImage
from strongpose_ros.depth.sampling import masked_median, read_keypoint_depths
from strongpose_ros.depth.types import PeoplePositions

if TYPE_CHECKING:  # importing the decoder would pull numba into every user of this package
    from strongpose_ros.decode import PersonPose

__all__ = ["keypoint_array", "lift_people"]


def keypoint_array(people: Sequence[PersonPose] | np.ndarray, num_keypoints: int | None = None) -> np.ndarray:
    """(P, K, 3) float32 [x, y, score] of a list of people (or such an array, checked)."""
    if isinstance(people, np.ndarray):
        array = np.asarray(people, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"keypoints must have shape (P, K, 3), got {array.shape}")
        return array
    if len(people) == 0:
        return np.zeros((0, int(num_keypoints or 0), 3), dtype=np.float32)
    sizes = {p.num_keypoints for p in people}
    if len(sizes) != 1:
        raise ValueError(f"people with different numbers of keypoints: {sorted(sizes)}")
    return np.stack([p.keypoints for p in people]).astype(np.float32, copy=False)


def lift_people(
    people: Sequence[PersonPose] | np.ndarray,
    depth: DepthImage,
    camera: CameraModel,
    image_size: tuple[int, int],
    *,
    body_heatmap: np.ndarray | None = None,
    heatmap_transform=None,
    config: LiftingConfig | None = None,
    aspect_tolerance: float = 0.02,
    num_keypoints: int | None = None,
) -> PeoplePositions:
    """3D positions of every keypoint and person, in the camera's optical frame (metres).

    - `people`: `PersonPose`s (or a (P, K, 3) array) in pixels of the colour image of `image_size`
      (height, width), e.g. `PoseResult.people` and `PoseResult.image_size`;
    - `depth`: the depth frame paired with that image, aligned to it (same field of view; any size);
    - `camera`: the colour camera (a CameraInfo of the colour image or of the aligned depth: it is
      scaled to `image_size` when its size differs, with the same aspect-ratio check);
    - `body_heatmap`, `heatmap_transform`: `PoseResult.body_heatmap` / `.heatmap_transform` when the
      estimator was asked for heat maps; they keep the read on the body;
    - `num_keypoints`: K for an empty list of people (the schema's), so the result has the right shape.

    Raises `CameraModelError` when depth, camera and image do not share a field of view (the caller
    publishes that frame in 2D with `DepthStatus.SIZE_MISMATCH`).
    """
    config = config or LiftingConfig()
    keypoints = keypoint_array(people, num_keypoints)
    num_people, k = keypoints.shape[:2]
    if num_people == 0:
        return PeoplePositions.absent(0, k)
    height, width = int(image_size[0]), int(image_size[1])
    camera = camera.scaled(width, height, aspect_tolerance)
    reads = read_keypoint_depths(keypoints, depth, (height, width), config, body_heatmap=body_heatmap,
                                 heatmap_transform=heatmap_transform, aspect_tolerance=aspect_tolerance)  # fmt: skip
    rays = camera.normalized(keypoints[..., :2].reshape(-1, 2)).reshape(num_people, k, 2)
    valid = reads.valid & np.isfinite(rays).all(axis=-1)
    z = np.where(valid, reads.depth, np.nan)
    points = np.empty((num_people, k, 3), dtype=np.float32)
    points[..., 0] = rays[..., 0] * z
    points[..., 1] = rays[..., 1] * z
    points[..., 2] = z
    confidence = np.where(valid, reads.confidence, 0.0).astype(np.float32)

    # The person's centre: per-axis median of its valid keypoints (robust to a stray one).
    centre = masked_median(np.moveaxis(points, 1, 2), np.broadcast_to(valid[:, None, :], (num_people, 3, k)))
    has_centre = np.count_nonzero(valid, axis=1) >= config.min_person_keypoints
    centre = np.where(has_centre[:, None], centre, np.nan).astype(np.float32)
    return PeoplePositions(
        keypoints=points,
        keypoint_valid=valid,
        keypoint_confidence=confidence,
        positions=centre,
        position_valid=has_centre,
        position_confidence=np.where(has_centre, confidence.mean(axis=1), 0.0).astype(np.float32),
        reference_depth=reads.reference,
    )
