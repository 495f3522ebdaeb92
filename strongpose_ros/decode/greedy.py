"""Greedy pose plotting along the kinematic tree (ALGORITHM.md section 6), a numba kernel.

Candidates arrive sorted by score (one queue over all keypoint types). Each is first refined with its own
short-range offsets; a candidate within r of the same keypoint type of a person already made is skipped,
otherwise it seeds a new person (any keypoint type can: people whose face or torso is hidden are found from
a wrist or an ankle). The person grows breadth first from the seed: y_b = y_a + M_{a->b}(y_a), then
`refine_steps` short-range refinements with S_b. Every person gets all K keypoints.

Reverse check [ours, `reverse_check_radius`]: a step a->b is kept only if the reverse offset M_{b->a} from
y_b, refined the same way, lands within the radius of y_a. Across a joint where the field is undefined
(training gives mid-range targets only between two labelled keypoints) the forward offset carries no
displacement, and the refinement snaps onto whatever b lies nearby, often another person's; that b's own
offsets lead back to its owner, not to a, so the check refuses the step. A refused b, and every keypoint
the walk would reach through it, is a placeholder: put at its parent's position (never at (0, 0)), scored
0, not "reached". Only reached keypoints make a later candidate a duplicate and claim in Eq. 1; the pieces
left apart are joined by `fragments.py`.

Each person is scored at once (keypoint scores, then Eq. 1 against the people made before it), because the
cap counts only people that Eq. 1 leaves above `min_instance_score`: a pure duplicate (every keypoint
claimed) neither stops the search nor reaches the output in the default mode.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np
from numba import njit

from strongpose_ros.decode.sampling import follow_offset
from strongpose_ros.decode.scoring import box_area, claimed_by, expected_oks_score, plain_score
from strongpose_ros.schema import KeypointSchema

__all__ = ["SCORE_EXPECTED_OKS", "SCORE_PLAIN", "greedy_group", "traversal_orders"]

SCORE_PLAIN = 0
SCORE_EXPECTED_OKS = 1


@lru_cache(maxsize=16)
def traversal_orders(schema: KeypointSchema) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edge_from, edge_to, order): order[k] lists the directed-edge indices of a breadth-first walk
    of the tree from keypoint k (K - 1 edges, each reaching one new keypoint)."""
    edges = schema.directed_edges
    K = schema.num_keypoints
    order = np.zeros((K, K - 1), dtype=np.int64)
    for seed in range(K):
        placed = [False] * K
        placed[seed] = True
        queue = deque([seed])
        steps: list[int] = []
        while queue:
            a = queue.popleft()
            for e, (start, end) in enumerate(edges):
                if start == a and not placed[end]:
                    placed[end] = True
                    steps.append(e)
                    queue.append(end)
        order[seed] = steps
    edge_from = np.array([a for a, _ in edges], dtype=np.int64)
    edge_to = np.array([b for _, b in edges], dtype=np.int64)
    for array in (order, edge_from, edge_to):
        array.setflags(write=False)
    return edge_from, edge_to, order


@njit(cache=True, nogil=True)
def greedy_group(h, heat, short, mid, cand_k, cand_i, cand_j, stride, edge_from, edge_to, edge_reverse, order,
                 refine_steps, nms_radius, check_radius, score_mode, score_window, radius, kappa2, max_people,
                 min_instance_score):
    """Group sorted candidates into people.

    `edge_reverse[e]` is the directed edge b->a of e = a->b; `check_radius` 0 turns the reverse check off.
    Returns points (N, K, 2), keypoint scores (N, K), reached (N, K) bool, Eq. 1 scores (N,), mean keypoint
    scores (N,) of every person made, in the order made (which is the "higher-ranked" order of Eq. 1).
    """
    K = h.shape[0]
    capacity = max(len(cand_k), 1)
    points = np.zeros((capacity, K, 2), dtype=np.float64)
    scores = np.zeros((capacity, K), dtype=np.float64)
    reached = np.zeros((capacity, K), dtype=np.bool_)
    eq1 = np.zeros(capacity, dtype=np.float64)
    mean = np.zeros(capacity, dtype=np.float64)
    r2 = nms_radius * nms_radius
    check2 = check_radius * check_radius
    everyone = np.ones(capacity, dtype=np.bool_)  # nobody dies during the walk (merging comes later)
    made = 0
    kept = 0
    for c in range(len(cand_k)):
        if kept >= max_people:
            break
        k = cand_k[c]
        x = np.float64(cand_j[c] * stride)
        y = np.float64(cand_i[c] * stride)
        for _ in range(refine_steps):
            x, y = follow_offset(short, k, heat[k], x, y, stride)
        if claimed_by(points, reached, everyone, made, k, x, y, r2):
            continue

        n = made
        points[n, k, 0] = x
        points[n, k, 1] = y
        reached[n, k] = True
        for step in range(order.shape[1]):
            e = order[k, step]
            a = edge_from[e]
            b = edge_to[e]
            ax = points[n, a, 0]
            ay = points[n, a, 1]
            if not reached[n, a]:
                # Beyond a link that failed: nothing to follow; hold the parent's place.
                points[n, b, 0] = ax
                points[n, b, 1] = ay
                continue
            x, y = follow_offset(mid, e, heat[a], ax, ay, stride)
            for _ in range(refine_steps):
                x, y = follow_offset(short, b, heat[b], x, y, stride)
            ok = True
            if check_radius > 0.0:
                # The reverse offset from b must lead back to a: otherwise the step crossed a joint where
                # the field is undefined and landed on whatever b happened to be near (another person's).
                rx, ry = follow_offset(mid, edge_reverse[e], heat[b], x, y, stride)
                for _ in range(refine_steps):
                    rx, ry = follow_offset(short, a, heat[a], rx, ry, stride)
                ok = (rx - ax) * (rx - ax) + (ry - ay) * (ry - ay) <= check2
            if ok:
                points[n, b, 0] = x
                points[n, b, 1] = y
                reached[n, b] = True
            else:
                points[n, b, 0] = ax
                points[n, b, 1] = ay

        if score_mode == SCORE_PLAIN:
            for kk in range(K):
                if reached[n, kk]:
                    scores[n, kk] = plain_score(h[kk], points[n, kk, 0], points[n, kk, 1], stride, score_window)
        else:
            area = box_area(points[n])
            for kk in range(K):
                if reached[n, kk]:
                    scores[n, kk] = expected_oks_score(h[kk], heat[kk], points[n, kk, 0], points[n, kk, 1],
                                                       stride, radius, area * kappa2[kk])

        unclaimed = 0.0
        total = 0.0
        for kk in range(K):
            total += scores[n, kk]
            if not claimed_by(points, reached, everyone, made, kk, points[n, kk, 0], points[n, kk, 1], r2):
                unclaimed += scores[n, kk]
        eq1[n] = unclaimed / K
        mean[n] = total / K
        made += 1
        if eq1[n] > min_instance_score:
            kept += 1
    return points[:made], scores[:made], reached[:made], eq1[:made], mean[:made]
