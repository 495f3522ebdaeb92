"""Synthetic people in COCO keypoint format: a test bed for the whole learning loop, not a substitute for COCO.

With no real training data on the build machines, this module makes a data set whose labels are exact by
construction, so the trainer, the evaluator, the demo and the node tests can run end to end:

- `render_scene(rng, width, height)`: one image and its COCO annotation dicts, in memory;
  `compose_scene` returns the same plus the instance-id buffer the labels were computed from.
- `generate_dataset(out_dir, num_images, seed)`: DIR/images/*.jpg and DIR/annotations.json.
- `generate_clip(out_dir, seconds, seed)`: DIR/clip.mp4 (or clip.avi where the mp4v encoder is missing)
  and DIR/clip_annotations.json, one image entry per frame, of people walking across the frame.

Scenes are textured backgrounds (gradients, blotches, noise, random shapes and lines), optionally a crowd
cluster of tiny figures (one iscrowd = 1 region), then 1-8 articulated figures (`figures.py`) drawn back to
front into the image and into an instance-id buffer with the same primitives. Labels come from that
buffer, not from approximations:
- segmentation: the person's visible pixels (COCO RLE), bbox and area from that mask;
- keypoint v = 2 when its pixel is the person's own, v = 1 exactly when a figure drawn later covers it,
  v = 0 with (0, 0) when it is outside the image. Self-occlusion keeps v = 2 (the pixel is still the person's).

Determinism: image i is drawn from `numpy.random.default_rng([seed, 0, i])`, so it does not depend on how
many images are requested or on the number of workers; the same seed gives byte-identical JSON and images.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from strongpose_ros.data.figures import (
    Figure,
    FigureConfig,
    build_figure,
    draw_figure,
    quantize,
    sample_appearance,
    sample_pose,
    walk_pose,
)
from strongpose_ros.schema import COCO17

__all__ = [
    "DESCRIPTION",
    "SYNTH_VERSION",
    "Scene",
    "SynthConfig",
    "clip_video_path",
    "coco_categories",
    "compose_scene",
    "draw_background",
    "generate_clip",
    "generate_dataset",
    "parse_size",
    "render_scene",
]

SYNTH_VERSION = 1  # bump when the rendering changes, so saved data sets say which generator made them
DESCRIPTION = (
    "StrongPose synthetic people: a test bed for the whole training/evaluation loop, not a substitute for COCO"
)
PERSON_CATEGORY_ID = 1
CROWD_LABEL_BASE = 60000  # instance-id values of crowd clusters; people are 1..n in drawing order
_ANNOTATION_IDS_PER_IMAGE = 1000  # annotation id = image_id * this + k: independent of other images
_IMAGE_STREAM, _CLIP_STREAM = 0, 1

SizeSpec = tuple[tuple[int, int], tuple[int, int]]  # ((min_w, min_h), (max_w, max_h)), inclusive


@dataclass(frozen=True)
class SynthConfig:
    """Scene composition, background, image effects and clip constants."""

    # --- people ---
    min_people: int = 1
    max_people: int = 8
    people_count_decay: float = 0.75  # P(n) proportional to decay ** (n - 1)
    min_stature_px: float = 30.0
    small_stature_px: float = 80.0  # statures below this (COCO "small" masks, under 32 x 32) are drawn ...
    small_probability: float = 0.2  # ... this often; the rest log-uniform between it and the largest
    max_stature_fraction: float = 1.15  # of the image height, for a lone person (frame-filling)
    crowding_exponent: float = 0.35  # the largest stature shrinks as n ** -exponent with n people
    min_inside_fraction: float = 0.45  # of a figure's box that must be inside the image
    max_overlap: float = 0.6  # box intersection / smaller box, against every figure already placed
    group_probability: float = 0.5  # a person is placed next to one already placed (overlaps, occlusions)
    group_spacing: tuple[float, float] = (0.2, 0.7)  # horizontal centre distance, in the neighbour's box widths
    placement_tries: int = 25
    draw_order_jitter: float = 0.15  # bigger figures are mostly in front: order by stature * U(1 +- jitter)
    # --- crowd regions (iscrowd = 1) ---
    crowd_fraction: float = 0.15  # of images with one crowd cluster
    crowd_figures: tuple[int, int] = (6, 20)
    crowd_stature_px: tuple[float, float] = (10.0, 24.0)
    crowd_half_width_px: tuple[float, float] = (30.0, 100.0)
    crowd_dilate_px: int = 2  # the region is the tiny figures' pixels grown by this, minus people's pixels
    # --- background ---
    blotch_amplitude: tuple[float, float] = (10.0, 60.0)
    blotch_grid: tuple[int, int] = (2, 10)
    floor_probability: float = 0.5
    texture_noise_sigma: tuple[float, float] = (2.0, 12.0)
    shapes: tuple[int, int] = (6, 30)
    # --- whole-image effects ---
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.1)
    sensor_noise_sigma: tuple[float, float] = (0.0, 4.0)
    contrast: tuple[float, float] = (0.85, 1.15)
    brightness: tuple[float, float] = (-15.0, 15.0)
    jpeg_quality: int = 92
    # --- clip ---
    clip_people: tuple[int, int] = (2, 5)
    clip_ground_fraction: tuple[float, float] = (0.55, 0.97)  # feet line, as a fraction of the height
    clip_stature_at_horizon: float = 0.35  # stature / height at the highest feet line; grows towards the camera
    clip_stature_growth: float = 1.2
    clip_speed_statures_per_s: tuple[float, float] = (0.55, 0.9)
    clip_yaw_jitter_deg: float = 25.0
    figure: FigureConfig = field(default_factory=FigureConfig)


@dataclass
class Scene:
    """One rendered image with its labels and the buffer they were computed from."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    instance_ids: np.ndarray  # (H, W) uint16: 0 background, 1..n people, CROWD_LABEL_BASE + c crowd clusters
    annotations: list[dict[str, Any]]  # COCO annotation dicts without "id"/"image_id": people, then crowds
    labels: list[int]  # labels[k]: the instance_ids value of annotations[k]
    positions: list[np.ndarray | None]  # (K, 2) every keypoint of annotations[k], outside ones too; None: crowd


