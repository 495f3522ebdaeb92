"""Fragment merging [ours]: join the pieces of one person that the tree walk could not connect.

The greedy walk reaches keypoint b from a only through the mid-range offset M_{a->b}, and keeps the step
only if the reverse offset M_{b->a} leads back to a (`greedy.py`). Where a joint on the tree path is not
visible the field carries no displacement (training defines it only when both ends are labelled, so the
oracle leaves it 0 and a network is unconstrained there), and the walk stops there: a person seen from
behind, whose left and right halves meet only at the nose, comes out as two pieces with complementary
halves; a person with only the ears and shoulders labelled, as four pieces of one keypoint each.

A later piece B is merged into an earlier piece A when
- their supported keypoints (reached, score >= `fragment_support`, and not claimed in Eq. 1's sense by an
  earlier piece) are of disjoint types: neither has found what the other found;
- where a tree edge joins a supported type of A to one of B, the edge's mid-range offset leads from one
  end to the other (in one direction at least; a walk would otherwise have joined them, so two pieces
  whose offsets do not meet are two people);
- their mirrored limbs agree: no limb (u, v) of one is more than `fragment_max_limb_ratio` times as long,
  or as short, as the mirror-image limb (u', v') of the other (left and right limbs of one person are alike);
- the body heat map joins them: some supported keypoint of each lies within `fragment_body_reach` of the
  same connected region of the map >= `fragment_min_body` (people standing apart have background between
  them); a piece with no region within reach (the map does not cover it) leaves the decision to geometry;
- they are close for their size: the gap between them is at most `fragment_max_gap` times the larger
  one's extent (the diagonal of the box around its supported keypoints; at least `fragment_min_extent`,
  the size given to a piece of one keypoint).
The gap is measured where the skeleton would join them: between the supported keypoints of each that are
fewest tree edges apart (the nearer pair among those). Pairs merge smallest gap first, the earlier piece
absorbing the later: B's supported keypoints replace A's placeholders of those types and B disappears;
Eq. 1 is then recomputed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from strongpose_ros.decode.sampling import follow_offset
from strongpose_ros.decode.scoring import claimed_by

__all__ = ["body_regions", "eq1_scores", "merge_fragments", "supported_keypoints"]


@njit(cache=True, nogil=True)
def supported_keypoints(points: np.ndarray, scores: np.ndarray, reached: np.ndarray, alive: np.ndarray,
                        threshold: float, nms_radius: float) -> np.ndarray:
    """(N, K) bool: reached keypoints scoring >= threshold, farther than r from the same type (if reached)
    of every earlier live person."""
    N, K = scores.shape
    r2 = nms_radius * nms_radius
    out = np.zeros((N, K), dtype=np.bool_)
    for n in range(N):
        if not alive[n]:
            continue
        for k in range(K):
            if reached[n, k] and scores[n, k] >= threshold:
                out[n, k] = not claimed_by(points, reached, alive, n, k, points[n, k, 0], points[n, k, 1], r2)
    return out


@njit(cache=True, nogil=True)
def eq1_scores(points: np.ndarray, scores: np.ndarray, reached: np.ndarray, alive: np.ndarray, nms_radius: float):
    """Eq. 1 and the mean keypoint score of the live people, in creation order (dead ones score 0). Only
    reached keypoints claim: a placeholder has found nothing."""
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
            if not claimed_by(points, reached, alive, n, k, points[n, k, 0], points[n, k, 1], r2):
                unclaimed += scores[n, k]
        eq1[n] = unclaimed / K
        mean[n] = total / K
    return eq1, mean


@njit(cache=True, nogil=True)
def body_regions(body: np.ndarray, level: float) -> tuple[np.ndarray, int]:
    """Connected regions (8-neighbour) of the cells where the body heat map is >= level: (H, W) labels
    0, 1, ... in raster order of their first cell, -1 elsewhere; and the number of regions."""
    H, W = body.shape
    labels = np.full((H, W), -1, dtype=np.int64)
    stack = np.empty(H * W, dtype=np.int64)
    count = 0
    for i0 in range(H):
        for j0 in range(W):
            if labels[i0, j0] >= 0 or not body[i0, j0] >= level:
                continue
            labels[i0, j0] = count
            stack[0] = i0 * W + j0
            top = 1
            while top > 0:
                top -= 1
                i = stack[top] // W
                j = stack[top] % W
                for ii in range(max(0, i - 1), min(H, i + 2)):
                    for jj in range(max(0, j - 1), min(W, j + 2)):
                        if labels[ii, jj] < 0 and body[ii, jj] >= level:
                            labels[ii, jj] = count
                            stack[top] = ii * W + jj
                            top += 1
            count += 1
    return labels, count


@njit(cache=True, nogil=True, inline="always")
def _touch_regions(labels: np.ndarray, x: float, y: float, stride: int, reach: float, n: int,
                   touches: np.ndarray, regions: np.ndarray, region_counts: np.ndarray) -> None:
    """Add to piece n's regions every body region with a cell within `reach` px of (x, y)."""
    H, W = labels.shape
    grid_reach = reach / stride
    r2 = reach * reach
    for i in range(max(0, math.ceil(y / stride - grid_reach)), min(H - 1, math.floor(y / stride + grid_reach)) + 1):
        for j in range(max(0, math.ceil(x / stride - grid_reach)),
                       min(W - 1, math.floor(x / stride + grid_reach)) + 1):
            label = labels[i, j]
            if label < 0 or touches[n, label]:
                continue
            dx = j * stride - x
            dy = i * stride - y
            if dx * dx + dy * dy <= r2:
                touches[n, label] = True
                regions[n, region_counts[n]] = label
                region_counts[n] += 1


