"""COCO-format keypoint data for training: checked loading, augmented samples, a resumable sample order.

Data layout (what `resolve_data` accepts for a data folder DIR; `--annotations`/`--images` override it):
- DIR/annotations.json + DIR/images/ (what `strongpose synth` writes), or
- COCO's own layout: DIR/annotations/person_keypoints_<split>.json + DIR/<split>/ (e.g. train2017).

A sample is the image warped by one random affine map (augment.py) into the training crop, RGB, normalised
by the model config (as the Estimator does), with its targets from `encode_targets` at the training stride.
Images without any person are kept: their targets are all negative, which teaches the network where
people are not.

Determinism: sample (epoch, index) draws its augmentation from numpy.random.default_rng([seed, epoch,
index]), so it is the same whichever worker process makes it and however many there are. The order is
`SampleStream`: a stream of per-epoch permutations (from [seed, epoch]) cut into global batches, each
rank taking its slice (the work of a DistributedSampler); step t's batch depends only on (seed, t), so a
resumed run continues the exact order from its step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from strongpose_ros.data.augment import (
    AugmentConfig,
    AugmentParams,
    affine_matrix,
    sample_params,
    transform_annotations,
    warp_image,
)
from strongpose_ros.model import ModelConfig, Targets, collate_targets, encode_targets
from strongpose_ros.schema import KeypointSchema

__all__ = [
    "Batch",
    "CocoKeypointDataset",
    "DataPaths",
    "DatasetError",
    "Sample",
    "SampleStream",
    "check_keypoint_annotations",
    "collate_samples",
    "letterbox_matrix",
    "load_keypoint_annotations",
    "make_loader",
    "resolve_data",
]


class DatasetError(ValueError):
    """Training or evaluation data that cannot be used; the message names the path and the problem."""


# --- where the data is ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataPaths:
    """A COCO keypoint annotation file and the folder its `file_name`s are relative to."""

    annotations: Path
    images: Path


def resolve_data(data_dir: str | Path | None = None, annotations: str | Path | None = None,
                 images: str | Path | None = None, what: str = "data") -> DataPaths:
    """Find the annotation file and image folder of a data set (see the module doc for the layouts).

    Raises `DatasetError` naming what is missing, before any work is done.
    """
    root = None if data_dir is None else Path(data_dir)
    if root is not None and not root.is_dir():
        raise DatasetError(f"{what}: data folder {root} does not exist")
    if annotations is None:
        if root is None:
            raise DatasetError(f"{what}: give a data folder or an annotation file")
        annotations = _find_annotations(root, what)
    annotations = Path(annotations)
    if not annotations.is_file():
        raise DatasetError(f"{what}: annotation file {annotations} does not exist")
    if images is None:
        if root is None:
            root = annotations.parent.parent if annotations.parent.name == "annotations" else annotations.parent
        images = _find_images(root, annotations, what)
    images = Path(images)
    if not images.is_dir():
        raise DatasetError(f"{what}: image folder {images} does not exist")
    return DataPaths(annotations, images)


def _find_annotations(root: Path, what: str) -> Path:
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    found = sorted((root / "annotations").glob("person_keypoints_*.json")) if (root / "annotations").is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DatasetError(f"{what}: {root}/annotations holds several keypoint files ({names}); "
                           "choose one with --annotations")
    raise DatasetError(f"{what}: no annotation file in {root} (expected {root}/annotations.json or "
                       f"{root}/annotations/person_keypoints_<split>.json; or give --annotations)")


def _find_images(root: Path, annotations: Path, what: str) -> Path:
    candidates = [root / "images"]
    stem = annotations.stem
    if stem.startswith("person_keypoints_"):
        candidates.append(root / stem[len("person_keypoints_"):])  # COCO: .../train2017
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise DatasetError(f"{what}: no image folder for {annotations} (tried {tried}; or give --images)")


# --- annotation file --------------------------------------------------------------------------------------


def load_keypoint_annotations(path: str | Path, schema: KeypointSchema) -> dict[str, Any]:
    """Read and check a COCO keypoint annotation file (see `check_keypoint_annotations`)."""
    data = _read_json(Path(path))
    check_keypoint_annotations(data, schema, path)
    return data


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DatasetError(f"{path}: annotation file does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a COCO annotation file (not valid JSON: {exc})") from None


def check_keypoint_annotations(data: Any, schema: KeypointSchema, path: str | Path = "annotations") -> int:
    """Check that `data` is a COCO keypoints data set for `schema`; return the keypoint category id.

    Raises `DatasetError` naming the file and the first problem: a missing section, a file of another
    COCO task (no category with keypoints), a keypoint count that is not the schema's, annotations of
    unknown images or with keypoint arrays of the wrong length.
    """
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: not a COCO annotation file (the JSON is a {type(data).__name__}, not an object)")
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
    if missing:
        raise DatasetError(f"{path}: not a COCO annotation file (no list {missing})")
    keypoint_categories = [c for c in data["categories"] if isinstance(c, Mapping) and c.get("keypoints")]
    if not keypoint_categories:
        raise DatasetError(f"{path}: not a COCO keypoints file (no category has a 'keypoints' list; an instances "
                           "or captions file?)")
    category = keypoint_categories[0]
    names = list(category["keypoints"])
    if len(names) != schema.num_keypoints:
        raise DatasetError(f"{path}: category {category.get('name', category.get('id'))!r} has {len(names)} "
                           f"keypoints, schema {schema.name!r} has {schema.num_keypoints}")
    if names != list(schema.keypoints):
        raise DatasetError(f"{path}: keypoint names {names} differ from schema {schema.name!r}'s "
                           f"{list(schema.keypoints)}")
    image_ids = set()
    for n, image in enumerate(data["images"]):
        if not isinstance(image, Mapping) or any(key not in image for key in ("id", "file_name", "height", "width")):
            raise DatasetError(f"{path}: images[{n}] needs 'id', 'file_name', 'height' and 'width'")
        image_ids.add(image["id"])
    if len(image_ids) != len(data["images"]):
        raise DatasetError(f"{path}: duplicate image ids")
    k3 = 3 * schema.num_keypoints
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, Mapping) or "image_id" not in ann:
            raise DatasetError(f"{path}: annotations[{n}] has no 'image_id'")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotations[{n}] (id {ann.get('id')}) refers to unknown image "
                               f"{ann['image_id']}")
        if ann.get("category_id", category["id"]) != category["id"]:
            continue
        keypoints = ann.get("keypoints")
        if keypoints is not None and len(keypoints) != k3:
            raise DatasetError(f"{path}: annotations[{n}] (id {ann.get('id')}) has {len(keypoints)} keypoint "
                               f"values, expected {k3}")
    return category["id"]


# --- samples ------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One training sample.

    - `image`: (3, H, W) float32, RGB normalised by the model config (what the network takes);
    - `targets`: encoded at the training stride;
    - `keypoints`: (J, K, 3) float32 of the non-crowd people, in crop pixels (v = 0 when outside);
    - `matrix`: the 2x3 image-to-crop affine map; `flipped`: whether it mirrors.
    """

    image: torch.Tensor
    targets: Targets
    image_id: int
    keypoints: np.ndarray
    matrix: np.ndarray
    flipped: bool


