"""`evaluate_checkpoint`: the Estimator over every image of an annotation file, COCOeval's ten numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from strongpose_ros import checkpoint
from strongpose_ros.decode import PersonPose
from strongpose_ros.estimator import Estimator, PoseResult
from strongpose_ros.evaluation import RESULT_NAMES, load_coco
from strongpose_ros.model import build_model
from strongpose_ros.train.evaluate import EvaluationError, evaluate_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class GroundTruthEstimator(Estimator):
    """An Estimator whose 'network' is the annotation file: it returns each image's labelled people."""

    def __init__(self, annotation_file: Path) -> None:  # no network: nothing of Estimator.__init__ is needed
        self.coco = load_coco(annotation_file)
        self.device = torch.device("cpu")
        self._queue = sorted(self.coco.getImgIds())  # evaluate_checkpoint goes through the images in id order
        self.seen: list[tuple[int, tuple[int, int]]] = []

    @property
    def schema(self):
        from strongpose_ros.schema import COCO17

        return COCO17

    def estimate_batch(self, images, **_) -> list[PoseResult]:
        results = []
        for image in images:
            image_id = self._queue.pop(0)
            info = self.coco.imgs[image_id]
            assert image.shape == (info["height"], info["width"], 3) and image.dtype == np.uint8
            self.seen.append((image_id, image.shape[:2]))
            people = []
            for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id])):
                if ann["iscrowd"] or ann.get("num_keypoints", 0) == 0:
                    continue
                keypoints = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
                keypoints[:, 2] = 1.0
                people.append(PersonPose(keypoints, 1.0, (0.0, 0.0, 1.0, 1.0)))
            results.append(PoseResult(people=people, image_size=image.shape[:2], heatmap_transform=None))
        return results


def test_ground_truth_fed_back_scores_ap_one(coco_mini_annotations: Path, coco_mini_images: Path,
                                            tmp_path: Path) -> None:
    estimator = GroundTruthEstimator(coco_mini_annotations)
    results_path = tmp_path / "results.json"
    figures = evaluate_checkpoint(estimator, coco_mini_annotations, coco_mini_images, results_path=results_path,
                                  progress=False)
    assert set(figures) == set(RESULT_NAMES)
    assert figures["AP"] == pytest.approx(1.0) and figures["AR"] == pytest.approx(1.0)
    assert len(estimator.seen) == 80  # every image of the file, people or not
    results = json.loads(results_path.read_text())
    assert len(results) == 86 and {"image_id", "category_id", "keypoints", "score"} <= set(results[0])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", output_stride=16, input_size=(65, 65))
    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model)


def test_a_checkpoint_file_evaluates_through_the_estimator(tiny_checkpoint: Path, coco_mini_annotations: Path,
                                                           coco_mini_images: Path, tmp_path: Path) -> None:
    subset = tmp_path / "subset.json"
    data = json.loads(coco_mini_annotations.read_text())
    keep = {im["id"] for im in data["images"][:4]}
    data["images"] = [im for im in data["images"] if im["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    subset.write_text(json.dumps(data))
    results_path = tmp_path / "out" / "results.json"
    figures = evaluate_checkpoint(tiny_checkpoint, subset, coco_mini_images, flip=True, device="cpu",
                                  output_stride=16, results_path=results_path, progress=False)
    assert set(figures) == set(RESULT_NAMES) and all(-1 <= v <= 1 for v in figures.values())
    results = json.loads(results_path.read_text())
    assert isinstance(results, list) and {r["image_id"] for r in results} <= keep
    # A loaded Checkpoint works the same way.
    again = evaluate_checkpoint(checkpoint.load(tiny_checkpoint), subset, coco_mini_images, flip=True,
                                device="cpu", output_stride=16, progress=False)
    assert again == figures


def test_bad_inputs_are_refused_clearly(tiny_checkpoint: Path, coco_mini_annotations: Path, coco_mini_images: Path,
                                        tmp_path: Path) -> None:
    estimator = Estimator.from_checkpoint(tiny_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="used as configured"):
        evaluate_checkpoint(estimator, coco_mini_annotations, coco_mini_images, flip=True)
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_checkpoint(estimator, coco_mini_annotations, tmp_path / "no_images", progress=False)
    with pytest.raises(EvaluationError, match="not found"):
        evaluate_checkpoint(estimator, tmp_path / "none.json", coco_mini_images, progress=False)
    instances = tmp_path / "instances.json"
    data = json.loads(coco_mini_annotations.read_text())
    instances.write_text(json.dumps(data | {"categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(EvaluationError, match="not a COCO keypoints file"):
        evaluate_checkpoint(estimator, instances, coco_mini_images, progress=False)
    empty = tmp_path / "empty_images"
    empty.mkdir()
    with pytest.raises(EvaluationError, match="80 of 80 images are missing"):
        evaluate_checkpoint(estimator, coco_mini_annotations, empty, progress=False)
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint"):
        evaluate_checkpoint(tmp_path / "missing.safetensors", coco_mini_annotations, coco_mini_images)
