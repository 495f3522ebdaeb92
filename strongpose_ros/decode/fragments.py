"""Fragment merging [ours]: join the pieces of one person that the tree walk could not connect.

The greedy walk reaches keypoint b from a only through the mid-range offset M_{a->b}. Where a joint on the
tree path is not visible the field carries no displacement (training defines it only when both ends are
labelled, so the oracle leaves it 0 and a network is unconstrained there), and the walk strands the
keypoints beyond it: a person seen from behind, whose left and right halves meet only at the nose, comes
out as two people with complementary halves.

A later person B is merged into an earlier person A when
- their supported keypoints (score >= `fragment_support` and not claimed, in Eq. 1's sense, by an earlier
  person) are of disjoint types: neither has placed what the other found;
- they are close for their size: the distance between their closest supported keypoints is at most
  `fragment_max_gap` times the larger one's extent (the diagonal of the box of its supported keypoints);
- the body heat map joins them: its mean along the segment between their closest supported keypoints is
  at least `fragment_min_body` (two people side by side have background between them);
and A is the nearest such person (smallest distance between supported keypoints). B's supported keypoints
replace A's placeholders of those types and B disappears; Eq. 1 is then recomputed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from strongpose_ros.decode.sampling import sample_zero

__all__ = ["eq1_scores", "merge_fragments", "supported_keypoints"]


@njit(cache=True, nogil=True)
def supported_keypoints(points: np.ndarray, scores: np.ndarray, alive: np.ndarray, threshold: float,
                        nms_radius: float) -> np.ndarray:
    """(N, K) bool: keypoints scoring >= threshold and farther than r from the same type of every earlier
    live person."""
    N, K = scores.shape
    r2 = nms_radius * nms_radius
    out = np.zeros((N, K), dtype=np.bool_)
    for n in range(N):
        if not alive[n]:
            continue
        for k in range(K):
            if not scores[n, k] >= threshold:
                continue
            claimed = False
            for m in range(n):
                if alive[m]:
                    dx = points[m, k, 0] - points[n, k, 0]
                    dy = points[m, k, 1] - points[n, k, 1]
                    if dx * dx + dy * dy <= r2:
                        claimed = True
                        break
            out[n, k] = not claimed
    return out


@njit(cache=True, nogil=True)
def eq1_scores(points: np.ndarray, scores: np.ndarray, alive: np.ndarray, nms_radius: float):
    """Eq. 1 and the mean keypoint score of the live people, in creation order (dead ones score 0)."""
    N, K = scores.shape
    r2 = nms_radius * nms_radius
    eq1 = np.zeros(N, dtype=np.float64)
    mean = np.zeros(N, dtype=np.float64)
    for n in range(N):
        if not alive[n]:
            continue
        unclaimed = 0.0
        total = 0.0
        for k in range(K):
            total += scores[n, k]
            claimed = False
            for m in range(n):
                if alive[m]:
                    dx = points[m, k, 0] - points[n, k, 0]
                    dy = points[m, k, 1] - points[n, k, 1]
                    if dx * dx + dy * dy <= r2:
                        claimed = True
                        break
            if not claimed:
                unclaimed += scores[n, k]
        eq1[n] = unclaimed / K
        mean[n] = total / K
    return eq1, mean


@njit(cache=True, nogil=True, inline="always")
def _body_along(body: np.ndarray, x0: float, y0: float, x1: float, y1: float, stride: int) -> float:
    """Mean body heat map along a segment, sampled every half grid cell (ends included)."""
    length = math.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2)
    steps = max(1, math.ceil(2.0 * length / stride))
    total = 0.0
    for t in range(steps + 1):
        f = t / steps
        total += sample_zero(body, x0 + f * (x1 - x0), y0 + f * (y1 - y0), stride)
    return total / (steps + 1)


@njit(cache=True, nogil=True, inline="always")
def _closest_pair(points: np.ndarray, strong: np.ndarray, lists: np.ndarray, counts: np.ndarray, a: int,
                  b: int) -> tuple[float, int, int]:
    """Squared distance and types of the closest supported keypoints of a and b; inf when their supported
    types overlap or either has none. `lists[n, :counts[n]]` are n's supported types, ascending."""
    if counts[a] == 0 or counts[b] == 0:
        return np.inf, -1, -1
    for i in range(counts[a]):
        if strong[b, lists[a, i]]:
            return np.inf, -1, -1
    best = np.inf
    best_a = -1
    best_b = -1
    for i in range(counts[a]):
        ka = lists[a, i]
        for j in range(counts[b]):
            kb = lists[b, j]
            dx = points[a, ka, 0] - points[b, kb, 0]
            dy = points[a, ka, 1] - points[b, kb, 1]
            d2 = dx * dx + dy * dy
            if d2 < best:
                best = d2
                best_a = ka
                best_b = kb
    return best, best_a, best_b


