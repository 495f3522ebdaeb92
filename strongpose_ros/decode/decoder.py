"""`decode`: network outputs in, people out (ALGORITHM.md sections 5-7).

Per image: Hough voting -> optional blur -> peaks -> greedy grouping with scoring -> fragment merging
(on by default, `fragments.py`) -> instance NMS -> sort and cap. CPU tensors go through numba kernels;
tensors on a GPU (or `backend="torch"`) have their voting, blur and peak finding done with torch ops on
their device, and only the maps the grouping reads come back to the CPU. Nothing here keeps state between
calls, so one decoder serves several threads.

NaN or infinity in the maps: by default a ValueError naming the tensor (a wrong pose presented as valid is
worse than a dropped frame); `DecoderConfig(nonfinite="zero")` reads them as 0 instead (no evidence, no
offset).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from strongpose_ros.decode.config import DecoderConfig
from strongpose_ros.decode.fragments import eq1_scores, merge_fragments
from strongpose_ros.decode.greedy import SCORE_EXPECTED_OKS, SCORE_PLAIN, greedy_group, traversal_orders
from strongpose_ros.decode.nms import oks_hard_nms, oks_soft_nms
from strongpose_ros.decode.peaks import blur_maps, blur_maps_torch, find_peaks, find_peaks_torch, gaussian_taps
from strongpose_ros.decode.scoring import bhm_means, keypoint_boxes
from strongpose_ros.decode.types import PersonPose
from strongpose_ros.decode.voting import hough_maps, hough_maps_torch, vote_normaliser
from strongpose_ros.model.outputs import PoseOutputs
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = ["decode", "warmup"]


@dataclass
class _Image:
    """One image's maps as CPU arrays, plus its candidates (sorted best first)."""

    h: np.ndarray  # (K, H, W) float64 Hough maps
    heat: np.ndarray  # (K, H, W) float32
    short: np.ndarray  # (K, 2, H, W) float32
    mid: np.ndarray  # (2E, 2, H, W) float32
    body: np.ndarray  # (H, W) float32
    cand_k: np.ndarray
    cand_i: np.ndarray
    cand_j: np.ndarray


def decode(outputs: PoseOutputs, schema: KeypointSchema = COCO17,
           config: DecoderConfig | None = None) -> list[list[PersonPose]]:
    """Decode a batch of StrongPose outputs into people: one list per image, best score first.

    Keypoints are in input-image pixels (grid cell (i, j) is pixel (j * stride, i * stride)). Accepts
    tensors on any device, of any float dtype, at any output stride.
    """
    config = DecoderConfig() if config is None else config
    if not isinstance(config, DecoderConfig):
        raise TypeError(f"decode: config must be a DecoderConfig, got {type(config).__name__}")
    stride = _validate(outputs, schema)
    if outputs.heatmaps.shape[0] == 0:
        return []
    use_torch = config.backend == "torch" or (config.backend == "auto" and outputs.heatmaps.device.type != "cpu")
    images = _prepare_torch(outputs, stride, config) if use_torch else _prepare_numpy(outputs, stride, config)
    return [_group(image, stride, schema, config) for image in images]


def warmup(schema: KeypointSchema = COCO17) -> None:
    """Compile (or load from numba's on-disk cache) every kernel, so the first real frame is not slow."""
    K, E2, H, W, stride = schema.num_keypoints, 2 * schema.num_edges, 9, 9, 8
    heat = torch.zeros(1, K, H, W)
    heat[:, :, 3:6, 3:6] = 1.0
    outputs = PoseOutputs(heatmaps=heat, short_offsets=torch.zeros(1, K, 2, H, W),
                          mid_offsets=torch.zeros(1, E2, 2, H, W), body_heatmap=torch.ones(1, 1, H, W), stride=stride)
    for changes in ({}, {"keypoint_score": "expected_oks", "blur_sigma": 1.0, "bhm_rescore": True},
                    {"instance_nms": "oks_hard"}, {"instance_nms": "soft_nms"}):
        decode(outputs, schema, DecoderConfig(**changes))


# --- input checks --------------------------------------------------------------------------------------


def _validate(outputs: PoseOutputs, schema: KeypointSchema) -> int:
    if not isinstance(outputs, PoseOutputs):
        raise TypeError(f"decode: expects PoseOutputs, got {type(outputs).__name__}")
    stride = outputs.stride
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
        raise ValueError(f"decode: outputs.stride must be a positive integer, got {stride!r}")
    heat = outputs.heatmaps
    if heat.dim() != 4:
        raise ValueError(f"decode: heatmaps must be (B, K, H, W), got shape {tuple(heat.shape)}")
    B, K, H, W = heat.shape
    if schema.num_keypoints != K:
        raise ValueError(f"decode: heatmaps have {K} channels, schema {schema.name!r} has {schema.num_keypoints} "
                         "keypoints")
    if H < 1 or W < 1:
        raise ValueError(f"decode: empty output grid {H}x{W}")
    expected = {
        "short_offsets": (B, K, 2, H, W),
        "mid_offsets": (B, 2 * schema.num_edges, 2, H, W),
        "body_heatmap": (B, 1, H, W),
    }
    for name, shape in expected.items():
        tensor = getattr(outputs, name)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"decode: {name} must have shape {shape} (heatmaps are {tuple(heat.shape)}, schema "
                             f"{schema.name!r}), got {tuple(tensor.shape)}")
        if tensor.device != heat.device:
            raise ValueError(f"decode: {name} is on {tensor.device}, heatmaps on {heat.device}")
    for name in ("heatmaps", *expected):
        if not getattr(outputs, name).is_floating_point():
            raise ValueError(f"decode: {name} must be a floating-point tensor, got {getattr(outputs, name).dtype}")
    return int(stride)


