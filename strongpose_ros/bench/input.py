"""Camera input: what reaches pose_node from a camera publisher in another process, and what becomes of it.

For each case (frame size x rate x publisher reliability x raw/compressed) a camera stand-in
(`camera_publisher`, its own process) publishes for `--seconds` to a real `PoseNode` with default
parameters (adaptive input QoS, the bundled model) spun by a MultiThreadedExecutor, as `pose_node`'s main
does; a listener in the same process receives `~/persons`. Per case it prints the frames published, what
the node counted (received by its callback, lost in transport, dropped by newest-wins, processed, bad),
`unaccounted` = published - (lost + processed + dropped + bad) (0 when every frame is in a counter), the
input QoS the node chose, and the end-to-end latency (publication stamp to PersonArray arrival) p50/p95.

`--fastdds-profile` runs both processes with FASTDDS_DEFAULT_PROFILES_FILE set to the large-images profile
(config/fastdds_large_images.xml), to compare. `--param NAME=VALUE` sets a pose node parameter (e.g.
`--param input.depth=1` for the old default).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "config" / "fastdds_large_images.xml"
SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


@dataclass(frozen=True)
class Case:
    size: str
    rate: float
    reliability: str
    transport: str

    @property
    def label(self) -> str:
        return f"{self.size}@{self.rate:g}Hz {self.reliability} {self.transport}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=4.0, help="publishing time per case (default: %(default)s)")
    parser.add_argument("--sizes", default=",".join(SIZES), help="frame sizes (default: %(default)s)")
    parser.add_argument("--rates", default="15,30", help="frames per second (default: %(default)s)")
    parser.add_argument("--reliability", default="reliable,best_effort",
                        help="publisher reliabilities (default: %(default)s)")
    parser.add_argument("--transports", default="raw,compressed", help="raw, compressed (default: %(default)s)")
    parser.add_argument("--checkpoint", default="", help="pose node checkpoint ('': the bundled model)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a pose node parameter (YAML value), repeatable")
    parser.add_argument("--fastdds-profile", action="store_true",
                        help=f"run both processes with FASTDDS_DEFAULT_PROFILES_FILE={PROFILE.relative_to(REPO)}")
    parser.add_argument("--domain-id", type=int, default=None, help="DDS domain (default: 150 + pid %% 80)")


def _cases(args: argparse.Namespace) -> list[Case]:
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
    rates = [float(r) for r in args.rates.split(",")]
    return [Case(*c) for c in itertools.product(sizes, rates, args.reliability.split(","), args.transports.split(","))]


class _Rig:
    """A PoseNode and a PersonArray listener in this process, spun by a MultiThreadedExecutor thread."""

    def __init__(self, domain_id: int, params: dict[str, Any]) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from strongpose_ros.msg import PersonArray
        from strongpose_ros.ros.pose_node import PoseNode

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = PoseNode(context=self.context,
                             parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        if self.node.lifecycle_state != "active":
            raise RuntimeError(f"pose_node did not start: {self.node.startup_error}")
        self.listener = rclpy.create_node("input_bench_listener", context=self.context)
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self.listener.create_subscription(PersonArray, "/pose_node/persons", self._on_persons,
                                          QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.listener)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def _on_persons(self, msg: Any) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self.latencies.append((time.time() - stamp) * 1e3)

    def set_transport(self, transport: str) -> None:
        from rclpy.parameter import Parameter

        node = self.node
        if node.settings.input.transport == transport:
            return
        node.trigger_deactivate()
        if not node.set_parameters([Parameter("input.transport", value=transport)])[0].successful:
            raise RuntimeError("cannot set input.transport")
        node.trigger_activate()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.close()
        self.node.destroy_node()
        self.listener.destroy_node()
        self.context.try_shutdown()


def _run_case(rig: _Rig, case: Case, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    width, height = SIZES[case.size]
    rig.set_transport(case.transport)
    node = rig.node
    node.wait_idle(30)
    time.sleep(0.5)
    before = node.stats.snapshot()
    with rig._lock:
        rig.latencies.clear()
    frames = max(1, round(seconds * case.rate))
    command = [sys.executable, "-m", "strongpose_ros.bench.camera_publisher", "--width", str(width), "--height",
               str(height), "--rate", str(case.rate), "--frames", str(frames), "--reliability", case.reliability,
               "--transport", case.transport, "--topic", "/image",
               # Long enough for a reliable reader that fell behind to catch up before the publisher leaves.
               "--linger", "3"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 90)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"published": 0, "error": done.stderr[-500:]}
    node.wait_idle(60)
    time.sleep(0.5)
    after = node.stats.snapshot()
    with rig._lock:
        latencies = list(rig.latencies)
    counts = {
        "published": int(report.get("published", 0)),
        "received": after.received - before.received,
        "lost_in_transport": after.lost - before.lost,
        "dropped": after.dropped - before.dropped,
        "processed": after.processed - before.processed,
        "bad": after.bad_total - before.bad_total,
    }
    counts["unaccounted"] = counts["published"] - (counts["lost_in_transport"] + counts["processed"]
                                                   + counts["dropped"] + counts["bad"])
    return {
        **counts,
        "frame_kb": report.get("frame_bytes", 0) / 1024,
        "node_reliability": node.camera.reliability,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "error": report.get("error", ""),
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    cases = _cases(args)
    domain_id = args.domain_id if args.domain_id is not None else 150 + os.getpid() % 80
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if args.fastdds_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)  # before this process's rclpy.init
    params: dict[str, Any] = {"checkpoint": args.checkpoint}
    for item in args.param:
        name, _, value = item.partition("=")
        params[name] = yaml.safe_load(value)
    print(f"input benchmark: {len(cases)} cases x {args.seconds:g} s; pose node {params}; torch threads "
          f"{torch.get_num_threads()}; Fast DDS profile {'on' if args.fastdds_profile else 'off'}; domain {domain_id}",
          flush=True)
    rig = _Rig(domain_id, params)
    figures: dict[str, Any] = {"seconds_per_case": args.seconds, "fastdds_profile": bool(args.fastdds_profile),
                               "params": {k: str(v) for k, v in params.items()}, "cases": {}}
    header = (f"{'case':34s} {'kB':>6s} {'pub':>4s} {'recv':>4s} {'lost':>4s} {'drop':>4s} {'proc':>4s} {'bad':>3s} "
              f"{'unacc':>5s} {'node QoS':>11s} {'p50 ms':>7s} {'p95 ms':>7s}")
    print(header)
    try:
        for case in cases:
            row = _run_case(rig, case, args.seconds, env)
            figures["cases"][case.label] = row
            print(f"{case.label:34s} {row['frame_kb']:6.0f} {row['published']:4d} {row['received']:4d} "
                  f"{row['lost_in_transport']:4d} {row['dropped']:4d} {row['processed']:4d} {row['bad']:3d} "
                  f"{row['unaccounted']:5d} {row['node_reliability']:>11s} {row['latency_ms_p50']:7.0f} "
                  f"{row['latency_ms_p95']:7.0f}" + (f"  {row['error']}" if row["error"] else ""), flush=True)
    finally:
        rig.close()
    rows = list(figures["cases"].values())
    figures["published_total"] = sum(r["published"] for r in rows)
    figures["received_share"] = (sum(r["received"] for r in rows) / figures["published_total"]
                                 if figures["published_total"] else float("nan"))
    figures["unaccounted_total"] = sum(r["unaccounted"] for r in rows)
    print(f"received by the node: {figures['received_share']:.1%} of {figures['published_total']} frames; "
          f"unaccounted: {figures['unaccounted_total']}")
    return figures