@dataclass
class Batch:
    """Stacked samples: images (B, 3, H, W), batched targets, and per-sample metadata."""

    images: torch.Tensor
    targets: Targets
    image_ids: list[int] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pin_memory(self) -> Batch:
        """Page-locked copies (DataLoader's pin_memory calls this)."""
        return Batch(self.images.pin_memory(), self.targets.pin_memory(), self.image_ids, self.keypoints)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(self.images.to(device, non_blocking=non_blocking),
                     self.targets.to(device, non_blocking=non_blocking), self.image_ids, self.keypoints)


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """DataLoader collate function for `Sample`s."""
    return Batch(
        images=torch.stack([s.image for s in samples]),
        targets=collate_targets([s.targets for s in samples]),
        image_ids=[s.image_id for s in samples],
        keypoints=[s.keypoints for s in samples],
    )


def letterbox_matrix(image_size: tuple[int, int], crop_size: tuple[int, int]) -> np.ndarray:
    """The Estimator's placement as an affine map: resized to fit (aspect kept), top-left, pixel centres kept."""
    h, w = image_size
    factor = min(crop_size[0] / h, crop_size[1] / w)
    new_h, new_w = max(1, min(crop_size[0], round(h * factor))), max(1, min(crop_size[1], round(w * factor)))
    fx, fy = new_w / w, new_h / h
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])


