"""The fast greedy decoder: hand-built maps, the oracle, the pure-Python baseline, the torch path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from strongpose_ros.bench.baseline_decoder import decode_baseline
from strongpose_ros.decode import DecoderConfig, PersonPose, decode, warmup
from strongpose_ros.decode.greedy import traversal_orders
from strongpose_ros.decode.nms import oks_hard_nms, oks_soft_nms
from strongpose_ros.decode.voting import hough_maps, hough_maps_torch, vote_normaliser
from strongpose_ros.model.oracle import oracle_outputs
from strongpose_ros.model.outputs import PoseOutputs, output_size
from strongpose_ros.schema import COCO17, CROWDPOSE14

REPO = Path(__file__).resolve().parents[1]
K = COCO17.num_keypoints

# A person 100 px tall facing the camera, COCO-17 order, (x, y) relative to the top of the head.
STANDING = np.array([
    [0, 6], [3, 4], [-3, 4], [6, 6], [-6, 6], [12, 18], [-12, 18], [16, 34], [-16, 34], [18, 48], [-18, 48],
    [8, 52], [-8, 52], [9, 74], [-9, 74], [10, 96], [-10, 96]], dtype=np.float64)


def person(x: float, y: float, scale: float = 1.0, labelled: list[int] | None = None, jitter: float = 0.0,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """(K, 3) keypoints of a standing person whose head top is at (x, y); unlabelled ones get v = 0."""
    xy = STANDING * scale + (x, y)
    if jitter:
        xy = xy + (rng or np.random.default_rng(0)).uniform(-jitter, jitter, xy.shape)
    v = np.full(K, 2.0)
    if labelled is not None:
        v[:] = 0
        v[labelled] = 2
    xy[v == 0] = 0
    return np.concatenate([xy, v[:, None]], 1)


def outputs_for(people: list[np.ndarray], size: tuple[int, int] = (161, 161), stride: int = 8) -> PoseOutputs:
    """Perfect outputs (the oracle) of hand-placed people."""
    annotations = [{"id": n + 1, "iscrowd": 0, "num_keypoints": int((p[:, 2] > 0).sum()),
                    "keypoints": p.reshape(-1).tolist()} for n, p in enumerate(people)]
    return oracle_outputs(annotations, image_size=size, stride=stride)


def match(found: list[PersonPose], truth: np.ndarray) -> float:
    """Largest error (px) over truth's labelled keypoints of the decoded person closest to it."""
    v = truth[:, 2] > 0
    errors = [np.abs(p.keypoints[v, :2] - truth[v, :2]).max() for p in found]
    return min(errors) if errors else np.inf


def assert_same(fast: list[list[PersonPose]], slow: list[list[PersonPose]], tolerance: float = 1e-4) -> None:
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert len(a) == len(b), f"fast found {len(a)} people, baseline {len(b)}"
        for p, q in zip(a, b, strict=True):
            np.testing.assert_allclose(p.keypoints, q.keypoints, atol=tolerance, rtol=0)
            assert abs(p.score - q.score) <= tolerance
            np.testing.assert_allclose(p.box, q.box, atol=tolerance, rtol=0)


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    warmup()  # numba kernels (from the on-disk cache after the first run)


# --- configuration --------------------------------------------------------------------------------------


def test_defaults_are_the_papers() -> None:
    config = DecoderConfig()
    assert config.vote_radius == 16.0 and config.nms_radius == 10.0 and config.peak_window == 3
    assert config.refine_steps == 2 and config.max_people == 20
    assert config.keypoint_score == "plain" and config.instance_nms == "keypoint_soft_nms"
    assert config.bhm_rescore is False


