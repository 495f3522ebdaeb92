"""Decoder speed: the fast decoder against the pure-Python baseline on the same maps, 1 to 40 people.

Layouts: real COCO poses from the mini set (or, without it, a built-in standing pose with jittered limbs),
scaled, flipped and placed at random (seeded) in a 401x401 image; the oracle encodes them into the
outputs a perfect network would give at the chosen stride. Both decoders run single-threaded on the same
outputs in the same process; the table gives median and p95 decode time, the speed-up and whether the two
found the same people. With CUDA, the fast decoder is also timed on GPU tensors (torch voting and peaks).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strongpose_ros.schema import COCO17

# The built-in fallback pose (x, y), a person 1 unit tall facing the camera, COCO-17 order.
_STANDING = np.array([
    [0.00, 0.06], [0.03, 0.04], [-0.03, 0.04], [0.06, 0.06], [-0.06, 0.06],
    [0.12, 0.18], [-0.12, 0.18], [0.16, 0.34], [-0.16, 0.34], [0.18, 0.48], [-0.18, 0.48],
    [0.08, 0.52], [-0.08, 0.52], [0.09, 0.74], [-0.09, 0.74], [0.10, 0.96], [-0.10, 0.96],
])


def _default_annotations() -> Path:
    shared = Path(os.environ.get("STRONGPOSE_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    return shared / "data" / "coco-mini-train" / "annotations" / "person_keypoints_train2017.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", default="1,5,10,20,40", help="comma-separated people counts")
    parser.add_argument("--layouts", type=int, default=5, help="random layouts per people count")
    parser.add_argument("--repeats", type=int, default=20, help="fast-decoder runs per layout")
    parser.add_argument("--baseline-repeats", type=int, default=2, help="baseline runs per layout")
    parser.add_argument("--size", type=int, default=401, help="input image side, pixels")
    parser.add_argument("--stride", type=int, default=8, help="output stride")
    parser.add_argument("--max-people", type=int, default=64,
                        help="decoder cap (above the largest count, so every person is decoded)")
    parser.add_argument("--annotations", type=Path, default=_default_annotations(),
                        help="COCO keypoint file whose poses are placed (default: the shared mini set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="time the fast decoder only")


def _pose_pool(path: Path) -> list[np.ndarray]:
    """(K, 3) poses with at least 10 labelled keypoints, normalised to height 1 at the origin."""
    pool = []
    if path.is_file():
        for ann in json.loads(path.read_text())["annotations"]:
            if ann.get("iscrowd") or ann.get("num_keypoints", 0) < 10:
                continue
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            labelled = kp[:, 2] > 0
            lo, hi = kp[labelled, :2].min(0), kp[labelled, :2].max(0)
            height = max(hi[1] - lo[1], 1.0)
            kp[:, :2] = np.where(labelled[:, None], (kp[:, :2] - lo) / height, 0.0)
            pool.append(kp)
    return pool


def _layout(rng: np.random.Generator, pool: list[np.ndarray], people: int, size: int) -> list[dict[str, Any]]:
    """COCO annotations of `people` random skeletons in a size x size image."""
    tallest = min(0.45 * size, size * np.sqrt(3.0 / people))  # denser scenes get smaller people
    annotations = []
    for n in range(people):
        if pool:
            kp = pool[rng.integers(len(pool))].copy()
        else:
            kp = np.concatenate([_STANDING + rng.normal(0, 0.02, _STANDING.shape), np.full((17, 1), 2.0)], 1)
            kp[:, :2] -= kp[:, :2].min(0)
        labelled = kp[:, 2] > 0
        if rng.random() < 0.5:  # mirror, swapping left and right
            kp[:, 0] = np.where(labelled, kp[labelled, 0].max() - kp[:, 0], 0.0)
            kp = kp[COCO17.flip_permutation]
            labelled = kp[:, 2] > 0
        scale = rng.uniform(0.4, 1.0) * tallest
        xy = kp[:, :2] * scale
        extent = xy[labelled].max(0)
        offset = rng.uniform(0, np.maximum(size - 1 - extent, 1.0))
        xy = np.where(labelled[:, None], xy + offset, 0.0)
        keypoints = np.concatenate([xy, kp[:, 2:]], 1)
        lo, hi = xy[labelled].min(0), xy[labelled].max(0)
        annotations.append({"id": n + 1, "iscrowd": 0, "num_keypoints": int(labelled.sum()),
                            "keypoints": keypoints.reshape(-1).tolist(),
                            "bbox": [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]})
    return annotations


def _same(a: list, b: list, tolerance: float = 1e-4) -> bool:
    if len(a) != len(b):
        return False
    return all(np.abs(p.keypoints - q.keypoints).max() <= tolerance and abs(p.score - q.score) <= tolerance
               for p, q in zip(a, b, strict=True))


def _time_ms(fn, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def run(args: argparse.Namespace) -> dict[str, float]:
    import numba

    from strongpose_ros.bench.baseline_decoder import decode_baseline
    from strongpose_ros.decode import DecoderConfig, decode, warmup
    from strongpose_ros.model.oracle import oracle_outputs

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    counts = [int(c) for c in str(args.people).split(",") if c.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit("--people needs positive counts, e.g. 1,5,10,20,40")
    config = DecoderConfig(max_people=max(args.max_people, max(counts)))
    pool = _pose_pool(args.annotations)
    source = f"{len(pool)} COCO poses from {args.annotations}" if pool else "built-in standing pose (no COCO file)"
    warmup()
    cuda = torch.cuda.is_available()
    rng = np.random.default_rng(args.seed)
    figures: dict[str, float] = {}
    rows = []
    for people in counts:
        fast, base, gpu, found, same = [], [], [], [], True
        for _ in range(args.layouts):
            outputs = oracle_outputs(_layout(rng, pool, people, args.size), (args.size, args.size), args.stride)
            result = decode(outputs, COCO17, config)[0]
            found.append(len(result))
            gc.collect()
            fast += _time_ms(lambda o=outputs: decode(o, COCO17, config), args.repeats)
            if not args.no_baseline:
                reference = decode_baseline(outputs, COCO17, config)[0]
                same = same and _same(result, reference)
                base += _time_ms(lambda o=outputs: decode_baseline(o, COCO17, config), args.baseline_repeats)
            if cuda:
                on_gpu = outputs.to("cuda")
                decode(on_gpu, COCO17, config)
                gpu += _time_ms(lambda o=on_gpu: decode(o, COCO17, config), args.repeats)
        key = f"{people}_people"
        figures[f"decode_ms_median_{key}"] = float(np.median(fast))
        figures[f"decode_ms_p95_{key}"] = float(np.percentile(fast, 95))
        figures[f"people_decoded_mean_{key}"] = float(np.mean(found))
        row = [people, np.mean(found), np.median(fast), np.percentile(fast, 95)]
        if base:
            figures[f"baseline_ms_median_{key}"] = float(np.median(base))
            figures[f"baseline_ms_p95_{key}"] = float(np.percentile(base, 95))
            figures[f"speedup_median_{key}"] = float(np.median(base) / np.median(fast))
            figures[f"same_people_{key}"] = float(same)
            speedup = np.median(base) / np.median(fast)
            row += [np.median(base), np.percentile(base, 95), speedup, "yes" if same else "NO"]
        if gpu:
            figures[f"gpu_decode_ms_median_{key}"] = float(np.median(gpu))
            figures[f"gpu_decode_ms_p95_{key}"] = float(np.percentile(gpu, 95))
            row += [np.median(gpu), np.percentile(gpu, 95)]
        rows.append(row)

    grid = (args.size - 1) // args.stride + 1
    print(f"Decoder benchmark: {args.size}x{args.size} input, stride {args.stride} ({grid}x{grid} maps, K=17), "
          f"oracle outputs of {source}; {args.layouts} layouts per count, single thread, "
          f"max_people={config.max_people}")
    head = f"{'people':>6} {'found':>6} {'fast med ms':>11} {'fast p95':>9}"
    if not args.no_baseline:
        head += f" {'base med ms':>11} {'base p95':>9} {'speed-up':>8} {'same':>5}"
    if cuda:
        head += f" {'gpu med ms':>10} {'gpu p95':>8}"
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row[0]:>6} {row[1]:>6.1f} {row[2]:>11.3f} {row[3]:>9.3f}"
        rest = row[4:]
        if not args.no_baseline:
            line += f" {rest[0]:>11.2f} {rest[1]:>9.2f} {rest[2]:>7.0f}x {rest[3]:>5}"
            rest = rest[4:]
        if cuda:
            line += f" {rest[0]:>10.3f} {rest[1]:>8.3f}"
        print(line)
    if not cuda:
        print("(CUDA not available: no GPU timings)")
    return figures
