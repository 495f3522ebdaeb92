"""Shared by the pose node tests: small checkpoints, frames, and a harness around a node and a probe node.

The harness runs the pose node and a probe node (publishers of frames, subscribers of outputs) in one
SingleThreadedExecutor spun by the test thread; the node's worker thread processes frames on its own.
"""

from __future__ import annotations

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
