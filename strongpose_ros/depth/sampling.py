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
6. the nearest surface that holds a fair share of the window: from the `surface_percentile` of the kept
   depths up to `surface_thickness_m` deeper; the keypoint's depth is the median of those. The background
   behind a thin limb is farther than the limb, so it falls out here even when the person gate keeps it,
   while a nearer part that only reaches into the window's edge does not take over (see `LiftingConfig`).
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
    shape, n = values.shape[:-1], values.shape[-1]
    take = _Rows(np.sort(np.where(mask, values, np.inf), axis=-1).reshape(-1, n))
    count = mask.reshape(-1, n).sum(-1)
    median = 0.5 * (take(np.maximum(count - 1, 0) // 2) + take(count // 2))
    return np.where(count > 0, median, np.nan).reshape(shape)


def _count(mask: np.ndarray) -> np.ndarray:
    """True values per row of a (N, n) mask (a summed int16 is twice as fast as count_nonzero here)."""
    return mask.sum(-1, dtype=np.int16 if mask.shape[-1] < 2**15 else np.int32).astype(np.intp)


class _Rows:
    """Reads ordered[i, index[i]] of an (N, n) array for every row i; indices are >= 0 and those past the
    end read the last element (callers mask the rows where that happens). np.minimum, not np.clip: clip
    costs several microseconds of Python per call on arrays this small."""

    def __init__(self, ordered: np.ndarray) -> None:
        self.ordered = ordered
        self.rows = np.arange(ordered.shape[0])
        self.last = ordered.shape[1] - 1

    def __call__(self, index: np.ndarray) -> np.ndarray:
        return self.ordered[self.rows, np.minimum(index, self.last)]


def _nearest_surface(take: _Rows, lo: np.ndarray, hi: np.ndarray, config: LiftingConfig, spread: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Median, pixel count and inter-quartile range of the nearest surface among ordered[lo:hi] per row."""
    count = hi - lo
    start = take(lo + (config.surface_percentile * np.maximum(count - 1, 0)).astype(np.intp))
    limit = (start + np.float32(config.surface_thickness_m))[:, None]
    # The depths up to the surface's far side are a prefix of the sorted row; it starts at lo.
    end = np.minimum(_count(take.ordered <= limit), hi)
    size = np.maximum(end - lo, 0)
    last = np.maximum(size - 1, 0)
    median = 0.5 * (take(lo + last // 2) + take(lo + np.minimum(size // 2, last)))
    if not spread:
        return median, size, None
    with np.errstate(invalid="ignore"):  # empty rows hold inf - inf; the caller masks them (size 0)
        iqr = take(lo + (3 * last) // 4) - take(lo + last // 4)
    return median, size, iqr


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
    n = num_people * num_keypoints
    sx, sy = scale_between(image_size, depth.size, aspect_tolerance)
    height, width = depth.size
    radius = config.window_radius(width)
    offsets = np.arange(-radius, radius + 1)
    side = offsets.size

    flat = keypoints.reshape(n, 3)
    scores = flat[:, 2]
    finite = np.isfinite(flat[:, 0]) & np.isfinite(flat[:, 1])
    far_away = -(10**6)  # non-finite keypoints read outside the image: no data
    cu = np.where(finite, np.rint((flat[:, 0] + 0.5) * sx - 0.5), far_away).astype(np.intp)
    cv = np.where(finite, np.rint((flat[:, 1] + 0.5) * sy - 0.5), far_away).astype(np.intp)
    # The window is separable: its columns and rows are (n, side) each; pixels are their outer product.
    xs = cu[:, None] + offsets
    ys = cv[:, None] + offsets
    in_x = (xs >= 0) & (xs < width)
    in_y = (ys >= 0) & (ys < height)
    inside = (in_y[:, :, None] & in_x[:, None, :]).reshape(n, side * side)
    np.minimum(np.maximum(xs, 0, out=xs), width - 1, out=xs)
    np.minimum(np.maximum(ys, 0, out=ys), height - 1, out=ys)
    values = depth.values
    if values.flags.c_contiguous:  # a flat take is about twice as fast as 2-D fancy indexing
        raw = np.take(values.reshape(-1), ((ys * width)[:, :, None] + xs[:, None, :]).reshape(n, side * side))
    else:
        raw = values[ys[:, :, None], xs[:, None, :]].reshape(n, side * side)
    z = raw.astype(np.float32)
    if depth.unit_m != 1.0:
        z *= np.float32(depth.unit_m)
    if raw.dtype.kind in "ui":  # the range on the integers (0, no data, is below any minimum)
        low, high = np.ceil(config.min_depth_m / depth.unit_m), np.floor(config.max_depth_m / depth.unit_m)
        data = inside & (raw >= low) & (raw <= high)
    else:
        data = inside & (z >= config.min_depth_m) & (z <= config.max_depth_m)  # NaN compares False

    off_body = np.zeros(n, dtype=bool)
    if body_heatmap is not None:
        table, rows, cols = _body_lookup(body_heatmap, heatmap_transform, config.body_threshold, sx, sy, depth.size)
        on_body = data & table[rows[ys][:, :, None], cols[xs][:, None, :]].reshape(n, side * side)
        use_mask = _count(on_body) >= config.min_pixels
        off_body = ~use_mask & data.any(axis=-1)
        data = np.where(use_mask[:, None], on_body, data)

    ordered = np.sort(np.where(data, z, np.float32(np.inf)), axis=-1)
    take = _Rows(ordered)
    count = _count(data)

    # Step 4: first reads, and each person's reference depth from its confident keypoints.
    first, first_size, _ = _nearest_surface(take, np.zeros_like(count), count, config, spread=False)
    lifted = finite & (scores >= config.min_keypoint_score)
    base = (lifted & (first_size >= config.min_pixels)).reshape(num_people, num_keypoints)
    strong = base & (keypoints[..., 2] >= config.reference_min_score)
    use = np.where(strong.any(axis=1, keepdims=True), strong, base)
    reference = masked_median(first.reshape(num_people, num_keypoints), use).astype(np.float32)  # (P,)

    # Step 5: the person gate is a contiguous range [lo, hi) of each sorted window.
    per_row = np.repeat(reference, num_keypoints)[:, None]
    lo = _count(ordered < per_row - np.float32(config.max_nearer_m))
    hi = _count(ordered <= per_row + np.float32(config.max_farther_m))  # NaN reference: lo = hi = 0

    # Step 6: the nearest surface among the kept depths.
    read, size, spread = _nearest_surface(take, lo, hi, config)
    valid = lifted & (hi > lo) & (size >= config.min_pixels)
    window = np.maximum(in_x.sum(-1) * in_y.sum(-1), 1)
    coverage = np.minimum(1.0, size / window / config.full_support_fraction)
    with np.errstate(invalid="ignore"):
        agreement = np.maximum(1.0 - spread / config.surface_thickness_m, 0.0)  # spread >= 0: at most 1
    confidence = np.minimum(np.maximum(scores, 0.0), 1.0) * coverage * agreement
    confidence = np.where(off_body, confidence * config.off_body_factor, confidence)
    shape = (num_people, num_keypoints)
    return DepthReads(
        depth=np.where(valid, read, np.nan).astype(np.float32).reshape(shape),
        valid=valid.reshape(shape),
        confidence=np.where(valid, confidence, 0.0).astype(np.float32).reshape(shape),
        reference=reference,
    )