class CocoKeypointDataset(Dataset):
    """A COCO keypoint data set yielding augmented training samples for a StrongPose network.

    - `paths`: annotation file and image folder (`resolve_data`);
    - `model_config`: gives the schema, the crop size (`input_size`), the training stride
      (`output_stride`) and the input normalisation;
    - `augment`: the random affine augmentation, or None for the plain letterboxed image (the Estimator's
      placement);
    - `require_keypoints`: keep only images with at least one labelled person (the paper trains on the
      57K such COCO images); otherwise every image is used, people or not.

    Items are indexed by `index` (epoch 0) or by an `(epoch, index)` pair (what `SampleStream` yields).
    """

    def __init__(self, paths: DataPaths, model_config: ModelConfig, *, augment: AugmentConfig | None = None,
                 seed: int = 0, require_keypoints: bool = False, radius: float | None = None) -> None:
        self.paths = paths
        self.model_config = model_config
        self.schema = model_config.keypoint_schema
        self.crop_size = tuple(int(v) for v in model_config.input_size)
        self.stride = int(model_config.output_stride)
        self.augment = augment
        self.seed = int(seed)
        self.radius = radius
        data = _read_json(paths.annotations)
        category = check_keypoint_annotations(data, self.schema, paths.annotations)
        by_image: dict[Any, list[dict[str, Any]]] = {image["id"]: [] for image in data["images"]}
        for ann in data["annotations"]:
            if ann.get("category_id", category) == category:
                by_image[ann["image_id"]].append(ann)
        images = data["images"]
        if require_keypoints:
            images = [im for im in images if any(_labelled(a) for a in by_image[im["id"]])]
        if not images:
            raise DatasetError(f"{paths.annotations}: no images to train on"
                               + (" (none has a person with keypoints)" if require_keypoints else ""))
        _check_image_files(paths, images)
        self.image_info = [
            {"id": im["id"], "file_name": im["file_name"], "height": int(im["height"]), "width": int(im["width"])}
            for im in images
        ]
        # One JSON string per image rather than nested Python objects: forked loader workers then share
        # these pages instead of copying them as reference counts change (COCO's annotations are ~1 GB
        # as Python objects).
        self._annotations = [json.dumps(by_image[im["id"]]).encode() for im in images]
        mean = model_config.input_mean
        self.border_bgr = tuple(float(round(m * 255.0)) for m in reversed(mean))  # the Estimator's padding

    def __len__(self) -> int:
        return len(self.image_info)

    @property
    def image_ids(self) -> list[int]:
        return [info["id"] for info in self.image_info]

    def annotations(self, index: int) -> list[dict[str, Any]]:
        """The raw COCO annotations (keypoint category) of image `index`."""
        return json.loads(self._annotations[index])

    def load_image(self, index: int) -> np.ndarray:
        """Image `index` as an HxWx3 uint8 BGR array (its size checked against the annotation file)."""
        info = self.image_info[index]
        path = self.paths.images / info["file_name"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: cannot read the image (missing or corrupt)")
        if image.shape[:2] != (info["height"], info["width"]):
            raise DatasetError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but {self.paths.annotations} "
                               f"says {info['width']}x{info['height']}")
        return image

    def params(self, index: int, epoch: int = 0) -> AugmentParams | None:
        """The augmentation drawn for (epoch, index); None without augmentation."""
        if self.augment is None:
            return None
        info = self.image_info[index]
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        return sample_params(rng, (info["height"], info["width"]), self.crop_size, self.augment)

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        epoch, index = (0, key) if isinstance(key, int | np.integer) else key
        return self.sample(int(index), int(epoch))

    def sample(self, index: int, epoch: int = 0) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} images")
        info = self.image_info[index]
        image_size = (info["height"], info["width"])
        params = self.params(index, epoch)
        if params is None:
            matrix, flipped, antialias = letterbox_matrix(image_size, self.crop_size), False, 1.0
        else:
            matrix, flipped = affine_matrix(params, image_size, self.crop_size), params.flip
            antialias = self.augment.antialias_below
        bgr = warp_image(self.load_image(index), matrix, self.crop_size, self.border_bgr, antialias)
        try:
            people = transform_annotations(self.annotations(index), matrix, image_size, self.crop_size,
                                           self.schema, flipped)
            options = {} if self.radius is None else {"radius": self.radius}
            targets = encode_targets(people, self.crop_size, self.stride, self.schema, **options)
        except ValueError as exc:
            raise DatasetError(f"{self.paths.annotations}: image {info['id']} ({info['file_name']}): {exc}") from None
        # BGR HWC -> RGB CHW in one numpy copy: the float conversion then runs on contiguous memory.
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1))).float().div_(255.0)
        k = self.schema.num_keypoints
        keypoints = [p["keypoints"] for p in people if not p["iscrowd"] and p["keypoints"] is not None]
        return Sample(
            image=self.model_config.normalize(rgb),
            targets=targets,
            image_id=info["id"],
            keypoints=np.asarray(keypoints, dtype=np.float32).reshape(-1, k, 3),
            matrix=matrix,
            flipped=flipped,
        )


