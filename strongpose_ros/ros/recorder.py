"""`BagRecorder`: a node that records topics into a rosbag2 (MCAP or sqlite3), like `ros2 bag record`.

ROS 2's rosbag2 is not available here (FACTS.md), so the demo records with this node: each topic is
subscribed with `raw=True` (the serialised CDR bytes, exactly as published) and written with the pure-Python
`rosbags` Writer, with the message definitions of the types (this package's from msg/), so the bag plays
in `ros2 bag play` and opens in Foxglove. Bag timestamps are the reception times on the node's clock
(rosbag2's own convention); the header stamps inside the messages are untouched. MCAP bags are written
with zstd chunk compression (as rosbag2's MCAP storage does by default): raw images shrink about 3x.
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from strongpose_ros.ros.adaptive_qos import AdaptiveSubscription
from strongpose_ros.ros.bag_types import typestore

__all__ = ["STORAGES", "BagRecorder", "RecordedTopic", "message_class", "open_writer"]

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_INFINITE = QosTime(sec=2147483647, nsec=4294967295)


@dataclass(frozen=True)
class RecordedTopic:
    """A topic to record: its name, type ('sensor_msgs/msg/Image'), and how to subscribe.

    - `reliable`: False to also hear best-effort publishers (cameras); reliable keeps every message of
      reliable publishers; also what the bag says `ros2 bag play` should offer;
    - `latched`: transient-local (a topic published once, like the pose node's `~/schema`);
    - `depth`: subscription history depth;
    - `follow_publishers`: subscribe reliable or best effort as the topic's publishers offer, re-checked as
      they come and go (`adaptive_qos`, the pose node's input rule): for a camera topic of unknown QoS."""

    topic: str
    msgtype: str
    reliable: bool = True
    latched: bool = False
    depth: int = 100
    follow_publishers: bool = False

    def qos(self) -> QoSProfile:
        return QoSProfile(
            depth=self.depth, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE if self.reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if self.latched else DurabilityPolicy.VOLATILE,
        )  # fmt: skip

    def offered_qos(self) -> list[Qos]:
        """The QoS `ros2 bag play` should offer when it replays the topic."""
        return [Qos(history=QosHistory.KEEP_LAST, depth=1 if self.latched else self.depth,
                    reliability=QosReliability.RELIABLE if self.reliable else QosReliability.BEST_EFFORT,
                    durability=QosDurability.TRANSIENT_LOCAL if self.latched else QosDurability.VOLATILE,
                    deadline=_INFINITE, lifespan=_INFINITE, liveliness=QosLiveliness.AUTOMATIC,
                    liveliness_lease_duration=_INFINITE, avoid_ros_namespace_conventions=False)]


def message_class(msgtype: str) -> type:
    """The rclpy message class of 'pkg/msg/Name'; a ValueError names a type that is not importable."""
    try:
        package, kind, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype!r} is not importable ({exc})") from None


def open_writer(path: Path, storage: str, compress: bool = True) -> Writer:
    """An open rosbags Writer for a new rosbag2; MCAP with zstd chunk compression when `compress`."""
    writer = Writer(path, version=9, storage_plugin=STORAGES[storage])
    if compress and storage == "mcap":
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    return writer


class BagRecorder(Node):
    """Records `topics` into a new rosbag2 at `path` until `close()`.

    Keyword arguments go to rclpy's Node (context, namespace, ...). Topic names are resolved against the
    node's namespace, as a subscription would resolve them.
    """

    def __init__(self, path: str | Path, topics: Sequence[RecordedTopic], *, storage: str = "mcap",
                 compress: bool = True, node_name: str = "bag_recorder", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; a recording needs a new folder")
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._writer: Writer | None = open_writer(self.path, storage, compress)
        store = typestore()
        self._recorded = {}
        for entry in topics:
            cls = message_class(entry.msgtype)
            name = self.resolve_topic_name(entry.topic)
            connection = self._writer.add_connection(name, entry.msgtype, typestore=store,
                                                     offered_qos_profiles=entry.offered_qos())
            if entry.follow_publishers:
                self._recorded[name] = AdaptiveSubscription(self, cls, name, self._writer_callback(name, connection),
                                                            reliability="auto", depth=entry.depth, raw=True)
            else:
                self._recorded[name] = self.create_subscription(
                    cls, name, self._writer_callback(name, connection), entry.qos(), raw=True)

    def _writer_callback(self, topic: str, connection: Any):
        def write(raw: bytes) -> None:
            stamp = self.get_clock().now().nanoseconds
            with self._lock:
                if self._writer is not None:
                    self._writer.write(connection, stamp, raw)
                    self.counts[topic] += 1

        return write

    def publisher_counts(self) -> dict[str, int]:
        """Publishers matched per recorded topic (to wait for discovery before starting a source)."""
        return {topic: sub.matched_publishers if isinstance(sub, AdaptiveSubscription) else sub.get_publisher_count()
                for topic, sub in self._recorded.items()}

    def close(self) -> None:
        """Finish the bag (writes its metadata); later messages are ignored. Idempotent."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        for sub in self._recorded.values():
            if isinstance(sub, AdaptiveSubscription):
                sub.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()
