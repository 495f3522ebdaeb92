"""The baseline decoder: a straightforward pure-Python transcription of `strongpose_ros.decode`.

Plain loops over nested lists, no numpy vectorisation, no numba: what the algorithm costs written the
obvious way. It is the reference the fast decoder is checked against (the tests require the same people,
keypoints and scores) and the yardstick of the decoder benchmark. Every step repeats the fast kernels'
arithmetic in the same order, so the two agree to the last bit wherever the maths library does.
Not a module to call in production: it is two orders of magnitude slower.
"""

from __future__ import annotations

import math
from collections import deque

from strongpose_ros.decode.config import DecoderConfig
from strongpose_ros.decode.types import PersonPose
from strongpose_ros.model.outputs import PoseOutputs
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = ["decode_baseline"]


def decode_baseline(outputs: PoseOutputs, schema: KeypointSchema = COCO17,
                    config: DecoderConfig | None = None) -> list[list[PersonPose]]:
    """Same contract as `strongpose_ros.decode.decode` (CPU only; any device's tensors are copied)."""
    config = DecoderConfig() if config is None else config
    stride = int(outputs.stride)
    B, K = outputs.heatmaps.shape[0], outputs.heatmaps.shape[1]
    if schema.num_keypoints != K:
        raise ValueError(f"decode_baseline: {K} heat maps for schema {schema.name!r}")
    if outputs.mid_offsets.shape[1] != 2 * schema.num_edges:
        raise ValueError(f"decode_baseline: {outputs.mid_offsets.shape[1]} mid-range channels for schema "
                         f"{schema.name!r}")
    if B == 0:
        return []
    lists = {}
    for name in ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap"):
        values = outputs.__dict__[name].detach().cpu().float().tolist()
        if name != "body_heatmap" or config.bhm_rescore or config.merge_fragments:
            values = _finite(name, values, config.nonfinite)
        lists[name] = values
    return [_decode_one(lists["heatmaps"][b], lists["short_offsets"][b], lists["mid_offsets"][b],
                        lists["body_heatmap"][b][0], stride, schema, config) for b in range(B)]


def _finite(name, values, mode):
    # Walk the nested lists; count and (in "zero" mode) replace NaN and infinities.
    count = 0

    def walk(v):
        nonlocal count
        if isinstance(v, list):
            return [walk(x) for x in v]
        if math.isfinite(v):
            return v
        count += 1
        return 0.0

    cleaned = walk(values)
    if count and mode == "raise":
        raise ValueError(f"decode: outputs.{name} contain {count} NaN or infinite values; the network output is "
                         "invalid (set DecoderConfig.nonfinite='zero' to read them as 0)")
    return cleaned