def _finite_numpy(name: str, array: np.ndarray, mode: str) -> np.ndarray:
    # A float32 sum is a cheap test (NaN and inf propagate); only when it is not finite (which a large but
    # finite map can also cause, by overflow) are the values themselves examined.
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.add.reduce(array, axis=None))
    if math.isfinite(total):
        return array
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if count == 0:
        return array
    if mode == "raise":
        raise ValueError(f"decode: outputs.{name} contain {count} NaN or infinite values; the network output is "
                         "invalid (set DecoderConfig.nonfinite='zero' to read them as 0)")
    return np.where(bad, np.float32(0.0), array)


def _finite_torch(name: str, tensor: torch.Tensor, mode: str) -> torch.Tensor:
    bad = ~torch.isfinite(tensor)
    count = int(bad.sum())
    if count == 0:
        return tensor
    if mode == "raise":
        raise ValueError(f"decode: outputs.{name} contain {count} NaN or infinite values; the network output is "
                         "invalid (set DecoderConfig.nonfinite='zero' to read them as 0)")
    return torch.where(bad, torch.zeros_like(tensor), tensor)


def _checked_arrays(outputs: PoseOutputs, config: DecoderConfig) -> list[np.ndarray]:
    arrays = []
    for name in ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap"):
        tensor = getattr(outputs, name).detach()
        array = np.ascontiguousarray(tensor.to("cpu", torch.float32).numpy())
        # The body map is read only for merging and re-scoring; the others always.
        if name != "body_heatmap" or config.bhm_rescore or config.merge_fragments:
            array = _finite_numpy(name, array, config.nonfinite)
        arrays.append(array)
    return arrays


# --- the two front ends: maps -> candidates ------------------------------------------------------------


def _prepare_numpy(outputs: PoseOutputs, stride: int, config: DecoderConfig) -> list[_Image]:
    heat, short, mid, body = _checked_arrays(outputs, config)
    normaliser = vote_normaliser(config.vote_radius, stride)
    taps = gaussian_taps(config.blur_sigma) if config.blur_sigma > 0 else None
    images = []
    for b in range(heat.shape[0]):
        h = hough_maps(heat[b], short[b], stride, normaliser, float(config.vote_threshold))
        blurred = h if taps is None else blur_maps(h, taps)
        values, ks, rows, cols = find_peaks(blurred, float(config.peak_threshold), int(config.peak_window))
        order = np.argsort(-values, kind="stable")
        images.append(_Image(h, heat[b], short[b], mid[b], body[b, 0], ks[order], rows[order], cols[order]))
    return images


def _prepare_torch(outputs: PoseOutputs, stride: int, config: DecoderConfig) -> list[_Image]:
    tensors = []
    for name in ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap"):
        tensor = getattr(outputs, name).detach()
        if name != "body_heatmap" or config.bhm_rescore or config.merge_fragments:
            tensor = _finite_torch(name, tensor, config.nonfinite)
        tensors.append(tensor)
    heat_t, short_t = tensors[0], tensors[1]
    normaliser = vote_normaliser(config.vote_radius, stride)
    h = hough_maps_torch(heat_t, short_t, stride, normaliser, float(config.vote_threshold))
    blurred = h if config.blur_sigma == 0 else blur_maps_torch(h, gaussian_taps(config.blur_sigma))
    mask = find_peaks_torch(blurred, float(config.peak_threshold), int(config.peak_window))
    b_idx, k_idx, i_idx, j_idx = (t.cpu().numpy() for t in mask.nonzero(as_tuple=True))
    values = blurred[mask].cpu().numpy()
    h = h.cpu().numpy()
    heat, short, mid, body = (np.ascontiguousarray(t.to("cpu", torch.float32).numpy()) for t in tensors)
    images = []
    for b in range(heat.shape[0]):
        # nonzero() lists cells in (b, k, row, col) order, the numba kernel's order within an image.
        sel = np.flatnonzero(b_idx == b)
        order = sel[np.argsort(-values[sel], kind="stable")]
        images.append(_Image(np.ascontiguousarray(h[b]), heat[b], short[b], mid[b], body[b, 0],
                             k_idx[order].astype(np.int64), i_idx[order].astype(np.int64),
                             j_idx[order].astype(np.int64)))
    return images


