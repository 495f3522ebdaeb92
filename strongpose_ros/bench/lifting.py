"""3D lifting cost per frame: `lift_people` on aligned 16UC1 depth, 1 to 20 people, 640x480 and 1280x720.

Scenes: people standing at random places 2.5-5 m away (all of them in the picture) before a plumb_bob
camera (fx = 0.82 x width, a RealSense-like colour camera), their keypoints projected with OpenCV; a
depth image rendered from a disc of each keypoint's own depth on a wall, with 1 cm noise and 10% holes,
stored as 16UC1 millimetres; a stride-8 body heat map around the keypoints. The timed call is what the
pose node runs per frame once it has the depth array:
`lift_people(people, depth, camera, image_size, body_heatmap=..., heatmap_transform=...)` (the window
read, the body mask, the person gate, undistortion, 3D and person centres). Apart from it: unpacking the
depth message (`image_to_numpy` of a 16UC1 Image), and the 3D error against the truth of the keypoints
that nobody in front hides (a check that the timed work is the real thing, and a measure of crowding: the
share of those reads off by more than 10 cm, where a nearer person's edge takes over the window). The
process is pinned to one CPU core; NumPy and OpenCV run single-threaded. Goal: <= 1 ms per frame for 10
people at 640x480 on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import time
from types import SimpleNamespace

import cv2
import numpy as np

GOAL_MS = 1.0
GOAL_PEOPLE = 10
GOAL_SIZE = (480, 640)

# A person 1.7 m tall facing the camera, COCO-17 order, metres from the point between the hips (x right,
# y down, z away); the z offsets are a relaxed stance (arms a little forward).
_PERSON_M = np.array([
    [0.00, -0.72, -0.08], [0.03, -0.75, -0.08], [-0.03, -0.75, -0.08], [0.08, -0.73, -0.05], [-0.08, -0.73, -0.05],
    [0.19, -0.52, 0.00], [-0.19, -0.52, 0.00], [0.27, -0.24, -0.05], [-0.27, -0.24, -0.02],
    [0.30, 0.02, -0.15], [-0.30, 0.02, -0.10], [0.11, 0.00, 0.02], [-0.11, 0.00, 0.02],
    [0.12, 0.45, -0.03], [-0.12, 0.45, 0.00], [0.13, 0.92, 0.02], [-0.13, 0.92, 0.03],
])  # fmt: skip
_DISTORTION = np.array([0.11, -0.24, 0.0012, -0.0009, 0.09])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", default="1,2,5,10,20", help="comma-separated people counts")
    parser.add_argument("--sizes", default="640x480,1280x720", help="comma-separated depth sizes WxH")
    parser.add_argument("--layouts", type=int, default=5, help="random scenes per count and size")
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per scene")
    parser.add_argument("--no-heatmap", action="store_true", help="lift without the body heat map")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--surface-percentile", type=float, default=None,
                        help="LiftingConfig.surface_percentile to use (default: the config's)")


def _pin_to_one_core() -> str:
    cv2.setNumThreads(1)
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def _scene(rng: np.random.Generator, people: int, size: tuple[int, int], camera) -> dict:
    """Keypoints (P, 17, 3), truth (P, 17, 3), a 16UC1 depth frame and a body heat map of one random scene."""
    height, width = size
    truths, rows = [], []
    while len(truths) < people:
        z = rng.uniform(2.5, 5.0)
        half_w, half_h = 0.5 * width / camera.fx * z, 0.5 * height / camera.fy * z
        hips = np.array([rng.uniform(-half_w, half_w), rng.uniform(-half_h, half_h), z])  # kept if all in view
        truth = _PERSON_M + hips
        uv, _ = cv2.projectPoints(truth.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.D)
        uv = uv.reshape(-1, 2)
        if not ((uv >= 0) & (uv < [width, height])).all():
            continue
        truths.append(truth)
        rows.append(np.concatenate([uv, rng.uniform(0.3, 1.0, (17, 1))], axis=1))
    depth = np.full(size, 8.0)
    radius = max(3, round(0.012 * width))
    for truth, kp in sorted(zip(truths, rows, strict=True), key=lambda pair: -pair[0][:, 2].mean()):  # far first
        for (u, v, _), z in zip(kp, truth[:, 2], strict=True):
            cu, cv = round(u), round(v)
            y0, y1 = max(cv - radius, 0), min(cv + radius + 1, height)
            x0, x1 = max(cu - radius, 0), min(cu + radius + 1, width)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            disc = (xx - u) ** 2 + (yy - v) ** 2 <= radius**2
            patch = depth[y0:y1, x0:x1]
            patch[disc] = np.minimum(patch[disc], z)
    # A keypoint is visible when nothing nearer covers its own pixel (people in front of others hide keypoints).
    cols = np.clip(np.rint(np.stack(rows)[..., 0]).astype(int), 0, width - 1)
    rows_ = np.clip(np.rint(np.stack(rows)[..., 1]).astype(int), 0, height - 1)
    visible = depth[rows_, cols] >= np.stack(truths)[..., 2] - 0.02
    depth += rng.normal(0.0, 0.01, size)
    depth[rng.random(size) < 0.1] = 0.0
    mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    stride = 8
    cells = np.stack(np.meshgrid(np.arange((width - 1) // stride + 1) * stride,
                                 np.arange((height - 1) // stride + 1) * stride), -1).reshape(-1, 1, 2)  # fmt: skip
    keypoints = np.concatenate(rows)[:, :2]
    near = np.zeros(cells.shape[0], dtype=bool)
    for start in range(0, len(keypoints), 64):  # distances in chunks: 20 people x 1280x720 cells is large
        near |= (np.linalg.norm(cells - keypoints[None, start:start + 64], axis=-1) < 5 * radius).any(-1)
    body = near.reshape((height - 1) // stride + 1, (width - 1) // stride + 1).astype(np.float32)
    return {"keypoints": np.stack(rows).astype(np.float32), "truth": np.stack(truths), "mm": mm, "body": body,
            "visible": visible}


def _time_ms(fn, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def run(args: argparse.Namespace) -> dict[str, float]:
    from strongpose_ros.depth import CameraModel, DepthImage, LiftingConfig, lift_people
    from strongpose_ros.estimator import HeatmapTransform
    from strongpose_ros.ros.image_conversion import image_to_numpy

    pinned = _pin_to_one_core()
    counts = [int(c) for c in str(args.people).split(",") if c.strip()]
    sizes = [tuple(int(v) for v in s.lower().split("x"))[::-1] for s in str(args.sizes).split(",") if s.strip()]
    if not counts or min(counts) < 1 or not sizes:
        raise SystemExit("--people needs positive counts (e.g. 1,5,10) and --sizes WxH sizes (e.g. 640x480)")
    rng = np.random.default_rng(args.seed)
    transform = HeatmapTransform(8.0, 8.0, 0.0, 0.0)
    config = LiftingConfig()
    if args.surface_percentile is not None:
        config = dataclasses.replace(config, surface_percentile=args.surface_percentile)
    figures: dict[str, float] = {}
    rows = []
    for size in sizes:
        height, width = size
        f = 0.82 * width
        camera = CameraModel.from_fields(width=width, height=height, k=[f, 0, (width - 1) / 2, 0, f, (height - 1) / 2,
                                         0, 0, 1], d=_DISTORTION.tolist(), distortion_model="plumb_bob")  # fmt: skip
        for people in counts:
            lift, unpack, errors, valid, far_off = [], [], [], [], []
            for _ in range(args.layouts):
                scene = _scene(rng, people, size, camera)
                msg = SimpleNamespace(height=height, width=width, encoding="16UC1", is_bigendian=0, step=2 * width,
                                      data=scene["mm"].tobytes())  # fmt: skip
                depth = DepthImage.from_array(image_to_numpy(msg), msg.encoding)
                heat = {} if args.no_heatmap else {"body_heatmap": scene["body"], "heatmap_transform": transform}

                def call(d=depth, s=scene, h=heat, c=camera, z=size):
                    return lift_people(s["keypoints"], d, c, z, config=config, **h)

                result = call()
                error = np.linalg.norm(result.keypoints - scene["truth"], axis=-1)
                errors.append(error[result.keypoint_valid & scene["visible"]])
                far_off.append(error[result.keypoint_valid & scene["visible"]] > 0.1)
                valid.append(result.keypoint_valid.mean())
                gc.collect()
                lift += _time_ms(call, args.repeats)
                unpack += _time_ms(lambda m=msg: image_to_numpy(m), max(5, args.repeats // 4))
            key = f"{people}_people_{width}x{height}"
            figures[f"lift_ms_median_{key}"] = float(np.median(lift))
            figures[f"lift_ms_p95_{key}"] = float(np.percentile(lift, 95))
            figures[f"unpack_depth_ms_median_{width}x{height}"] = float(np.median(unpack))
            error_cm = float(np.median(np.concatenate(errors))) * 100
            off = float(np.mean(np.concatenate(far_off)))
            figures[f"error_cm_median_visible_{key}"] = error_cm
            figures[f"off_by_10cm_share_visible_{key}"] = off
            figures[f"lifted_share_{key}"] = float(np.mean(valid))
            rows.append((f"{width}x{height}", people, np.median(lift), np.percentile(lift, 95), np.median(unpack),
                         error_cm, 100 * off, 100 * np.mean(valid)))  # fmt: skip

    mode = "without the body heat map" if args.no_heatmap else "with a stride-8 body heat map"
    mode += f", surface_percentile {config.surface_percentile:g}"
    print(f"Lifting benchmark: 16UC1 depth aligned to colour, plumb_bob camera, {mode}; {args.layouts} scenes per "
          f"row, {args.repeats} calls each; {pinned}, NumPy/OpenCV single-threaded")  # fmt: skip
    head = (f"{'depth':>9} {'people':>6} {'lift med ms':>11} {'lift p95':>8} {'unpack ms':>9} {'err cm':>6} "
            f"{'>10 cm':>6} {'lifted':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for size_label, people, med, p95, unpack_ms, error_cm, off, lifted in rows:
        print(f"{size_label:>9} {people:>6} {med:>11.3f} {p95:>8.3f} {unpack_ms:>9.3f} {error_cm:>6.2f} "
              f"{off:>5.1f}% {lifted:>5.0f}%")  # fmt: skip
    print("err cm: median 3D error of the lifted keypoints nobody hides; >10 cm: share of those off by more "
          "(a nearer person's edge in the window); lifted: keypoints with a 3D position")
    key = f"{GOAL_PEOPLE}_people_{GOAL_SIZE[1]}x{GOAL_SIZE[0]}"
    if f"lift_ms_median_{key}" in figures:
        ratio = figures[f"lift_ms_median_{key}"] / GOAL_MS
        figures[f"goal_ratio_{key}"] = ratio
        verdict = "meets" if ratio <= 1.0 else "MISSES"
        print(f"goal: <= {GOAL_MS:g} ms for {GOAL_PEOPLE} people at {GOAL_SIZE[1]}x{GOAL_SIZE[0]} on one core; "
              f"median {figures[f'lift_ms_median_{key}']:.3f} ms = {ratio:.2f}x the goal ({verdict} it)")  # fmt: skip
    return figures
