"""Network cost per backbone: forward time, parameters, GMACs; and the cost of encoding training targets.

Every registered backbone can be measured (`--backbones`), each with its default options (mobilenet_v1: width
1.0, batch norm).

Forward passes run at batch 1 under `torch.inference_mode` on random input of the given size, at each
output stride, on the CPU (float32) and, when CUDA is available, on the GPU (float32 and float16). MACs
are counted by forward hooks on every convolution and linear layer (one multiply-add = 2 FLOPs); the
heads' grid sampling and the element-wise operations are not counted. Target encoding is timed on
synthetic annotations of N people (keypoints and polygon masks) at the same input size.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from strongpose_ros.model import build_model, encode_targets
from strongpose_ros.model.backbones import BACKBONES

DEFAULT_BACKBONES = ("mobilenet_v1", "resnet18", "resnet34", "resnet50", "resnet101")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES), choices=sorted(BACKBONES),
                        help="backbones to measure (default: %(default)s)")
    parser.add_argument("--strides", nargs="+", type=int, default=[16, 8], choices=[8, 16, 32],
                        help="output strides (default: %(default)s)")
    parser.add_argument("--size", type=int, default=401, help="square input side in pixels (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes per case (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (default: %(default)s)")
    parser.add_argument("--people", type=int, default=20, help="people in the target-encoding case (default: 20)")
    parser.add_argument("--encode-repeats", type=int, default=30, help="timed target encodings (default: 30)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the GPU even when one is available")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def count_macs(model: nn.Module, images: torch.Tensor) -> int:
    """Multiply-accumulates of the convolutions and linear layers in one forward pass."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return total


def time_call(
    fn: Callable[[], object], repeats: int, warmup: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
    """Wall-clock seconds of each of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def synthetic_annotations(people: int, size: int, seed: int = 0) -> list[dict]:
    """`people` standing figures scattered over a size x size image: 17 keypoints each, an elliptic mask."""
    rng = np.random.default_rng(seed)
    # A rough COCO-17 layout in units of body height, centred on the hips.
    layout = np.array([
        [0, -0.45], [-0.03, -0.48], [0.03, -0.48], [-0.07, -0.46], [0.07, -0.46], [-0.12, -0.32], [0.12, -0.32],
        [-0.17, -0.15], [0.17, -0.15], [-0.19, 0.0], [0.19, 0.0], [-0.08, 0.0], [0.08, 0.0],
        [-0.09, 0.22], [0.09, 0.22], [-0.09, 0.45], [0.09, 0.45],
    ])
    annotations = []
    for _ in range(people):
        height = rng.uniform(0.15, 0.5) * size
        centre = rng.uniform(0.1 * size, 0.9 * size, 2)
        points = centre + layout * height + rng.normal(0, 0.01 * height, layout.shape)
        visible = rng.random(17) < 0.85
        keypoints = np.column_stack([points, np.where(visible, 2, 0)])
        angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        polygon = np.column_stack([centre[0] + 0.22 * height * np.cos(angle), centre[1] + 0.5 * height * np.sin(angle)])
        annotations.append({
            "keypoints": keypoints.ravel().tolist(),
            "num_keypoints": int(visible.sum()),
            "iscrowd": 0,
            "segmentation": [np.clip(polygon, 0, size - 1).ravel().tolist()],
        })
    return annotations


def run(args: argparse.Namespace) -> dict:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    size = args.size
    devices = [("cpu", torch.float32)]
    if torch.cuda.is_available() and not args.no_cuda:
        devices += [("cuda", torch.float32), ("cuda", torch.float16)]
    figures: dict[str, float] = {"input_size_px": size, "cpu_threads": torch.get_num_threads()}
    print(f"StrongPose network at {size}x{size}, batch 1, {torch.get_num_threads()} CPU threads, "
          f"median of {args.repeats} passes")
    column = max(10, *(len(name) for name in args.backbones))
    print(f"{'backbone':<{column}} {'stride':>6} {'grid':>7} {'params M':>9} {'GMACs':>8} {'GFLOPs':>8}  "
          "forward ms: median (min)")
    for name in args.backbones:
        model = build_model(backbone=name).eval()
        params = sum(p.numel() for p in model.parameters())
        trunk = sum(p.numel() for p in model.backbone.parameters())
        figures[f"params_millions_{name}"] = params / 1e6
        figures[f"params_millions_{name}_trunk"] = trunk / 1e6
        for stride in args.strides:
            model.set_output_stride(stride)
            images = torch.randn(1, 3, size, size)
            macs = count_macs(model, images)
            grid = (size - 1) // stride + 1
            key = f"{name}_s{stride}_{size}px"
            figures[f"gmacs_{key}"] = macs / 1e9
            figures[f"gflops_{key}"] = 2 * macs / 1e9
            timings = []
            for device, dtype in devices:
                net = model.to(device=device, dtype=dtype)
                x = images.to(device=device, dtype=dtype)
                sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

                def forward(net=net, x=x):
                    with torch.inference_mode():
                        return net(x)

                seconds = time_call(forward, args.repeats, args.warmup, sync)
                ms, best = 1000 * statistics.median(seconds), 1000 * min(seconds)
                label = f"{device}_{'fp16' if dtype == torch.float16 else 'fp32'}"
                figures[f"forward_ms_median_{key}_{label}"] = ms
                figures[f"forward_ms_min_{key}_{label}"] = best
                timings.append(f"{label} {ms:8.1f} ({best:.1f})")
            model.to(device="cpu", dtype=torch.float32)
            print(f"{name:<{column}} {stride:>6} {grid:>3}x{grid:<3} {params / 1e6:>9.2f} {macs / 1e9:>8.2f} "
                  f"{2 * macs / 1e9:>8.2f}  " + "  ".join(timings))

    annotations = synthetic_annotations(args.people, size)
    print(f"\nTarget encoding, {args.people} people at {size}x{size} (median of {args.encode_repeats}):")
    for stride in args.strides:
        seconds = time_call(lambda s=stride: encode_targets(annotations, (size, size), s), args.encode_repeats, 1)
        ms = 1000 * statistics.median(seconds)
        figures[f"encode_targets_ms_median_{args.people}_people_s{stride}_{size}px"] = ms
        line = f"  stride {stride:>2}: {ms:7.2f} ms"
        reference = figures.get(f"forward_ms_median_resnet18_s{stride}_{size}px_cpu_fp32")
        if reference:
            ratio = ms / reference
            figures[f"encode_targets_to_resnet18_forward_ratio_s{stride}"] = ratio
            line += f"  ({ratio:.3f} of a ResNet-18 forward at the same stride)"
        print(line)
    return figures
