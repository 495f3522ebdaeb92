"""`source_node`: camera frames as `sensor_msgs/Image` from a V4L2 camera, a video file, a folder or a rosbag2.

Publishes (names relative, so they follow the namespace and remap like a camera driver's):
- `image` (sensor_msgs/Image, bgr8 for camera/video/folder; a bag's own messages as recorded);
- `camera_info` (sensor_msgs/CameraInfo, same header as the image) when known: from `camera_info_file`
  (a camera_calibration_parsers YAML file) or from the bag's CameraInfo topic;
- `image/compressed` (sensor_msgs/CompressedImage, JPEG) with `publish_compressed`; a bag holding
  CompressedImage messages republishes them there as recorded (and decoded on `image`);
- `/clock` (rosgraph_msgs/Clock, the bag's recorded time) with `publish_clock`, for `use_sim_time`;
- `~/done` (std_msgs/Bool, transient local): true once the source ran out in `loop: false` mode. The node
  then stops publishing, `node.done` is set, and `main` exits, so a demo or a launch file knows it ended.

Stamps: camera, video and folder frames are stamped with the node's clock when read; bag frames keep the
header stamps they were recorded with (and their frame_id unless `frame_id` is set).

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
import glob
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Bool, Header

from strongpose_ros.ros.image_conversion import ImageConversionError, numpy_to_compressed, numpy_to_image, to_bgr8

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCES",
    "BagSource",
    "CameraSource",
    "FolderSource",
    "FrameSource",
    "SourceError",
    "SourceFrame",
    "SourceNode",
    "SourceSettings",
    "SourceTiming",
    "load_camera_info",
    "main",
    "open_source",
]

SOURCES = ("camera", "video", "folder", "bag")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_MSG_CLASSES = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage, CAMERA_INFO_TYPE: CameraInfo}

# Reliable output reaches reliable and best-effort subscribers alike (the pose node's default is best effort).
IMAGE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
DONE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
ACK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class SourceTiming:
    """Timing constants of the source node [ours].

    - `folder_rate_hz`: frames per second of a folder of images at `rate: 0` (a folder has no rate);
    - `video_fallback_fps`: a video whose container gives no frame rate plays at this rate;
    - `camera_read_retries`: consecutive failed camera reads before the camera counts as gone;
    - `done_grace_s`: `main` keeps spinning this long after the end, so reliable subscribers get the last frame;
    - `join_timeout_s`: how long stopping waits for the publishing thread.
    """

    folder_rate_hz: float = 10.0
    video_fallback_fps: float = 30.0
    camera_read_retries: int = 30
    done_grace_s: float = 0.5
    join_timeout_s: float = 5.0


TIMING = SourceTiming()


class SourceError(ValueError):
    """A source that cannot be used (missing device or file, unreadable video, bag without the topic)."""


# ------------------------------------------------------------------------------------------------ frame sources
@dataclass
class SourceFrame:
    """One frame read from a source.

    Camera, video and folder give `image` (HxWx3 uint8 BGR); a bag gives `msg` (a sensor_msgs/Image with
    its recorded header), the recorded `compressed` message when the topic held CompressedImage, its latest
    `camera_info` and `time_ns` (the bag's recorded time, for pacing and /clock).
    """

    image: np.ndarray | None = None
    msg: Image | None = None
    compressed: CompressedImage | None = None
    camera_info: CameraInfo | None = None
    time_ns: int | None = None
    name: str = ""


class FrameSource:
    """Frames one after another: `read()` gives the next `SourceFrame` or None at the end."""

    kind = ""
    #: frames per second the source runs at by itself (None: as delivered, or the bag's recorded spacing)
    native_rate: float | None = None
    #: True when `time_ns` carries the recorded time to pace by
    timed = False
    #: frames that could not be read or decoded and were skipped
    skipped = 0

    def __init__(self, warn: Callable[[str], Any] | None = None) -> None:
        self._warn = warn or (lambda message: print(message, file=sys.stderr))

    def read(self) -> SourceFrame | None:
        raise NotImplementedError

    def rewind(self) -> None:
        raise SourceError(f"a {self.kind} cannot be replayed")

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.kind

    def _skip(self, message: str) -> None:
        self.skipped += 1
        self._warn(message)


def _video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=_natural_key)


def _natural_key(text: str) -> list:
    """'frame2' before 'frame10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


class CameraSource(FrameSource):
    """A V4L2 camera (Linux) or any camera OpenCV opens, by index ('0') or device path ('/dev/video0')."""

    kind = "camera"

    def __init__(self, device: str = "0", width: int = 0, height: int = 0, warn: Callable[[str], Any] | None = None,
                 timing: SourceTiming = TIMING) -> None:
        super().__init__(warn)
        self.timing = timing
        device = str(device).strip() or "0"
        self.device = device
        present = _video_devices()
        listing = f"devices present: {', '.join(present)}" if present else "no /dev/video* devices on this machine"
        if device.isdigit():
            target: int | str = int(device)
            node = f"/dev/video{device}"
            if sys.platform.startswith("linux") and not Path(node).exists():
                raise SourceError(f"camera {device}: {node} does not exist ({listing})")
        else:
            target = device
            if not Path(device).exists():
                raise SourceError(f"camera device {device} does not exist ({listing})")
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        self._cap = cv2.VideoCapture(target, backend)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"camera {device} could not be opened (busy, no permission, or not a capture device; "
                              f"{listing})")
        if width > 0 and height > 0:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise SourceError(f"camera {device} opened but delivered no frame")
        self._first: np.ndarray | None = frame

    def read(self) -> SourceFrame | None:
        if self._first is not None:
            frame, self._first = self._first, None
            return SourceFrame(image=frame, name=self.device)
        for _ in range(self.timing.camera_read_retries):
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return SourceFrame(image=frame, name=self.device)
            self._skip(f"camera {self.device}: a frame could not be read")
        self._warn(f"camera {self.device}: {self.timing.camera_read_retries} reads failed in a row; stopping")
        return None

    def close(self) -> None:
        self._cap.release()

    def describe(self) -> str:
        return f"camera {self.device}"


