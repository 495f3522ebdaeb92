"""Losses: zero for the oracle, positive otherwise, masks respected, finite on empty images, trainable."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from strongpose_ros.model import (
    LossConfig,
    build_model,
    collate_targets,
    compute_losses,
    encode_targets,
    oracle_from_targets,
)
from strongpose_ros.model.losses import LOSS_TERMS

K = 17


def one_person(x0: float = 40.0, y0: float = 30.0, segmentation=None) -> dict:
    keypoints = []
    for k in range(K):
        keypoints += [x0 + 4.0 * (k % 5), y0 + 6.0 * k, 2]
    ann = {"keypoints": keypoints, "iscrowd": 0, "num_keypoints": K}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return ann


def test_zero_for_the_oracle_on_real_coco_images(coco_mini_annotations):
    data = json.loads(coco_mini_annotations.read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    checked = 0
    for image in data["images"][:30]:
        anns = by_image.get(image["id"], [])
        targets = encode_targets(anns, (image["height"], image["width"]), 16)
        losses = compute_losses(oracle_from_targets(targets, 16), collate_targets([targets]))
        assert set(losses) == {*LOSS_TERMS, "total"}
        assert all(v.item() == 0.0 for v in losses.values()), (image["id"], losses)
        checked += 1
    assert checked == 30


def test_each_term_is_positive_when_its_prediction_is_wrong():
    targets = encode_targets([one_person()], (129, 97), 8)
    perfect = oracle_from_targets(targets, 8)
    wrong = {
        "skhm": replace(perfect, heatmaps=1 - perfect.heatmaps),
        "short": replace(perfect, short_offsets=perfect.short_offsets + 3.0),
        "mid": replace(perfect, mid_offsets=perfect.mid_offsets - 5.0),
        "bhm": replace(perfect, body_heatmap=torch.full_like(perfect.body_heatmap, 0.5)),
    }
    for term, outputs in wrong.items():
        losses = compute_losses(outputs, targets)
        assert losses[term] > 0 and losses["total"] > 0
        assert all(losses[t] == 0 for t in LOSS_TERMS if t != term), term
    # The offsets' L1 is per pixel, over (dx, dy), divided by R.
    assert compute_losses(wrong["short"], targets)["short"].item() == pytest.approx(6.0 / 16.0)
    assert compute_losses(wrong["mid"], targets)["mid"].item() == pytest.approx(10.0 / 16.0)
    # The total uses the configured weights.
    config = LossConfig(short_weight=2.0)
    assert compute_losses(wrong["short"], targets, config)["total"].item() == pytest.approx(2 * 6.0 / 16.0)


def test_ignored_pixels_do_not_count():
    crowd = {"iscrowd": 1, "segmentation": [[0.0, 0.0, 50.0, 0.0, 50.0, 50.0, 0.0, 50.0]]}
    targets = encode_targets([crowd, one_person(70.0, 10.0)], (129, 129), 8)
    perfect = oracle_from_targets(targets, 8)
    ignored = (targets.heatmap_weights == 0).unsqueeze(0)
    assert ignored.any()
    heat = perfect.heatmaps.clone()
    heat[ignored] = 1.0  # wrong, but ignored
    body = perfect.body_heatmap.clone()
    body[(targets.body_weights == 0).unsqueeze(0)] = 1.0
    outside = (targets.short_weights == 0).unsqueeze(0).unsqueeze(2).expand_as(perfect.short_offsets)
    short = perfect.short_offsets.clone()
    short[outside] = 50.0
    mid = perfect.mid_offsets + 50.0 * (targets.mid_weights == 0).unsqueeze(0).unsqueeze(2)
    outputs = replace(perfect, heatmaps=heat, body_heatmap=body, short_offsets=short, mid_offsets=mid)
    assert all(v.item() == 0.0 for v in compute_losses(outputs, targets).values())


@pytest.mark.parametrize("case", ["no people", "crowd only"])
def test_finite_on_images_without_people(case):
    anns = [] if case == "no people" else [{"iscrowd": 1, "bbox": [0.0, 0.0, 200.0, 200.0]}]
    targets = collate_targets([encode_targets(anns, (65, 65), 16)] * 2)
    net = build_model(backbone="resnet18", intermediate_supervision=True).train()
    losses = compute_losses(net(torch.randn(2, 3, 65, 65)), targets)
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert losses["short"] == 0 and losses["mid"] == 0
    if case == "crowd only":
        assert losses["skhm"] == 0 and losses["bhm"] == 0
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_logits_and_probabilities_agree():
    targets = encode_targets([one_person()], (97, 97), 8)
    logits = torch.randn(1, K, 13, 13)
    body_logits = torch.randn(1, 1, 13, 13)
    base = oracle_from_targets(targets, 8)
    with_logits = replace(base, heatmaps=logits.sigmoid(), heatmap_logits=logits,
                          body_heatmap=body_logits.sigmoid(), body_logits=body_logits)
    without = replace(with_logits, heatmap_logits=None, body_logits=None)
    a, b = compute_losses(with_logits, targets), compute_losses(without, targets)
    for term in ("skhm", "bhm"):
        assert a[term].item() == pytest.approx(b[term].item(), rel=1e-4)
    # Very confident wrong logits stay finite through the logits path.
    extreme = replace(with_logits, heatmap_logits=torch.full_like(logits, -200.0), heatmaps=torch.zeros_like(logits))
    assert math.isfinite(compute_losses(extreme, targets)["skhm"].item())


def test_intermediate_terms_and_shape_errors():
    targets = encode_targets([one_person()], (97, 97), 8)
    perfect = oracle_from_targets(targets, 8)
    wrong_intermediate = replace(perfect, short_offsets=perfect.short_offsets + 1.0)
    losses = compute_losses(replace(perfect, intermediate=wrong_intermediate), targets,
                            LossConfig(intermediate_weight=0.5))
    assert {f"intermediate_{t}" for t in LOSS_TERMS} <= set(losses)
    assert losses["intermediate_short"].item() == pytest.approx(2.0 / 16.0)
    assert losses["total"].item() == pytest.approx(0.5 * 2.0 / 16.0)
    with pytest.raises(ValueError, match="heatmaps of shape"):
        compute_losses(perfect, encode_targets([one_person()], (129, 97), 8))


def test_a_few_optimiser_steps_drive_every_term_down():
    torch.manual_seed(0)
    segmentation = [[30.0, 20.0, 70.0, 20.0, 70.0, 120.0, 30.0, 120.0]]
    targets = collate_targets([encode_targets([one_person(segmentation=segmentation)], (129, 97), 16)])
    net = build_model(backbone="resnet18", output_stride=16, intermediate_supervision=True).train()
    image = torch.randn(1, 3, 129, 97)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    history = []
    for _ in range(10):
        losses = compute_losses(net(image), targets)
        history.append({k: v.item() for k, v in losses.items()})
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
    first, last = history[0], history[-1]
    for term in first:
        assert last[term] < 0.85 * first[term], (term, first[term], last[term])
