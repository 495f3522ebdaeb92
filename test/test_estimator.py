"""The estimator: the one inference path (preprocessing geometry, batching, flip averaging, bad input)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strongpose_ros import Estimator
from strongpose_ros.checkpoint import CheckpointError
from strongpose_ros.estimator import _average_with_mirror, _Placement, resolve_device
from strongpose_ros.model import ModelConfig, oracle_outputs
from strongpose_ros.schema import COCO17


@pytest.fixture(scope="module")
def estimator() -> Estimator:
    return Estimator.untrained(ModelConfig(backbone="resnet18", input_size=(129, 129)), device="cpu")


@pytest.mark.parametrize("size", [(480, 640), (640, 480), (97, 1003), (60, 61), (129, 129), (2000, 1500)])
def test_preprocessing_and_mapping_back_are_inverse(estimator, size):
    """A bright dot put at an image pixel is found in the network input where the mapping back says it is."""
    h, w = size
    rng = np.random.default_rng(h * w)
    for _ in range(3):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        image = np.zeros((h, w, 3), np.uint8)
        r = max(1, round(max(h, w) / 129))  # a dot that survives the downscale
        image[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = 255
        batch, (placement,) = estimator._preprocess([image])
        brightness = batch[0].sum(0).numpy()
        ys, xs = np.nonzero(brightness > brightness.min() + 0.5 * (brightness.max() - brightness.min()))
        centre_in = np.array([[xs.mean(), ys.mean()]], np.float32)
        found = placement.input_to_image(centre_in)[0]
        # Half a dot's clipping at the border moves the centre: allow the dot radius there.
        tolerance = 1.0 + (r if min(x, y, w - 1 - x, h - 1 - y) < r else 0) + max(h, w) / 129 / 2
        assert abs(found[0] - x) <= tolerance and abs(found[1] - y) <= tolerance, (found, (x, y))


def test_the_input_normalisation_is_the_checkpoints():
    """A PoseNet-style model takes RGB in [-1, 1] (mean = std = 0.5); the padding is its mid-grey, 0."""
    config = ModelConfig(backbone="mobilenet_v1", backbone_options={"width_multiplier": 0.25}, input_size=(65, 65),
                         input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5))
    estimator = Estimator.untrained(config, device="cpu")
    image = np.zeros((40, 65, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 0  # blue (BGR)
    batch, _ = estimator._preprocess([image])
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))  # RGB order
    torch.testing.assert_close(batch[0, :, 64, 0], torch.full((3,), 128 / 127.5 - 1))  # padding
    result = estimator.estimate(image, heatmaps=True)
    assert result.body_heatmap.shape == (3, 5) and result.image_size == (40, 65)


def test_heatmap_transform_agrees_with_the_keypoint_mapping():
    placement = _Placement(image_size=(480, 640), resized_size=(97, 129))
    transform = placement.heatmap_transform(stride=8)
    cells = np.array([[0, 0], [3, 5], [16, 12]], np.float32)
    np.testing.assert_allclose(transform.to_image(cells), placement.input_to_image(cells * 8), atol=1e-4)


def test_batch_of_different_sizes_keeps_order_sizes_and_heatmap_extent(estimator):
    images = [
        np.full((480, 640, 3), 90, np.uint8), np.full((50, 20, 3), 200, np.uint8), np.zeros((129, 129, 3), np.uint8)
    ]
    results = estimator.estimate_batch(images, heatmaps=True, keypoint_heatmaps=True)
    assert [r.image_size for r in results] == [(480, 640), (50, 20), (129, 129)]
    stride = estimator.stride
    for image, result in zip(images, results, strict=True):
        h, w = image.shape[:2]
        rows, cols = result.body_heatmap.shape
        assert result.keypoint_heatmaps.shape == (COCO17.num_keypoints, rows, cols)
        # The last heat-map cell lies inside the image's extent (pixel centres -0.5 .. size - 0.5), and one
        # more would be in the padding.
        last = result.heatmap_transform.to_image(np.array([cols - 1, rows - 1], np.float32))
        beyond = result.heatmap_transform.to_image(np.array([cols, rows], np.float32))
        assert last[0] <= w - 0.5 + 1e-3 and last[1] <= h - 0.5 + 1e-3
        assert beyond[0] > w - 1 - stride or beyond[1] > h - 1 - stride
        assert np.all((result.body_heatmap >= 0) & (result.body_heatmap <= 1))
        assert set(result.timings_ms) == {"preprocess", "network", "decode"}
    # The same image alone and inside a batch gives the same maps (one path, batch-independent).
    alone = estimator.estimate(images[1], heatmaps=True)
    np.testing.assert_allclose(alone.body_heatmap, results[1].body_heatmap, atol=1e-5)


def _mirror_annotation(annotation: dict, width: int) -> dict:
    kps = np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)
    mirrored = kps[COCO17.flip_permutation].copy()
    labelled = mirrored[:, 2] > 0
    mirrored[labelled, 0] = width - 1 - mirrored[labelled, 0]
    return {**annotation, "keypoints": mirrored.reshape(-1).tolist(), "segmentation": []}


def test_flip_averaging_of_mirrored_perfect_outputs_gives_the_outputs_back():
    width = height = 129  # 16 * 8 + 1: mirroring maps cell j to n - 1 - j exactly
    rng = np.random.default_rng(0)
    kps = np.zeros((17, 3))
    kps[:, 0] = rng.uniform(20, 108, 17).round()
    kps[:, 1] = rng.uniform(20, 108, 17).round()
    kps[:, 2] = 2
    annotation = {"keypoints": kps.reshape(-1).tolist(), "iscrowd": 0, "segmentation": [], "num_keypoints": 17,
                  "bbox": [10, 10, 100, 100], "area": 10000}
    outputs = oracle_outputs([annotation], (height, width), stride=8)
    mirrored = oracle_outputs([_mirror_annotation(annotation, width)], (height, width), stride=8)
    averaged = _average_with_mirror(outputs, mirrored, COCO17)
    for name in ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap"):
        torch.testing.assert_close(getattr(averaged, name), getattr(outputs, name), atol=1e-4, rtol=0)


def test_flip_needs_an_input_width_of_stride_n_plus_one():
    with pytest.raises(ValueError, match="stride"):
        Estimator.untrained(ModelConfig(backbone="resnet18", input_size=(128, 128)), device="cpu", flip=True)


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
     np.zeros((10, 10, 4), np.uint8), "not an image"],
)
def test_bad_images_raise_a_clear_error(estimator, image):
    with pytest.raises(ValueError, match="image 0"):
        estimator.estimate(image)


def test_device_names_are_checked():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_missing_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match=r"nope\.safetensors"):
        Estimator.from_checkpoint(missing, device="cpu")
