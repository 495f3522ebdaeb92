"""Training targets: what a perfect StrongPose network would output for one annotated image.

Everything lives on the output grid, whose cell (row i, column j) is the input pixel (x = j*s, y = i*s)
(see `outputs.py`). For keypoint type k and the disks D_R(y) = {x : ||x - y|| <= R} around the labelled
keypoints of the non-crowd people (ALGORITHM.md section 3):

- SKHM:        p_k(x) = 1 on the union of the type-k disks, else 0;
- short-range: S_k(x) = y_{j*,k} - x inside that union, j* the instance whose type-k keypoint is nearest;
- mid-range:   M_{a->b}(x) = y_{j*,b} - x inside the a-disks, j* nearest for a, where j* also labels b;
- BHM:         1 on the union of the person masks (keypoint disks and link capsules when a person has none).

Loss weights mark where each target is defined: SKHM ignores crowd regions and people without keypoint
annotations, BHM ignores crowd regions, the offsets count only inside disks. A keypoint disk keeps weight 1
where it overlaps an ignore region: its pixels are known positives.

The encoding is vectorised over people, keypoint types and grid cells (one (J, K, H, W) distance array), so a
401x401 image with 20 people costs a few milliseconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from strongpose_ros.model.outputs import output_size
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = ["DISK_RADIUS", "Targets", "collate_targets", "encode_targets"]

# [paper] R = 16 input pixels for every person, whatever their size, so that all instances weigh the same.
DISK_RADIUS = 16.0


@dataclass
class Targets:
    """Targets and loss weights for one image (K keypoints, 2E directed edges, an H x W output grid).

    Every field is a float32 tensor. A single image's tensors have no batch dimension; `collate_targets`
    stacks several images into the same structure with a leading batch dimension.

    - `heatmaps` (K, H, W): 0/1 disks; `heatmap_weights` (K, H, W): 0 on ignore regions, else 1;
    - `short_offsets` (K, 2, H, W): (dx, dy) in input pixels; `short_weights` (K, H, W): 1 inside disks;
    - `mid_offsets` (2E, 2, H, W) for `schema.directed_edges`; `mid_weights` (2E, H, W): 1 where defined;
    - `body` (1, H, W): body heat map target; `body_weights` (1, H, W): 0 on crowd regions (and on the box
      of an unlabelled person without a mask, whose extent is unknown), else 1.
    """

    heatmaps: torch.Tensor
    heatmap_weights: torch.Tensor
    short_offsets: torch.Tensor
    short_weights: torch.Tensor
    mid_offsets: torch.Tensor
    mid_weights: torch.Tensor
    body: torch.Tensor
    body_weights: torch.Tensor

    @property
    def grid_size(self) -> tuple[int, int]:
        """(H, W) of the output grid."""
        return int(self.heatmaps.shape[-2]), int(self.heatmaps.shape[-1])

    def to(self, *args: Any, **kwargs: Any) -> Targets:
        """Move or cast every tensor (like `Tensor.to`)."""
        return replace(self, **{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})

    def pin_memory(self) -> Targets:
        """Page-locked copies, so that a DataLoader with pin_memory=True can hand them to a GPU quickly."""
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})


def collate_targets(items: Sequence[Targets]) -> Targets:
    """Stack per-image targets into one batch (a leading batch dimension on every tensor)."""
    if len(items) == 0:
        raise ValueError("collate_targets: no targets to stack")
    shapes = {tuple(item.heatmaps.shape) for item in items}
    if len(shapes) != 1:
        raise ValueError(f"collate_targets: images encode to different grids {sorted(shapes)}; "
                         "batch images of the same input size")
    return Targets(**{f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(Targets)})


# --- annotation parsing ----------------------------------------------------------------------------------


@dataclass
class _Person:
    keypoints: np.ndarray | None  # (K, 3) float64: x, y, v; None when the annotation has no keypoint array
    crowd: bool
    mask: np.ndarray | None  # (H, W) bool on the output grid, None when the annotation has no segmentation
    box: np.ndarray | None  # (H, W) bool on the output grid from the bbox, None without one

    @property
    def labelled(self) -> bool:
        return self.keypoints is not None and bool((self.keypoints[:, 2] > 0).any())


def _grid_rows_cols(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Input-pixel indices of the grid rows and columns (the cells' own pixels, i*s and j*s)."""
    return (np.arange(output_size(height, stride)) * stride, np.arange(output_size(width, stride)) * stride)


