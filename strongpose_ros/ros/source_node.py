"""`source_node`: camera frames as `sensor_msgs/Image` from a V4L2 camera, a video file, a folder or a rosbag2.

The frames come from `frame_sources` (plain Python, shared with the demo and tools); this module is the node.
Publishes, named as a camera driver and image_transport name them (relative, so they follow the namespace;
`image` remapped to /camera/image_raw moves the others to /camera/image_raw/compressed and /camera/camera_info):
- `image` (sensor_msgs/Image, bgr8 for camera/video/folder; a bag's own messages as recorded);
- `camera_info` (sensor_msgs/CameraInfo, same header as the image), the image topic's sibling, when known:
  from `camera_info_file` (a camera_calibration_parsers YAML file) or from the bag's CameraInfo topic;
- `<image>/compressed` (sensor_msgs/CompressedImage, JPEG) with `publish_compressed`; a bag holding
  CompressedImage messages republishes them there as recorded (and decoded on `image`);
- `/clock` (rosgraph_msgs/Clock, the bag's recorded time) with `publish_clock`, for `use_sim_time`;
- `~/done` (std_msgs/Bool, transient local): true once the source ran out in `loop: false` mode. The node
  then stops publishing, `node.done` is set, and `main` exits, so a demo or a launch file knows it ended.

QoS: reliable by default (`reliability`), which every subscriber matches, reliable or best effort, and which
delivers large frames whole to reliable subscribers (a pose node with `input.reliability: auto` follows it);
`best_effort` behaves as a sensor-data camera driver does. With `wait_for_subscriber` (default) nothing is
published before a subscriber of the images is matched (and, with `lockstep_topic`, the PersonArray
publisher), so the first frames are not published into the void.

Stamps: camera, video and folder frames are stamped with the node's clock when read, with frame_id
`camera_optical_frame` (REP-103/105: z forward, as RViz markers in the image plane assume); bag frames keep
the header stamps they were recorded with (and their frame_id unless `frame_id` is set).

Pacing (`rate`, Hz): 0 follows the source (camera: as delivered; video: its frame rate; bag: the recorded
spacing; folder: `SourceTiming.folder_rate_hz`), a positive rate publishes at that rate. A source that falls
behind never bursts to catch up. `lockstep_topic` makes the node wait, after each frame, for a PersonArray
carrying that frame's stamp (the pose node's `~/persons`): every frame is processed, whatever the speed of
the machine (the demo and tests use it).

Bad input: a missing device or file, an unreadable video, a bag without the topic (the error lists the
topics it has) stop the node at start-up with `startup_error` set (main exits with 1). A frame that cannot be
read or decoded mid-stream is logged and skipped (`frames_skipped`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Bool, Header

from strongpose_ros.ros.calibration import load_camera_info
from strongpose_ros.ros.frame_sources import (
    COMPRESSED_TYPE,
    SOURCES,
    FrameSource,
    SourceError,
    SourceFrame,
    open_source,
)
from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image, to_bgr8
from strongpose_ros.ros.image_topics import camera_topics
from strongpose_ros.ros.startup import init_rclpy, warn_undeclared_parameters

__all__ = [
    "DEFAULT_FRAME_ID",
    "PARAMETERS",
    "RELIABILITIES",
    "SourceError",
    "SourceNode",
    "SourceNodeTiming",
    "SourceSettings",
    "image_qos",
    "main",
    "settings_from_values",
]

RELIABILITIES = ("reliable", "best_effort")
DONE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
ACK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def image_qos(reliability: str = "reliable", depth: int = 10) -> QoSProfile:
    """The QoS of the frames published: reliable reaches reliable and best-effort subscribers alike."""
    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=depth, reliability=policy, history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class SourceNodeTiming:
    """Timing constants of the source node [ours].

    - `done_grace_s`: `main` keeps spinning this long after the end, so reliable subscribers get the last frame;
    - `join_timeout_s`: how long stopping waits for the publishing thread;
    - `match_poll_s`: how often the wait for a subscriber looks again.
    """

    done_grace_s: float = 0.5
    join_timeout_s: float = 5.0
    match_poll_s: float = 0.05


TIMING = SourceNodeTiming()


# ------------------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class SourceSettings:
    """The source node's parameters (names, defaults and meanings: `PARAMETERS`)."""

    source: str = "camera"
    path: str = ""
    topic: str = ""
    rate: float = 0.0
    loop: bool = False
    frame_id: str = ""
    camera_info_file: str = ""
    camera_info_topic: str = ""
    publish_clock: bool = False
    publish_compressed: bool = False
    width: int = 0
    height: int = 0
    autostart: bool = True
    lockstep_topic: str = ""
    lockstep_timeout: float = 10.0
    reliability: str = "reliable"
    wait_for_subscriber: bool = True

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITIES:
            raise SourceError(f"parameter 'reliability' must be one of {list(RELIABILITIES)}, got {self.reliability!r}")
        if self.source not in SOURCES:
            raise SourceError(f"parameter 'source' must be one of {list(SOURCES)}, got {self.source!r}")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise SourceError(f"parameter 'rate' must be >= 0 Hz (0: the source's own), got {self.rate!r}")
        if self.width < 0 or self.height < 0:
            raise SourceError(f"parameters 'width'/'height' must be >= 0, got {self.width}x{self.height}")
        if not self.lockstep_timeout > 0:
            raise SourceError(f"parameter 'lockstep_timeout' must be > 0 s, got {self.lockstep_timeout!r}")


