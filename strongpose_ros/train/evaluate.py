"""Evaluate a checkpoint (or an Estimator) on a COCO keypoint annotation file: the paper's ten numbers.

Every image of the annotation file goes through the one inference path, `Estimator.estimate_batch`
(BGR file in, people in image pixels out), its people become COCO results (`evaluation.coco_results`),
and pycocotools' COCOeval scores them (`evaluation.evaluate_coco`). The trainer's periodic evaluation
calls the same function with the EMA model wrapped in an Estimator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from strongpose_ros.checkpoint import Checkpoint
from strongpose_ros.decode import DecoderConfig
from strongpose_ros.estimator import Estimator
from strongpose_ros.evaluation import coco_results, evaluate_coco, load_coco

__all__ = ["EvaluationError", "evaluate_checkpoint", "evaluate_estimator", "predict"]


class EvaluationError(ValueError):
    """Evaluation inputs that cannot be used; the message names the file and the problem."""


def _read_images(paths: Sequence[Path], workers: int = 2) -> Iterator[tuple[Path, np.ndarray | None]]:
    """Decode images in a small thread pool (OpenCV releases the GIL), in order, a few ahead."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ahead = 2 * workers
        futures = [pool.submit(cv2.imread, str(p), cv2.IMREAD_COLOR) for p in paths[:ahead]]
        for i, path in enumerate(paths):
            if i + ahead < len(paths):
                futures.append(pool.submit(cv2.imread, str(paths[i + ahead]), cv2.IMREAD_COLOR))
            yield path, futures[i].result()
            futures[i] = None  # let the decoded image go


def predict(estimator: Estimator, coco_gt: Any, images_dir: str | Path, image_ids: Sequence[int], *,
            batch_size: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """COCO results of `estimator` for `image_ids` of `coco_gt` (a pycocotools COCO object)."""
    images_dir = Path(images_dir)
    infos = [coco_gt.imgs[i] for i in image_ids]
    paths = [images_dir / info["file_name"] for info in infos]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise EvaluationError(f"{images_dir}: {len(missing)} of {len(paths)} images are missing "
                              f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", desc="eval", dynamic_ncols=True, leave=False)
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        found = estimator.estimate_batch([image for _, image in pending])
        for (image_id, _), result in zip(pending, found, strict=True):
            results.extend(coco_results(image_id, result.people))
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    try:
        for info, (path, image) in zip(infos, _read_images(paths), strict=True):
            if image is None:
                raise EvaluationError(f"{path}: cannot read the image (corrupt or not an image)")
            if image.shape[:2] != (int(info["height"]), int(info["width"])):
                raise EvaluationError(f"{path}: image is {image.shape[1]}x{image.shape[0]}, the annotation file "
                                      f"says {info['width']}x{info['height']}")
            pending.append((info["id"], image))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    finally:
        if bar is not None:
            bar.close()
    return results


def evaluate_estimator(estimator: Estimator, annotation_file: str | Path, images_dir: str | Path, *,
                       max_images: int = 0, batch_size: int | None = None, results_path: str | Path | None = None,
                       progress: bool = True, coco_gt: Any = None) -> dict[str, float]:
    """The ten COCO numbers of `estimator` on the (first `max_images`, 0: all) images of the annotation file."""
    if coco_gt is None:
        try:
            coco_gt = load_coco(annotation_file)
        except (FileNotFoundError, ValueError) as exc:
            raise EvaluationError(str(exc)) from None
    if not Path(images_dir).is_dir():
        raise EvaluationError(f"image folder {images_dir} does not exist")
    _check_keypoint_file(coco_gt, annotation_file, estimator.schema.num_keypoints)
    image_ids = sorted(coco_gt.getImgIds())
    if max_images:
        image_ids = image_ids[:max_images]
    if batch_size is None:
        batch_size = 8 if estimator.device.type == "cuda" else 1
    results = predict(estimator, coco_gt, images_dir, image_ids, batch_size=batch_size, progress=progress)
    if results_path is not None:
        _write_results(Path(results_path), results)
    return evaluate_coco(coco_gt, results, image_ids=image_ids)


def _check_keypoint_file(coco_gt: Any, annotation_file: str | Path, num_keypoints: int) -> None:
    categories = [c for c in coco_gt.dataset.get("categories", []) if c.get("keypoints")]
    if not categories:
        raise EvaluationError(f"{annotation_file}: not a COCO keypoints file (no category has 'keypoints')")
    if len(categories[0]["keypoints"]) != num_keypoints:
        raise EvaluationError(f"{annotation_file}: {len(categories[0]['keypoints'])} keypoints per person, the "
                              f"model has {num_keypoints}")


def _write_results(path: Path, results: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(results))
    os.replace(temp, path)


def evaluate_checkpoint(
    checkpoint_or_estimator: str | Path | Checkpoint | Estimator,
    annotation_file: str | Path,
    images_dir: str | Path,
    *,
    flip: bool = False,
    device: str = "auto",
    output_stride: int | None = None,
    results_path: str | Path | None = None,
    progress: bool = True,
    input_size: int | tuple[int, int] | None = None,
    decoder: DecoderConfig | None = None,
    batch_size: int | None = None,
    max_images: int = 0,
) -> dict[str, float]:
    """Run the Estimator over every image of `annotation_file` and return AP, AP50, ..., ARL.

    `checkpoint_or_estimator`: a checkpoint path, a loaded `Checkpoint`, or a ready `Estimator` (used as it
    is configured: then `flip`, `device`, `output_stride`, `input_size` and `decoder` must stay unset).
    `output_stride` None keeps the checkpoint's (trainer checkpoints carry the evaluation stride, 8).
    `results_path` receives the COCO results file (a JSON list).
    """
    if isinstance(checkpoint_or_estimator, Estimator):
        if flip or output_stride is not None or input_size is not None or decoder is not None or device != "auto":
            raise ValueError("evaluate_checkpoint: an Estimator is used as configured; set flip, device, "
                             "output_stride, input_size and decoder on the Estimator instead")
        estimator = checkpoint_or_estimator
    else:
        options: dict[str, Any] = {"device": device, "flip": flip, "output_stride": output_stride,
                                   "input_size": input_size, "decoder": decoder}
        if isinstance(checkpoint_or_estimator, Checkpoint):
            estimator = Estimator(checkpoint_or_estimator.model, **options)
        else:
            estimator = Estimator.from_checkpoint(checkpoint_or_estimator, **options)
    return evaluate_estimator(estimator, annotation_file, images_dir, max_images=max_images, batch_size=batch_size,
                              results_path=results_path, progress=progress)