class VideoSource(FrameSource):
    """A video file OpenCV can decode (mp4, avi, mkv, ...)."""

    kind = "video"

    def __init__(self, path: str | Path, warn: Callable[[str], Any] | None = None,
                 timing: SourceTiming = TIMING) -> None:
        super().__init__(warn)
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise SourceError(f"{self.path} is not a file (for a folder of images use source 'folder')")
        self._cap = self._open()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (math.isfinite(fps) and fps > 0):
            self._warn(f"{self.path}: no frame rate in the file; playing at {timing.video_fallback_fps} fps")
            fps = timing.video_fallback_fps
        self.native_rate = fps
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise SourceError(f"{self.path}: no frame could be decoded (empty, corrupt or an unsupported codec)")
        self._first: np.ndarray | None = frame
        self._index = 0

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path} could not be opened as a video (not a video, or a container/codec "
                              "this OpenCV cannot read)")
        return cap

    def read(self) -> SourceFrame | None:
        if self._first is not None:
            frame, self._first = self._first, None
        else:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                return None
        self._index += 1
        return SourceFrame(image=frame, name=f"{self.path.name}#{self._index - 1}")

    def rewind(self) -> None:
        self._cap.release()
        self._cap = self._open()
        self._index = 0

    def close(self) -> None:
        self._cap.release()

    def describe(self) -> str:
        return f"video {self.path} ({self.native_rate:g} fps)"