def _decode_one(heat, short, mid, body, stride, schema, config):
    K = len(heat)
    H = len(heat[0])
    W = len(heat[0][0])

    # Hough voting.
    grid_radius = config.vote_radius / stride
    normaliser = 1.0 / (math.pi * grid_radius * grid_radius)
    h = [[[0.0] * W for _ in range(H)] for _ in range(K)]
    for k in range(K):
        for i in range(H):
            for j in range(W):
                p = heat[k][i][j]
                if not p > config.vote_threshold:
                    continue
                tx = j + short[k][0][i][j] / stride
                ty = i + short[k][1][i][j] / stride
                if not (tx > -1.0 and tx < W and ty > -1.0 and ty < H):
                    continue
                x0 = math.floor(tx)
                y0 = math.floor(ty)
                fx = tx - x0
                fy = ty - y0
                w = p * normaliser
                if y0 >= 0:
                    if x0 >= 0:
                        h[k][y0][x0] += w * ((1.0 - fx) * (1.0 - fy))
                    if x0 + 1 < W:
                        h[k][y0][x0 + 1] += w * (fx * (1.0 - fy))
                if y0 + 1 < H:
                    if x0 >= 0:
                        h[k][y0 + 1][x0] += w * ((1.0 - fx) * fy)
                    if x0 + 1 < W:
                        h[k][y0 + 1][x0 + 1] += w * (fx * fy)

    # Optional blur, then local maxima.
    peaks_map = h if config.blur_sigma == 0 else _blur(h, config.blur_sigma)
    half = config.peak_window // 2
    candidates = []
    for k in range(K):
        for i in range(H):
            for j in range(W):
                v = peaks_map[k][i][j]
                if not v > config.peak_threshold:
                    continue
                peak = True
                for ii in range(max(0, i - half), min(H, i + half + 1)):
                    for jj in range(max(0, j - half), min(W, j + half + 1)):
                        if peaks_map[k][ii][jj] > v:
                            peak = False
                if peak:
                    candidates.append((v, k, i, j))
    candidates.sort(key=lambda c: -c[0])  # stable: ties stay in (k, row, col) order

    # Greedy grouping along the tree, each step checked by the reverse offset.
    edges = schema.directed_edges
    edge_number = {edge: e for e, edge in enumerate(edges)}
    orders = _walks(schema)
    kappa2 = [(2.0 * s) ** 2 for s in schema.sigmas]
    r2 = config.nms_radius * config.nms_radius
    check2 = config.reverse_check_radius * config.reverse_check_radius
    cap = config.max_people * (2 if config.merge_fragments else 1)
    people = []  # [points (K lists [x, y]), scores (K), reached (K), eq1, mean]
    kept = 0
    for _, k, i, j in candidates:
        if kept >= cap:
            break
        x = float(j * stride)
        y = float(i * stride)
        for _ in range(config.refine_steps):
            x, y = _follow(short[k], heat[k], x, y, stride)
        if any(got[k] and (pts[k][0] - x) * (pts[k][0] - x) + (pts[k][1] - y) * (pts[k][1] - y) <= r2
               for pts, _, got, *_ in people):
            continue
        pts = [[0.0, 0.0] for _ in range(K)]
        got = [False] * K
        pts[k] = [x, y]
        got[k] = True
        for e in orders[k]:
            a, b = edges[e]
            ax, ay = pts[a]
            if not got[a]:
                pts[b] = [ax, ay]
                continue
            x, y = _follow(mid[e], heat[a], ax, ay, stride)
            for _ in range(config.refine_steps):
                x, y = _follow(short[b], heat[b], x, y, stride)
            ok = True
            if config.reverse_check_radius > 0:
                rx, ry = _follow(mid[edge_number[(b, a)]], heat[b], x, y, stride)
                for _ in range(config.refine_steps):
                    rx, ry = _follow(short[a], heat[a], rx, ry, stride)
                ok = (rx - ax) * (rx - ax) + (ry - ay) * (ry - ay) <= check2
            if ok:
                pts[b] = [x, y]
                got[b] = True
            else:
                pts[b] = [ax, ay]
        if config.keypoint_score == "plain":
            scores = [_window_mass(h[kk], pts[kk][0], pts[kk][1], stride, config.score_window) if got[kk] else 0.0
                      for kk in range(K)]
        else:
            area = _box_area(pts)
            scores = [_expected_oks(h[kk], heat[kk], pts[kk][0], pts[kk][1], stride, config.vote_radius,
                                    area * kappa2[kk]) if got[kk] else 0.0 for kk in range(K)]
        unclaimed = 0.0
        total = 0.0
        for kk in range(K):
            total += scores[kk]
            claimed = False
            for other, _, other_got, *_ in people:
                dx = other[kk][0] - pts[kk][0]
                dy = other[kk][1] - pts[kk][1]
                if other_got[kk] and dx * dx + dy * dy <= r2:
                    claimed = True
                    break
            if not claimed:
                unclaimed += scores[kk]
        people.append([pts, scores, got, unclaimed / K, total / K])
        if unclaimed / K > config.min_instance_score:
            kept += 1

    points = [p[0] for p in people]
    kp_scores = [p[1] for p in people]
    reached = [p[2] for p in people]
    eq1 = [p[3] for p in people]
    mean = [p[4] for p in people]
    if config.merge_fragments:
        alive = _merge(points, kp_scores, reached, heat, short, mid, body, stride, schema, config)
        eq1, mean = _eq1(points, kp_scores, reached, alive, config.nms_radius)
    instance = list(eq1) if config.instance_nms == "keypoint_soft_nms" else list(mean)
    if config.bhm_rescore:
        instance = [instance[n] * _bhm_mean(body, points[n], kp_scores[n], config.keypoint_threshold, stride)
                    for n in range(len(points))]
    if config.instance_nms == "oks_hard":
        instance = _hard_nms(points, instance, kappa2, config.oks_nms_threshold)
    elif config.instance_nms == "soft_nms":
        instance = _soft_nms(points, instance, kappa2, config.soft_nms_sigma)

    keep = [n for n in range(len(points)) if instance[n] > config.min_instance_score]
    keep.sort(key=lambda n: -instance[n])
    out = []
    for n in keep[: config.max_people]:
        keypoints = [[points[n][k][0], points[n][k][1], kp_scores[n][k]] for k in range(K)]
        out.append(PersonPose(keypoints, instance[n], _box(points[n], kp_scores[n], config.keypoint_threshold)))
    return out


