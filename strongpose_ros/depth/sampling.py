"""The robust depth read: one depth per keypoint from a window of an aligned depth image.

Per keypoint (all people and keypoints at once, as (P, K, window) arrays; constants in `LiftingConfig`):
1. the window: a square of side 2r+1 around the keypoint's pixel mapped into the depth image (aligned
   images of different sizes map pixel centres: u_depth = (u + 0.5) * W_depth / W_colour - 0.5);
2. pixels with data: inside the image, depth within the sensor's range (0, NaN, inf are no data);
3. on the body: the body heat map at the pixel (nearest cell) is at least `body_threshold`; when that
   leaves fewer than `min_pixels` (the map is at stride 8-16, coarser than a wrist), the window is read
   without it and the keypoint's confidence is lowered (`off_body_factor`);
4. a first read per keypoint (step 6 on all of these pixels), and from those the person's reference
   depth: the median of its confident keypoints' first reads;
5. near the person: depth within [reference - max_nearer_m, reference + max_farther_m];
6. the nearest surface: from the `surface_percentile` of the kept depths up to `surface_thickness_m`
   deeper; the keypoint's depth is the median of those. The background behind a thin limb is farther
   than the limb, so it falls out here even when the person gate keeps it.
Every step works on the window's depths sorted once, so each is a count or an index (no per-keypoint
Python, no NaN-aware reductions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strongpose_ros.depth.camera import scale_between
from strongpose_ros.depth.config import LiftingConfig
from strongpose_ros.depth.depth_image import DepthImage

__all__ = ["DepthReads", "masked_median", "read_keypoint_depths"]


@dataclass(frozen=True, eq=False)
class DepthReads:
    """Depth of each keypoint (optical-axis z, metres) and how far to trust it.

    - `depth`: (P, K) float32, NaN where `valid` is False;
    - `valid`: (P, K) bool; `confidence`: (P, K) float32 in [0, 1], 0 where not valid;
    - `reference`: (P,) float32 reference depth of each person (NaN: none, so none of its keypoints read).
    """

    depth: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    reference: np.ndarray


def masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The median along the last axis of the `values` where `mask` is True; NaN where there are none."""
    count = mask.sum(-1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)
    low = np.maximum(count - 1, 0) // 2
    high = np.minimum(count // 2, values.shape[-1] - 1)
    median = 0.5 * (_take(ordered, low) + _take(ordered, high))
    return np.where(count > 0, median, np.nan)


def _take(ordered: np.ndarray, index: np.ndarray) -> np.ndarray:
    """ordered[..., index] per row, with the index clipped into range (callers mask empty rows)."""
    index = np.clip(index, 0, ordered.shape[-1] - 1)
    return np.take_along_axis(ordered, index[..., None], axis=-1)[..., 0]


def _nearest_surface(ordered: np.ndarray, lo: np.ndarray, hi: np.ndarray, config: LiftingConfig
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, pixel count and inter-quartile range of the nearest surface among ordered[lo:hi] per row."""
    count = hi - lo
    start = _take(ordered, lo + np.floor(config.surface_percentile * np.maximum(count - 1, 0)).astype(np.intp))
    limit = (start + np.float32(config.surface_thickness_m))[..., None]
    # The depths up to the surface's far side are a prefix of the sorted row; it starts at lo.
    end = np.minimum(np.count_nonzero(ordered <= limit, axis=-1), hi)
    size = np.maximum(end - lo, 0)
    last = np.maximum(size - 1, 0)
    median = 0.5 * (_take(ordered, lo + last // 2) + _take(ordered, lo + (size // 2).clip(max=last)))
    spread = _take(ordered, lo + (3 * last) // 4) - _take(ordered, lo + last // 4)
    return median, size, spread


def _body_lookup(body: np.ndarray, transform, threshold: float, sx: float, sy: float, depth_size: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(on-body table, heat-map row of each depth row, heat-map column of each depth column).

    The table has an extra last row and column that are off the body: depth pixels outside the map point
    there. Separable, so the lookup costs H + W, not H * W.
    """
    body = np.asarray(body, dtype=np.float32)
    if body.ndim != 2 or body.size == 0:
        raise ValueError(f"the body heat map must be a non-empty (H', W') array, got shape {body.shape}")
    bh, bw = body.shape
    table = np.zeros((bh + 1, bw + 1), dtype=bool)
    table[:bh, :bw] = body >= threshold
    height, width = depth_size

    def cells(n: int, scale: float, heat_scale: float, heat_offset: float, limit: int) -> np.ndarray:
        colour = (np.arange(n) + 0.5) / scale - 0.5  # depth pixel centre -> colour pixel
        cell = np.rint((colour - heat_offset) / heat_scale)
        return np.where((cell >= 0) & (cell < limit), cell, limit).astype(np.intp)

    rows = cells(height, sy, float(transform.scale_y), float(transform.offset_y), bh)
    cols = cells(width, sx, float(transform.scale_x), float(transform.offset_x), bw)
    return table, rows, cols


def read_keypoint_depths(
    keypoints: np.ndarray,
    depth: DepthImage,
    image_size: tuple[int, int],
    config: LiftingConfig | None = None,
    *,
    body_heatmap: np.ndarray | None = None,
    heatmap_transform=None,
    aspect_tolerance: float = 0.02,
) -> DepthReads:
    """The robust depth of every keypoint of P people (see the module docstring).

    - `keypoints`: (P, K, 3) rows [x, y, score], x/y in pixels of the colour image of `image_size`
      (height, width);
    - `depth`: the aligned depth frame, of any size with the colour image's aspect ratio (within
      `aspect_tolerance`; otherwise a CameraModelError says they are not aligned);
    - `body_heatmap` (H', W') with its `heatmap_transform` (scale_x, scale_y, offset_x, offset_y: heat-map
      cell to colour pixel), as `PoseResult` gives them; without them the body mask is not used.
    """
    config = config or LiftingConfig()
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"keypoints must have shape (P, K, 3), got {keypoints.shape}")
    if (body_heatmap is None) != (heatmap_transform is None):
        raise ValueError("body_heatmap and heatmap_transform go together")
    num_people, num_keypoints = keypoints.shape[:2]
    sx, sy = scale_between(image_size, depth.size, aspect_tolerance)
    height, width = depth.size
    radius = config.window_radius(width)
    offsets = np.arange(-radius, radius + 1)
    dy = np.repeat(offsets, offsets.size)
    dx = np.tile(offsets, offsets.size)

    scores = keypoints[..., 2]
    finite = np.isfinite(keypoints[..., 0]) & np.isfinite(keypoints[..., 1])
    far_away = -(10**6)  # non-finite keypoints read outside the image: no data
    cu = np.where(finite, np.rint((keypoints[..., 0] + 0.5) * sx - 0.5), far_away).astype(np.intp)
    cv = np.where(finite, np.rint((keypoints[..., 1] + 0.5) * sy - 0.5), far_away).astype(np.intp)
    xs = cu[..., None] + dx
    ys = cv[..., None] + dy
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    np.clip(xs, 0, width - 1, out=xs)
    np.clip(ys, 0, height - 1, out=ys)
    values = depth.values
    # A flat take is about twice as fast as 2-D fancy indexing; a strided view falls back to the latter.
    raw = np.take(values.reshape(-1), ys * width + xs) if values.flags.c_contiguous else values[ys, xs]
    z = raw.astype(np.float32)
    if depth.unit_m != 1.0:
        z *= np.float32(depth.unit_m)
    data = inside & (z >= config.min_depth_m) & (z <= config.max_depth_m)  # NaN compares False

    off_body = np.zeros((num_people, num_keypoints), dtype=bool)
    if body_heatmap is not None:
        table, rows, cols = _body_lookup(body_heatmap, heatmap_transform, config.body_threshold, sx, sy, depth.size)
        on_body = data & table[rows[ys], cols[xs]]
        use_mask = np.count_nonzero(on_body, axis=-1) >= config.min_pixels
        off_body = ~use_mask & (np.count_nonzero(data, axis=-1) > 0)
        data = np.where(use_mask[..., None], on_body, data)

    ordered = np.sort(np.where(data, z, np.float32(np.inf)), axis=-1)
    count = np.count_nonzero(data, axis=-1)
    zero = np.zeros_like(count)

    # Step 4: first reads, and each person's reference depth from its confident keypoints.
    first, first_size, _ = _nearest_surface(ordered, zero, count, config)
    lifted = finite & (scores >= config.min_keypoint_score)
    base = lifted & (first_size >= config.min_pixels)
    strong = base & (scores >= config.reference_min_score)
    use = np.where(strong.any(axis=1, keepdims=True), strong, base)
    reference = masked_median(first, use).astype(np.float32)  # (P,)

    # Step 5: the person gate is a contiguous range [lo, hi) of each sorted window.
    near = (reference - np.float32(config.max_nearer_m))[:, None, None]
    far = (reference + np.float32(config.max_farther_m))[:, None, None]
    lo = np.count_nonzero(ordered < near, axis=-1)
    hi = np.count_nonzero(ordered <= far, axis=-1)  # NaN reference: lo = hi = 0, nothing kept

    # Step 6: the nearest surface among the kept depths.
    read, size, spread = _nearest_surface(ordered, lo, hi, config)
    valid = lifted & (hi > lo) & (size >= config.min_pixels)
    window = np.maximum(np.count_nonzero(inside, axis=-1), 1)
    coverage = np.minimum(1.0, size / window / config.full_support_fraction)
    agreement = np.clip(1.0 - spread / config.surface_thickness_m, 0.0, 1.0)
    confidence = np.clip(scores, 0.0, 1.0) * coverage * agreement
    confidence = np.where(off_body, confidence * config.off_body_factor, confidence)
    return DepthReads(
        depth=np.where(valid, read, np.nan).astype(np.float32),
        valid=valid,
        confidence=np.where(valid, confidence, 0.0).astype(np.float32),
        reference=reference,
    )