# --- sizes ------------------------------------------------------------------------------------------------------


def parse_size(text: str) -> SizeSpec:
    """'400x400' (fixed) or '320x240:640x480' (width and height drawn per image in these ranges)."""

    def one(part: str) -> tuple[int, int]:
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"bad size {text!r}: expected WxH or WxH:WxH, e.g. 400x400 or 320x240:640x480") from None
        if w < 16 or h < 16:
            raise ValueError(f"bad size {text!r}: width and height must be at least 16 pixels")
        return w, h

    parts = text.split(":")
    if len(parts) not in (1, 2):
        raise ValueError(f"bad size {text!r}: expected WxH or WxH:WxH")
    lo = one(parts[0])
    hi = one(parts[1]) if len(parts) == 2 else lo
    if hi[0] < lo[0] or hi[1] < lo[1]:
        raise ValueError(f"bad size {text!r}: the range's second size must not be smaller than the first")
    return lo, hi


def _size_spec(size: tuple[int, int] | SizeSpec | str) -> SizeSpec:
    if isinstance(size, str):
        return parse_size(size)
    if len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        w, h = int(size[0]), int(size[1])
        return parse_size(f"{w}x{h}")
    (w0, h0), (w1, h1) = size
    return parse_size(f"{int(w0)}x{int(h0)}:{int(w1)}x{int(h1)}")