@njit(cache=True, nogil=True, inline="always")
def _leads_to(heat: np.ndarray, short: np.ndarray, mid: np.ndarray, e: int, a: int, b: int, xa: float, ya: float,
              xb: float, yb: float, stride: int, refine_steps: int, r2: float) -> bool:
    """Whether the mid-range offset of edge e (a->b) at (xa, ya), refined as the walk does, lands within
    sqrt(r2) of (xb, yb)."""
    x, y = follow_offset(mid, e, heat[a], xa, ya, stride)
    for _ in range(refine_steps):
        x, y = follow_offset(short, b, heat[b], x, y, stride)
    return (x - xb) * (x - xb) + (y - yb) * (y - yb) <= r2


@njit(cache=True, nogil=True, inline="always")
def _joining_pair(points: np.ndarray, strong: np.ndarray, lists: np.ndarray, counts: np.ndarray,
                  hops: np.ndarray, edge_index: np.ndarray, heat: np.ndarray, short: np.ndarray, mid: np.ndarray,
                  stride: int, refine_steps: int, link2: float, a: int, b: int) -> tuple[float, int, int]:
    """Where a and b would join: the supported keypoints of each that are fewest tree edges apart (the
    nearer pair among those), as their squared distance and types. inf when their supported types overlap,
    when a tree edge joins them but its offsets lead from neither end to the other, or when either has none.
    `lists[n, :counts[n]]` are n's supported types, ascending."""
    if counts[a] == 0 or counts[b] == 0:
        return np.inf, -1, -1
    best_hops = hops.shape[0]
    best = np.inf
    best_a = -1
    best_b = -1
    for i in range(counts[a]):
        ka = lists[a, i]
        if strong[b, ka]:
            return np.inf, -1, -1
        xa = points[a, ka, 0]
        ya = points[a, ka, 1]
        for j in range(counts[b]):
            kb = lists[b, j]
            xb = points[b, kb, 0]
            yb = points[b, kb, 1]
            h = hops[ka, kb]
            if h == 1 and not (
                    _leads_to(heat, short, mid, edge_index[ka, kb], ka, kb, xa, ya, xb, yb, stride, refine_steps, link2)
                    or _leads_to(heat, short, mid, edge_index[kb, ka], kb, ka, xb, yb, xa, ya, stride, refine_steps,
                                 link2)):
                return np.inf, -1, -1
            if h > best_hops:
                continue
            d2 = (xa - xb) * (xa - xb) + (ya - yb) * (ya - yb)
            if h < best_hops or d2 < best:
                best_hops = h
                best = d2
                best_a = ka
                best_b = kb
    return best, best_a, best_b


@njit(cache=True, nogil=True, inline="always")
def _limbs_agree(points: np.ndarray, strong: np.ndarray, limbs: np.ndarray, a: int, b: int,
                 max_ratio: float) -> bool:
    """False when a limb of one piece and its mirror image in the other differ in length by more than
    `max_ratio` (0: no test). `limbs` rows: u, v, mirror of u, mirror of v."""
    if max_ratio <= 0.0:
        return True
    for i in range(limbs.shape[0]):
        u = limbs[i, 0]
        v = limbs[i, 1]
        fu = limbs[i, 2]
        fv = limbs[i, 3]
        for p, q in ((a, b), (b, a)):
            if strong[p, u] and strong[p, v] and strong[q, fu] and strong[q, fv]:
                lp = math.sqrt((points[p, u, 0] - points[p, v, 0]) ** 2 + (points[p, u, 1] - points[p, v, 1]) ** 2)
                lq = math.sqrt((points[q, fu, 0] - points[q, fv, 0]) ** 2
                               + (points[q, fu, 1] - points[q, fv, 1]) ** 2)
                if max(lp, lq) > max_ratio * min(lp, lq):
                    return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _describe(points: np.ndarray, strong: np.ndarray, n: int, lists: np.ndarray, counts: np.ndarray,
              masks: np.ndarray, extent2: np.ndarray, boxes: np.ndarray) -> None:
    """Cache piece n's supported types (list and, for K < 63, bit mask), the box around them and its
    squared diagonal."""
    count = 0
    mask = 0
    boxes[n, 0] = np.inf
    boxes[n, 1] = np.inf
    boxes[n, 2] = -np.inf
    boxes[n, 3] = -np.inf
    for k in range(strong.shape[1]):
        if strong[n, k]:
            lists[n, count] = k
            count += 1
            if k < 63:
                mask |= 1 << k
            boxes[n, 0] = min(boxes[n, 0], points[n, k, 0])
            boxes[n, 1] = min(boxes[n, 1], points[n, k, 1])
            boxes[n, 2] = max(boxes[n, 2], points[n, k, 0])
            boxes[n, 3] = max(boxes[n, 3], points[n, k, 1])
    counts[n] = count
    masks[n] = mask
    extent2[n] = 0.0 if count == 0 else (boxes[n, 2] - boxes[n, 0]) ** 2 + (boxes[n, 3] - boxes[n, 1]) ** 2


