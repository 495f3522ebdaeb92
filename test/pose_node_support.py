"""Shared by the pose node tests: small checkpoints, frames, a harness around a node and a probe node, and a
camera publisher in another process.

The harness runs the pose node and a probe node (publishers of frames, subscribers of outputs) in one
SingleThreadedExecutor spun by the test thread; the node's input thread takes frames and its worker thread
processes them on their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from strongpose_ros import checkpoint
from strongpose_ros.estimator import Estimator
from strongpose_ros.model import ModelConfig
from strongpose_ros.ros.pose_node import PoseNode

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0
INPUT_SIZE = 129
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
TRANSIENT = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# A random network's heat maps sit near their prior (0.01): with these thresholds the decoder still
# returns people (deterministically), so outputs have content to compare.
FIND_PEOPLE = {"decoder.peak_threshold": 0.0, "decoder.vote_threshold": 0.0, "decoder.max_people": 3,
               "decoder.min_instance_score": 0.0}
# Decoder settings equal to FIND_PEOPLE, for running the estimator directly.
FIND_PEOPLE_DECODER = {"peak_threshold": 0.0, "vote_threshold": 0.0, "max_people": 3, "min_instance_score": 0.0}


def make_checkpoint(path: Path, nan_head: str | None = None) -> Path:
    """A seeded, untrained ResNet-18 StrongPose checkpoint; `nan_head` ("heatmap", "short", "mid", "body")
    names a head whose bias is set to NaN, so that every output of that head is NaN."""
    estimator = Estimator.untrained(ModelConfig(backbone="resnet18", input_size=(INPUT_SIZE, INPUT_SIZE)), seed=0)
    model = estimator.model
    if nan_head is not None:
        with torch.no_grad():
            getattr(model.heads, nan_head).predict.bias.fill_(float("nan"))
    return checkpoint.save(path, model)


def frame(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A BGR test frame: smooth blobs, so that JPEG keeps it close."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    import cv2

    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def header(sec: int, nanosec: int = 0, frame_id: str = "camera_optical") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


class Harness:
    """A pose node with parameters, a probe node, one executor, and helpers to publish and wait."""

    def __init__(self, context: Any, checkpoint_path: Path | str, node_name: str = "pose_node",
                 cli_args: list[str] | None = None, **params: Any) -> None:
        params.setdefault("checkpoint", str(checkpoint_path))
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        self.context = context
        self.node = PoseNode(node_name, context=context, parameter_overrides=overrides, cli_args=cli_args)
        self.probe = rclpy.create_node("pose_node_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.received: dict[str, list] = defaultdict(list)
        self._publishers: dict[str, Any] = {}

    def subscribe(self, key: str, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> None:
        self.probe.create_subscription(msg_type, topic, self.received[key].append, qos)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        key = f"{topic}:{msg_type.__name__}"
        if key not in self._publishers:
            self._publishers[key] = self.probe.create_publisher(msg_type, topic, qos)
        return self._publishers[key]

    def spin_until(self, done, timeout: float = TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(done())

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def connect(self, publisher: Any, *subscribed: str) -> None:
        """Wait for DDS discovery: the publisher reaches the node, and the node's outputs reach the probe."""
        node_pubs = self.node._pubs
        assert self.spin_until(
            lambda: publisher.get_subscription_count() > 0
            and all(node_pubs[name].get_subscription_count() > 0 for name in subscribed)
        ), "DDS discovery did not complete"

    def settle(self, timeout: float = TIMEOUT_S) -> None:
        """Spin until the node has nothing waiting or in progress, then a little more for delivery."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.spin_for(0.05)
            if self.node.wait_idle(0.0):
                break
        self.spin_for(0.2)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.close()
        self.node.destroy_node()
        self.probe.destroy_node()


def diagnostics_values(array_msg: Any) -> dict[str, str]:
    status = array_msg.status[0]
    return {kv.key: kv.value for kv in status.values}


def node_env() -> dict[str, str]:
    """The environment of a ROS process started by a test: this session's private domain (conftest.py's rule)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["ROS_DOMAIN_ID"] = os.environ.get("STRONGPOSE_TEST_DOMAIN_ID", str(20 + os.getpid() % 80))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def start_camera_publisher(**options: object) -> subprocess.Popen:
    """`strongpose_ros.bench.camera_publisher` in its own process (options: width, height, rate, frames,
    reliability, transport, topic, settle, ...); `finish_camera_publisher` waits for its report."""
    command = [sys.executable, "-m", "strongpose_ros.bench.camera_publisher"]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env())


def finish_camera_publisher(process: subprocess.Popen, timeout: float = 90.0) -> dict:
    """The publisher's JSON report (frames published, ...); fails the test with its output if it failed."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the camera publisher did not finish in {timeout} s: {err[-2000:]}") from None
    reports = [line for line in out.splitlines() if line.startswith("{")]
    assert process.returncode == 0 and reports, f"camera publisher failed ({process.returncode}): {out}{err[-2000:]}"
    return json.loads(reports[-1])
