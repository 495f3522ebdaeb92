"""Instance-level NMS options the paper also tried (section 7): hard OKS-NMS and Gaussian soft-NMS.

The default, keypoint-level soft NMS of Eq. 1, happens inside the greedy grouping. Both options here
compare people by COCO's OKS with the better person's keypoint-box area as the scale; ties keep the
person made first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from strongpose_ros.decode.scoring import box_area, oks

__all__ = ["oks_hard_nms", "oks_soft_nms"]


@njit(cache=True, nogil=True)
def _order_desc(scores: np.ndarray) -> np.ndarray:
    # Stable descending order: earlier people win ties (argsort of -s with a stable sort).
    return np.argsort(-scores, kind="mergesort")


@njit(cache=True, nogil=True)
def oks_hard_nms(points: np.ndarray, scores: np.ndarray, kappa2: np.ndarray, threshold: float) -> np.ndarray:
    """Scores with the suppressed people set to 0: a person whose OKS with a better kept one exceeds
    `threshold` is dropped."""
    N = len(scores)
    out = scores.copy()
    kept = np.zeros(N, dtype=np.int64)
    n_kept = 0
    for idx in _order_desc(scores):
        suppressed = False
        for m in range(n_kept):
            best = kept[m]
            if oks(points[best], points[idx], box_area(points[best]), kappa2) > threshold:
                suppressed = True
                break
        if suppressed:
            out[idx] = 0.0
        else:
            kept[n_kept] = idx
            n_kept += 1
    return out


@njit(cache=True, nogil=True)
def oks_soft_nms(points: np.ndarray, scores: np.ndarray, kappa2: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian soft-NMS (Bodla et al. 2017) on OKS: repeatedly take the best remaining person and
    multiply every other remaining score by exp(-OKS^2 / sigma)."""
    N = len(scores)
    out = scores.copy()
    remaining = np.ones(N, dtype=np.bool_)
    for _ in range(N):
        best = -1
        for n in range(N):
            if remaining[n] and (best < 0 or out[n] > out[best]):
                best = n
        remaining[best] = False
        area = box_area(points[best])
        for n in range(N):
            if remaining[n]:
                overlap = oks(points[best], points[n], area, kappa2)
                out[n] *= math.exp(-(overlap * overlap) / sigma)
    return out
