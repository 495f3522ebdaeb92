"""Training targets: hand-built cases, a brute-force reference, and the real COCO mini annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from strongpose_ros.model.outputs import output_size
from strongpose_ros.model.targets import DISK_RADIUS, Targets, collate_targets, encode_targets
from strongpose_ros.schema import COCO17, CROWDPOSE14

K = COCO17.num_keypoints
NOSE, LEFT_EYE, LEFT_SHOULDER = 0, 1, 5


def person(points: dict[int, tuple[float, float, int]], k: int = K, **extra) -> dict:
    """An annotation with the given keypoints {type: (x, y, v)}, all others unlabelled."""
    keypoints = [0.0] * (3 * k)
    for t, (x, y, v) in points.items():
        keypoints[3 * t: 3 * t + 3] = [x, y, v]
    return {"keypoints": keypoints, "iscrowd": 0, "num_keypoints": len(points)} | extra


def cell_positions(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.meshgrid(np.arange(output_size(height, stride)) * stride,
                         np.arange(output_size(width, stride)) * stride, indexing="ij")
    return xs, ys


def reference_targets(annotations, height, width, stride, schema=COCO17, radius=DISK_RADIUS):
    """Per-cell loops straight from ALGORITHM.md section 3 (keypoints only, no masks)."""
    H, W = output_size(height, stride), output_size(width, stride)
    kps = [np.asarray(a["keypoints"], float).reshape(-1, 3) for a in annotations if not a.get("iscrowd")]
    heat = np.zeros((schema.num_keypoints, H, W))
    short = np.zeros((schema.num_keypoints, 2, H, W))
    owner = -np.ones((schema.num_keypoints, H, W), int)
    for k in range(schema.num_keypoints):
        for i in range(H):
            for j in range(W):
                x, y = j * stride, i * stride
                best, best_d = -1, np.inf
                for n, kp in enumerate(kps):
                    if kp[k, 2] > 0:
                        d = np.hypot(kp[k, 0] - x, kp[k, 1] - y)
                        if d <= radius and d < best_d:
                            best, best_d = n, d
                if best >= 0:
                    heat[k, i, j] = 1
                    short[k, :, i, j] = kps[best][k, 0] - x, kps[best][k, 1] - y
                    owner[k, i, j] = best
    edges = schema.directed_edges
    mid = np.zeros((len(edges), 2, H, W))
    mid_w = np.zeros((len(edges), H, W))
    for e, (a, b) in enumerate(edges):
        for i in range(H):
            for j in range(W):
                n = owner[a, i, j]
                if n >= 0 and kps[n][b, 2] > 0:
                    mid_w[e, i, j] = 1
                    mid[e, :, i, j] = kps[n][b, 0] - j * stride, kps[n][b, 1] - i * stride
    return heat, short, mid, mid_w


def test_one_keypoint_makes_a_disk_with_offsets_to_it():
    t = encode_targets([person({NOSE: (100.0, 100.0, 2)})], (201, 201), 8)
    xs, ys = cell_positions(201, 201, 8)
    disk = (xs - 100.0) ** 2 + (ys - 100.0) ** 2 <= 16.0**2
    assert t.heatmaps.shape == (K, 26, 26) and t.heatmaps.dtype == torch.float32
    assert np.array_equal(t.heatmaps[NOSE].numpy(), disk.astype(np.float32))
    assert t.heatmaps[1:].sum() == 0
    assert np.array_equal(t.short_weights.numpy(), t.heatmaps.numpy())
    np.testing.assert_allclose(t.short_offsets[NOSE, 0].numpy(), np.where(disk, 100.0 - xs, 0.0))
    np.testing.assert_allclose(t.short_offsets[NOSE, 1].numpy(), np.where(disk, 100.0 - ys, 0.0))
    assert t.heatmap_weights.min() == 1 and t.body_weights.min() == 1
    # No mask: the body target falls back to the keypoint disks (and capsules along labelled links).
    assert np.array_equal(t.body[0].numpy(), disk.astype(np.float32))
    assert t.mid_weights.sum() == 0  # a lone keypoint has no edge


def test_close_keypoints_of_one_type_go_to_the_nearest_instance():
    anns = [person({NOSE: (100.0, 100.0, 2)}), person({NOSE: (120.0, 100.0, 2)})]  # 20 px apart < 2R
    t = encode_targets(anns, (200, 240), 4)
    # Cell x=108 is 8 px from the first nose and 12 from the second; x=112 the other way round.
    row = 100 // 4
    assert t.short_offsets[NOSE, 0, row, 108 // 4] == -8.0
    assert t.short_offsets[NOSE, 0, row, 112 // 4] == 8.0
    xs, _ = cell_positions(200, 240, 4)
    targets_x = xs + t.short_offsets[NOSE, 0].numpy()
    inside = t.short_weights[NOSE].numpy() > 0
    nearest = np.where(np.abs(xs - 100) < np.abs(xs - 120), 100.0, 120.0)
    np.testing.assert_array_equal(targets_x[inside], nearest[inside])


def test_mid_offsets_follow_the_nearest_instance_of_the_start_keypoint():
    a = person({NOSE: (100.0, 100.0, 2), LEFT_SHOULDER: (60.0, 180.0, 2)})
    b = person({NOSE: (120.0, 100.0, 1), LEFT_SHOULDER: (170.0, 180.0, 1)})
    t = encode_targets([a, b], (240, 240), 4)
    edge = COCO17.directed_edges.index((NOSE, LEFT_SHOULDER))
    row = 100 // 4
    # Cell (104, 100) belongs to a's nose, so it points to a's shoulder; cell (116, 100) to b's.
    assert t.mid_weights[edge, row, 104 // 4] == 1
    assert t.mid_offsets[edge, :, row, 104 // 4].tolist() == [60.0 - 104, 180.0 - 100]
    assert t.mid_offsets[edge, :, row, 116 // 4].tolist() == [170.0 - 116, 180.0 - 100]
    reverse = COCO17.directed_edges.index((LEFT_SHOULDER, NOSE))
    assert t.mid_offsets[reverse, :, 180 // 4, 60 // 4].tolist() == [100.0 - 60, 100.0 - 180]


def test_a_missing_edge_end_gives_no_mid_target():
    t = encode_targets([person({NOSE: (50.0, 50.0, 2), LEFT_SHOULDER: (80.0, 90.0, 2)})], (129, 129), 8)
    to_eye = COCO17.directed_edges.index((NOSE, LEFT_EYE))
    to_shoulder = COCO17.directed_edges.index((NOSE, LEFT_SHOULDER))
    assert t.mid_weights[to_eye].sum() == 0 and t.mid_offsets[to_eye].abs().sum() == 0
    assert torch.equal(t.mid_weights[to_shoulder], t.heatmaps[NOSE])
    for e, (a, b) in enumerate(COCO17.directed_edges):  # only nose<->shoulder edges are defined
        assert (t.mid_weights[e].sum() > 0) == ({a, b} == {NOSE, LEFT_SHOULDER})


def test_visibility_one_and_two_count_zero_does_not():
    t = encode_targets([person({NOSE: (40.0, 40.0, 1), LEFT_EYE: (60.0, 40.0, 2), 2: (80.0, 40.0, 0)})], (97, 129), 8)
    assert t.heatmaps[NOSE].sum() > 0 and t.heatmaps[LEFT_EYE].sum() > 0
    assert t.heatmaps[2].sum() == 0


def test_keypoints_at_and_beyond_the_border():
    t = encode_targets([person({NOSE: (0.0, 0.0, 2), LEFT_EYE: (200.0, 200.0, 2), 2: (-10.0, 50.0, 2)})],
                       (201, 201), 8)
    assert t.heatmaps[NOSE, 0, 0] == 1 and t.short_offsets[NOSE, :, 0, 0].tolist() == [0.0, 0.0]
    assert t.heatmaps[LEFT_EYE, 25, 25] == 1 and t.short_offsets[LEFT_EYE, :, 25, 25].tolist() == [0.0, 0.0]
    # Clipped disks: a quarter disk in the corners, the part of the third that reaches into the image.
    xs, ys = cell_positions(201, 201, 8)
    assert t.heatmaps[NOSE].sum() == ((xs**2 + ys**2) <= 256).sum()
    assert t.heatmaps[2].sum() == (((xs + 10.0) ** 2 + (ys - 50.0) ** 2) <= 256).sum() > 0
    assert t.short_offsets[2, :, 6, 0].tolist() == [-10.0, 2.0]  # cell (0, 48) points outside the image


def test_crowd_regions_and_unlabelled_people_are_ignored():
    square = [[0.0, 0.0, 60.0, 0.0, 60.0, 60.0, 0.0, 60.0]]
    crowd = {"iscrowd": 1, "segmentation": square, "keypoints": [30.0, 30.0, 2] + [0.0] * (3 * K - 3)}
    unlabelled = {"iscrowd": 0, "num_keypoints": 0, "keypoints": [0.0] * (3 * K),
                  "segmentation": [[100.0, 100.0, 140.0, 100.0, 140.0, 140.0, 100.0, 140.0]]}
    labelled = person({NOSE: (56.0, 56.0, 2)})  # its disk reaches into the crowd region
    t = encode_targets([crowd, unlabelled, labelled], (161, 161), 8)
    xs, ys = cell_positions(161, 161, 8)
    in_crowd = (xs <= 60) & (ys <= 60)
    in_person = (xs >= 100) & (xs <= 140) & (ys >= 100) & (ys <= 140)
    disk = (xs - 56.0) ** 2 + (ys - 56.0) ** 2 <= 256
    # A crowd's keypoints never count; the crowd is ignored except where a labelled disk is a known positive.
    assert np.array_equal(t.heatmaps[NOSE].numpy() > 0, disk)
    assert np.array_equal(t.heatmap_weights[NOSE].numpy() == 0, (in_crowd | in_person) & ~disk)
    assert np.array_equal(t.heatmap_weights[LEFT_EYE].numpy() == 0, in_crowd | in_person)
    # BHM: the unlabelled person's mask is body (trained), the crowd is ignored.
    assert np.array_equal(t.body[0].numpy() > 0, in_person | disk)
    assert np.array_equal(t.body_weights[0].numpy() == 0, in_crowd & ~disk)


def test_crowd_and_unlabelled_people_without_masks_use_their_boxes():
    crowd = {"iscrowd": 1, "bbox": [0.0, 0.0, 40.0, 40.0]}
    unlabelled = {"iscrowd": 0, "bbox": [80.0, 80.0, 40.0, 40.0], "keypoints": [0.0] * (3 * K)}
    t = encode_targets([crowd, unlabelled], (121, 121), 8)
    xs, ys = cell_positions(121, 121, 8)
    box1 = (xs <= 40) & (ys <= 40)
    box2 = (xs >= 80) & (ys >= 80)
    assert np.array_equal(t.heatmap_weights[0].numpy() == 0, box1 | box2)
    assert np.array_equal(t.body_weights[0].numpy() == 0, box1 | box2)  # no mask: its extent is unknown
    assert t.body.sum() == 0 and t.heatmaps.sum() == 0


def test_mask_formats_agree():
    from pycocotools import mask as mask_utils

    polygon = [[10.0, 20.0, 70.0, 15.0, 60.0, 90.0, 15.0, 80.0]]
    h, w = 101, 81
    rle = mask_utils.merge(mask_utils.frPyObjects(polygon, h, w))
    full = mask_utils.decode(rle).astype(bool)
    uncompressed = {"size": [h, w], "counts": _uncompressed_counts(full)}
    compressed = {"size": [h, w], "counts": rle["counts"].decode()}
    bodies = [encode_targets([{"iscrowd": 0, "segmentation": s}], (h, w), 4).body
              for s in (polygon, uncompressed, compressed, full)]
    assert bodies[0].sum() > 0
    for body in bodies[1:]:
        assert torch.equal(body, bodies[0])
    np.testing.assert_array_equal(bodies[0][0].numpy(), full[::4, ::4])


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], changes])).tolist()


def test_body_fallback_includes_link_capsules():
    # Left shoulder (5) and left elbow (7) are linked in the drawing skeleton; a cell halfway between them,
    # far from both disks, is body.
    t = encode_targets([person({5: (20.0, 20.0, 2), 7: (100.0, 20.0, 2)})], (41, 121), 4)
    assert t.body[0, 20 // 4, 60 // 4] == 1 and t.heatmaps[:, 20 // 4, 60 // 4].sum() == 0
    assert t.body[0, 40 // 4, 60 // 4] == 0  # 20 px from the link


def test_vectorised_encoding_matches_the_per_cell_reference():
    rng = np.random.default_rng(7)
    anns = []
    for _ in range(4):
        kp = np.zeros((K, 3))
        kp[:, 0] = rng.uniform(-10, 140, K)
        kp[:, 1] = rng.uniform(-10, 110, K)
        kp[:, 2] = rng.integers(0, 3, K)
        anns.append({"keypoints": kp.ravel().tolist(), "iscrowd": 0})
    t = encode_targets(anns, (97, 129), 8)
    heat, short, mid, mid_w = reference_targets(anns, 97, 129, 8)
    np.testing.assert_array_equal(t.heatmaps.numpy(), heat)
    np.testing.assert_allclose(t.short_offsets.numpy(), short, atol=1e-5)
    np.testing.assert_array_equal(t.mid_weights.numpy(), mid_w)
    np.testing.assert_allclose(t.mid_offsets.numpy(), mid, atol=1e-4)


def test_no_people_gives_empty_targets():
    t = encode_targets([], (65, 97), 16)
    assert t.heatmaps.shape == (K, 5, 7) and t.mid_offsets.shape == (32, 2, 5, 7) and t.body.shape == (1, 5, 7)
    assert t.heatmaps.sum() == 0 and t.body.sum() == 0
    assert t.heatmap_weights.min() == 1 and t.body_weights.min() == 1


def test_crowdpose14_schema_encodes():
    anns = [person({12: (50.0, 30.0, 2), 13: (50.0, 50.0, 2), 0: (30.0, 60.0, 2)}, k=14)]
    t = encode_targets(anns, (129, 97), 8, schema=CROWDPOSE14)
    assert t.heatmaps.shape == (14, 17, 13) and t.mid_offsets.shape == (26, 2, 17, 13)
    head_to_neck = CROWDPOSE14.directed_edges.index((12, 13))
    assert t.mid_weights[head_to_neck].sum() > 0
    with pytest.raises(ValueError, match="crowdpose14"):
        encode_targets([person({0: (1.0, 1.0, 2)})], (129, 97), 8, schema=CROWDPOSE14)  # 17 keypoints


def test_collate_stacks_and_refuses_mixed_grids():
    a = encode_targets([person({NOSE: (10.0, 10.0, 2)})], (65, 65), 8)
    b = encode_targets([], (65, 65), 8)
    batch = collate_targets([a, b])
    assert isinstance(batch, Targets) and batch.heatmaps.shape == (2, K, 9, 9)
    assert batch.mid_weights.shape == (2, 32, 9, 9) and torch.equal(batch.short_offsets[0], a.short_offsets)
    with pytest.raises(ValueError, match="different grids"):
        collate_targets([a, encode_targets([], (129, 65), 8)])
    with pytest.raises(ValueError):
        collate_targets([])


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="3 x 17"):
        encode_targets([{"keypoints": [1, 2, 2], "iscrowd": 0}], (65, 65), 8)
    with pytest.raises(ValueError, match="RLE of size"):
        encode_targets([{"iscrowd": 1, "segmentation": {"size": [10, 10], "counts": [100]}}], (65, 65), 8)
    with pytest.raises(ValueError, match="stride"):
        encode_targets([], (65, 65), 0)
    with pytest.raises(ValueError, match="image_size"):
        encode_targets([], (0, 65), 8)
    with pytest.raises(ValueError, match="NaN"):
        encode_targets([person({NOSE: (float("nan"), 1.0, 2)})], (65, 65), 8)


def test_real_coco_annotations_line_up(coco_mini_annotations):
    from pycocotools.coco import COCO

    coco = COCO(str(coco_mini_annotations))
    data = json.loads(coco_mini_annotations.read_text())
    stride = 8
    checked_keypoints = checked_images = 0
    for image in data["images"]:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        if not anns:
            continue
        h, w = image["height"], image["width"]
        t = encode_targets(anns, (h, w), stride)
        assert t.heatmaps.shape == (K, output_size(h, stride), output_size(w, stride))
        body = np.zeros((h, w), bool)
        crowd = np.zeros((h, w), bool)
        for ann in anns:
            (crowd if ann["iscrowd"] else body)[:] |= coco.annToMask(ann).astype(bool)
        sub = (slice(None, None, stride), slice(None, None, stride))
        # Every person here has a mask, so the BHM target is their union read at the cells' pixels.
        np.testing.assert_array_equal(t.body[0].numpy() > 0, body[sub])
        np.testing.assert_array_equal(t.body_weights[0].numpy() == 0, crowd[sub] & ~body[sub])
        people = [np.asarray(a["keypoints"], float).reshape(K, 3) for a in anns if not a["iscrowd"]]
        for kp in people:
            for k in np.flatnonzero(kp[:, 2] > 0):
                x, y = kp[k, :2]
                i, j = round(y / stride), round(x / stride)
                i, j = min(i, t.heatmaps.shape[1] - 1), min(j, t.heatmaps.shape[2] - 1)
                assert t.heatmaps[k, i, j] == 1
                dx, dy = t.short_offsets[k, :, i, j].tolist()
                points_to = (j * stride + dx, i * stride + dy)
                # It points at this keypoint, or at a same-type keypoint of another person that is nearer.
                d_self = np.hypot(x - j * stride, y - i * stride)
                d_target = np.hypot(points_to[0] - j * stride, points_to[1] - i * stride)
                assert np.allclose(points_to, (x, y), atol=1e-3) or d_target <= d_self + 1e-6
                checked_keypoints += 1
        checked_images += 1
    assert checked_images >= 20 and checked_keypoints > 500
