"""pose_node end to end over DDS: latency, throughput, and the node's own overhead per frame.

A camera stand-in publishes 640x480 bgr8 frames to a real `PoseNode` (rclpy, Fast DDS, one process, a
private DDS domain); a listener receives the PersonArrays. Three runs per device:

1. closed loop: the next frame is published when the previous PersonArray arrives; end-to-end latency
   (publish to receipt, DDS both ways included) and throughput;
2. overload: frames published five times faster than that throughput (the default newest-frame mode):
   latency, output rate, dropped share and memory (RSS) before and after;
3. closed loop with the heavy outputs subscribed (body heat map, overlay, markers).

The node's overhead is what it adds to the estimator's preprocessing and network: taking the message
off DDS (deserialisation, timed apart), image conversion, decoding, tracking, message building and
publishing (the node's own stage timers), as a share of the frame time (overhead + preprocess +
network); goal <= 10%. The heavy outputs are reported on top of that. The rest of the end-to-end latency
(`transport_ms_p50`) is DDS both ways and executor scheduling. The network is a seeded untrained one saved as a real
checkpoint. With `--people N` (default 5) the decoder thresholds are set to 0 and at most N people are
kept, so the decoder and message building have people to work on (a random network finds nobody at the
default thresholds); `--people 0` keeps the defaults.

CPU: ResNet-18 at 321 (float32). GPU, when CUDA is available: ResNet-101 at 401 in float16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OVERHEAD_STAGES = ("conversion", "decode", "estimator_other", "tracking", "messages", "publish")
MODEL_STAGES = ("preprocess", "network")


@dataclass(frozen=True)
class Case:
    label: str
    device: str
    backbone: str
    input_size: int
    half: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=40, help="timed frames per run (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first (default: %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="frame width (default: %(default)s)")
    parser.add_argument("--height", type=int, default=480, help="frame height (default: %(default)s)")
    parser.add_argument("--people", type=int, default=5,
                        help="force up to N people per frame (decoder thresholds 0); 0: default thresholds")
    parser.add_argument("--overload", type=float, default=5.0,
                        help="publish this many times faster than the node's throughput (default: %(default)s)")
    parser.add_argument("--cpu-backbone", default="resnet18", help="CPU case backbone (default: %(default)s)")
    parser.add_argument("--cpu-size", type=int, default=321, help="CPU case input size (default: %(default)s)")
    parser.add_argument("--gpu-backbone", default="resnet101", help="GPU case backbone (default: %(default)s)")
    parser.add_argument("--gpu-size", type=int, default=401, help="GPU case input size (default: %(default)s)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the GPU case even when CUDA is available")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU case")


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _deserialize_ms(msg: Any, repeats: int = 20) -> float:
    from rclpy.serialization import deserialize_message, serialize_message

    data = serialize_message(msg)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        deserialize_message(data, type(msg))
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def _frame(width: int, height: int) -> np.ndarray:
    """A smooth synthetic picture (what a camera sees is closer to this than to noise)."""
    import cv2

    small = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


class _Rig:
    """PoseNode + camera/listener node on one private domain, spun by a background executor."""

    def __init__(self, checkpoint: Path, case: Case, people: int, domain_id: int) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from strongpose_ros.msg import PersonArray
        from strongpose_ros.ros.pose_node import PoseNode

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        params = {"checkpoint": str(checkpoint), "device": case.device, "half": case.half,
                  "input_size": case.input_size}
        if people > 0:
            params.update({"decoder.peak_threshold": 0.0, "decoder.vote_threshold": 0.0, "decoder.max_people": people})
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        self.node = PoseNode(context=self.context, parameter_overrides=overrides)
        if self.node.lifecycle_state != "active":
            raise RuntimeError(f"pose_node did not start: {self.node.startup_error}")
        self.probe = rclpy.create_node("bench_probe", context=self.context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = self.probe.create_publisher(Image, "/image", reliable)
        self.arrivals: dict[int, float] = {}
        self.people_counts: list[int] = []
        self._lock = threading.Lock()
        self.probe.create_subscription(PersonArray, "/pose_node/persons", self._on_persons, reliable)
        self._heavy_subs: list[Any] = []
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        self._wait(lambda: self.publisher.get_subscription_count() > 0
                   and self.node._pubs["persons"].get_subscription_count() > 0, 30, "DDS discovery")

    def _on_persons(self, msg: Any) -> None:
        with self._lock:
            self.arrivals[msg.header.stamp.nanosec] = time.perf_counter()
            self.people_counts.append(len(msg.persons))

    @staticmethod
    def _wait(done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.002)

    def subscribe_heavy(self) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        from strongpose_ros.msg import BodyHeatmap

        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        for msg_type, topic in ((BodyHeatmap, "body_heatmap"), (Image, "overlay"), (MarkerArray, "markers")):
            self._heavy_subs.append(self.probe.create_subscription(msg_type, f"/pose_node/{topic}", lambda m: None,
                                                                   qos))
        pubs = self.node._pubs
        self._wait(lambda: all(pubs[n].get_subscription_count() > 0 for n in ("body_heatmap", "overlay", "markers")),
                   30, "DDS discovery of the heavy outputs")

    def message(self, image: np.ndarray, tag: int) -> Any:
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from strongpose_ros.ros.image_conversion import numpy_to_image

        # The stamp carries the frame's tag in nanosec (monotonic in tag: the tracker sees time move on).
        return numpy_to_image(image, "bgr8", Header(stamp=Time(sec=1, nanosec=tag), frame_id="camera"))

    def closed_loop(self, image: np.ndarray, frames: int, warmup: int, first_tag: int) -> tuple[list[float], float]:
        """Latencies (ms) of `frames` frames published one after the other; and frames per second."""
        latencies = []
        started = None
        for i in range(warmup + frames):
            tag = first_tag + i
            msg = self.message(image, tag)
            if i == warmup:
                self.node.stats.reset()
                started = time.perf_counter()
            sent = time.perf_counter()
            self.publisher.publish(msg)
            self._wait(lambda t=tag: t in self.arrivals, 120, f"the PersonArray of frame {tag}")
            if i >= warmup:
                latencies.append((self.arrivals[tag] - sent) * 1e3)
        elapsed = time.perf_counter() - started
        return latencies, frames / elapsed

    def overload(self, image: np.ndarray, frames: int, rate_hz: float, first_tag: int) -> dict[str, float]:
        self.node.stats.reset()
        self.node.wait_idle(60)
        sent_at = {}
        rss_start = _rss_mb()
        period = 1.0 / rate_hz
        started = time.perf_counter()
        for i in range(frames):
            tag = first_tag + i
            msg = self.message(image, tag)
            target = started + i * period
            while time.perf_counter() < target:
                time.sleep(min(0.001, max(0.0, target - time.perf_counter())))
            sent_at[tag] = time.perf_counter()
            self.publisher.publish(msg)
        last = first_tag + frames - 1
        self._wait(lambda: last in self.arrivals, 120, "the last frame of the overload run")
        elapsed = time.perf_counter() - started
        self.node.wait_idle(60)
        rss_end = _rss_mb()
        latencies = [(self.arrivals[t] - sent_at[t]) * 1e3 for t in sent_at if t in self.arrivals]
        snapshot = self.node.stats.snapshot()
        return {
            "overload_input_fps": rate_hz,
            "overload_output_fps": len(latencies) / elapsed,
            "overload_latency_ms_p50": _percentile(latencies, 50),
            "overload_latency_ms_p95": _percentile(latencies, 95),
            "overload_latency_ms_max": max(latencies) if latencies else float("nan"),
            "overload_dropped_share": snapshot.dropped / max(1, snapshot.received),
            "overload_frames_held_max": float(self.node._buffer.high_water),
            "overload_rss_mb_start": rss_start,
            "overload_rss_mb_end": rss_end,
        }

    def stage_figures(self, image: np.ndarray, e2e_ms_p50: float, prefix: str = "") -> dict[str, float]:
        """Median stage timings of the last run, the node's overhead and its share of the frame time."""
        samples = self.node.stats.stage_samples()
        n = min(len(v) for v in samples.values())
        # Taking the message off DDS (deserialisation) happens before the node's callback; timed here.
        receive = _deserialize_ms(self.message(image, 0))
        per_frame_overhead = [receive + sum(samples[s][i] for s in OVERHEAD_STAGES if s in samples) for i in range(n)]
        per_frame_model = [sum(samples[s][i] for s in MODEL_STAGES) for i in range(n)]
        figures = {f"{prefix}stage_ms_median_{name}": statistics.median(values[:n]) for name, values in samples.items()}
        figures[f"{prefix}stage_ms_median_receive"] = receive
        overhead = statistics.median(per_frame_overhead)
        model = statistics.median(per_frame_model)
        figures[f"{prefix}node_overhead_ms_median"] = overhead
        figures[f"{prefix}frame_ms_median"] = overhead + model
        figures[f"{prefix}node_overhead_pct"] = 100.0 * overhead / (overhead + model)
        if prefix == "heavy_":
            heavy = statistics.median(samples["heavy_outputs"][:n])
            figures[f"{prefix}node_overhead_with_heavy_outputs_pct"] = (
                100.0 * (overhead + heavy) / (overhead + heavy + model))
        # In the node: arrival in the callback to the PersonArray published; the rest of the end-to-end
        # latency is DDS (both ways) and executor scheduling.
        node_latency = _percentile(self.node.stats.latency_samples(), 50)
        figures[f"{prefix}node_latency_ms_p50"] = node_latency
        figures[f"{prefix}transport_ms_p50"] = e2e_ms_p50 - node_latency
        return figures

    def close(self) -> None:
        self.executor.shutdown()
        self.node.close()
        self.node.destroy_node()
        self.probe.destroy_node()
        self.context.try_shutdown()
        self._spinner.join(10)