# --- background and effects -------------------------------------------------------------------------------------


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def draw_background(rng: np.random.Generator, width: int, height: int, cfg: SynthConfig | None = None) -> np.ndarray:
    """A textured background: gradient, low-frequency blotches, an optional floor, noise, random shapes."""
    cfg = cfg or SynthConfig()
    c0 = np.asarray(_colour(rng), dtype=np.float32)
    c1 = np.asarray(_colour(rng), dtype=np.float32)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32) * np.float32(math.cos(angle))
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * np.float32(math.sin(angle))
    t = xs + ys
    t -= t.min()
    t /= max(float(t.max()), 1e-6)
    image = c0 + t[..., None] * (c1 - c0)
    gh, gw = (int(v) for v in rng.integers(cfg.blotch_grid[0], cfg.blotch_grid[1] + 1, 2))
    blotches = rng.uniform(-1.0, 1.0, (gh, gw, 3)).astype(np.float32)
    image += cv2.resize(blotches, (width, height), interpolation=cv2.INTER_CUBIC) * np.float32(
        rng.uniform(*cfg.blotch_amplitude))
    if rng.random() < cfg.floor_probability:
        horizon = int(rng.uniform(0.35, 0.8) * height)
        floor = np.asarray(_colour(rng), dtype=np.float32)
        image[horizon:] = image[horizon:] * np.float32(0.35) + floor * np.float32(0.65)
    image += rng.standard_normal((height, width), dtype=np.float32)[..., None] * np.float32(
        rng.uniform(*cfg.texture_noise_sigma))
    image = np.clip(image, 0, 255).astype(np.uint8)
    _draw_shapes(rng, image, int(rng.integers(cfg.shapes[0], cfg.shapes[1] + 1)))
    return image


def _draw_shapes(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Random rectangles, ellipses, lines, polylines, stripes and limb-like capsules (distractors)."""
    h, w = image.shape[:2]
    scale = max(w, h)
    for _ in range(count):
        kind = int(rng.integers(6))
        colour = _colour(rng)
        x, y = int(rng.integers(-w // 8, w + w // 8)), int(rng.integers(-h // 8, h + h // 8))
        size = int(rng.uniform(0.03, 0.35) * scale)
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 6))
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2.0))), colour, thickness)
        elif kind == 1:
            axes = (max(1, size // 2), max(1, int(size * rng.uniform(0.2, 0.7))))
            cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, thickness)
        elif kind == 2:
            end = (x + int(rng.normal(0, size)), y + int(rng.normal(0, size)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 8)))
        elif kind == 3:
            pts = np.stack([rng.integers(-w // 8, w + w // 8, 5), rng.integers(-h // 8, h + h // 8, 5)], 1)
            cv2.polylines(image, [pts.astype(np.int32)], bool(rng.random() < 0.5), colour, int(rng.integers(1, 4)))
        elif kind == 4:  # stripes: texture the net cannot threshold away
            gap = int(rng.integers(3, 12))
            for k in range(0, size, gap):
                cv2.line(image, (x + k, y), (x + k - size // 3, y + size), colour, max(1, gap // 3))
        else:  # a capsule shaped like a limb, in any colour
            end = (x + int(rng.normal(0, size)), y + int(rng.normal(0, size)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(3, max(4, size // 6 + 1))), cv2.LINE_8)


def _finish(rng: np.random.Generator, image: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Camera-like effects on the whole frame: blur, contrast/brightness, sensor noise."""
    if rng.random() < cfg.blur_probability:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(*cfg.blur_sigma)))
    h, w = image.shape[:2]
    out = image.astype(np.float32) * np.float32(rng.uniform(*cfg.contrast)) + np.float32(rng.uniform(*cfg.brightness))
    out += rng.standard_normal((h, w), dtype=np.float32)[..., None] * np.float32(
        rng.uniform(*cfg.sensor_noise_sigma))
    return np.clip(out, 0, 255).astype(np.uint8)


# --- labels -----------------------------------------------------------------------------------------------------


def _rle(mask: np.ndarray) -> tuple[dict[str, Any], list[float], float]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    area = float(mask_utils.area(rle))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}, bbox, area