class FolderSource(FrameSource):
    """The images of a folder, in natural name order (frame2 before frame10)."""

    kind = "folder"

    def __init__(self, path: str | Path, warn: Callable[[str], Any] | None = None,
                 timing: SourceTiming = TIMING) -> None:
        super().__init__(warn)
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"image folder {self.path} does not exist")
        if not self.path.is_dir():
            raise SourceError(f"{self.path} is not a folder (for a video file use source 'video')")
        self.files = sorted((p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                            key=lambda p: _natural_key(p.name))
        if not self.files:
            raise SourceError(f"{self.path} holds no images (looked for {' '.join(IMAGE_EXTENSIONS)})")
        self.native_rate = timing.folder_rate_hz
        self._next = 0

    def read(self) -> SourceFrame | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or image.size == 0:
                self._skip(f"{path}: not a readable image; skipped")
                continue
            return SourceFrame(image=image, name=path.name)
        return None

    def rewind(self) -> None:
        self._next = 0

    def describe(self) -> str:
        return f"folder {self.path} ({len(self.files)} images)"


class BagSource(FrameSource):
    """The Image or CompressedImage messages of one topic of a rosbag2 (sqlite3 or MCAP), read with rosbags."""

    kind = "bag"
    timed = True

    def __init__(self, path: str | Path, topic: str = "", camera_info_topic: str = "",
                 warn: Callable[[str], Any] | None = None) -> None:
        super().__init__(warn)
        from rosbags.rosbag2 import Reader

        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"bag {self.path} does not exist")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises its own error types for every kind of bad bag
            raise SourceError(f"{self.path} could not be read as a rosbag2: {exc}") from exc
        try:
            self.connection = self._image_connection(topic)
            self.topic = self.connection.topic
            self.msgtype = self.connection.msgtype
            self.info_connection = self._info_connection(camera_info_topic)
        except SourceError:
            self._reader.close()
            raise
        self._info = self._first_camera_info()
        self._messages: Iterator | None = None

    def _topics(self) -> str:
        counts: dict[str, int] = {}
        for c in self._reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        types = {c.topic: c.msgtype for c in self._reader.connections}
        if not types:
            return "it has no topics"
        return "its topics: " + ", ".join(f"{t} ({types[t]}, {counts[t]} messages)" for t in sorted(types))

    def _image_connection(self, topic: str):
        connections = self._reader.connections
        if topic:
            found = [c for c in connections if c.topic == topic]
            if not found:
                raise SourceError(f"bag {self.path} has no topic {topic!r}; {self._topics()}")
            if found[0].msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
                raise SourceError(f"bag {self.path}: topic {topic!r} holds {found[0].msgtype}, not {IMAGE_TYPE} or "
                                  f"{COMPRESSED_TYPE}; {self._topics()}")
            return found[0]
        images = sorted({c.topic: c for c in connections if c.msgtype in (IMAGE_TYPE, COMPRESSED_TYPE)}.items())
        if not images:
            raise SourceError(f"bag {self.path} has no Image or CompressedImage topic; {self._topics()}")
        if len(images) > 1:
            raise SourceError(f"bag {self.path} has several image topics ({', '.join(t for t, _ in images)}): "
                              "choose one with the `topic` parameter")
        return images[0][1]

    def _info_connection(self, camera_info_topic: str):
        connections = self._reader.connections
        if camera_info_topic:
            found = [c for c in connections if c.topic == camera_info_topic]
            if not found or found[0].msgtype != CAMERA_INFO_TYPE:
                raise SourceError(f"bag {self.path} has no {CAMERA_INFO_TYPE} topic {camera_info_topic!r}; "
                                  f"{self._topics()}")
            return found[0]
        # The camera driver convention: <camera>/image_raw[/compressed] next to <camera>/camera_info.
        base = self.topic[: -len("/compressed")] if self.topic.endswith("/compressed") else self.topic
        sibling = base.rsplit("/", 1)[0] + "/camera_info"
        found = [c for c in connections if c.topic == sibling and c.msgtype == CAMERA_INFO_TYPE]
        return found[0] if found else None

    def _first_camera_info(self) -> CameraInfo | None:
        """The bag's first CameraInfo, so that frames recorded just before it still get one."""
        if self.info_connection is None:
            return None
        for _, _, raw in self._reader.messages(connections=[self.info_connection]):
            try:
                return deserialize_message(raw, CameraInfo)
            except Exception:  # a corrupt one: try the next
                continue
        return None

    def read(self) -> SourceFrame | None:
        if self._messages is None:
            wanted = [self.connection] + ([self.info_connection] if self.info_connection is not None else [])
            self._messages = iter(self._reader.messages(connections=wanted))
        for connection, timestamp, raw in self._messages:
            try:
                msg = deserialize_message(raw, _MSG_CLASSES[connection.msgtype])
            except Exception as exc:  # rclpy raises RMWError (and others) for corrupt CDR
                self._skip(f"bag {self.path}: message on {connection.topic} at {timestamp} ns could not be "
                           f"deserialised ({exc}); skipped")
                continue
            if connection.msgtype == CAMERA_INFO_TYPE:
                self._info = msg
                continue
            frame = SourceFrame(camera_info=self._info, time_ns=int(timestamp), name=f"{self.topic}@{timestamp}")
            if connection.msgtype == IMAGE_TYPE:
                frame.msg = msg
                return frame
            try:  # CompressedImage: decoded for `image`, the recorded message for `image/compressed`
                pixels = to_bgr8(msg)
            except ImageConversionError as exc:
                self._skip(f"bag {self.path}: compressed image at {timestamp} ns could not be decoded ({exc}); "
                           "skipped")
                continue
            frame.msg = numpy_to_image(pixels, "bgr8", msg.header)
            frame.compressed = msg
            return frame
        return None

    def rewind(self) -> None:
        self._messages = None

    def close(self) -> None:
        self._reader.close()

    def describe(self) -> str:
        return f"bag {self.path} topic {self.topic} ({self.msgtype}, {self.connection.msgcount} messages)"


