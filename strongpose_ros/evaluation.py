"""COCO keypoint evaluation (ALGORITHM.md section 8): results writer, COCOeval wrapper, oracle evaluation.

- `coco_results(image_id, people)`: COCO result dicts {image_id, category_id: 1, keypoints: 3K floats,
  score}. COCOeval reads only x and y of a detection's keypoints (its OKS uses the ground truth's
  visibility), so v carries the keypoint score by default (`visibility="one"` writes 1 instead). The
  instance score ranks detections across all images, which is why the decoder's scores are comparable
  between images.
- `evaluate_coco(ground_truth, results)`: the paper's ten numbers, `RESULT_NAMES`, from pycocotools'
  COCOeval (iouType "keypoints", at most 20 detections per image). An empty result list gives zeros;
  an area range without ground truth gives COCO's -1.
- `evaluate_oracle(annotation_file, ...)`: encodes each image's annotations into the outputs a perfect
  network would give (`strongpose_ros.model.oracle`), optionally degrades them with `NoiseModel`, decodes
  and evaluates: what the decoder (and the target encoding) lose, with the network taken out.

A limit of the oracle worth knowing: mid-range targets exist only between two labelled keypoints, so where
a joint on the tree path between two labelled keypoints is unlabelled (a back view without the face: the
tree joins left and right only through the nose) the perfect outputs carry no displacement across the gap
and no tree walk can join the pieces. In the COCO mini set 31 of the 86 people with keypoints are such.
The decoder refuses walk steps whose reverse offset does not lead back (so that a piece does not run into
a neighbour's keypoints) and joins the pieces by type complementarity, geometry and the body map
(`strongpose_ros.decode.fragments`). What it still loses on the mini set (stride 8): a few body-map
masks that do not cover the keypoints they should join, pieces of crowded small or heavily overlapping
people that geometry cannot assign, and two annotations of one person 1 px apart (one output per
keypoint position). `connected_only=True` evaluates on the people with tree-connected labels alone (the
rest become crowd regions: detections on them neither count nor cost).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strongpose_ros.decode import DecoderConfig, PersonPose, decode
from strongpose_ros.decode.peaks import blur_maps, gaussian_taps
from strongpose_ros.model.outputs import PoseOutputs
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = [
    "RESULT_NAMES",
    "NoiseModel",
    "add_noise",
    "coco_results",
    "evaluate_coco",
    "evaluate_oracle",
    "format_table",
    "load_coco",
    "oracle_results",
    "tree_connected",
    "without_disconnected",
]

# COCOeval's stats[0..9] for keypoints, under the names the project's --json files use.
RESULT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
PERSON_CATEGORY = 1
MAX_DETECTIONS = 20  # COCO keypoint evaluation keeps the 20 best detections per image


def coco_results(image_id: int, people: Iterable[PersonPose], category_id: int = PERSON_CATEGORY,
                 visibility: str = "score") -> list[dict[str, Any]]:
    """COCO result dicts for one image's decoded people (plain Python numbers, JSON-ready)."""
    out = []
    for person in people:
        if not isinstance(person, PersonPose):
            raise TypeError(f"coco_results: expects PersonPose objects, got {type(person).__name__}")
        keypoints = person.to_coco_keypoints(visibility)
        if not all(math.isfinite(v) for v in keypoints) or not math.isfinite(person.score):
            raise ValueError(f"coco_results: image {image_id}: a person has non-finite keypoints or score")
        out.append({"image_id": int(image_id), "category_id": int(category_id), "keypoints": keypoints,
                    "score": float(person.score)})
    return out


def load_coco(annotation_file: str | Path):
    """pycocotools COCO object for an annotation file, quietly, with a clear error when it is unusable."""
    from pycocotools.coco import COCO

    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except Exception as exc:  # pycocotools raises bare exceptions on malformed files
        raise ValueError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def evaluate_coco(ground_truth: Any, results: Sequence[Mapping[str, Any]],
                  image_ids: Sequence[int] | None = None, verbose: bool = False) -> dict[str, float]:
    """The ten COCO keypoint numbers for `results` against `ground_truth` (a path or a COCO object).

    `image_ids` restricts the evaluation (default: every image of the ground truth).
    """
    coco_gt = ground_truth if hasattr(ground_truth, "loadRes") else load_coco(ground_truth)
    if not results:
        return dict.fromkeys(RESULT_NAMES, 0.0)
    known = set(coco_gt.getImgIds())
    unknown = sorted({int(r["image_id"]) for r in results} - known)
    if unknown:
        raise ValueError(f"evaluate_coco: results for image ids not in the ground truth: {unknown[:10]}")
    from pycocotools.cocoeval import COCOeval

    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        # loadRes adds fields to the dicts it is given; the caller's stay untouched.
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.maxDets = [MAX_DETECTIONS]
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(RESULT_NAMES, evaluator.stats, strict=True)}


def format_table(figures: Mapping[str, float], title: str = "") -> str:
    """The paper's table: AP, AP50, AP75, AP_M, AP_L, AR, AR50, AR75, AR_M, AR_L on two lines."""
    headers = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
    head = " | ".join(f"{h:>6}" for h in headers)
    row = " | ".join(f"{figures[n]:6.3f}" for n in RESULT_NAMES)
    lines = [title] if title else []
    return "\n".join([*lines, head, "-" * len(head), row])