def _person_annotation(ids: np.ndarray, label: int, keypoints: np.ndarray) -> dict[str, Any] | None:
    """COCO annotation of the person drawn with `label`, or None when none of it is visible."""
    mask = ids == label
    if not mask.any():
        return None
    h, w = ids.shape
    pix = np.floor(keypoints + 0.5).astype(np.int64)
    flat: list[float] = []
    labelled = 0
    for (x, y), (px, py) in zip(keypoints.tolist(), pix.tolist(), strict=True):
        if 0 <= px < w and 0 <= py < h:
            # The keypoint pixel is always painted by its own figure (figures.draw_figure's coverage pass),
            # so any other value means a figure drawn later covers it.
            v = 2 if ids[py, px] == label else 1
            flat += [x, y, v]
            labelled += 1
        else:
            flat += [0.0, 0.0, 0]
    segmentation, bbox, area = _rle(mask)
    return {
        "category_id": PERSON_CATEGORY_ID, "iscrowd": 0, "keypoints": flat, "num_keypoints": labelled,
        "bbox": bbox, "area": area, "segmentation": segmentation,
    }


def _crowd_annotation(ids: np.ndarray, label: int, dilate_px: int) -> dict[str, Any] | None:
    own = ids == label
    if not own.any():
        return None
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        grown = cv2.dilate(own.astype(np.uint8), kernel).astype(bool)
        own = grown & ((ids == 0) | own)  # never over a person's pixels
    segmentation, bbox, area = _rle(own)
    k = COCO17.num_keypoints
    return {
        "category_id": PERSON_CATEGORY_ID, "iscrowd": 1, "keypoints": [0.0] * (3 * k), "num_keypoints": 0,
        "bbox": bbox, "area": area, "segmentation": segmentation,
    }


def coco_categories() -> list[dict[str, Any]]:
    """COCO's person category: keypoint names and the 1-based drawing skeleton, exactly as in COCO files."""
    return [{
        "id": PERSON_CATEGORY_ID, "name": "person", "supercategory": "person",
        "keypoints": list(COCO17.keypoints), "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton],
    }]


# --- scenes -----------------------------------------------------------------------------------------------------


def _box_inside(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    return max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)), min(box[3], float(height))


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    return inter / max(min(_area(a), _area(b)), 1e-6)


def _place_people(rng: np.random.Generator, width: int, height: int,
                  cfg: SynthConfig) -> list[tuple[Figure, np.ndarray]]:
    """Sample people and non-degenerate positions; returned back to front."""
    counts = np.arange(cfg.min_people, cfg.max_people + 1)
    weights = cfg.people_count_decay ** (counts - cfg.min_people).astype(np.float64)
    n = int(rng.choice(counts, p=weights / weights.sum()))
    largest = max(cfg.min_stature_px * 1.5, cfg.max_stature_fraction * height / n ** cfg.crowding_exponent)
    split = min(max(cfg.small_stature_px, cfg.min_stature_px), largest)
    placed: list[tuple[float, Figure, np.ndarray, tuple[float, float, float, float]]] = []
    for j in range(n):
        lo, hi = (cfg.min_stature_px, split) if rng.random() < cfg.small_probability else (split, largest)
        stature = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        figure = build_figure(sample_pose(rng, cfg.figure), sample_appearance(rng, cfg.figure), stature, cfg.figure)
        x0, y0, x1, y1 = figure.extent
        full = (x1 - x0) * (y1 - y0)
        grouped = bool(placed) and rng.random() < cfg.group_probability
        for _ in range(cfg.placement_tries):
            if grouped:
                nx0, ny0, nx1, ny1 = placed[int(rng.integers(len(placed)))][3]
                side = 1.0 if rng.random() < 0.5 else -1.0
                cx = (nx0 + nx1) / 2 + side * rng.uniform(*cfg.group_spacing) * (nx1 - nx0)
                cy = (ny0 + ny1) / 2 + rng.uniform(-0.15, 0.15) * (ny1 - ny0)
            else:
                cx, cy = rng.uniform(0.0, width), rng.uniform(0.0, height)
            offset = quantize(np.array([cx - (x0 + x1) / 2, cy - (y0 + y1) / 2]))
            box = (x0 + offset[0], y0 + offset[1], x1 + offset[0], y1 + offset[1])
            inside = _box_inside(box, width, height)
            if _area(inside) < cfg.min_inside_fraction * full:
                continue
            if any(_overlap(inside, other) > cfg.max_overlap for *_, other in placed):
                continue
            order = stature * rng.uniform(1.0 - cfg.draw_order_jitter, 1.0 + cfg.draw_order_jitter)
            placed.append((order, figure, offset, inside))
            break
        else:
            if j == 0:  # every image has at least one person: centre the first one
                offset = quantize(np.array([width / 2 - (x0 + x1) / 2, height / 2 - (y0 + y1) / 2]))
                box = (x0 + offset[0], y0 + offset[1], x1 + offset[0], y1 + offset[1])
                placed.append((stature, figure, offset, _box_inside(box, width, height)))
    placed.sort(key=lambda item: item[0])
    return [(figure, offset) for _, figure, offset, _ in placed]


