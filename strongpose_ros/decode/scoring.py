"""Keypoint and instance scores (ALGORITHM.md section 7), numba kernels.

- plain: s_jk = h_k(y_jk), read as the vote mass in the `score_window`^2 cells around y_jk and clipped to
  [0, 1] (a fully supported keypoint collects about 1; overlapping votes can exceed it slightly);
- expected-OKS: s_jk = p_k(y_jk) * sum_{x in D_R(y_jk)} h^_k(x) exp(-|x - y_jk|^2 / (2 lambda_j^2 kappa_k^2)),
  h^_k = h_k normalised to sum 1 over the disk's grid cells, lambda_j^2 = area of the box around all K
  keypoints of person j (at least 1 px^2), kappa_k = 2 sigma_k;
- Eq. 1: s_j = (1/K) sum_k s_jk [|y_jk - y_j'k| > r for every earlier person j'];
- OKS between two decoded people (for the instance NMS options), COCO's formula with the area of the
  better one's keypoint box.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from strongpose_ros.decode.sampling import sample_zero

__all__ = ["bhm_means", "box_area", "claimed_by", "expected_oks_score", "keypoint_boxes", "oks", "plain_score"]


@njit(cache=True, nogil=True, inline="always")
def claimed_by(points: np.ndarray, reached: np.ndarray, alive: np.ndarray, count: int, k: int,
               x: float, y: float, r2: float) -> bool:
    """Whether one of the first `count` live people reached keypoint type k within r (r2 = r^2) of (x, y).

    The paper's claim rule: a seed so claimed is skipped, and a keypoint so claimed does not count again in
    Eq. 1. Only reached keypoints claim: a placeholder has found nothing.
    """
    for m in range(count):
        if alive[m] and reached[m, k]:
            dx = points[m, k, 0] - x
            dy = points[m, k, 1] - y
            if dx * dx + dy * dy <= r2:
                return True
    return False


@njit(cache=True, nogil=True, inline="always")
def plain_score(h: np.ndarray, x: float, y: float, stride: int, window: int) -> float:
    """h_k near (x, y): the vote mass in the window x window cells around the nearest cell, clipped to [0, 1].

    A window sum rather than a bilinear read: votes are splatted bilinearly, so reading h back bilinearly
    at the very point they designate returns between 1/4 and all of their mass depending on where the
    point falls within its cell; the window holds all of it (a perfect keypoint scores about 1).
    """
    H, W = h.shape
    half = window // 2
    cx = x / stride
    cy = y / stride
    if not (cx > -half - 1.0 and cx < W + half and cy > -half - 1.0 and cy < H + half):
        return 0.0
    ci = math.floor(cy + 0.5)
    cj = math.floor(cx + 0.5)
    mass = 0.0
    for i in range(max(0, ci - half), min(H, ci + half + 1)):
        for j in range(max(0, cj - half), min(W, cj + half + 1)):
            mass += h[i, j]
    return min(max(mass, 0.0), 1.0)


@njit(cache=True, nogil=True, inline="always")
def box_area(points: np.ndarray) -> float:
    """Area of the box around (K, 2) points, at least 1 px^2 (a degenerate person still has a scale)."""
    x_min = points[0, 0]
    x_max = points[0, 0]
    y_min = points[0, 1]
    y_max = points[0, 1]
    for k in range(1, points.shape[0]):
        x_min = min(x_min, points[k, 0])
        x_max = max(x_max, points[k, 0])
        y_min = min(y_min, points[k, 1])
        y_max = max(y_max, points[k, 1])
    return max((x_max - x_min) * (y_max - y_min), 1.0)


@njit(cache=True, nogil=True, inline="always")
def expected_oks_score(h: np.ndarray, p: np.ndarray, x: float, y: float, stride: int, radius: float,
                       variance: float) -> float:
    """Expected-OKS keypoint score; `variance` = lambda^2 kappa_k^2, h and p one (H, W) map each."""
    H, W = h.shape
    grid_radius = radius / stride
    cx = x / stride
    cy = y / stride
    if not (cx > -grid_radius - 1.0 and cx < W + grid_radius and cy > -grid_radius - 1.0 and cy < H + grid_radius):
        return 0.0
    i_lo = max(0, math.ceil(cy - grid_radius))
    i_hi = min(H - 1, math.floor(cy + grid_radius))
    j_lo = max(0, math.ceil(cx - grid_radius))
    j_hi = min(W - 1, math.floor(cx + grid_radius))
    r2 = radius * radius
    mass = 0.0
    weighted = 0.0
    for i in range(i_lo, i_hi + 1):
        for j in range(j_lo, j_hi + 1):
            dx = j * stride - x
            dy = i * stride - y
            d2 = dx * dx + dy * dy
            if d2 <= r2:
                value = h[i, j]
                mass += value
                weighted += value * math.exp(-d2 / (2.0 * variance))
    if not mass > 0.0:
        return 0.0
    probability = min(max(sample_zero(p, x, y, stride), 0.0), 1.0)
    return probability * (weighted / mass)


@njit(cache=True, nogil=True, inline="always")
def oks(a: np.ndarray, b: np.ndarray, area: float, kappa2: np.ndarray) -> float:
    """COCO OKS between two (K, 2) keypoint sets, all keypoints counted, with `area` as the scale."""
    K = a.shape[0]
    total = 0.0
    for k in range(K):
        dx = a[k, 0] - b[k, 0]
        dy = a[k, 1] - b[k, 1]
        total += math.exp(-(dx * dx + dy * dy) / (2.0 * area * kappa2[k]))
    return total / K


@njit(cache=True, nogil=True)
def keypoint_boxes(points: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N, 4) boxes x_min, y_min, x_max, y_max of the keypoints scoring >= threshold (all if none does)."""
    N, K = scores.shape
    boxes = np.empty((N, 4), dtype=np.float64)
    for n in range(N):
        any_above = False
        for k in range(K):
            if scores[n, k] >= threshold:
                any_above = True
                break
        first = True
        for k in range(K):
            if any_above and not scores[n, k] >= threshold:
                continue
            x = points[n, k, 0]
            y = points[n, k, 1]
            if first:
                boxes[n, 0] = x
                boxes[n, 1] = y
                boxes[n, 2] = x
                boxes[n, 3] = y
                first = False
            else:
                boxes[n, 0] = min(boxes[n, 0], x)
                boxes[n, 1] = min(boxes[n, 1], y)
                boxes[n, 2] = max(boxes[n, 2], x)
                boxes[n, 3] = max(boxes[n, 3], y)
    return boxes


@njit(cache=True, nogil=True)
def bhm_means(body: np.ndarray, points: np.ndarray, scores: np.ndarray, threshold: float,
              stride: int) -> np.ndarray:
    """(N,) mean body heat map under each person's keypoints scoring >= threshold (all if none does)."""
    N, K = scores.shape
    out = np.zeros(N, dtype=np.float64)
    for n in range(N):
        any_above = False
        for k in range(K):
            if scores[n, k] >= threshold:
                any_above = True
                break
        total = 0.0
        count = 0
        for k in range(K):
            if any_above and not scores[n, k] >= threshold:
                continue
            total += min(max(sample_zero(body, points[n, k, 0], points[n, k, 1], stride), 0.0), 1.0)
            count += 1
        out[n] = total / count
    return out