def _labelled(ann: Mapping[str, Any]) -> bool:
    if ann.get("iscrowd", 0):
        return False
    keypoints = ann.get("keypoints") or []
    return any(v > 0 for v in keypoints[2::3])


def _check_image_files(paths: DataPaths, images: Sequence[Mapping[str, Any]]) -> None:
    """Every image file must exist before training starts (one directory listing, not one stat per file)."""
    present = set(os.listdir(paths.images))
    missing = [im["file_name"] for im in images
               if im["file_name"] not in present and not (paths.images / im["file_name"]).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatasetError(f"{paths.images}: {len(missing)} of the {len(images)} images of {paths.annotations} "
                           f"are missing ({shown})")


# --- order and loading --------------------------------------------------------------------------------------


class SampleStream(Sampler):
    """The (epoch, index) pairs of one rank for steps [start_step, start_step + num_steps).

    The global stream is the concatenation of per-epoch permutations of the data set (numpy's from
    [seed, epoch]); global step t takes positions [t*B*W, (t+1)*B*W) of it, and rank r the B positions
    starting at t*B*W + r*B (B = per-rank batch size, W = world size). Batches run across epoch ends,
    so no sample is dropped or repeated within an epoch, and any step can be the start.
    """

    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, start_step: int = 0,
                 num_steps: int = 1, rank: int = 0, world_size: int = 1) -> None:
        if num_items < 1 or batch_size < 1 or num_steps < 0 or start_step < 0:
            raise ValueError("SampleStream: num_items and batch_size must be >= 1, steps >= 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"SampleStream: rank {rank} outside world size {world_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, int(seed)
        self.start_step, self.num_steps, self.rank, self.world_size = start_step, num_steps, rank, world_size
        self._permutations: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.num_steps * self.batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) > 2:
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        return self._permutations[epoch]

    def position(self, step: int, slot: int) -> tuple[int, int]:
        """(epoch, index) of slot `slot` of this rank's batch at global step `step`."""
        global_position = (step * self.world_size + self.rank) * self.batch_size + slot
        epoch, offset = divmod(global_position, self.num_items)
        return epoch, int(self.permutation(epoch)[offset])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for step in range(self.start_step, self.start_step + self.num_steps):
            for slot in range(self.batch_size):
                yield self.position(step, slot)


def make_loader(dataset: CocoKeypointDataset, batch_size: int, *, start_step: int = 0, num_steps: int,
                rank: int = 0, world_size: int = 1, workers: int = 0, pin_memory: bool = False,
                prefetch_factor: int = 2) -> DataLoader:
    """A DataLoader of `Batch`es for steps [start_step, start_step + num_steps) of this rank."""
    sampler = SampleStream(len(dataset), batch_size, seed=dataset.seed, start_step=start_step,
                           num_steps=num_steps, rank=rank, world_size=world_size)
    options: dict[str, Any] = {}
    if workers > 0:
        # OpenCV's thread pool does not survive fork: a forked worker that touches it (even to resize it)
        # can hang forever. With the pool off before the workers fork, they never use it; the loader
        # processes are the parallelism anyway.
        cv2.setNumThreads(0)
        options = {"prefetch_factor": prefetch_factor, "persistent_workers": False}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_samples, pin_memory=pin_memory, drop_last=False, **options)