def _draw_crowd(rng: np.random.Generator, image: np.ndarray, ids: np.ndarray, label: int, cfg: SynthConfig) -> None:
    """A cluster of tiny standing/walking figures on a common ground line."""
    h, w = ids.shape
    cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.2 * h, 0.85 * h)
    half = min(rng.uniform(*cfg.crowd_half_width_px), w / 2)
    members = []
    for _ in range(int(rng.integers(cfg.crowd_figures[0], cfg.crowd_figures[1] + 1))):
        kind = "walking" if rng.random() < 0.5 else "standing"
        stature = rng.uniform(*cfg.crowd_stature_px)
        figure = build_figure(sample_pose(rng, cfg.figure, kind), sample_appearance(rng, cfg.figure), stature,
                              cfg.figure)
        ground = cy + rng.uniform(-0.4, 0.4) * cfg.crowd_stature_px[1]
        members.append((ground, figure, quantize(np.array([cx + rng.uniform(-half, half), ground - figure.ground]))))
    members.sort(key=lambda m: m[0])
    for _, figure, offset in members:
        draw_figure(image, ids, label, figure, offset, cfg.figure)


def compose_scene(rng: np.random.Generator, width: int, height: int, config: SynthConfig | None = None,
                  *, crowd: bool | None = None) -> Scene:
    """Render one scene and label it from its instance-id buffer.

    `crowd`: force a crowd cluster on (True) or off (False); None draws one with `config.crowd_fraction`.
    """
    cfg = config or SynthConfig()
    if width < 16 or height < 16:
        raise ValueError(f"image size {width}x{height} is too small (at least 16x16)")
    image = draw_background(rng, width, height, cfg)
    ids = np.zeros((height, width), dtype=np.uint16)
    has_crowd = bool(rng.random() < cfg.crowd_fraction) if crowd is None else crowd
    if has_crowd:  # behind everyone, so it never covers a person's keypoint
        _draw_crowd(rng, image, ids, CROWD_LABEL_BASE, cfg)
    people = _place_people(rng, width, height, cfg)
    placed_keypoints = [draw_figure(image, ids, label, figure, offset, cfg.figure)
                        for label, (figure, offset) in enumerate(people, start=1)]
    annotations, labels, positions = [], [], []
    for label, keypoints in enumerate(placed_keypoints, start=1):
        ann = _person_annotation(ids, label, keypoints)
        if ann is not None:
            annotations.append(ann)
            labels.append(label)
            positions.append(keypoints)
    if has_crowd:
        ann = _crowd_annotation(ids, CROWD_LABEL_BASE, cfg.crowd_dilate_px)
        if ann is not None:
            annotations.append(ann)
            labels.append(CROWD_LABEL_BASE)
            positions.append(None)
    return Scene(image=_finish(rng, image, cfg), instance_ids=ids, annotations=annotations, labels=labels,
                 positions=positions)


