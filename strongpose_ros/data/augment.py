"""Training augmentation: one 2x3 affine matrix per sample, applied alike to the image, keypoints and masks.

The paper's augmentation (PersonLab's): random scale in [0.8, 2.0], rotation within +-30 degrees, translation
jitter and a horizontal flip with the left/right swap of keypoints, then a fixed-size crop (401x401).
All of it is a single affine map from image pixels to crop pixels, so that the three things a sample holds
can never drift apart:

- the image through `cv2.warpAffine` (bilinear; the border is the network's mean colour, i.e. 0 after
  normalisation, the same padding the Estimator uses);
- keypoints through the same matrix. warpAffine works in pixel-index coordinates (pixel (i, j) centred on
  (x=j, y=i)), and COCO keypoints are used in the same convention unchanged (outputs.py), so a keypoint at
  pixel (x, y) lands exactly on the crop pixel that image pixel lands on. Keypoints that leave the crop
  become unlabelled (v = 0 at (0, 0)), as COCO writes them;
- instance masks (polygons/RLE decoded with pycocotools at the image's size) through warpAffine with
  nearest-neighbour sampling, so they stay binary.

Scale is relative to the image fitted into the crop (the way the Estimator letterboxes it at test time):
scale 1 shows the whole image, 2 shows a quarter of it at twice the resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from strongpose_ros.schema import KeypointSchema

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "affine_matrix",
    "decode_segmentation",
    "sample_params",
    "transform_annotations",
    "transform_keypoints",
    "warp_image",
    "warp_mask",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; defaults are the paper's [PL] where it gives them.

    - `scale`: (min, max) zoom relative to the image fitted into the crop [PL: 0.8-2.0];
    - `rotation_deg`: rotation uniform in +-this [PL: 30];
    - `translation`: crop-centre jitter, uniform in +-this fraction of the crop side [ours: 0.2], on top of
      a uniform choice of the crop's position when the scaled image is larger than the crop;
    - `flip_probability`: horizontal flip with the left/right keypoint swap [PL: 0.5];
    - `antialias_below`: when the image shrinks by more than this factor it is first resized with area
      averaging (what the Estimator does), so training sees the same kind of downscaled pixels [ours].
    """

    scale: tuple[float, float] = (0.8, 2.0)
    rotation_deg: float = 30.0
    translation: float = 0.2
    flip_probability: float = 0.5
    antialias_below: float = 0.75

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"AugmentConfig.scale must be (min, max) with 0 < min <= max, got {self.scale!r}")
        if not 0 <= self.rotation_deg <= 180:
            raise ValueError(f"AugmentConfig.rotation_deg must be in [0, 180], got {self.rotation_deg!r}")
        if not self.translation >= 0:
            raise ValueError(f"AugmentConfig.translation must be >= 0, got {self.translation!r}")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"AugmentConfig.flip_probability must be in [0, 1], got {self.flip_probability!r}")
        if not 0 < self.antialias_below <= 1:
            raise ValueError(f"AugmentConfig.antialias_below must be in (0, 1], got {self.antialias_below!r}")


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw: zoom (relative to fitting), rotation, crop centre in image pixels, flip."""

    scale: float = 1.0
    rotation_deg: float = 0.0
    center: tuple[float, float] | None = None  # (x, y) in image pixels; None: the image centre
    flip: bool = False


def sample_params(rng: np.random.Generator, image_size: tuple[int, int], crop_size: tuple[int, int],
                  config: AugmentConfig) -> AugmentParams:
    """Draw one sample's augmentation. `image_size` and `crop_size` are (height, width)."""
    h, w = image_size
    crop_h, crop_w = crop_size
    zoom = float(rng.uniform(*config.scale))
    angle = float(rng.uniform(-config.rotation_deg, config.rotation_deg))
    pixels = zoom * _fit(image_size, crop_size)  # crop pixels per image pixel
    # Where the scaled image is larger than the crop, any part of it may be shown; then jitter.
    center = []
    for side, crop_side in ((w, crop_w), (h, crop_h)):
        slack = max(0.0, side - crop_side / pixels) / 2  # in image pixels
        jitter = config.translation * crop_side / pixels
        center.append((side - 1) / 2 + float(rng.uniform(-slack - jitter, slack + jitter)))
    flip = bool(rng.random() < config.flip_probability)
    return AugmentParams(zoom, angle, (center[0], center[1]), flip)


def _fit(image_size: tuple[int, int], crop_size: tuple[int, int]) -> float:
    """Crop pixels per image pixel when the whole image just fits the crop (the Estimator's letterbox)."""
    return min(crop_size[0] / image_size[0], crop_size[1] / image_size[1])


