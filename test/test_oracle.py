"""The oracle: perfect outputs that a trivial decoder turns back into the annotated keypoints."""

from __future__ import annotations

import json

import numpy as np
import torch

from strongpose_ros.model.oracle import oracle_from_targets, oracle_outputs
from strongpose_ros.model.outputs import PoseOutputs, output_size
from strongpose_ros.model.targets import encode_targets
from strongpose_ros.schema import COCO17, CROWDPOSE14


def argmax_decode(outputs: PoseOutputs) -> np.ndarray:
    """Single-person decoding: per keypoint type, the strongest cell plus its short-range offset."""
    heat = outputs.heatmaps[0]
    k, _, w = heat.shape
    stride = outputs.stride
    flat = heat.reshape(k, -1).argmax(1)
    rows, cols = flat // w, flat % w
    dx = outputs.short_offsets[0, torch.arange(k), 0, rows, cols]
    dy = outputs.short_offsets[0, torch.arange(k), 1, rows, cols]
    return torch.stack([cols * stride + dx, rows * stride + dy], 1).numpy()


def single_person_images(path):
    data = json.loads(path.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for image in data["images"]:
        anns = by_image.get(image["id"], [])
        labelled = [a for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0]
        if len(labelled) == 1:
            yield image, anns, np.asarray(labelled[0]["keypoints"], float).reshape(-1, 3)


def test_argmax_of_the_oracle_reproduces_real_coco_keypoints(coco_mini_annotations):
    images = checked = 0
    for image, anns, keypoints in single_person_images(coco_mini_annotations):
        out = oracle_outputs(anns, (image["height"], image["width"]), stride=8)
        assert out.heatmaps.shape == (1, 17, output_size(image["height"], 8), output_size(image["width"], 8))
        assert out.heatmaps.dtype == torch.float32 and out.heatmaps.device.type == "cpu"
        decoded = argmax_decode(out)
        labelled = keypoints[:, 2] > 0
        errors = np.hypot(*(decoded[labelled] - keypoints[labelled, :2]).T)
        assert errors.max() < 1.0, f"image {image['id']}: errors {errors}"
        images += 1
        checked += int(labelled.sum())
    assert images >= 3 and checked >= 30


def test_oracle_mid_offsets_connect_the_keypoints():
    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(30, 170, 17)
    kp[:, 1] = np.linspace(150, 20, 17)
    kp[:, 2] = 2
    out = oracle_outputs([{"keypoints": kp.ravel().tolist(), "iscrowd": 0}], (181, 201), stride=8)
    decoded = argmax_decode(out)
    for e, (a, b) in enumerate(COCO17.directed_edges):
        x, y = decoded[a]
        i, j = round(y / 8), round(x / 8)
        landed = np.array([j * 8, i * 8]) + out.mid_offsets[0, e, :, i, j].numpy()
        np.testing.assert_allclose(landed, kp[b, :2], atol=1e-3)


def test_oracle_is_the_targets_with_zeros_outside_their_weights():
    anns = [{"keypoints": [40.0, 40.0, 2] + [0.0] * 48, "iscrowd": 0,
             "segmentation": [[20.0, 20.0, 70.0, 20.0, 70.0, 90.0, 20.0, 90.0]]}]
    t = encode_targets(anns, (97, 97), 8)
    out = oracle_from_targets(t, 8)
    assert torch.equal(out.heatmaps[0], t.heatmaps) and torch.equal(out.body_heatmap[0], t.body)
    assert out.heatmap_logits is None and out.intermediate is None and out.stride == 8
    assert out.short_offsets[0][t.short_weights.unsqueeze(1).expand_as(t.short_offsets) == 0].abs().sum() == 0


def test_oracle_with_crowdpose14():
    kp = [v for k in range(14) for v in (10.0 + 8 * k, 120.0 - 7 * k, 2.0)]
    out = oracle_outputs([{"keypoints": kp, "iscrowd": 0}], (129, 129), stride=8, schema=CROWDPOSE14)
    assert out.heatmaps.shape == (1, 14, 17, 17) and out.mid_offsets.shape == (1, 26, 2, 17, 17)
    decoded = argmax_decode(out)
    np.testing.assert_allclose(decoded, np.asarray(kp).reshape(14, 3)[:, :2], atol=1e-3)