def render_scene(rng: np.random.Generator, width: int, height: int, config: SynthConfig | None = None,
                 *, crowd: bool | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One synthetic image (BGR uint8) and its COCO annotation dicts (without "id"/"image_id")."""
    scene = compose_scene(rng, width, height, config, crowd=crowd)
    return scene.image, scene.annotations


# --- data set ---------------------------------------------------------------------------------------------------


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _IMAGE_STREAM, index]))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Written next to the target and renamed: a reader never sees half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def _encode(image: np.ndarray, image_format: str, quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{image_format}", image, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image_format} image")
    return buf.tobytes()


def _render_one(task: tuple[int, int, SizeSpec, SynthConfig, str, str, bool | None]) -> tuple[dict, list[dict]]:
    index, seed, size, cfg, images_dir, image_format, crowd = task
    rng = _image_rng(seed, index)
    (w0, h0), (w1, h1) = size
    w = w0 if w0 == w1 else int(rng.integers(w0, w1 + 1))
    h = h0 if h0 == h1 else int(rng.integers(h0, h1 + 1))
    image, annotations = render_scene(rng, w, h, cfg, crowd=crowd)
    file_name = f"{index:06d}.{image_format}"
    Path(images_dir, file_name).write_bytes(_encode(image, image_format, cfg.jpeg_quality))
    return {"id": index + 1, "file_name": file_name, "width": w, "height": h}, annotations


def _config_with(config: SynthConfig | None, **overrides: Any) -> SynthConfig:
    cfg = config or SynthConfig()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = replace(cfg, **overrides)
    if not 0.0 <= cfg.crowd_fraction <= 1.0:
        raise ValueError(f"crowd_fraction must be within [0, 1], got {cfg.crowd_fraction}")
    if not 1 <= cfg.min_people <= cfg.max_people:
        raise ValueError(f"need 1 <= min_people <= max_people, got {cfg.min_people}, {cfg.max_people}")
    if not cfg.min_stature_px > 0:
        raise ValueError(f"min_stature_px must be positive, got {cfg.min_stature_px}")
    return cfg


def _check_seed(seed: int) -> int:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _progress(iterable: Iterable, total: int, enabled: bool, unit: str) -> Iterable:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit=unit, desc="synth")


def generate_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    *,
    size: tuple[int, int] | SizeSpec | str = (400, 400),
    config: SynthConfig | None = None,
    crowd_fraction: float | None = None,
    image_format: str = "jpg",
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Write `num_images` images to OUT/images and their COCO keypoint annotations; return the annotation file.

    `size` is (w, h), ((min_w, min_h), (max_w, max_h)) or a string for `parse_size`. Workers render images
    in parallel processes; the output does not depend on their number.
    """
    if int(num_images) != num_images or num_images < 0:
        raise ValueError(f"num_images must be a non-negative integer, got {num_images!r}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    seed = _check_seed(seed)
    spec = _size_spec(size)
    cfg = _config_with(config, crowd_fraction=crowd_fraction)
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(i, seed, spec, cfg, str(images_dir), image_format, None) for i in range(int(num_images))]
    images: list[dict] = []
    annotations: list[dict] = []

    def collect(results: Iterable[tuple[dict, list[dict]]]) -> None:
        for image, anns in _progress(results, len(tasks), progress, "img"):
            images.append(image)
            for k, ann in enumerate(anns):
                annotations.append({"id": image["id"] * _ANNOTATION_IDS_PER_IMAGE + k, "image_id": image["id"], **ann})

    if workers > 1 and len(tasks) > 1:
        with get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            collect(pool.imap(_render_one, tasks, chunksize=4))
    else:
        collect(map(_render_one, tasks))
    path = out / "annotations.json"
    _write_json(path, {
        "info": {"description": DESCRIPTION, "version": SYNTH_VERSION, "seed": seed, "images_dir": "images"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    })
    return path


# --- clip -------------------------------------------------------------------------------------------------------

# fourcc and file name, in order of preference; MJPG/AVI is the fallback where the mp4v encoder is missing
_VIDEO_FORMATS = (("mp4v", "clip.mp4"), ("MJPG", "clip.avi"))


def _open_video_writer(out: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path, str]:
    for _, name in _VIDEO_FORMATS:  # a stale clip of the other format would mislead readers
        (out / name).unlink(missing_ok=True)
    for fourcc, name in _VIDEO_FORMATS:
        path = out / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
        if writer.isOpened():
            return writer, path, fourcc
        writer.release()
        path.unlink(missing_ok=True)
    raise RuntimeError(f"this OpenCV build can write none of {[f for f, _ in _VIDEO_FORMATS]} videos")


def clip_video_path(annotations_path: str | Path) -> Path:
    """The video a clip annotation file describes (clip.mp4, or clip.avi where mp4v was not available)."""
    annotations_path = Path(annotations_path)
    data = json.loads(annotations_path.read_text())
    videos = data.get("videos") or []
    if videos:
        path = annotations_path.parent / videos[0]["file_name"]
        if path.exists():
            return path
    for _, name in _VIDEO_FORMATS:
        if (annotations_path.parent / name).exists():
            return annotations_path.parent / name
    raise FileNotFoundError(f"no clip video next to {annotations_path}")


@dataclass
class _Walker:
    track_id: int
    direction: int  # +1 walks towards image right
    ground: float  # feet line, pixels
    stature: float
    speed: float  # pixels per second
    x_start: float  # x at t = 0
    yaw: float
    phase0: float
    cycle_px: float  # pixels per walk cycle (two steps)
    hip_amplitude: float
    appearance: Any


def _sample_walkers(rng: np.random.Generator, width: int, height: int, duration: float,
                    cfg: SynthConfig) -> list[_Walker]:
    n = int(rng.integers(cfg.clip_people[0], cfg.clip_people[1] + 1))
    directions = [1, -1] + [int(rng.choice([-1, 1])) for _ in range(n - 2)]  # at least one crossing pair
    walkers: list[_Walker] = []
    g0, g1 = cfg.clip_ground_fraction
    meet = rng.uniform(0.3, 0.7) * width
    for j in range(n):
        if j == 1:  # the first two walk towards each other on nearly the same line and cross mid-clip
            ground = float(np.clip(walkers[0].ground + rng.uniform(-0.04, 0.04) * height, g0 * height, g1 * height))
        else:
            ground = rng.uniform(g0, g1) * height
        stature = height * (cfg.clip_stature_at_horizon + cfg.clip_stature_growth * (ground / height - g0))
        hip_amplitude = math.radians(rng.uniform(18.0, 28.0))
        leg = cfg.figure.thigh + cfg.figure.shin
        jitter = math.radians(rng.uniform(-cfg.clip_yaw_jitter_deg, cfg.clip_yaw_jitter_deg))
        speed = rng.uniform(*cfg.clip_speed_statures_per_s) * stature
        x_start = meet - directions[j] * speed * duration / 2 if j < 2 else rng.uniform(0.1, 0.9) * width
        walkers.append(_Walker(
            track_id=j + 1, direction=directions[j], ground=ground, stature=stature, speed=speed,
            x_start=x_start, yaw=directions[j] * math.pi / 2 + jitter,
            phase0=rng.uniform(0.0, 2.0 * math.pi),
            # Two steps of length 2 * leg * sin(amplitude) per cycle keep the feet from sliding much.
            cycle_px=4.0 * leg * math.sin(hip_amplitude) * stature, hip_amplitude=hip_amplitude,
            appearance=sample_appearance(rng, cfg.figure),
        ))
    walkers.sort(key=lambda wk: wk.ground)  # drawing order: farther (higher feet line) first
    return walkers


def _walker_position(wk: _Walker, t: float, width: int, num_walkers: int) -> tuple[float, int]:
    """x of a walker at time t and its track id.

    A walker who leaves the frame comes back from the other side (off screen, so nobody jumps in view) and
    gets a new track id for each pass, as a tracker would see a new person.
    """
    margin = 0.6 * wk.stature  # about half the widest walking figure
    period = width + 2.0 * margin
    u0 = wk.x_start + margin
    u = wk.x_start + wk.direction * wk.speed * t + margin
    passes = abs(math.floor(u / period) - math.floor(u0 / period))
    return u % period - margin, wk.track_id + num_walkers * passes


def generate_clip(
    out_dir: str | Path,
    seconds: float,
    seed: int,
    fps: float = 15,
    size: tuple[int, int] = (640, 480),
    *,
    config: SynthConfig | None = None,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Write a clip of 2-5 people walking across a static scene and its per-frame COCO annotations.

    Returns (video path, annotation path). Each image entry has frame_index and timestamp (seconds);
    each annotation a track_id. The video is clip.mp4 (mp4v) or, where that encoder is missing, clip.avi
    (MJPG): use the annotation file's "videos" entry or `clip_video_path` to find it.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"clip length must be positive seconds, got {seconds}")
    num_frames = round(seconds * fps)
    if num_frames < 1:
        raise ValueError(f"a {seconds} s clip at {fps} fps has no frames")
    seed = _check_seed(seed)
    width, height = _size_spec(tuple(size))[0]
    cfg = _config_with(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _CLIP_STREAM]))
    background = draw_background(rng, width, height, cfg)
    duration = num_frames / fps
    walkers = _sample_walkers(rng, width, height, duration, cfg)
    writer, video_path, fourcc = _open_video_writer(out, fps, (width, height))
    images, annotations = [], []
    try:
        for f in _progress(range(num_frames), num_frames, progress, "frame"):
            t = f / fps
            image = background.copy()
            ids = np.zeros((height, width), dtype=np.uint16)
            drawn = []
            for label, wk in enumerate(walkers, start=1):
                travelled = wk.speed * t
                pose = walk_pose(wk.phase0 + 2.0 * math.pi * travelled / wk.cycle_px, wk.yaw,
                                 hip_amplitude=wk.hip_amplitude)
                figure = build_figure(pose, wk.appearance, wk.stature, cfg.figure)
                x, track_id = _walker_position(wk, t, width, len(walkers))
                offset = quantize(np.array([x, wk.ground - figure.ground]))
                drawn.append((label, track_id, draw_figure(image, ids, label, figure, offset, cfg.figure)))
            image_id = f + 1
            images.append({
                "id": image_id, "file_name": video_path.name, "frame_index": f, "timestamp": round(t, 6),
                "width": width, "height": height,
            })
            k = 0
            for label, track_id, keypoints in drawn:
                ann = _person_annotation(ids, label, keypoints)
                if ann is not None:
                    annotations.append({"id": image_id * _ANNOTATION_IDS_PER_IMAGE + k, "image_id": image_id,
                                        "track_id": track_id, **ann})
                    k += 1
            writer.write(image)
    finally:
        writer.release()
    ann_path = out / "clip_annotations.json"
    _write_json(ann_path, {
        "info": {"description": DESCRIPTION, "version": SYNTH_VERSION, "seed": seed, "fps": fps},
        "licenses": [],
        "videos": [{"file_name": video_path.name, "fourcc": fourcc, "fps": fps, "num_frames": num_frames,
                    "width": width, "height": height}],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(),
    })
    return video_path, ann_path