def affine_matrix(params: AugmentParams, image_size: tuple[int, int], crop_size: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix taking image pixels (x, y, 1) to crop pixels, in warpAffine's pixel-index convention.

    crop = flip(R(angle) * s * (p - centre) + crop_centre), flip(x) = (crop_w - 1) - x.
    """
    h, w = image_size
    crop_h, crop_w = crop_size
    s = params.scale * _fit(image_size, crop_size)
    cx, cy = params.center if params.center is not None else ((w - 1) / 2, (h - 1) / 2)
    theta = math.radians(params.rotation_deg)
    cos, sin = s * math.cos(theta), s * math.sin(theta)
    linear = np.array([[cos, -sin], [sin, cos]])
    translation = np.array([(crop_w - 1) / 2, (crop_h - 1) / 2]) - linear @ np.array([cx, cy])
    matrix = np.concatenate([linear, translation[:, None]], axis=1)
    if params.flip:
        matrix = np.array([[-1.0, 0.0, crop_w - 1], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def warp_image(image: np.ndarray, matrix: np.ndarray, crop_size: tuple[int, int],
               border_bgr: tuple[float, float, float], antialias_below: float = 0.75) -> np.ndarray:
    """Apply `matrix` to a BGR image (bilinear, constant border); area-averaged first when shrinking a lot."""
    crop_h, crop_w = crop_size
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < antialias_below:
        # Shrink with INTER_AREA first; cv2.resize maps pixel centres: x' = (x + 0.5) f - 0.5.
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        fx, fy = new_w / w, new_h / h
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        undo = np.array([[1 / fx, 0.0, (0.5 - 0.5 * fx) / fx], [0.0, 1 / fy, (0.5 - 0.5 * fy) / fy], [0, 0, 1]])
        matrix = matrix @ undo
    return cv2.warpAffine(image, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in border_bgr))


def warp_mask(mask: np.ndarray, matrix: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """Apply `matrix` to a binary mask with nearest-neighbour sampling; outside the image is background."""
    crop_h, crop_w = crop_size
    warped = cv2.warpAffine(mask.astype(np.uint8), matrix, (crop_w, crop_h), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped.astype(bool)


def transform_keypoints(keypoints: np.ndarray, matrix: np.ndarray, crop_size: tuple[int, int],
                        flip_permutation: np.ndarray | None = None) -> np.ndarray:
    """Map (..., K, 3) keypoints [x, y, v] through `matrix`; leaving the crop makes them (0, 0, 0).

    With `flip_permutation` (a mirrored matrix), keypoint k of the result is keypoint perm[k] of the input:
    what was the left eye is, in the mirror image, a right eye.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    crop_h, crop_w = crop_size
    xy = keypoints[..., :2] @ matrix[:, :2].T + matrix[:, 2]
    labelled = keypoints[..., 2] > 0
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= crop_w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= crop_h - 1)
    keep = labelled & inside
    out = np.where(keep[..., None], np.concatenate([xy, keypoints[..., 2:3]], axis=-1), 0.0)
    if flip_permutation is not None:
        out = out[..., flip_permutation, :]
    return out


def transform_box(bbox: Sequence[float], matrix: np.ndarray, crop_size: tuple[int, int]) -> list[float] | None:
    """The axis-aligned box [x, y, w, h] around a transformed box, clipped to the crop (None if outside)."""
    x, y, w, h = (float(v) for v in bbox)
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) @ matrix[:, :2].T + matrix[:, 2]
    crop_h, crop_w = crop_size
    x0, y0 = np.clip(corners.min(0), 0, [crop_w - 1, crop_h - 1])
    x1, y1 = np.clip(corners.max(0), 0, [crop_w - 1, crop_h - 1])
    if x1 <= x0 or y1 <= y0:
        return None
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """A COCO segmentation (polygons, compressed or uncompressed RLE) as an (height, width) bool mask.

    None for an annotation without a usable segmentation (missing, or only degenerate polygons).
    """
    from pycocotools import mask as mask_utils  # only annotations with masks need it

    if segmentation is None:
        return None
    if isinstance(segmentation, Mapping):
        if "counts" not in segmentation or "size" not in segmentation:
            raise ValueError("an RLE segmentation needs 'counts' and 'size'")
        size = tuple(int(v) for v in segmentation["size"])
        if size != (height, width):
            raise ValueError(f"RLE of size {size} for an image of {(height, width)}")
        rle = dict(segmentation)
        if isinstance(rle["counts"], list):  # uncompressed RLE (COCO's crowd regions)
            rle = mask_utils.frPyObjects(rle, height, width)
        elif isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        return mask_utils.decode(rle).astype(bool)
    if isinstance(segmentation, Sequence) and not isinstance(segmentation, str | bytes):
        # Polygons with fewer than three points have no area (and crash pycocotools).
        polygons = [[float(v) for v in p] for p in segmentation if len(p) >= 6]
        if not polygons:
            return None
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)
    raise ValueError(f"segmentation of type {type(segmentation).__name__} is neither polygons nor RLE")


def transform_annotations(annotations: Sequence[Mapping[str, Any]], matrix: np.ndarray,
                          image_size: tuple[int, int], crop_size: tuple[int, int],
                          schema: KeypointSchema, flipped: bool) -> list[dict[str, Any]]:
    """COCO annotations of an image, mapped into the crop: what `encode_targets` takes.

    Each result has `keypoints` (K, 3) (crop pixels; v = 0 outside), `iscrowd`, `segmentation` (a
    crop-sized bool mask, or None) and `bbox` (the transformed box, or None).
    """
    height, width = image_size
    k = schema.num_keypoints
    permutation = schema.flip_permutation if flipped else None
    out = []
    for n, ann in enumerate(annotations):
        where = f"annotation {n} (id {ann.get('id', '?')})"
        keypoints = ann.get("keypoints")
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float64)
            if keypoints.size != 3 * k:
                raise ValueError(f"{where}: {keypoints.size} keypoint values, schema {schema.name!r} needs {3 * k}")
            keypoints = transform_keypoints(keypoints.reshape(k, 3), matrix, crop_size, permutation)
        try:
            mask = decode_segmentation(ann.get("segmentation"), height, width)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        bbox = ann.get("bbox")
        out.append({
            "id": ann.get("id"),
            "keypoints": keypoints,
            "iscrowd": int(bool(ann.get("iscrowd", 0))),
            "segmentation": None if mask is None else warp_mask(mask, matrix, crop_size),
            "bbox": None if bbox is None else transform_box(bbox, matrix, crop_size),
        })
    return out