# --- noise model for the oracle ----------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseModel:
    """How `add_noise` degrades perfect outputs; every amount is per unit of noise level.

    - offsets: independent Gaussian noise per grid cell and component, `short_offset_std` px on the
      short-range and `mid_offset_std` px on the mid-range offsets (mid-range errors are larger in
      practice: they span a limb);
    - heat maps: a Gaussian blur of `heatmap_blur` grid cells (soft disk edges, and halos whose zero
      offsets make them vote diffusely for themselves), then clipped to [0, 1];
    - spurious peaks: per keypoint map a Poisson number (mean `spurious_peaks`) of Gaussian blobs of
      `spurious_sigma` cells, height uniform in [`spurious_height_min`, 1], placed uniformly, whose short
      offsets point at the blob's centre (a confident false keypoint, not diffuse noise).
    """

    short_offset_std: float = 2.0
    mid_offset_std: float = 6.0
    heatmap_blur: float = 0.5
    spurious_peaks: float = 1.0
    spurious_sigma: float = 1.0
    spurious_height_min: float = 0.3


def add_noise(outputs: PoseOutputs, level: float, rng: np.random.Generator,
              model: NoiseModel | None = None) -> PoseOutputs:
    """A degraded copy of (CPU) outputs at noise `level` >= 0 (0 returns them unchanged)."""
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"noise level must be a finite number >= 0, got {level!r}")
    if level == 0:
        return outputs
    model = NoiseModel() if model is None else model
    stride = outputs.stride
    heat = outputs.heatmaps.detach().cpu().double().numpy().copy()
    short = outputs.short_offsets.detach().cpu().double().numpy().copy()
    mid = outputs.mid_offsets.detach().cpu().double().numpy().copy()
    B, K, H, W = heat.shape
    if model.heatmap_blur > 0:
        taps = gaussian_taps(level * model.heatmap_blur)
        for b in range(B):
            heat[b] = blur_maps(np.ascontiguousarray(heat[b]), taps)
    rows, cols = np.mgrid[0:H, 0:W]
    for b in range(B):
        for k in range(K):
            for _ in range(rng.poisson(level * model.spurious_peaks)):
                ci, cj = rng.uniform(0, H - 1), rng.uniform(0, W - 1)
                blob = rng.uniform(model.spurious_height_min, 1.0) * np.exp(
                    -((rows - ci) ** 2 + (cols - cj) ** 2) / (2.0 * model.spurious_sigma**2))
                wins = blob > heat[b, k]
                heat[b, k] = np.where(wins, blob, heat[b, k])
                short[b, k, 0] = np.where(wins, (cj - cols) * stride, short[b, k, 0])
                short[b, k, 1] = np.where(wins, (ci - rows) * stride, short[b, k, 1])
    short += rng.normal(0.0, level * model.short_offset_std, short.shape)
    mid += rng.normal(0.0, level * model.mid_offset_std, mid.shape)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32))

    return replace(outputs, heatmaps=tensor(np.clip(heat, 0.0, 1.0)), short_offsets=tensor(short),
                   mid_offsets=tensor(mid))


# --- oracle evaluation ---------------------------------------------------------------------------------


def oracle_results(coco_gt: Any, stride: int = 8, noise: float = 0.0, seed: int = 0,
                   config: DecoderConfig | None = None, schema: KeypointSchema = COCO17,
                   noise_model: NoiseModel | None = None) -> list[dict[str, Any]]:
    """Decode the oracle outputs of every image of `coco_gt` (a COCO object) into COCO results."""
    from strongpose_ros.model.oracle import oracle_outputs

    config = DecoderConfig() if config is None else config
    rng = np.random.default_rng(seed)
    results = []
    for image_id in sorted(coco_gt.getImgIds()):
        info = coco_gt.imgs[image_id]
        annotations = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id], iscrowd=None))
        outputs = oracle_outputs(annotations, image_size=(int(info["height"]), int(info["width"])), stride=stride,
                                 schema=schema, radius=config.vote_radius)
        outputs = add_noise(outputs, noise, rng, noise_model)
        results.extend(coco_results(image_id, decode(outputs, schema, config)[0]))
    return results


def tree_connected(keypoints: Sequence[float], schema: KeypointSchema = COCO17) -> bool:
    """Whether a person's labelled keypoints (3K COCO numbers) form one piece of the schema's tree."""
    labelled = {k for k in range(schema.num_keypoints) if keypoints[3 * k + 2] > 0}
    if not labelled:
        return True
    start = min(labelled)
    reached, stack = {start}, [start]
    while stack:
        a = stack.pop()
        for x, y in schema.directed_edges:
            if x == a and y in labelled and y not in reached:
                reached.add(y)
                stack.append(y)
    return reached == labelled


def without_disconnected(coco_gt: Any, schema: KeypointSchema = COCO17):
    """A copy of the ground truth in which people with tree-disconnected labels are crowd regions."""
    from pycocotools.coco import COCO

    dataset = copy.deepcopy(coco_gt.dataset)
    for ann in dataset.get("annotations", []):
        if ann.get("num_keypoints", 0) > 0 and not tree_connected(ann["keypoints"], schema):
            ann["iscrowd"] = 1
    with contextlib.redirect_stdout(io.StringIO()):
        out = COCO()
        out.dataset = dataset
        out.createIndex()
    return out


def evaluate_oracle(annotation_file: str | Path, stride: int = 8, noise: float = 0.0, seed: int = 0,
                    config: DecoderConfig | None = None, schema: KeypointSchema = COCO17,
                    noise_model: NoiseModel | None = None, connected_only: bool = False) -> dict[str, float]:
    """AP/AR of the decoder on perfect (or `noise`-degraded) outputs encoded from the annotations.

    `connected_only`: score only the people whose labelled keypoints are connected in the tree (see the
    module's note); the outputs are encoded from all annotations either way.
    """
    coco_gt = load_coco(annotation_file)
    results = oracle_results(coco_gt, stride, noise, seed, config, schema, noise_model)
    return evaluate_coco(without_disconnected(coco_gt, schema) if connected_only else coco_gt, results)