def _walks(schema):
    orders = []
    for seed in range(schema.num_keypoints):
        placed = {seed}
        queue = deque([seed])
        steps = []
        while queue:
            a = queue.popleft()
            for e, (start, end) in enumerate(schema.directed_edges):
                if start == a and end not in placed:
                    placed.add(end)
                    steps.append(e)
                    queue.append(end)
        orders.append(steps)
    return orders


def _blur(maps, sigma):
    radius = max(1, math.ceil(3.0 * sigma))
    taps = [math.exp(-(t * t) / (2.0 * sigma * sigma)) for t in range(-radius, radius + 1)]
    K, H, W = len(maps), len(maps[0]), len(maps[0][0])
    rows = [[[0.0] * W for _ in range(H)] for _ in range(K)]
    for k in range(K):
        for i in range(H):
            for j in range(W):
                acc = 0.0
                norm = 0.0
                for t in range(-radius, radius + 1):
                    if 0 <= j + t < W:
                        acc += taps[t + radius] * maps[k][i][j + t]
                        norm += taps[t + radius]
                rows[k][i][j] = acc / norm
    out = [[[0.0] * W for _ in range(H)] for _ in range(K)]
    for k in range(K):
        for i in range(H):
            for j in range(W):
                acc = 0.0
                norm = 0.0
                for t in range(-radius, radius + 1):
                    if 0 <= i + t < H:
                        acc += taps[t + radius] * rows[k][i + t][j]
                        norm += taps[t + radius]
                out[k][i][j] = acc / norm
    return out


def _follow(field, support, x, y, stride):
    # field: [2][H][W] of one channel; support: [H][W]. Support-weighted average of cell + F(cell).
    H, W = len(field[0]), len(field[0][0])
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
    s00 = w00 * support[y0][x0]
    s01 = w01 * support[y0][x1]
    s10 = w10 * support[y1][x0]
    s11 = w11 * support[y1][x1]
    total = s00 + s01 + s10 + s11
    if total > 1e-6:
        w00 = s00 / total
        w01 = s01 / total
        w10 = s10 / total
        w11 = s11 / total
    fdx, fdy = field
    tx = (w00 * (x0 * stride + fdx[y0][x0]) + w01 * (x1 * stride + fdx[y0][x1])
          + w10 * (x0 * stride + fdx[y1][x0]) + w11 * (x1 * stride + fdx[y1][x1]))
    ty = (w00 * (y0 * stride + fdy[y0][x0]) + w01 * (y0 * stride + fdy[y0][x1])
          + w10 * (y1 * stride + fdy[y1][x0]) + w11 * (y1 * stride + fdy[y1][x1]))
    return tx, ty


def _sample_zero(plane, x, y, stride):
    H, W = len(plane), len(plane[0])
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
            value += plane[y0][x0] * ((1.0 - fx) * (1.0 - fy))
        if x0 + 1 < W:
            value += plane[y0][x0 + 1] * (fx * (1.0 - fy))
    if y0 + 1 < H:
        if x0 >= 0:
            value += plane[y0 + 1][x0] * ((1.0 - fx) * fy)
        if x0 + 1 < W:
            value += plane[y0 + 1][x0 + 1] * (fx * fy)
    return value


def _window_mass(plane, x, y, stride, window):
    H, W = len(plane), len(plane[0])
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
            mass += plane[i][j]
    return min(max(mass, 0.0), 1.0)


def _box_area(points):
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return max((max(xs) - min(xs)) * (max(ys) - min(ys)), 1.0)


def _expected_oks(h, p, x, y, stride, radius, variance):
    H, W = len(h), len(h[0])
    grid_radius = radius / stride
    cx = x / stride
    cy = y / stride
    if not (cx > -grid_radius - 1.0 and cx < W + grid_radius and cy > -grid_radius - 1.0 and cy < H + grid_radius):
        return 0.0
    mass = 0.0
    weighted = 0.0
    for i in range(max(0, math.ceil(cy - grid_radius)), min(H - 1, math.floor(cy + grid_radius)) + 1):
        for j in range(max(0, math.ceil(cx - grid_radius)), min(W - 1, math.floor(cx + grid_radius)) + 1):
            dx = j * stride - x
            dy = i * stride - y
            d2 = dx * dx + dy * dy
            if d2 <= radius * radius:
                mass += h[i][j]
                weighted += h[i][j] * math.exp(-d2 / (2.0 * variance))
    if not mass > 0.0:
        return 0.0
    return min(max(_sample_zero(p, x, y, stride), 0.0), 1.0) * (weighted / mass)


