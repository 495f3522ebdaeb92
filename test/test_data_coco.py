"""The COCO keypoint loader on the real mini set: alignment after augmentation, flips, determinism, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from strongpose_ros.data.augment import AugmentConfig
from strongpose_ros.data.coco import (
    CocoKeypointDataset,
    DataPaths,
    DatasetError,
    SampleStream,
    make_loader,
    resolve_data,
)
from strongpose_ros.model import ModelConfig
from strongpose_ros.schema import COCO17

CROP = 129  # 16*8+1: small and fast, and a mirror maps the stride-8 grid onto itself
STRIDE = 8
CONFIG = ModelConfig(backbone="resnet18", output_stride=STRIDE, input_size=(CROP, CROP))


@pytest.fixture(scope="module")
def mini(coco_mini_annotations: Path, coco_mini_images: Path) -> DataPaths:
    return resolve_data(annotations=coco_mini_annotations, images=coco_mini_images)


@pytest.fixture(scope="module")
def dataset(mini: DataPaths) -> CocoKeypointDataset:
    # No anti-aliasing pre-shrink here, so that the crop is exactly one warpAffine of the file.
    augment = AugmentConfig(antialias_below=1e-3)
    return CocoKeypointDataset(mini, CONFIG, augment=augment, seed=11, require_keypoints=True)


def _expected_keypoints(dataset: CocoKeypointDataset, index: int, matrix: np.ndarray, flipped: bool) -> np.ndarray:
    """The sample's people, transformed here by hand from the raw annotations."""
    out = []
    for ann in dataset.annotations(index):
        if ann.get("iscrowd") or not ann.get("keypoints"):
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        xy = kp[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        keep = (kp[:, 2] > 0) & (xy >= 0).all(1) & (xy <= CROP - 1).all(1)
        moved = np.where(keep[:, None], np.c_[xy, kp[:, 2]], 0.0)
        out.append(moved[COCO17.flip_permutation] if flipped else moved)
    return np.asarray(out).reshape(-1, 17, 3)


def _denormalise(image: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(CONFIG.input_mean).view(3, 1, 1)
    std = torch.tensor(CONFIG.input_std).view(3, 1, 1)
    rgb = (image * std + mean).permute(1, 2, 0).numpy() * 255.0
    return rgb[..., ::-1]  # BGR, float


def test_loads_the_mini_set_with_and_without_people(mini: DataPaths, dataset: CocoKeypointDataset) -> None:
    everything = CocoKeypointDataset(mini, CONFIG, seed=0)
    assert len(everything) == 80
    assert len(dataset) == 28  # images with at least one labelled person (PROVENANCE.md)
    empty = [i for i in range(len(everything)) if not everything.annotations(i)]
    assert empty, "the mini set has images without any person"
    sample = everything[empty[0]]
    assert sample.image.shape == (3, CROP, CROP) and sample.image.dtype == torch.float32
    for name in ("heatmaps", "short_weights", "mid_weights", "body"):
        assert getattr(sample.targets, name).sum() == 0, name  # all-negative targets
    assert sample.targets.heatmap_weights.min() == 1 and sample.keypoints.shape == (0, 17, 3)


def test_augmented_targets_line_up_with_the_warped_keypoints(dataset: CocoKeypointDataset) -> None:
    checked_keypoints = 0
    for index in range(0, len(dataset), 3):
        sample = dataset[(2, index)]
        # 1. The keypoints are the raw annotations through the sample's matrix (and flip).
        expected = _expected_keypoints(dataset, index, sample.matrix, sample.flipped)
        np.testing.assert_allclose(sample.keypoints, expected, atol=1e-4)
        # 2. The image went through the same matrix.
        original = dataset.load_image(index)
        warped = cv2.warpAffine(original, sample.matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=dataset.border_bgr)
        assert np.abs(_denormalise(sample.image) - warped).max() < 0.01
        # 3. Every SKHM disk cell's short offset points at a labelled keypoint of its type within R,
        #    and the cell nearest each keypoint is in its disk, pointing at it (or at a closer same-type one).
        heat = sample.targets.heatmaps.numpy()
        short = sample.targets.short_offsets.numpy()
        for k in range(17):
            points = sample.keypoints[:, k][sample.keypoints[:, k, 2] > 0, :2]
            rows, cols = np.nonzero(heat[k])
            if len(points) == 0:
                assert len(rows) == 0
                continue
            targets = np.stack([cols * STRIDE + short[k, 0, rows, cols], rows * STRIDE + short[k, 1, rows, cols]], -1)
            distance_to_nearest = np.linalg.norm(targets[:, None] - points[None], axis=-1).min(1)
            assert distance_to_nearest.max() < 1e-3
            assert (np.linalg.norm(targets - np.stack([cols, rows], -1) * STRIDE, axis=-1) <= 16.0 + 1e-3).all()
            for x, y in points:
                j, i = round(x / STRIDE), round(y / STRIDE)
                assert heat[k, i, j] == 1
                pointed = np.array([j * STRIDE + short[k, 0, i, j], i * STRIDE + short[k, 1, i, j]])
                own = np.hypot(*(pointed - [x, y]))
                closest = np.linalg.norm(points - [j * STRIDE, i * STRIDE], axis=1).min()
                assert own < 1e-3 or np.hypot(*(pointed - [j * STRIDE, i * STRIDE])) <= closest + 1e-3
                checked_keypoints += 1
    assert checked_keypoints > 50


def test_a_flipped_sample_mirrors_and_swaps_left_and_right(mini: DataPaths) -> None:
    plain = CocoKeypointDataset(mini, CONFIG, augment=AugmentConfig(flip_probability=0.0), seed=5,
                                require_keypoints=True)
    flipped = CocoKeypointDataset(mini, CONFIG, augment=AugmentConfig(flip_probability=1.0), seed=5,
                                  require_keypoints=True)
    perm = COCO17.flip_permutation
    for index in (0, 3, 7):
        a, b = plain[index], flipped[index]  # the same draw but for the flip
        assert not a.flipped and b.flipped
        np.testing.assert_allclose(b.matrix[0], [-a.matrix[0, 0], -a.matrix[0, 1], CROP - 1 - a.matrix[0, 2]])
        labelled = a.keypoints[:, perm, 2] > 0
        np.testing.assert_allclose(b.keypoints[..., 0][labelled], CROP - 1 - a.keypoints[:, perm, 0][labelled],
                                   atol=1e-4)
        np.testing.assert_array_equal(b.keypoints[..., 2], a.keypoints[:, perm, 2])
        # Targets: the left-eye map of the mirror image is the mirrored right-eye map, offsets' dx negated.
        np.testing.assert_array_equal(b.targets.heatmaps.numpy(), a.targets.heatmaps.numpy()[perm, :, ::-1])
        np.testing.assert_allclose(b.targets.short_offsets[:, 0].numpy(),
                                   -a.targets.short_offsets[perm, 0].numpy()[..., ::-1], atol=1e-4)
        np.testing.assert_array_equal(b.targets.body.numpy(), a.targets.body.numpy()[..., ::-1])
        assert (b.image - a.image.flip(-1)).abs().max() < 0.05  # bilinear sampling at mirrored points


def test_samples_are_deterministic_per_seed_epoch_and_index(mini: DataPaths, dataset: CocoKeypointDataset) -> None:
    again = CocoKeypointDataset(mini, CONFIG, augment=dataset.augment, seed=11, require_keypoints=True)
    a, b = dataset[(4, 2)], again[(4, 2)]
    assert torch.equal(a.image, b.image) and torch.equal(a.targets.heatmaps, b.targets.heatmaps)
    assert not np.array_equal(dataset[(5, 2)].matrix, a.matrix)  # another epoch, another draw
    other_seed = CocoKeypointDataset(mini, CONFIG, augment=dataset.augment, seed=12, require_keypoints=True)
    assert not np.array_equal(other_seed[(4, 2)].matrix, a.matrix)


def test_loader_is_the_same_for_any_worker_count(dataset: CocoKeypointDataset) -> None:
    def batches(workers: int) -> list:
        loader = make_loader(dataset, 3, start_step=5, num_steps=3, workers=workers)
        return [(b.image_ids, b.images, b.targets.short_offsets) for b in loader]

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3
    for (ids_a, img_a, off_a), (ids_b, img_b, off_b) in zip(serial, parallel, strict=True):
        assert ids_a == ids_b
        assert torch.equal(img_a, img_b) and torch.equal(off_a, off_b)


def test_sample_stream_epochs_ranks_and_resumption() -> None:
    n, batch, world = 10, 3, 2
    whole = list(SampleStream(n, batch * world, seed=3, num_steps=5))
    # Each epoch is a permutation: every index once.
    epoch0 = [i for e, i in whole if e == 0]
    assert sorted(epoch0) == list(range(n))
    # The ranks' slices of a step together are the single-process batch of the global size.
    for step in range(5):
        ranks = [list(SampleStream(n, batch, seed=3, start_step=step, num_steps=1, rank=r, world_size=world))
                 for r in range(world)]
        assert ranks[0] + ranks[1] == whole[step * batch * world:(step + 1) * batch * world]
    # Starting at a step continues the same order.
    assert list(SampleStream(n, 6, seed=3, start_step=2, num_steps=3)) == whole[12:]
    assert list(SampleStream(n, 6, seed=4, num_steps=1)) != whole[:6]


def test_clear_errors_for_unusable_data(tmp_path: Path, mini: DataPaths) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_data(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no annotation file"):
        resolve_data(tmp_path)
    data = json.loads(mini.annotations.read_text())

    def dataset_from(content: object, name: str = "bad.json") -> CocoKeypointDataset:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return CocoKeypointDataset(DataPaths(path, mini.images), CONFIG)

    with pytest.raises(DatasetError, match="not valid JSON"):
        dataset_from("{not json")
    instances = data | {"categories": [{"id": 1, "name": "person"}]}  # an instances file: no keypoints
    with pytest.raises(DatasetError, match="not a COCO keypoints file"):
        dataset_from(instances)
    with pytest.raises(DatasetError, match="no list"):
        dataset_from({"images": []})
    wrong_count = data | {"categories": [data["categories"][0] | {"keypoints": ["a", "b"]}]}
    with pytest.raises(DatasetError, match="has 2 keypoints"):
        dataset_from(wrong_count)
    missing_image = data | {"images": [*data["images"], data["images"][0] | {"id": -5, "file_name": "gone.jpg"}]}
    with pytest.raises(DatasetError, match=r"1 of the 81 images .* missing"):
        dataset_from(missing_image)
    # The COCO layout is found from its folder.
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    shutil.copy(mini.annotations, coco / "annotations" / "person_keypoints_val2017.json")
    (coco / "val2017").mkdir()
    found = resolve_data(coco)
    assert found.images == coco / "val2017" and found.annotations.name == "person_keypoints_val2017.json"


def test_an_image_whose_size_differs_from_the_annotations_is_refused(tmp_path: Path, mini: DataPaths) -> None:
    data = json.loads(mini.annotations.read_text())
    first = data["images"][0]
    data["images"][0] = first | {"height": first["height"] + 1}
    path = tmp_path / "wrong_size.json"
    path.write_text(json.dumps(data))
    dataset = CocoKeypointDataset(DataPaths(path, mini.images), replace(CONFIG), seed=0)
    with pytest.raises(DatasetError, match="image is"):
        dataset[0]