def open_source(kind: str, path: str = "", *, topic: str = "", camera_info_topic: str = "", width: int = 0,
                height: int = 0, warn: Callable[[str], Any] | None = None) -> FrameSource:
    """Open a frame source; raises SourceError saying what is missing or unreadable."""
    if kind not in SOURCES:
        raise SourceError(f"unknown source {kind!r}; choose one of {list(SOURCES)}")
    if kind == "camera":
        return CameraSource(path or "0", width, height, warn)
    if not path:
        raise SourceError(f"source {kind!r} needs a path (parameter 'path')")
    if kind == "video":
        return VideoSource(path, warn)
    if kind == "folder":
        return FolderSource(path, warn)
    return BagSource(path, topic, camera_info_topic, warn)


# ------------------------------------------------------------------------------------------------ calibration
def _matrix(data: dict, key: str, rows: int, cols: int, path: Path) -> list[float]:
    entry = data.get(key)
    values = entry.get("data") if isinstance(entry, dict) else entry
    if not isinstance(values, list) or len(values) != rows * cols:
        raise SourceError(f"calibration file {path}: '{key}' must hold {rows}x{cols} = {rows * cols} numbers")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise SourceError(f"calibration file {path}: '{key}' holds a value that is not a number") from None


def load_camera_info(path: str | Path) -> CameraInfo:
    """A CameraInfo from a camera_calibration_parsers YAML file (what `camera_calibration` writes)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"calibration file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SourceError(f"calibration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceError(f"calibration file {path}: expected a mapping with camera_matrix, image_width, ...")
    info = CameraInfo()
    try:
        info.width, info.height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise SourceError(f"calibration file {path}: 'image_width' and 'image_height' must be integers") from None
    info.k = _matrix(data, "camera_matrix", 3, 3, path)
    info.distortion_model = str(data.get("distortion_model", "plumb_bob"))
    distortion = data.get("distortion_coefficients", {"data": []})
    values = distortion.get("data", []) if isinstance(distortion, dict) else distortion
    info.d = _matrix({"d": values}, "d", 1, len(values or []), path) if values else []
    info.r = _matrix(data, "rectification_matrix", 3, 3, path) if "rectification_matrix" in data else \
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    if "projection_matrix" in data:
        info.p = _matrix(data, "projection_matrix", 3, 4, path)
    else:  # a monocular camera: P = [K | 0]
        k = info.k
        info.p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return info


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

    def __post_init__(self) -> None:
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
    "frame_id": "header frame_id ('': 'camera' for camera/video/folder, a bag's recorded one)",
    "camera_info_file": "camera_calibration_parsers YAML: publish camera_info with every frame",
    "camera_info_topic": "bag: the CameraInfo topic ('': <camera>/camera_info next to the image topic, if present)",
    "publish_clock": "bag: publish /clock with the bag's recorded time (for use_sim_time)",
    "publish_compressed": "also publish image/compressed (JPEG)",
    "width": "camera: requested capture width (0: the driver's default)",
    "height": "camera: requested capture height (0: the driver's default)",
    "autostart": "start publishing at once (false: wait for start())",
    "lockstep_topic": "publish the next frame only after a PersonArray with the last frame's stamp arrived here",
    "lockstep_timeout": "seconds to wait for that PersonArray before going on",
}
DEFAULT_FRAME_ID = "camera"


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
        self._image_pub = self.create_publisher(Image, "image", IMAGE_QOS)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", IMAGE_QOS)
        self._compressed_pub = None
        if settings.publish_compressed or getattr(self.source, "msgtype", "") == COMPRESSED_TYPE:
            self._compressed_pub = self.create_publisher(CompressedImage, "image/compressed", IMAGE_QOS)
        self._clock_pub = None
        if settings.publish_clock and self.source.kind == "bag":
            self._clock_pub = self.create_publisher(Clock, "/clock", IMAGE_QOS)
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

    def _loop(self) -> str:
        source, settings = self.source, self.settings
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
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = SourceNode()
        if node.startup_error is not None:
            print(f"source_node: {node.startup_error}", file=sys.stderr)
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
