"""Hough voting of the short-range offsets into score maps (ALGORITHM.md section 5).

h_k(x) = 1/(pi R^2) sum_i p_k(x_i) B(x_i + S_k(x_i) - x): every grid cell whose probability exceeds the
vote threshold votes, with weight p, for the point its short-range offset designates, splatted bilinearly
on the four surrounding cells; votes landing outside the grid are dropped. On the grid R becomes R/s, so a
keypoint whose whole disk votes for it collects about 1.

Two implementations with the same arithmetic: a numba kernel for CPU arrays (votes accumulate in float64
in row-major cell order, corner by corner, which the pure-Python baseline reproduces exactly) and torch ops
for tensors on a GPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

__all__ = ["hough_maps", "hough_maps_torch", "vote_normaliser"]


def vote_normaliser(radius: float, stride: int) -> float:
    """1 / (pi (R/s)^2): the weight that makes a fully voting disk sum to about 1."""
    grid_radius = radius / stride
    return 1.0 / (math.pi * grid_radius * grid_radius)


@njit(cache=True, nogil=True)
def hough_maps(heat: np.ndarray, short: np.ndarray, stride: int, normaliser: float,
               vote_threshold: float) -> np.ndarray:
    """Hough score maps (K, H, W) float64 from heat maps (K, H, W) and short offsets (K, 2, H, W)."""
    K, H, W = heat.shape
    out = np.zeros((K, H, W), dtype=np.float64)
    for k in range(K):
        for i in range(H):
            for j in range(W):
                p = np.float64(heat[k, i, j])
                if not p > vote_threshold:
                    continue
                tx = j + np.float64(short[k, 0, i, j]) / stride
                ty = i + np.float64(short[k, 1, i, j]) / stride
                # The check also keeps floor() away from huge values; a vote in (-1, 0) still reaches cell 0.
                if not (tx > -1.0 and tx < W and ty > -1.0 and ty < H):
                    continue
                x0 = math.floor(tx)
                y0 = math.floor(ty)
                fx = tx - x0
                fy = ty - y0
                w = p * normaliser
                if y0 >= 0:
                    if x0 >= 0:
                        out[k, y0, x0] += w * ((1.0 - fx) * (1.0 - fy))
                    if x0 + 1 < W:
                        out[k, y0, x0 + 1] += w * (fx * (1.0 - fy))
                if y0 + 1 < H:
                    if x0 >= 0:
                        out[k, y0 + 1, x0] += w * ((1.0 - fx) * fy)
                    if x0 + 1 < W:
                        out[k, y0 + 1, x0 + 1] += w * (fx * fy)
    return out


def hough_maps_torch(heat: torch.Tensor, short: torch.Tensor, stride: int, normaliser: float,
                     vote_threshold: float) -> torch.Tensor:
    """The same maps with torch ops on the tensors' device: heat (B, K, H, W), short (B, K, 2, H, W).

    Dense (every cell votes, weight 0 below the threshold or off the grid), so that nothing waits on
    the device for a count of voters. Float64, as the CPU kernel.
    """
    B, K, H, W = heat.shape
    device = heat.device
    p = heat.to(torch.float64)
    tx = torch.arange(W, device=device, dtype=torch.float64) + short[:, :, 0].to(torch.float64) / stride
    ty = torch.arange(H, device=device, dtype=torch.float64)[:, None] + short[:, :, 1].to(torch.float64) / stride
    voting = (p > vote_threshold) & (tx > -1.0) & (tx < W) & (ty > -1.0) & (ty < H)
    # Non-voters are moved to the origin before floor() so that huge offsets cannot overflow the index.
    tx = torch.where(voting, tx, torch.zeros_like(tx))
    ty = torch.where(voting, ty, torch.zeros_like(ty))
    x0 = torch.floor(tx)
    y0 = torch.floor(ty)
    fx = tx - x0
    fy = ty - y0
    x0 = x0.long()
    y0 = y0.long()
    w = torch.where(voting, p * normaliser, torch.zeros_like(p))
    base = torch.arange(B * K, device=device).view(B, K, 1, 1) * (H * W)
    out = torch.zeros(B * K * H * W, dtype=torch.float64, device=device)
    for dy, dx, corner in ((0, 0, (1.0 - fx) * (1.0 - fy)), (0, 1, fx * (1.0 - fy)),
                           (1, 0, (1.0 - fx) * fy), (1, 1, fx * fy)):
        xx = x0 + dx
        yy = y0 + dy
        inside = (xx >= 0) & (xx < W) & (yy >= 0) & (yy < H)
        index = base + yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1)
        out.index_add_(0, index.reshape(-1), torch.where(inside, w * corner, torch.zeros_like(w)).reshape(-1))
    return out.view(B, K, H, W)
