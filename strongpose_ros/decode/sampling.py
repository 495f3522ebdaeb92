"""Bilinear reads of grid maps at input-pixel positions (numba; the baseline repeats the arithmetic).

Two rules, for two kinds of map:
- offset fields are read at the position clamped to the grid, as the absolute points the surrounding
  cells designate (cell + F(cell)), averaged with support-weighted bilinear weights: a keypoint just
  beyond the last grid column (the image can extend up to s-1 pixels past it) is still placed where the
  nearest cells point;
- score maps read zero outside the grid (the corners that fall off the grid contribute nothing).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["follow_offset", "sample_zero"]


@njit(cache=True, nogil=True, inline="always")
def follow_offset(field: np.ndarray, channel: int, support: np.ndarray, x: float, y: float,
                  stride: int) -> tuple[float, float]:
    """The point that offset field (C, 2, H, W) designates from (x, y).

    The four cells around the clamped position each designate their own point, cell + F(cell); the
    result averages them with the bilinear weights times `support` (H, W), the probability map of the
    keypoint type whose disks the field is defined on. Offsets outside the disks carry no information
    (training never sees them), and at a coarse stride (R/s = 1 cell at s = 16) a point's neighbours often
    lie outside; when no neighbour has support the plain bilinear weights are used. Where every
    neighbour is inside, this equals a bilinear read of the field added to the point.
    """
    H = field.shape[2]
    W = field.shape[3]
    cx = min(max(x / stride, 0.0), W - 1.0)
    cy = min(max(y / stride, 0.0), H - 1.0)
    x0 = math.floor(cx)
    y0 = math.floor(cy)
    x1 = min(x0 + 1, W - 1)
    y1 = min(y0 + 1, H - 1)
    fx = cx - x0
    fy = cy - y0
    w00 = (1.0 - fx) * (1.0 - fy)
    w01 = fx * (1.0 - fy)
    w10 = (1.0 - fx) * fy
    w11 = fx * fy
    s00 = w00 * support[y0, x0]
    s01 = w01 * support[y0, x1]
    s10 = w10 * support[y1, x0]
    s11 = w11 * support[y1, x1]
    total = s00 + s01 + s10 + s11
    if total > 1e-6:
        w00 = s00 / total
        w01 = s01 / total
        w10 = s10 / total
        w11 = s11 / total
    tx = (w00 * (x0 * stride + field[channel, 0, y0, x0]) + w01 * (x1 * stride + field[channel, 0, y0, x1])
          + w10 * (x0 * stride + field[channel, 0, y1, x0]) + w11 * (x1 * stride + field[channel, 0, y1, x1]))
    ty = (w00 * (y0 * stride + field[channel, 1, y0, x0]) + w01 * (y0 * stride + field[channel, 1, y0, x1])
          + w10 * (y1 * stride + field[channel, 1, y1, x0]) + w11 * (y1 * stride + field[channel, 1, y1, x1]))
    return tx, ty


@njit(cache=True, nogil=True, inline="always")
def sample_zero(plane: np.ndarray, x: float, y: float, stride: int) -> float:
    """Bilinear value of an (H, W) map at input pixel (x, y), zero outside the grid."""
    H, W = plane.shape
    cx = x / stride
    cy = y / stride
    if not (cx > -1.0 and cx < W and cy > -1.0 and cy < H):
        return 0.0
    x0 = math.floor(cx)
    y0 = math.floor(cy)
    fx = cx - x0
    fy = cy - y0
    value = 0.0
    if y0 >= 0:
        if x0 >= 0:
            value += plane[y0, x0] * ((1.0 - fx) * (1.0 - fy))
        if x0 + 1 < W:
            value += plane[y0, x0 + 1] * (fx * (1.0 - fy))
    if y0 + 1 < H:
        if x0 >= 0:
            value += plane[y0 + 1, x0] * ((1.0 - fx) * fy)
        if x0 + 1 < W:
            value += plane[y0 + 1, x0 + 1] * (fx * fy)
    return value