# --- grouping, scoring, NMS, output --------------------------------------------------------------------


def _kappa2(schema: KeypointSchema) -> np.ndarray:
    # COCO's per-keypoint falloff (2 sigma)^2, from the float64 sigmas (the baseline's arithmetic).
    return np.array([(2.0 * s) ** 2 for s in schema.sigmas], dtype=np.float64)


@lru_cache(maxsize=16)
def _reverse_edges(schema: KeypointSchema) -> np.ndarray:
    """Index of each directed edge's reverse (a->b and b->a)."""
    index = {edge: e for e, edge in enumerate(schema.directed_edges)}
    reverse = np.array([index[(b, a)] for a, b in schema.directed_edges], dtype=np.int64)
    reverse.setflags(write=False)
    return reverse


@lru_cache(maxsize=16)
def _edge_index(schema: KeypointSchema) -> np.ndarray:
    """(K, K): index of the directed edge a->b, -1 where none."""
    index = np.full((schema.num_keypoints, schema.num_keypoints), -1, dtype=np.int64)
    for e, (a, b) in enumerate(schema.directed_edges):
        index[a, b] = e
    index.setflags(write=False)
    return index


@lru_cache(maxsize=16)
def _tree_hops(schema: KeypointSchema) -> np.ndarray:
    """(K, K): the number of tree edges between two keypoint types."""
    K = schema.num_keypoints
    hops = np.full((K, K), K, dtype=np.int64)
    for start in range(K):
        hops[start, start] = 0
        queue = deque([start])
        while queue:
            a = queue.popleft()
            for x, y in schema.directed_edges:
                if x == a and hops[start, y] > hops[start, a] + 1:
                    hops[start, y] = hops[start, a] + 1
                    queue.append(y)
    hops.setflags(write=False)
    return hops


@lru_cache(maxsize=16)
def _mirror_limbs(schema: KeypointSchema) -> np.ndarray:
    """(L, 4) rows u, v, mirror u, mirror v: the tree edges whose mirror image is another pair of keypoints."""
    flip = schema.flip_permutation
    rows = [(a, b, int(flip[a]), int(flip[b])) for a, b in schema.tree if {int(flip[a]), int(flip[b])} != {a, b}]
    limbs = np.array(rows, dtype=np.int64).reshape(-1, 4)
    limbs.setflags(write=False)
    return limbs


def _group(image: _Image, stride: int, schema: KeypointSchema, config: DecoderConfig) -> list[PersonPose]:
    edge_from, edge_to, order = traversal_orders(schema)
    edge_reverse = _reverse_edges(schema)
    kappa2 = _kappa2(schema)
    score_mode = SCORE_PLAIN if config.keypoint_score == "plain" else SCORE_EXPECTED_OKS
    # Fragments count as people when made; with merging on, room for twice the cap before they join.
    creation_cap = config.max_people * (2 if config.merge_fragments else 1)
    points, kp_scores, reached, eq1, mean = greedy_group(
        image.h, image.heat, image.short, image.mid, image.cand_k, image.cand_i, image.cand_j, stride,
        edge_from, edge_to, edge_reverse, order, int(config.refine_steps), float(config.nms_radius),
        float(config.reverse_check_radius), score_mode, int(config.score_window), float(config.vote_radius), kappa2,
        int(creation_cap), float(config.min_instance_score))
    if config.merge_fragments:
        alive = merge_fragments(
            points, kp_scores, reached, image.heat, image.short, image.mid, image.body, stride, _tree_hops(schema),
            _edge_index(schema), _mirror_limbs(schema), int(config.refine_steps), float(config.reverse_check_radius),
            float(config.nms_radius), float(config.fragment_support), float(config.fragment_min_body),
            float(config.fragment_body_reach), float(config.fragment_max_gap), float(config.fragment_min_extent),
            float(config.fragment_max_limb_ratio))
        eq1, mean = eq1_scores(points, kp_scores, reached, alive, float(config.nms_radius))
    scores = eq1 if config.instance_nms == "keypoint_soft_nms" else mean
    if config.bhm_rescore:
        scores = scores * bhm_means(image.body, points, kp_scores, float(config.keypoint_threshold), stride)
    if config.instance_nms == "oks_hard":
        scores = oks_hard_nms(points, scores, kappa2, float(config.oks_nms_threshold))
    elif config.instance_nms == "soft_nms":
        scores = oks_soft_nms(points, scores, kappa2, float(config.soft_nms_sigma))
    keep = np.flatnonzero(scores > config.min_instance_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")][: config.max_people]
    boxes = keypoint_boxes(points[keep], kp_scores[keep], float(config.keypoint_threshold))
    keypoints = np.empty((len(keep), schema.num_keypoints, 3), dtype=np.float32)
    keypoints[:, :, :2] = points[keep]
    keypoints[:, :, 2] = kp_scores[keep]
    return [PersonPose(keypoints[n], float(scores[idx]), tuple(boxes[n].tolist())) for n, idx in enumerate(keep)]