@pytest.mark.parametrize("changes, field", [
    ({"vote_radius": 0}, "vote_radius"), ({"peak_window": 4}, "peak_window"), ({"max_people": 0}, "max_people"),
    ({"keypoint_score": "magic"}, "keypoint_score"), ({"instance_nms": "none"}, "instance_nms"),
    ({"nms_radius": float("nan")}, "nms_radius"), ({"refine_steps": 1.5}, "refine_steps"),
    ({"bhm_rescore": 1}, "bhm_rescore"), ({"nonfinite": "ignore"}, "nonfinite"), ({"backend": "cuda"}, "backend"),
    ({"oks_nms_threshold": 2.0}, "oks_nms_threshold"), ({"score_window": 2}, "score_window"),
    ({"reverse_check_radius": -1.0}, "reverse_check_radius"), ({"fragment_body_reach": float("inf")},
                                                                "fragment_body_reach"),
    ({"fragment_min_extent": -5.0}, "fragment_min_extent"), ({"fragment_max_limb_ratio": "3"},
                                                             "fragment_max_limb_ratio"),
])
def test_config_rejects_bad_values(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DecoderConfig(**changes)


def test_config_replace_and_dict() -> None:
    config = DecoderConfig().replace(peak_threshold=0.2)
    assert config.peak_threshold == 0.2
    assert DecoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="no field"):
        DecoderConfig().replace(radius=3)


def test_traversal_reaches_every_keypoint_from_every_seed() -> None:
    for schema in (COCO17, CROWDPOSE14):
        edge_from, edge_to, order = traversal_orders(schema)
        for seed in range(schema.num_keypoints):
            placed = {seed}
            for e in order[seed]:
                assert edge_from[e] in placed and edge_to[e] not in placed
                placed.add(int(edge_to[e]))
            assert placed == set(range(schema.num_keypoints))


# --- hand-built maps ------------------------------------------------------------------------------------


def test_hand_built_maps_one_keypoint_type() -> None:
    """Maps set cell by cell: one left-wrist disk whose offsets point at (43.5, 37.25), nothing else."""
    H = W = 11
    stride = 8
    target = np.array([43.5, 37.25])
    heat = torch.zeros(1, K, H, W)
    short = torch.zeros(1, K, 2, H, W)
    for i in range(H):
        for j in range(W):
            if np.hypot(j * stride - target[0], i * stride - target[1]) <= 16:
                heat[0, 9, i, j] = 1.0
                short[0, 9, 0, i, j] = float(target[0] - j * stride)
                short[0, 9, 1, i, j] = float(target[1] - i * stride)
    outputs = PoseOutputs(heat, short, torch.zeros(1, 2 * COCO17.num_edges, 2, H, W), torch.zeros(1, 1, H, W), stride)
    (found,) = decode(outputs)
    assert len(found) == 1
    wrist = found[0].keypoints[9]
    np.testing.assert_allclose(wrist[:2], target, atol=1e-4)
    assert wrist[2] == pytest.approx(1.0)  # a fully voting disk: all its mass around the point
    # Every other keypoint is placed (where the zero offsets leave it), never at (0, 0), and scores 0.
    others = np.delete(found[0].keypoints, 9, axis=0)
    assert np.all(np.abs(others[:, :2] - target).max(1) < 1e-3) and np.all(others[:, 2] == 0)
    assert found[0].score == pytest.approx(1.0 / K)  # Eq. 1: one supported keypoint of K
    assert found[0].box == pytest.approx((target[0], target[1], target[0], target[1]), abs=1e-4)


@pytest.mark.parametrize("stride", [8, 16])
def test_single_person_exact(stride: int) -> None:
    truth = person(60.3, 20.7, scale=1.2)
    found = decode(outputs_for([truth], stride=stride))[0]
    assert len(found) == 1
    assert match(found, truth) < 1e-3
    assert 0.9 < found[0].score <= 1.0
    assert np.all((found[0].keypoints[:, 2] >= 0) & (found[0].keypoints[:, 2] <= 1))


@pytest.mark.parametrize("stride", [8, 16])
def test_touching_people(stride: int) -> None:
    # Side by side, hands 4 px apart: every keypoint of both exact.
    people = [person(40, 20), person(80, 22)]
    found = decode(outputs_for(people, stride=stride))[0]
    assert len(found) == 2
    for truth in people:
        assert match(found, truth) < 1e-3