def _run_case(case: Case, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    from strongpose_ros import checkpoint
    from strongpose_ros.estimator import Estimator
    from strongpose_ros.model import ModelConfig

    config = ModelConfig(backbone=case.backbone, input_size=(case.input_size, case.input_size))
    path = checkpoint.save(workdir / f"{case.backbone}_{case.input_size}.safetensors",
                           Estimator.untrained(config, seed=0).model)
    image = _frame(args.width, args.height)
    rig = _Rig(path, case, args.people, domain_id=100 + os.getpid() % 100)
    try:
        latencies, fps = rig.closed_loop(image, args.frames, args.warmup, first_tag=0)
        figures = {
            "e2e_latency_ms_p50": _percentile(latencies, 50),
            "e2e_latency_ms_p95": _percentile(latencies, 95),
            "e2e_latency_ms_max": max(latencies),
            "throughput_fps": fps,
            "people_per_frame": float(statistics.median(rig.people_counts)),
        }
        figures.update(rig.stage_figures(image, figures["e2e_latency_ms_p50"]))
        figures.update(rig.overload(image, max(args.frames, 20) * 2, args.overload * fps, first_tag=10_000))
        rig.subscribe_heavy()
        heavy_latencies, heavy_fps = rig.closed_loop(image, args.frames, args.warmup, first_tag=20_000)
        figures["heavy_e2e_latency_ms_p50"] = _percentile(heavy_latencies, 50)
        figures["heavy_e2e_latency_ms_p95"] = _percentile(heavy_latencies, 95)
        figures["heavy_throughput_fps"] = heavy_fps
        figures.update(rig.stage_figures(image, figures["heavy_e2e_latency_ms_p50"], "heavy_"))
    finally:
        rig.close()
    return {f"{case.label}_{k}": float(v) for k, v in figures.items()}


def _print(case: Case, figures: dict[str, float]) -> None:
    prefix = case.label + "_"
    print(f"\n{case.label}: {case.backbone} at {case.input_size}, {case.device}"
          f"{' float16' if case.half else ''} ({os.cpu_count()} CPU cores)")
    for key, value in figures.items():
        if key.startswith(prefix):
            print(f"  {key[len(prefix):]:<48} {value:10.2f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    cases = []
    if not args.no_cpu:
        cases.append(Case("cpu", "cpu", args.cpu_backbone, args.cpu_size, False))
    if not args.no_cuda and torch.cuda.is_available():
        cases.append(Case("gpu", "cuda", args.gpu_backbone, args.gpu_size, True))
    figures: dict[str, Any] = {"frame_width": args.width, "frame_height": args.height, "frames": args.frames}
    with tempfile.TemporaryDirectory(prefix="strongpose_bench_node_") as tmp:
        for case in cases:
            case_figures = _run_case(case, args, Path(tmp))
            figures.update(case_figures)
            figures[f"{case.label}_input_size"] = case.input_size
            _print(case, case_figures)
    goal = [f"{c.label}: {figures[f'{c.label}_node_overhead_pct']:.1f}%" for c in cases]
    print(f"\nnode overhead share of the frame time (goal <= 10%): {', '.join(goal)}")
    return figures