PARAMETERS: dict[str, str] = {
    "source": "'camera' (V4L2 device), 'video' (a video file), 'folder' (images, natural name order) or 'bag' "
              "(a rosbag2, sqlite3 or MCAP)",
    "path": "camera: index ('0') or device path ('/dev/video0'); video/folder/bag: the file or folder",
    "topic": "bag: the Image or CompressedImage topic to play ('': the bag's only image topic)",
    "rate": "frames per second; 0: the source's own (camera as delivered, video fps, bag recorded timing, "
            "folder 10 Hz)",
    "loop": "start again at the end (video, folder, bag); false: publish once, then signal ~/done and stop",
    "frame_id": "header frame_id ('': 'camera_optical_frame' for camera/video/folder, a bag's recorded one)",
    "camera_info_file": "camera_calibration_parsers YAML: publish camera_info (beside the image topic) with every "
                        "frame",
    "camera_info_topic": "bag: the CameraInfo topic ('': <camera>/camera_info next to the image topic, if present)",
    "publish_clock": "bag: publish /clock with the bag's recorded time (for use_sim_time)",
    "publish_compressed": "also publish <image>/compressed (JPEG)",
    "width": "camera: requested capture width (0: the driver's default)",
    "height": "camera: requested capture height (0: the driver's default)",
    "autostart": "start publishing at once (false: wait for start())",
    "lockstep_topic": "publish the next frame only after a PersonArray with the last frame's stamp arrived here",
    "lockstep_timeout": "seconds to wait for that PersonArray before going on",
    "reliability": "QoS of the published frames: 'reliable' (every subscriber matches it; large frames arrive "
                   "whole) or 'best_effort' (as sensor-data camera drivers publish)",
    "wait_for_subscriber": "publish the first frame only once a subscriber of the images is matched (and the "
                           "lockstep_topic publisher, if set)",
}
# REP-103/105: an optical frame (z forward, x right, y down), which the pose node's image-plane markers assume.
DEFAULT_FRAME_ID = "camera_optical_frame"


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Launch files and the command line turn '0' into 0 and 1 into 1.0: accept what means the same."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise SourceError(f"parameter '{name}' must be a {type(default).__name__}, got {value!r}")


def settings_from_values(values: dict[str, Any]) -> SourceSettings:
    defaults = SourceSettings()
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise SourceError(f"unknown parameter(s) {unknown}")
    return SourceSettings(**{k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()})


class _Pacer:
    """When each frame is due (time.monotonic): a fixed period, or the recorded spacing of a bag.

    A frame that is late moves the schedule forward instead of being followed by a burst of catch-up frames.
    """

    def __init__(self, period: float, timed: bool) -> None:
        self.period, self.timed = period, timed
        self.reset()

    def reset(self) -> None:
        self._origin: tuple[float, int] | None = None
        self._count = 0

    def due(self, time_ns: int | None, now: float) -> float:
        if self._origin is None:
            self._origin, self._count = (now, time_ns or 0), 0
            return now
        self._count += 1
        if self.timed and time_ns is not None:
            offset = max(0, time_ns - self._origin[1]) * 1e-9
        else:
            offset = self._count * self.period
        due = self._origin[0] + offset
        if due < now:
            self._origin = (self._origin[0] + (now - due), self._origin[1])
            due = now
        return due


def _stamp_key(header: Header) -> tuple[int, int]:
    return int(header.stamp.sec), int(header.stamp.nanosec)