def _segmentation_on_grid(segmentation: Any, height: int, width: int, stride: int, where: str) -> np.ndarray | None:
    """Rasterise a COCO segmentation at full resolution and read it at the grid cells' pixels."""
    from pycocotools import mask as mask_utils  # imported here: only annotations with masks need it

    if segmentation is None:
        return None
    if isinstance(segmentation, np.ndarray):
        if segmentation.shape != (height, width):
            raise ValueError(f"{where}: mask array of shape {segmentation.shape} for an image of {(height, width)}")
        full = segmentation.astype(bool)
    elif isinstance(segmentation, Mapping):  # RLE
        if "counts" not in segmentation or "size" not in segmentation:
            raise ValueError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
        size = tuple(int(v) for v in segmentation["size"])
        if size != (height, width):
            raise ValueError(f"{where}: RLE of size {size} for an image of {(height, width)}")
        rle = dict(segmentation)
        if isinstance(rle["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, height, width)
        full = mask_utils.decode(rle).astype(bool)
    elif isinstance(segmentation, Sequence):  # polygons
        # Polygons with fewer than three points have no area (and crash pycocotools).
        polygons = [list(map(float, p)) for p in segmentation if len(p) >= 6]
        if not polygons:
            return None
        full = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)
    else:
        raise ValueError(f"{where}: segmentation of type {type(segmentation).__name__} is neither polygons nor RLE")
    return full[::stride, ::stride]


def _box_on_grid(bbox: Any, height: int, width: int, stride: int, where: str) -> np.ndarray | None:
    if bbox is None:
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bbox must be [x, y, width, height], got {bbox!r}") from None
    rows, cols = _grid_rows_cols(height, width, stride)
    return ((rows >= y) & (rows <= y + h))[:, None] & ((cols >= x) & (cols <= x + w))[None, :]


def _parse(annotations: Sequence[Mapping[str, Any]], image_size: tuple[int, int], stride: int,
           schema: KeypointSchema) -> list[_Person]:
    height, width = image_size
    k = schema.num_keypoints
    people = []
    for n, ann in enumerate(annotations):
        where = f"annotation {n} (id {ann.get('id', '?')})"
        keypoints = None
        if ann.get("keypoints") is not None:
            keypoints = np.asarray(ann["keypoints"], dtype=np.float64)
            if keypoints.size != 3 * k:
                raise ValueError(f"{where}: {keypoints.size} keypoint values, schema {schema.name!r} "
                                 f"needs 3 x {k} = {3 * k}")
            keypoints = keypoints.reshape(k, 3)
            if not np.isfinite(keypoints).all():
                raise ValueError(f"{where}: keypoints contain NaN or infinity")
        crowd = bool(ann.get("iscrowd", 0))
        mask = _segmentation_on_grid(ann.get("segmentation"), height, width, stride, where)
        people.append(_Person(keypoints, crowd, mask, _box_on_grid(ann.get("bbox"), height, width, stride, where)))
    return people


# --- geometry on the grid ------------------------------------------------------------------------------


def _capsules(points: np.ndarray, links: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius: float) -> np.ndarray:
    """Union over `links` (L, 2) of the cells within `radius` of the segment points[a] - points[b]."""
    start, end = points[links[:, 0]], points[links[:, 1]]  # (L, 2)
    direction = end - start
    length2 = np.maximum((direction**2).sum(-1), 1e-12)[:, None, None]
    px = cols[None, None, :] - start[:, 0, None, None]  # (L, 1, W)
    py = rows[None, :, None] - start[:, 1, None, None]  # (L, H, 1)
    t = np.clip((px * direction[:, 0, None, None] + py * direction[:, 1, None, None]) / length2, 0.0, 1.0)
    d2 = (px - t * direction[:, 0, None, None]) ** 2 + (py - t * direction[:, 1, None, None]) ** 2
    return (d2 <= radius**2).any(0)


def encode_targets(
    annotations: Sequence[Mapping[str, Any]],
    image_size: tuple[int, int],
    stride: int,
    schema: KeypointSchema = COCO17,
    radius: float = DISK_RADIUS,
) -> Targets:
    """Encode the COCO annotations of one (already augmented) image as StrongPose training targets.

    `annotations` are COCO annotation dicts: `keypoints` (3K numbers x, y, v), `iscrowd`, `segmentation`
    (polygons, RLE, or a boolean (height, width) array), optionally `bbox` (x, y, w, h; the ignore region of
    a crowd or unlabelled person that has no mask). `image_size` is (height, width) in pixels.
    """
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"encode_targets: image_size must be positive (height, width), got {image_size!r}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"encode_targets: stride must be a positive integer, got {stride!r}")
    if not radius > 0:
        raise ValueError(f"encode_targets: radius must be positive, got {radius!r}")
    stride = int(stride)
    people = _parse(annotations, (height, width), stride, schema)
    rows, cols = _grid_rows_cols(height, width, stride)
    H, W, K = len(rows), len(cols), schema.num_keypoints
    edges = np.asarray(schema.directed_edges, dtype=np.int64).reshape(-1, 2)
    r2 = radius * radius
    cells = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None]), -1)  # (H, W, 2): each cell's pixel (x, y)

    # Distances from every grid cell to every labelled keypoint of every non-crowd person: (J, K, H, W).
    persons = [p for p in people if not p.crowd and p.labelled]
    kps = np.stack([p.keypoints for p in persons]) if persons else np.zeros((0, K, 3))
    visible = kps[..., 2] > 0  # (J, K)
    dx = kps[:, :, 0, None, None] - cols[None, None, None, :]  # (J, K, 1, W)
    dy = kps[:, :, 1, None, None] - rows[None, None, :, None]  # (J, K, H, 1)
    d2 = np.where(visible[:, :, None, None], dx**2 + dy**2, np.inf)  # (J, K, H, W)

    if persons:
        nearest = d2.argmin(0)  # (K, H, W): the instance j* each cell belongs to, per keypoint type
        inside = np.take_along_axis(d2, nearest[None], 0)[0] <= r2
        type_index = np.arange(K)[:, None, None]
        short = kps[nearest, type_index, :2] - cells
        short = np.where(inside[..., None], short, 0.0).transpose(0, 3, 1, 2)  # (K, 2, H, W)

        # Mid-range: the cell belongs to j* = nearest instance for the edge's start a; it points at j*'s b.
        a, b = edges[:, 0], edges[:, 1]
        owner = nearest[a]  # (2E, H, W)
        defined = inside[a] & visible[owner, b[:, None, None]]
        mid = kps[owner, b[:, None, None], :2] - cells  # (2E, H, W, 2)
        mid = np.where(defined[..., None], mid, 0.0).transpose(0, 3, 1, 2)  # (2E, 2, H, W)
    else:
        inside = np.zeros((K, H, W), bool)
        short = np.zeros((K, 2, H, W))
        defined = np.zeros((len(edges), H, W), bool)
        mid = np.zeros((len(edges), 2, H, W))

    # Body heat map: person masks; a person without one contributes keypoint disks and link capsules.
    links = np.asarray(schema.skeleton, dtype=np.int64).reshape(-1, 2)
    body = np.zeros((H, W), bool)
    for j, person in enumerate(persons):
        if person.mask is None:
            body |= (d2[j] <= r2).any(0)
            both = visible[j][links[:, 0]] & visible[j][links[:, 1]]
            if both.any():
                body |= _capsules(kps[j, :, :2], links[both], rows, cols, radius)
    crowd = np.zeros((H, W), bool)  # ignored by SKHM and BHM
    unlabelled = np.zeros((H, W), bool)  # people without keypoints: ignored by SKHM
    unknown_body = np.zeros((H, W), bool)  # ...and by BHM too when only their box is known
    for person in people:
        if person.crowd:
            region = person.mask if person.mask is not None else person.box
            if region is not None:
                crowd |= region
        elif person.mask is not None:
            body |= person.mask
            if not person.labelled:
                unlabelled |= person.mask
        elif not person.labelled and person.box is not None:
            unlabelled |= person.box
            unknown_body |= person.box

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    return Targets(
        heatmaps=tensor(inside),
        heatmap_weights=tensor(~((crowd | unlabelled)[None] & ~inside)),
        short_offsets=tensor(short),
        short_weights=tensor(inside),
        mid_offsets=tensor(mid),
        mid_weights=tensor(defined),
        body=tensor(body[None]),
        body_weights=tensor(~((crowd | unknown_body) & ~body)[None]),
    )