@pytest.mark.parametrize("stride, tolerance", [(8, 2.0), (16, 16.0)])
def test_overlapping_people(stride: int, tolerance: float) -> None:
    # The third person stands half in front of the second: same-type disks overlap, and cells near the
    # boundary between two owners mix their offsets. Stride 8: within 2 px; stride 16 (R/s = 1 cell):
    # within a cell.
    people = [person(40, 20), person(80, 22), person(92, 40, scale=0.9)]
    found = decode(outputs_for(people, stride=stride))[0]
    assert len(found) == 3
    for truth in people:
        assert match(found, truth) < tolerance


def test_hidden_face_and_shoulders_seeded_from_a_limb() -> None:
    # Face and shoulders not visible (no heat at all): the person is found from a wrist/ankle seed.
    truth = person(50, 10, labelled=[7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
    found = decode(outputs_for([truth]))[0]
    assert match(found, truth) < 1e-3
    assert len(found) == 1  # the pieces the tree walk cannot join (no shoulder) are merged by the body map
    pieces = decode(outputs_for([truth]), config=DecoderConfig(merge_fragments=False))[0]
    assert len(pieces) > 1 and match(pieces, truth) > 10  # without merging: separate pieces


def test_back_view_halves_merge_but_separated_people_do_not() -> None:
    # No face: the tree joins left and right only through the nose. Person A (a full back view) must come
    # out whole; B's left half and C's right half stand 66 px apart with background between (the body
    # map: a box per person, like a segmentation), and stay apart.
    a = person(40, 10, labelled=list(range(5, 17)))
    b = person(110, 10, labelled=[5, 7, 9, 11, 13, 15])
    c = person(200, 10, labelled=[6, 8, 10, 12, 14, 16])
    outputs = outputs_for([a, b, c], size=(161, 281))
    body = torch.zeros_like(outputs.body_heatmap)
    for truth in (a, b, c):
        xy = truth[truth[:, 2] > 0, :2]
        (x0, y0), (x1, y1) = np.floor((xy.min(0) - 6) / 8).astype(int), np.ceil((xy.max(0) + 6) / 8).astype(int)
        body[0, 0, max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = 1.0
    outputs.body_heatmap = body
    found = decode(outputs)[0]
    assert len(found) == 3
    for truth in (a, b, c):
        assert match(found, truth) < 1e-3
    # The body map decides: where it joins B and C they merge too (one person with both halves).
    outputs.body_heatmap = torch.ones_like(body)
    assert len(decode(outputs)[0]) == 2


def test_walk_across_an_unlabelled_joint_does_not_take_a_neighbours_keypoints() -> None:
    # B has no face labelled (no mid-range offsets towards the nose) and its right shoulder is 11 px from
    # A's nose; B is seeded first (A's face is weaker). B's step rsho -> nose finds no displacement and the
    # refinement snaps onto A's nose; without the reverse check the walk goes on through A's face and
    # takes A's left side. With it (the default) the step is refused, B's halves are merged by the
    # fragment rules and both people come out exact.
    a = person(60, 20)
    b = person(0, 0, labelled=list(range(5, 17)))
    b[b[:, 2] > 0, :2] += a[0, :2] - b[6, :2] + np.array([10.0, -4.0])
    outputs = outputs_for([a, b], size=(201, 201))
    outputs.heatmaps[:, :5] *= 0.7
    found = decode(outputs)[0]
    assert len(found) == 2 and match(found, a) < 1e-3 and match(found, b) < 1e-3
    unchecked = decode(outputs, config=DecoderConfig(reverse_check_radius=0))[0]
    assert match(unchecked, a) > 10 and match(unchecked, b) > 10
    assert_same(decode(outputs), decode_baseline(outputs))


def test_one_keypoint_pieces_join() -> None:
    # Only the ears and shoulders labelled: no two of them are tree neighbours, so the walk finds pieces
    # of one keypoint; they join into one person.
    truth = person(60, 30, labelled=[3, 4, 5, 6])
    outputs = outputs_for([truth])
    found = decode(outputs)[0]
    assert len(found) == 1 and match(found, truth) < 1e-3
    assert len(decode(outputs, config=DecoderConfig(merge_fragments=False))[0]) > 1
    assert_same([found], decode_baseline(outputs))


def test_pieces_with_unlike_mirrored_limbs_stay_apart() -> None:
    # A's left half next to the right half of a person a third its size, on one body region: the types
    # are complementary, but A's upper arm (or leg) is over three times as long as its mirror image in B.
    a = person(40, 10, labelled=[5, 7, 9, 11, 13, 15])
    b = person(40, 10, scale=0.3, labelled=[6, 8, 10, 12, 14, 16])
    outputs = outputs_for([a, b])
    outputs.body_heatmap[:] = 1.0
    found = decode(outputs)[0]
    assert len(found) == 2 and match(found, a) < 1e-3 and match(found, b) < 1e-3
    assert len(decode(outputs, config=DecoderConfig(fragment_max_limb_ratio=0))[0]) == 1
    assert_same(decode(outputs), decode_baseline(outputs))


def test_pieces_joined_by_a_tree_edge_merge_only_where_its_offsets_meet() -> None:
    # A complete person whose elbow->shoulder offsets (left arm) point 40 px away: the walk from the
    # shoulder reaches the elbow but the reverse check refuses it, so the arm is a separate piece. The
    # shoulder->elbow offset still leads to the elbow: the pieces merge. When both directions are wrong,
    # the offsets say "two people" and the pieces stay apart.
    truth = person(60, 20)
    lsho_lelb = COCO17.directed_edges.index((5, 7))
    lelb_lsho = COCO17.directed_edges.index((7, 5))
    outputs = outputs_for([truth])
    outputs.mid_offsets[0, lelb_lsho, 0] += 40.0
    found = decode(outputs)[0]
    assert len(found) == 1 and match(found, truth) < 1e-3
    assert_same([found], decode_baseline(outputs))
    outputs.mid_offsets[0, lsho_lelb, 0] += 40.0
    found = decode(outputs)[0]
    assert len(found) == 2
    arm = next(p for p in found if p.keypoints[7, 2] > 0.5)
    np.testing.assert_allclose(arm.keypoints[[7, 9], :2], truth[[7, 9], :2], atol=1e-3)
    assert_same([found], decode_baseline(outputs))


def test_person_cut_by_the_border() -> None:
    # 141 x 141 at stride 8: the grid covers x <= 136; the image goes to 140. Legs below the image are
    # unlabelled; the right side reaches into the strip beyond the last grid column.
    truth = person(128, 60)
    inside = (truth[:, 0] <= 140) & (truth[:, 1] <= 140)
    truth[~inside] = 0
    assert np.any(truth[:, 0] > 136)
    found = decode(outputs_for([truth], size=(141, 141)))[0]
    assert len(found) == 1
    assert match(found, truth) < 1e-3


def test_empty_image_and_batch() -> None:
    assert decode(outputs_for([])) == [[]]
    parts = [outputs_for(p) for p in ([person(30, 10)], [], [person(20, 20), person(100, 30, scale=0.8)])]
    names = ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap")
    batch = PoseOutputs(*(torch.cat([getattr(p, n) for p in parts]) for n in names), stride=8)
    results = decode(batch)
    assert [len(r) for r in results] == [1, 0, 2]
    for part, result in zip(parts, results, strict=True):
        assert_same([result], decode(part))
    empty_batch = PoseOutputs(*(getattr(batch, n)[:0] for n in names), stride=8)
    assert decode(empty_batch) == []


def test_nonfinite_maps_raise_or_read_as_zero() -> None:
    outputs = outputs_for([person(40, 20)])
    outputs.short_offsets[0, 3, 0, 4, 4] = float("nan")
    outputs.heatmaps[0, 5, 2, 2] = float("inf")
    with pytest.raises(ValueError, match="heatmaps contain 1 NaN or infinite"):
        decode(outputs)
    with pytest.raises(ValueError, match="NaN or infinite"):
        decode(outputs, config=DecoderConfig(backend="torch"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        decode_baseline(outputs)
    config = DecoderConfig(nonfinite="zero")
    found = decode(outputs, config=config)
    assert len(found[0]) >= 1 and all(np.isfinite(p.keypoints).all() for p in found[0])
    assert_same(found, decode_baseline(outputs, config=config))
    assert_same(found, decode(outputs, config=config.replace(backend="torch")))


def test_large_finite_values_are_not_mistaken_for_nonfinite() -> None:
    outputs = outputs_for([person(40, 20)])
    outputs.mid_offsets[0, :, :, 0, :] = 3e38  # overflows a float32 sum, but every value is finite
    assert len(decode(outputs)[0]) >= 1


def test_input_checks() -> None:
    good = outputs_for([person(40, 20)])
    with pytest.raises(ValueError, match="schema 'crowdpose14'"):
        decode(good, CROWDPOSE14)
    bad = PoseOutputs(good.heatmaps, good.short_offsets[:, :, :, :-1], good.mid_offsets, good.body_heatmap, 8)
    with pytest.raises(ValueError, match="short_offsets must have shape"):
        decode(bad)
    with pytest.raises(ValueError, match="stride"):
        decode(PoseOutputs(good.heatmaps, good.short_offsets, good.mid_offsets, good.body_heatmap, 0))
    with pytest.raises(TypeError):
        decode(good, config={"max_people": 3})


def test_dtypes_and_layouts_accepted() -> None:
    outputs = outputs_for([person(40, 20), person(100, 30)])
    reference = decode(outputs)
    assert_same(decode(outputs.to(torch.float64)), reference)
    half = decode(outputs.to(torch.float16))
    assert len(half[0]) == 2
    # Non-contiguous tensors (a transposed view) decode like their contiguous copies.
    t = outputs.to(torch.float32)
    swapped = PoseOutputs(t.heatmaps.transpose(2, 3).contiguous().transpose(2, 3), t.short_offsets,
                          t.mid_offsets, t.body_heatmap.transpose(2, 3).contiguous().transpose(2, 3), 8)
    assert_same(decode(swapped), reference)


def test_cap_and_order() -> None:
    people = [person(20 + 50 * (n % 5), 10 + 70 * (n // 5), scale=0.6) for n in range(8)]
    found = decode(outputs_for(people, size=(161, 281)))[0]
    assert len(found) == 8
    scores = [p.score for p in found]
    assert scores == sorted(scores, reverse=True)
    capped = decode(outputs_for(people, size=(161, 281)), config=DecoderConfig(max_people=3))[0]
    assert len(capped) == 3


def test_box_uses_confident_keypoints() -> None:
    truth = person(50, 10, labelled=[5, 6, 7, 8, 9, 10, 11, 12])
    found = decode(outputs_for([truth]), config=DecoderConfig(keypoint_threshold=0.5))[0][0]
    confident = found.keypoints[found.keypoints[:, 2] >= 0.5]
    assert found.box == pytest.approx((confident[:, 0].min(), confident[:, 1].min(), confident[:, 0].max(),
                                       confident[:, 1].max()))
    labelled = truth[truth[:, 2] > 0]
    assert found.box == pytest.approx((labelled[:, 0].min(), labelled[:, 1].min(), labelled[:, 0].max(),
                                       labelled[:, 1].max()), abs=1e-3)


def test_person_pose_helpers() -> None:
    pose = PersonPose(np.arange(K * 3, dtype=np.float64).reshape(K, 3) / 100, 0.5, (0, 1, 2, 3))
    coco = pose.to_coco_keypoints()
    assert len(coco) == 3 * K and coco[2] == pytest.approx(0.02)
    assert pose.to_coco_keypoints("one")[2] == 1.0
    assert pose.keypoints.dtype == np.float32 and pose.box == (0.0, 1.0, 2.0, 3.0)
    with pytest.raises(ValueError):
        PersonPose(np.zeros((K, 2)), 0.5, (0, 0, 0, 0))
    with pytest.raises(ValueError):
        pose.to_coco_keypoints("two")


# --- scoring and NMS options ----------------------------------------------------------------------------


def false_nose_outputs() -> tuple[np.ndarray, PoseOutputs]:
    """A person and a confident false nose 40 px right of the real one, whose mid-range offsets lead onto
    the real person's keypoints (whose own offsets lead back to the real nose)."""
    truth = person(60, 30)
    outputs = outputs_for([truth])
    false_nose = np.array([100.0, truth[0, 1]])
    for i in range(outputs.heatmaps.shape[2]):
        for j in range(outputs.heatmaps.shape[3]):
            cell = np.array([j * 8.0, i * 8.0])
            if np.hypot(*(cell - false_nose)) <= 16:
                outputs.heatmaps[0, 0, i, j] = 1.0
                outputs.short_offsets[0, 0, :, i, j] = torch.from_numpy(false_nose - cell)
                for e, (start, end) in enumerate(COCO17.directed_edges):
                    if start == 0:
                        outputs.mid_offsets[0, e, :, i, j] = torch.from_numpy(truth[end, :2] - cell)
    return truth, outputs


def test_eq1_gives_a_duplicate_no_credit() -> None:
    # Without the reverse check the false nose seeds a second person that shares 16 keypoints with the
    # first. Eq. 1 credits it only its own nose (score <= 1/K); hard OKS-NMS removes it; instance
    # soft-NMS decays it.
    truth, outputs = false_nose_outputs()
    unchecked = DecoderConfig(reverse_check_radius=0)
    found = decode(outputs, config=unchecked)[0]
    assert len(found) == 2
    assert found[0].score > 0.9 and 0 < found[1].score <= 1.0 / K + 1e-9
    np.testing.assert_allclose(found[1].keypoints[1:, :2], truth[1:, :2], atol=1e-3)
    assert len(decode(outputs, config=unchecked.replace(instance_nms="oks_hard"))[0]) == 1
    soft = decode(outputs, config=unchecked.replace(instance_nms="soft_nms"))[0]
    assert len(soft) == 2 and soft[1].score < 0.2 * soft[0].score


def test_reverse_check_leaves_a_false_seed_alone() -> None:
    # With the check (the default) the false nose's steps are refused (the real shoulders' offsets lead
    # back to the real nose): it is a lone keypoint, with its placeholders at its own place; Eq. 1 credits
    # its nose alone.
    truth, outputs = false_nose_outputs()
    found = decode(outputs)[0]
    assert len(found) == 2 and match(found, truth) < 1e-3
    lone = found[1]
    assert lone.keypoints[0, 2] > 0.9 and lone.score == pytest.approx(lone.keypoints[0, 2] / K)
    np.testing.assert_allclose(lone.keypoints[:, :2], np.tile([100.0, truth[0, 1]], (K, 1)), atol=1e-3)
    assert np.all(lone.keypoints[1:, 2] == 0)
    assert_same(decode(outputs), decode_baseline(outputs))


def test_nms_kernels() -> None:
    rng = np.random.default_rng(0)
    a = person(50, 10)[:, :2]
    points = np.stack([a, a + rng.normal(0, 0.5, a.shape), a + 200.0])
    kappa2 = np.array([(2 * s) ** 2 for s in COCO17.sigmas])
    scores = np.array([0.9, 0.8, 0.7])
    hard = oks_hard_nms(points, scores, kappa2, 0.5)
    assert list(hard) == [0.9, 0.0, 0.7]
    soft = oks_soft_nms(points, scores, kappa2, 0.5)
    assert soft[0] == 0.9 and soft[1] < 0.8 * 0.3 and soft[2] == pytest.approx(0.7)


def test_expected_oks_scores() -> None:
    outputs = outputs_for([person(60.3, 20.7, scale=1.2)])
    found = decode(outputs, config=DecoderConfig(keypoint_score="expected_oks"))[0]
    assert len(found) == 1 and 0 < found[0].score <= 1
    scores = found[0].keypoints[:, 2]
    assert np.all((scores > 0) & (scores <= 1))
    # Facial keypoints have the tightest OKS tolerance: on the same grid they score lowest.
    assert scores[:5].mean() < scores[11:].mean()


def test_bhm_rescoring() -> None:
    outputs = outputs_for([person(60, 20)])
    plain = decode(outputs)[0][0].score
    outputs.body_heatmap[:] = 0.5
    rescored = decode(outputs, config=DecoderConfig(bhm_rescore=True))[0][0].score
    assert rescored == pytest.approx(0.5 * plain, rel=1e-6)


# --- fast == baseline, torch == numpy -------------------------------------------------------------------


CONFIGS = [
    {}, {"keypoint_score": "expected_oks"}, {"instance_nms": "oks_hard"}, {"instance_nms": "soft_nms"},
    {"blur_sigma": 1.0, "bhm_rescore": True}, {"merge_fragments": False, "refine_steps": 0},
    {"reverse_check_radius": 0, "fragment_max_limb_ratio": 0, "fragment_body_reach": 0},
    {"fragment_max_gap": 1.0, "fragment_min_body": 0.2, "fragment_support": 0.2},
]


def random_outputs(rng: np.random.Generator, stride: int, size: int, people: int, noise: float) -> PoseOutputs:
    from strongpose_ros.evaluation import add_noise

    truth = [person(rng.uniform(0, size - 60), rng.uniform(0, size - 90), scale=rng.uniform(0.4, 0.9),
                    labelled=sorted(rng.choice(K, rng.integers(4, K + 1), replace=False).tolist()), jitter=4, rng=rng)
             for _ in range(people)]
    return add_noise(outputs_for(truth, size=(size, size), stride=stride), noise, rng)


@pytest.mark.parametrize("seed", range(4))
def test_fast_decoder_equals_baseline(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stride = (8, 16, 4, 8)[seed]
    outputs = random_outputs(rng, stride, size=129, people=int(rng.integers(1, 6)), noise=(0, 0.5, 1, 2)[seed])
    for changes in CONFIGS:
        config = DecoderConfig(**changes)
        assert_same(decode(outputs, config=config), decode_baseline(outputs, config=config))


def test_fast_decoder_equals_baseline_on_pure_noise() -> None:
    rng = np.random.default_rng(7)
    H, W, E2 = 17, 13, 2 * COCO17.num_edges
    outputs = PoseOutputs(torch.rand(2, K, H, W) ** 3, torch.randn(2, K, 2, H, W) * 12,
                          torch.randn(2, E2, 2, H, W) * 30, torch.rand(2, 1, H, W), stride=8)
    del rng
    for changes in CONFIGS:
        config = DecoderConfig(peak_threshold=0.02, **changes)
        fast = decode(outputs, config=config)
        assert sum(len(r) for r in fast) > 2
        assert_same(fast, decode_baseline(outputs, config=config))


def test_torch_path_matches_numpy_path() -> None:
    rng = np.random.default_rng(3)
    outputs = random_outputs(rng, 8, size=161, people=4, noise=0.5)
    heat = outputs.heatmaps[0].numpy()
    short = outputs.short_offsets[0].numpy()
    normaliser = vote_normaliser(16.0, 8)
    on_torch = hough_maps_torch(outputs.heatmaps, outputs.short_offsets, 8, normaliser, 0.01)[0].numpy()
    np.testing.assert_allclose(on_torch, hough_maps(heat, short, 8, normaliser, 0.01), atol=1e-12)
    for changes in CONFIGS:
        config = DecoderConfig(**changes)
        assert_same(decode(outputs, config=config.replace(backend="torch")), decode(outputs, config=config))


# --- benchmark script -----------------------------------------------------------------------------------


def test_benchmark_runs_and_agrees(capsys: pytest.CaptureFixture) -> None:
    import argparse

    from strongpose_ros.bench import decoder as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--people", "1,3", "--layouts", "1", "--repeats", "2", "--baseline-repeats", "1",
                              "--size", "97"])
    figures = bench.run(args)
    assert figures["same_people_1_people"] == 1.0 and figures["same_people_3_people"] == 1.0
    assert figures["decode_ms_median_3_people"] > 0 and figures["speedup_median_3_people"] > 1
    assert "speed-up" in capsys.readouterr().out


def test_benchmark_script_help() -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "decoder.py"), "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--people" in result.stdout


def test_output_size_convention() -> None:
    # The decoder's grid: cell j is pixel j * stride, so a 401-pixel input gives 51 cells at stride 8.
    assert output_size(401, 8) == 51