def _claimed(points, reached, alive, n, k, r2):
    for m in range(n):
        if alive[m] and reached[m][k]:
            dx = points[m][k][0] - points[n][k][0]
            dy = points[m][k][1] - points[n][k][1]
            if dx * dx + dy * dy <= r2:
                return True
    return False


def _eq1(points, scores, reached, alive, nms_radius):
    r2 = nms_radius * nms_radius
    eq1, mean = [], []
    for n in range(len(points)):
        if not alive[n]:
            eq1.append(0.0)
            mean.append(0.0)
            continue
        unclaimed = 0.0
        total = 0.0
        for k in range(len(scores[n])):
            total += scores[n][k]
            if not _claimed(points, reached, alive, n, k, r2):
                unclaimed += scores[n][k]
        eq1.append(unclaimed / len(scores[n]))
        mean.append(total / len(scores[n]))
    return eq1, mean


def _tree_hops(schema):
    K = schema.num_keypoints
    hops = [[K] * K for _ in range(K)]
    for start in range(K):
        hops[start][start] = 0
        queue = deque([start])
        while queue:
            a = queue.popleft()
            for x, y in schema.directed_edges:
                if x == a and hops[start][y] > hops[start][a] + 1:
                    hops[start][y] = hops[start][a] + 1
                    queue.append(y)
    return hops


def _regions(body, level):
    # 8-neighbour connected regions of the cells >= level, by flood fill.
    H, W = len(body), len(body[0])
    labels = [[-1] * W for _ in range(H)]
    count = 0
    for i0 in range(H):
        for j0 in range(W):
            if labels[i0][j0] >= 0 or not body[i0][j0] >= level:
                continue
            labels[i0][j0] = count
            stack = [(i0, j0)]
            while stack:
                i, j = stack.pop()
                for ii in range(max(0, i - 1), min(H, i + 2)):
                    for jj in range(max(0, j - 1), min(W, j + 2)):
                        if labels[ii][jj] < 0 and body[ii][jj] >= level:
                            labels[ii][jj] = count
                            stack.append((ii, jj))
            count += 1
    return labels


def _regions_near(labels, x, y, stride, reach):
    H, W = len(labels), len(labels[0])
    found = set()
    grid_reach = reach / stride
    for i in range(max(0, math.ceil(y / stride - grid_reach)), min(H - 1, math.floor(y / stride + grid_reach)) + 1):
        for j in range(max(0, math.ceil(x / stride - grid_reach)), min(W - 1, math.floor(x / stride + grid_reach)) + 1):
            dx = j * stride - x
            dy = i * stride - y
            if labels[i][j] >= 0 and dx * dx + dy * dy <= reach * reach:
                found.add(labels[i][j])
    return found