# ------------------------------------------------------------------------------------------------ the node
class SourceNode(Node):
    """Publishes frames from a camera, video, folder or bag (see the module docstring).

    Keyword arguments go to rclpy's Node (context, namespace, parameter_overrides, cli_args, ...). After
    construction, `startup_error` is None or says why the source could not be opened.
    """

    def __init__(self, node_name: str = "source_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        defaults = SourceSettings()
        values = {}
        for name, description in PARAMETERS.items():
            # Dynamic typing: a launch file's '0' arrives as an integer; `_coerce` checks the meaning instead.
            descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
            values[name] = self.declare_parameter(name, getattr(defaults, name), descriptor).value
        warn_undeclared_parameters(self, PARAMETERS)
        self.startup_error: str | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self.frames_published = 0
        self.lockstep_timeouts = 0
        self.source: FrameSource | None = None
        self._camera_info: CameraInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acked: set[tuple[int, int]] = set()
        self._ack_cond = threading.Condition()
        self._skipped_final = 0
        self.settings = defaults
        try:
            self.settings = settings_from_values(values)
            self.source = open_source(self.settings.source, self.settings.path, topic=self.settings.topic,
                                      camera_info_topic=self.settings.camera_info_topic, width=self.settings.width,
                                      height=self.settings.height, warn=self.get_logger().warning)
            if self.settings.camera_info_file:
                self._camera_info = load_camera_info(self.settings.camera_info_file)
        except SourceError as exc:
            self.startup_error = str(exc)
            self.get_logger().error(self.startup_error)
            return
        settings = self.settings
        if settings.publish_clock and self.source.kind != "bag":
            self.get_logger().warning("publish_clock applies to bags only; no /clock is published")
        qos = image_qos(settings.reliability)
        image_topic, info_topic = camera_topics(self, "raw")
        self._image_pub = self.create_publisher(Image, image_topic, qos)
        self._info_pub = self.create_publisher(CameraInfo, info_topic, qos)
        self._compressed_pub = None
        if settings.publish_compressed or getattr(self.source, "msgtype", "") == COMPRESSED_TYPE:
            self._compressed_pub = self.create_publisher(CompressedImage, camera_topics(self, "compressed")[0], qos)
        self._clock_pub = None
        if settings.publish_clock and self.source.kind == "bag":
            self._clock_pub = self.create_publisher(Clock, "/clock", image_qos())
        self._done_pub = self.create_publisher(Bool, "~/done", DONE_QOS)
        self._done_pub.publish(Bool(data=False))
        self._ack_sub = None
        if settings.lockstep_topic:
            from strongpose_ros.msg import PersonArray  # only the lockstep needs this package's messages

            self._ack_sub = self.create_subscription(PersonArray, settings.lockstep_topic, self._on_ack, ACK_QOS)
        self.get_logger().info(f"source: {self.source.describe()}")
        if settings.autostart:
            self.start()

    # --- control ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start publishing (what autostart does)."""
        if self.startup_error is not None:
            raise SourceError(self.startup_error)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="source_node_publisher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop publishing and close the source (idempotent)."""
        self._stop.set()
        with self._ack_cond:
            self._ack_cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(TIMING.join_timeout_s)
        if self.source is not None:
            self.source.close()
            self.source = None

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()

    def connections(self) -> dict[str, int]:
        """Matched peers: subscribers of `image`, publishers on the lockstep topic (to wait for discovery)."""
        counts = {"image_subscribers": 0, "lockstep_publishers": 0}
        if self.startup_error is None:
            counts["image_subscribers"] = self._image_pub.get_subscription_count()
            if self._ack_sub is not None:
                counts["lockstep_publishers"] = self._ack_sub.get_publisher_count()
        return counts

    @property
    def frames_skipped(self) -> int:
        """Frames that could not be read or decoded and were skipped."""
        return self.source.skipped if self.source is not None else self._skipped_final

    # --- publishing thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        reason = "stopped"
        try:
            reason = self._loop()
        except SourceError as exc:
            self.error = str(exc)
            self.get_logger().error(self.error)
            reason = "error"
        except Exception as exc:  # the thread must always signal the end
            self.error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"source failed: {self.error}")
            reason = "error"
        finally:
            if self.source is not None:
                self._skipped_final = self.source.skipped
            self._finish(reason)

    def _subscribed(self) -> bool:
        images = self._image_pub.get_subscription_count()
        if self._compressed_pub is not None:
            images += self._compressed_pub.get_subscription_count()
        return images > 0 and (self._ack_sub is None or self._ack_sub.get_publisher_count() > 0)

    def _wait_for_subscriber(self) -> bool:
        """Wait until someone receives the frames (and the lockstep answers can arrive); False when stopped."""
        if self._subscribed():
            return True
        waiting_for = self._image_pub.topic_name + (f" and a publisher of {self._ack_sub.topic_name}"
                                                    if self._ack_sub is not None else "")
        self.get_logger().info(f"waiting for a subscriber of {waiting_for} before the first frame")
        while not self._stop.wait(TIMING.match_poll_s):
            if self._subscribed():
                return True
        return False

    def _loop(self) -> str:
        source, settings = self.source, self.settings
        if settings.wait_for_subscriber and not self._wait_for_subscriber():
            return "stopped"
        if settings.rate > 0:
            pacer = _Pacer(1.0 / settings.rate, timed=False)
        else:
            pacer = _Pacer(1.0 / source.native_rate if source.native_rate else 0.0, timed=source.timed)
        in_pass = 0
        while not self._stop.is_set():
            frame = source.read()
            if frame is None:
                if not settings.loop or source.kind == "camera":
                    return "end"
                if in_pass == 0:
                    raise SourceError(f"{source.describe()}: no frame could be read")
                source.rewind()
                pacer.reset()
                in_pass = 0
                continue
            in_pass += 1
            now = time.monotonic()
            due = pacer.due(frame.time_ns, now)
            if due > now and self._stop.wait(due - now):
                return "stopped"
            header = self._publish(frame)
            if settings.lockstep_topic:
                self._wait_for_ack(header)
        return "stopped"

    def _publish(self, frame: SourceFrame) -> Header:
        frame_id = self.settings.frame_id
        if frame.msg is not None:  # a bag's message: its recorded stamp (and frame, unless overridden)
            msg = frame.msg
            if frame_id:
                msg.header.frame_id = frame_id
            header = msg.header
        else:
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id or DEFAULT_FRAME_ID)
            msg = numpy_to_image(frame.image, "bgr8", header)
        if self._clock_pub is not None and frame.time_ns is not None:
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(int(frame.time_ns), 1_000_000_000)
            self._clock_pub.publish(clock)
        info = self._camera_info or frame.camera_info
        if info is not None:
            info.header = header
            self._info_pub.publish(info)
        self._image_pub.publish(msg)
        if self._compressed_pub is not None:
            if frame.compressed is not None:
                frame.compressed.header = header
                self._compressed_pub.publish(frame.compressed)
            else:
                pixels = frame.image if frame.image is not None else to_bgr8(msg)
                self._compressed_pub.publish(numpy_to_compressed(pixels, "jpeg", header))
        self.frames_published += 1
        return header

    def _on_ack(self, msg: Any) -> None:
        with self._ack_cond:
            self._acked.add(_stamp_key(msg.header))
            self._ack_cond.notify_all()

    def _wait_for_ack(self, header: Header) -> None:
        key = _stamp_key(header)
        with self._ack_cond:
            arrived = self._ack_cond.wait_for(lambda: key in self._acked or self._stop.is_set(),
                                              self.settings.lockstep_timeout)
            self._acked.discard(key)
        if not arrived:
            self.lockstep_timeouts += 1
            self.get_logger().warning(f"no PersonArray with stamp {key[0]}.{key[1]:09d} on "
                                      f"{self.settings.lockstep_topic} within {self.settings.lockstep_timeout} s; "
                                      "going on")

    def _finish(self, reason: str) -> None:
        if reason == "end":
            self.get_logger().info(f"end of {self.source.describe() if self.source else 'source'}: "
                                   f"{self.frames_published} frames published, {self.frames_skipped} skipped")
        if self.context.ok():
            with contextlib.suppress(Exception):  # the node may be going away at the same time
                self._done_pub.publish(Bool(data=True))
        self.done.set()


def main(args: list[str] | None = None) -> int:
    """`ros2 run strongpose_ros source_node [--ros-args ...]`: 0 at the end of a `loop: false` source or
    on Ctrl-C, 1 when the source cannot be opened or fails."""
    if not init_rclpy(args, "source_node"):
        return 1
    node = None
    try:
        node = SourceNode()
        if node.startup_error is not None:  # already logged (once) by the node
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
        end = time.monotonic() + TIMING.done_grace_s
        while rclpy.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return 0 if node.error is None else 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