@njit(cache=True, nogil=True, inline="always")
def _extent2(points: np.ndarray, strong: np.ndarray, n: int) -> float:
    """Squared diagonal of the box around person n's supported keypoints."""
    x_min = np.inf
    x_max = -np.inf
    y_min = np.inf
    y_max = -np.inf
    for k in range(strong.shape[1]):
        if strong[n, k]:
            x_min = min(x_min, points[n, k, 0])
            x_max = max(x_max, points[n, k, 0])
            y_min = min(y_min, points[n, k, 1])
            y_max = max(y_max, points[n, k, 1])
    if x_min > x_max:
        return 0.0
    return (x_max - x_min) ** 2 + (y_max - y_min) ** 2


@njit(cache=True, nogil=True, inline="always")
def _merge_distance(points: np.ndarray, strong: np.ndarray, lists: np.ndarray, counts: np.ndarray,
                    extent2: np.ndarray, boxes: np.ndarray, body: np.ndarray, stride: int, a: int, b: int,
                    min_body: float, max_gap: float) -> float:
    """Squared gap between a and b when they may merge, else inf."""
    limit2 = max_gap * max_gap * max(extent2[a], extent2[b])
    # The gap between the supported keypoints' boxes bounds the closest pair from below: most pairs
    # (different people far apart) stop here, before the K x K search.
    gx = max(0.0, boxes[b, 0] - boxes[a, 2], boxes[a, 0] - boxes[b, 2])
    gy = max(0.0, boxes[b, 1] - boxes[a, 3], boxes[a, 1] - boxes[b, 3])
    if gx * gx + gy * gy > limit2:
        return np.inf
    d2, ka, kb = _closest_pair(points, strong, lists, counts, a, b)
    if d2 > limit2:
        return np.inf
    if _body_along(body, points[a, ka, 0], points[a, ka, 1], points[b, kb, 0], points[b, kb, 1], stride) < min_body:
        return np.inf
    return d2


@njit(cache=True, nogil=True, inline="always")
def _describe(points: np.ndarray, strong: np.ndarray, n: int, lists: np.ndarray, counts: np.ndarray,
              extent2: np.ndarray, boxes: np.ndarray) -> None:
    """Cache person n's supported types, the box around them and its squared diagonal."""
    count = 0
    boxes[n, 0] = np.inf
    boxes[n, 1] = np.inf
    boxes[n, 2] = -np.inf
    boxes[n, 3] = -np.inf
    for k in range(strong.shape[1]):
        if strong[n, k]:
            lists[n, count] = k
            count += 1
            boxes[n, 0] = min(boxes[n, 0], points[n, k, 0])
            boxes[n, 1] = min(boxes[n, 1], points[n, k, 1])
            boxes[n, 2] = max(boxes[n, 2], points[n, k, 0])
            boxes[n, 3] = max(boxes[n, 3], points[n, k, 1])
    counts[n] = count
    extent2[n] = _extent2(points, strong, n)


@njit(cache=True, nogil=True)
def merge_fragments(points: np.ndarray, scores: np.ndarray, body: np.ndarray, stride: int, support: float,
                    nms_radius: float, min_body: float, max_gap: float) -> np.ndarray:
    """Merge fragments in place (points, scores), closest pair first (ties: lowest later person, then
    lowest earlier one), the earlier person absorbing the later; returns the (N,) mask of people alive.

    Pair distances are computed once and, after each merge, again only for pairs with the absorbing
    person: the others' keypoints and supports have not changed.
    """
    N, K = scores.shape
    alive = np.ones(N, dtype=np.bool_)
    strong = supported_keypoints(points, scores, alive, support, nms_radius)
    lists = np.zeros((N, K), dtype=np.int64)
    counts = np.zeros(N, dtype=np.int64)
    extent2 = np.zeros(N, dtype=np.float64)
    boxes = np.zeros((N, 4), dtype=np.float64)
    for n in range(N):
        _describe(points, strong, n, lists, counts, extent2, boxes)
    gap = np.full((N, N), np.inf)  # gap[a, b], a < b
    for b in range(1, N):
        for a in range(b):
            gap[a, b] = _merge_distance(points, strong, lists, counts, extent2, boxes, body, stride, a, b, min_body,
                                        max_gap)
    while True:
        best_d2 = np.inf
        best_a = -1
        best_b = -1
        for b in range(1, N):
            if not alive[b]:
                continue
            for a in range(b):
                if alive[a] and gap[a, b] < best_d2:
                    best_d2 = gap[a, b]
                    best_a = a
                    best_b = b
        if best_a < 0:
            return alive
        for k in range(K):
            if strong[best_b, k]:
                points[best_a, k, 0] = points[best_b, k, 0]
                points[best_a, k, 1] = points[best_b, k, 1]
                scores[best_a, k] = scores[best_b, k]
                strong[best_a, k] = True
        alive[best_b] = False
        _describe(points, strong, best_a, lists, counts, extent2, boxes)
        for c in range(N):
            if alive[c] and c != best_a:
                lo = min(c, best_a)
                hi = max(c, best_a)
                gap[lo, hi] = _merge_distance(points, strong, lists, counts, extent2, boxes, body, stride, lo, hi,
                                              min_body, max_gap)