def _merge(points, scores, reached, heat, short, mid, body, stride, schema, config):
    N = len(points)
    K = schema.num_keypoints
    alive = [True] * N
    if N < 2:
        return alive
    r2 = config.nms_radius * config.nms_radius
    link2 = config.reverse_check_radius * config.reverse_check_radius
    hops = _tree_hops(schema)
    edge_number = {edge: e for e, edge in enumerate(schema.directed_edges)}
    flip = [int(f) for f in schema.flip_permutation]
    limbs = [(u, v, flip[u], flip[v]) for u, v in schema.tree if {flip[u], flip[v]} != {u, v}]
    strong = [[reached[n][k] and scores[n][k] >= config.fragment_support
               and not _claimed(points, reached, alive, n, k, r2) for k in range(K)] for n in range(N)]
    labels = _regions(body, config.fragment_min_body)
    touched = [set() for _ in range(N)]
    for n in range(N):
        for k in range(K):
            if strong[n][k]:
                touched[n] |= _regions_near(labels, points[n][k][0], points[n][k][1], stride,
                                            config.fragment_body_reach)

    def extent2(n):
        xs = [points[n][k][0] for k in range(K) if strong[n][k]]
        ys = [points[n][k][1] for k in range(K) if strong[n][k]]
        if not xs:
            return 0.0
        return (max(xs) - min(xs)) ** 2 + (max(ys) - min(ys)) ** 2

    def leads_to(a_type, b_type, p, q):
        # The walk's step a -> b from p, refined, lands within the check radius of q.
        x, y = _follow(mid[edge_number[(a_type, b_type)]], heat[a_type], p[0], p[1], stride)
        for _ in range(config.refine_steps):
            x, y = _follow(short[b_type], heat[b_type], x, y, stride)
        return (x - q[0]) * (x - q[0]) + (y - q[1]) * (y - q[1]) <= link2

    def gap(a, b):
        A = [k for k in range(K) if strong[a][k]]
        B = [k for k in range(K) if strong[b][k]]
        if not A or not B or any(strong[b][k] for k in A):
            return math.inf
        best = (K, math.inf)
        for ka in A:
            for kb in B:
                p, q = points[a][ka], points[b][kb]
                if hops[ka][kb] == 1 and not (leads_to(ka, kb, p, q) or leads_to(kb, ka, q, p)):
                    return math.inf
                d2 = (p[0] - q[0]) * (p[0] - q[0]) + (p[1] - q[1]) * (p[1] - q[1])
                best = min(best, (hops[ka][kb], d2))
        d2 = best[1]
        size2 = max(extent2(a), extent2(b), config.fragment_min_extent * config.fragment_min_extent)
        if d2 > config.fragment_max_gap * config.fragment_max_gap * size2:
            return math.inf
        if config.fragment_max_limb_ratio > 0:
            for u, v, fu, fv in limbs:
                for p, q in ((a, b), (b, a)):
                    if strong[p][u] and strong[p][v] and strong[q][fu] and strong[q][fv]:
                        lp = math.sqrt((points[p][u][0] - points[p][v][0]) ** 2
                                       + (points[p][u][1] - points[p][v][1]) ** 2)
                        lq = math.sqrt((points[q][fu][0] - points[q][fv][0]) ** 2
                                       + (points[q][fu][1] - points[q][fv][1]) ** 2)
                        if max(lp, lq) > config.fragment_max_limb_ratio * min(lp, lq):
                            return math.inf
        if touched[a] and touched[b] and not touched[a] & touched[b]:
            return math.inf
        return d2

    while True:
        best = (math.inf, -1, -1)
        for b in range(1, N):
            if not alive[b]:
                continue
            for a in range(b):
                if alive[a]:
                    d2 = gap(a, b)
                    if d2 < best[0]:
                        best = (d2, a, b)
        if best[1] < 0:
            return alive
        _, a, b = best
        for k in range(K):
            if strong[b][k]:
                points[a][k] = list(points[b][k])
                scores[a][k] = scores[b][k]
                strong[a][k] = True
                reached[a][k] = True
        touched[a] |= touched[b]
        alive[b] = False


def _bhm_mean(body, points, scores, threshold, stride):
    chosen = [k for k in range(len(scores)) if scores[k] >= threshold] or list(range(len(scores)))
    total = 0.0
    for k in chosen:
        total += min(max(_sample_zero(body, points[k][0], points[k][1], stride), 0.0), 1.0)
    return total / len(chosen)


def _oks(a, b, area, kappa2):
    total = 0.0
    for k in range(len(a)):
        dx = a[k][0] - b[k][0]
        dy = a[k][1] - b[k][1]
        total += math.exp(-(dx * dx + dy * dy) / (2.0 * area * kappa2[k]))
    return total / len(a)


def _hard_nms(points, scores, kappa2, threshold):
    out = list(scores)
    kept = []
    for n in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if any(_oks(points[m], points[n], _box_area(points[m]), kappa2) > threshold for m in kept):
            out[n] = 0.0
        else:
            kept.append(n)
    return out


def _soft_nms(points, scores, kappa2, sigma):
    out = list(scores)
    remaining = list(range(len(scores)))
    while remaining:
        best = remaining[0]
        for n in remaining:
            if out[n] > out[best]:
                best = n
        remaining.remove(best)
        area = _box_area(points[best])
        for n in remaining:
            overlap = _oks(points[best], points[n], area, kappa2)
            out[n] *= math.exp(-(overlap * overlap) / sigma)
    return out


def _box(points, scores, threshold):
    chosen = [k for k in range(len(scores)) if scores[k] >= threshold] or list(range(len(scores)))
    xs = [points[k][0] for k in chosen]
    ys = [points[k][1] for k in chosen]
    return (min(xs), min(ys), max(xs), max(ys))
