"""Candidate keypoints: optional Gaussian blur of the Hough maps, then local maxima above a threshold.

A cell is a candidate when its value exceeds the threshold and is >= every other value in the centred
window (ties on a plateau all qualify; the greedy stage's r-rejection removes the duplicates). The blur is
separable and renormalised at the borders (taps that fall off the grid are left out of the weights), so a
keypoint on the image edge keeps its height. numba kernels for CPU arrays, torch ops for GPU tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit

__all__ = ["blur_maps", "blur_maps_torch", "find_peaks", "find_peaks_torch", "gaussian_taps"]


def gaussian_taps(sigma: float) -> np.ndarray:
    """1-D Gaussian taps exp(-t^2 / (2 sigma^2)) for t in [-ceil(3 sigma), ceil(3 sigma)], unnormalised."""
    radius = max(1, math.ceil(3.0 * sigma))
    return np.array([math.exp(-(t * t) / (2.0 * sigma * sigma)) for t in range(-radius, radius + 1)])


@njit(cache=True, nogil=True)
def _blur_last_axis(maps: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """One pass of the separable blur, along the last axis of (K, H, W) maps, renormalised at the borders."""
    K, H, W = maps.shape
    radius = len(taps) // 2
    out = np.empty_like(maps)
    for k in range(K):
        for i in range(H):
            for j in range(W):
                acc = 0.0
                norm = 0.0
                for t in range(-radius, radius + 1):
                    jj = j + t
                    if 0 <= jj < W:
                        acc += taps[t + radius] * maps[k, i, jj]
                        norm += taps[t + radius]
                out[k, i, j] = acc / norm
    return out


def blur_maps(maps: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable blur of (K, H, W) float64 maps, rows first, each pass renormalised at the borders."""
    rows = _blur_last_axis(maps, taps)
    columns = _blur_last_axis(np.ascontiguousarray(rows.transpose(0, 2, 1)), taps)
    return np.ascontiguousarray(columns.transpose(0, 2, 1))


def blur_maps_torch(maps: torch.Tensor, taps: np.ndarray) -> torch.Tensor:
    """The same blur for (B, K, H, W) tensors: zero-padded convolutions divided by the weight in bounds."""
    B, K, H, W = maps.shape
    radius = len(taps) // 2
    kernel = torch.as_tensor(taps, dtype=maps.dtype, device=maps.device)
    x = maps.reshape(B * K, 1, H, W)
    ones = torch.ones(1, 1, H, W, dtype=maps.dtype, device=maps.device)
    horizontal = kernel.view(1, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1)
    x = F.conv2d(x, horizontal, padding=(0, radius)) / F.conv2d(ones, horizontal, padding=(0, radius))
    x = F.conv2d(x, vertical, padding=(radius, 0)) / F.conv2d(ones, vertical, padding=(radius, 0))
    return x.view(B, K, H, W)


@njit(cache=True, nogil=True)
def find_peaks(maps: np.ndarray, threshold: float, window: int):
    """Local maxima of (K, H, W) maps: (values, k, row, col) arrays in (k, row, col) order."""
    K, H, W = maps.shape
    half = window // 2
    count = 0
    values = np.empty(K * H * W, dtype=np.float64)
    ks = np.empty(K * H * W, dtype=np.int64)
    rows = np.empty(K * H * W, dtype=np.int64)
    cols = np.empty(K * H * W, dtype=np.int64)
    for k in range(K):
        for i in range(H):
            for j in range(W):
                v = maps[k, i, j]
                if not v > threshold:
                    continue
                peak = True
                for ii in range(max(0, i - half), min(H, i + half + 1)):
                    for jj in range(max(0, j - half), min(W, j + half + 1)):
                        if maps[k, ii, jj] > v:
                            peak = False
                            break
                    if not peak:
                        break
                if peak:
                    values[count] = v
                    ks[count] = k
                    rows[count] = i
                    cols[count] = j
                    count += 1
    return values[:count], ks[:count], rows[:count], cols[:count]


def find_peaks_torch(maps: torch.Tensor, threshold: float, window: int) -> torch.Tensor:
    """Peak mask (B, K, H, W) bool of the same rule (max pooling pads with -inf, so borders are fine)."""
    B, K, H, W = maps.shape
    pooled = F.max_pool2d(maps.reshape(B * K, 1, H, W), window, stride=1, padding=window // 2).view(B, K, H, W)
    return (maps >= pooled) & (maps > threshold)