@njit(cache=True, nogil=True)
def merge_fragments(points: np.ndarray, scores: np.ndarray, reached: np.ndarray, heat: np.ndarray,
                    short: np.ndarray, mid: np.ndarray, body: np.ndarray, stride: int, hops: np.ndarray,
                    edge_index: np.ndarray, limbs: np.ndarray, refine_steps: int, link_radius: float,
                    nms_radius: float, support: float, min_body: float, body_reach: float, max_gap: float,
                    min_extent: float, max_limb_ratio: float) -> np.ndarray:
    """Merge pieces in place (points, scores, reached), smallest gap first (ties: lowest later piece, then
    lowest earlier one), the earlier piece absorbing the later; returns the (N,) mask of pieces alive.

    `hops` (K, K) tree distances, `edge_index` (K, K) directed-edge numbers, `limbs` (L, 4) tree edges with
    their mirror images; `link_radius` is the walk's reverse-check radius. Gaps are computed once and,
    after each merge, again only for pairs with the absorbing piece: the others have not changed.
    """
    N, K = scores.shape
    alive = np.ones(N, dtype=np.bool_)
    if N < 2:
        return alive
    strong = supported_keypoints(points, scores, reached, alive, support, nms_radius)
    lists = np.zeros((N, K), dtype=np.int64)
    counts = np.zeros(N, dtype=np.int64)
    masks = np.zeros(N, dtype=np.int64)
    extent2 = np.zeros(N, dtype=np.float64)
    boxes = np.zeros((N, 4), dtype=np.float64)
    labels, n_regions = body_regions(body, min_body)
    touches = np.zeros((N, max(n_regions, 1)), dtype=np.bool_)
    regions = np.zeros((N, max(n_regions, 1)), dtype=np.int64)
    region_counts = np.zeros(N, dtype=np.int64)
    for n in range(N):
        _describe(points, strong, n, lists, counts, masks, extent2, boxes)
        for k in range(K):
            if strong[n, k]:
                _touch_regions(labels, points[n, k, 0], points[n, k, 1], stride, body_reach, n, touches, regions,
                               region_counts)
    link2 = link_radius * link_radius
    min_extent2 = min_extent * min_extent

    def gap_of(a: int, b: int) -> float:
        """Squared gap between a and b when they may merge, else inf. The cheap tests come first: most
        pairs are two people who both have a type (their masks overlap) or stand far apart."""
        if masks[a] & masks[b] != 0:
            return np.inf
        limit2 = max_gap * max_gap * max(extent2[a], extent2[b], min_extent2)
        # The gap between the boxes of the supported keypoints bounds every pair's distance from below:
        # most pairs (people far apart) stop here, before the K x K search.
        gx = max(0.0, boxes[b, 0] - boxes[a, 2], boxes[a, 0] - boxes[b, 2])
        gy = max(0.0, boxes[b, 1] - boxes[a, 3], boxes[a, 1] - boxes[b, 3])
        if gx * gx + gy * gy > limit2:
            return np.inf
        if region_counts[a] > 0 and region_counts[b] > 0:  # else the body map does not cover a piece: it cannot tell
            shared = False
            for i in range(region_counts[a]):
                if touches[b, regions[a, i]]:
                    shared = True
                    break
            if not shared:
                return np.inf
        d2, _, _ = _joining_pair(points, strong, lists, counts, hops, edge_index, heat, short, mid, stride,
                                 refine_steps, link2, a, b)
        if d2 > limit2 or not _limbs_agree(points, strong, limbs, a, b, max_limb_ratio):
            return np.inf
        return d2

    gap = np.full((N, N), np.inf)  # gap[a, b], a < b
    for b in range(1, N):
        for a in range(b):
            gap[a, b] = gap_of(a, b)
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
                reached[best_a, k] = True
        alive[best_b] = False
        for i in range(region_counts[best_b]):
            label = regions[best_b, i]
            if not touches[best_a, label]:
                touches[best_a, label] = True
                regions[best_a, region_counts[best_a]] = label
                region_counts[best_a] += 1
        _describe(points, strong, best_a, lists, counts, masks, extent2, boxes)
        for c in range(N):
            if alive[c] and c != best_a:
                gap[min(c, best_a), max(c, best_a)] = gap_of(min(c, best_a), max(c, best_a))
