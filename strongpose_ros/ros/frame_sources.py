"""Frame sources: a V4L2 camera, a video file, a folder of images or a rosbag2, one frame after another.

Plain Python (OpenCV, rosbags and the ROS message classes; no node): `source_node` publishes them, and the
demo and the tools can read them the same way. `open_source(kind, path, ...)` opens one; `read()` gives the
next `SourceFrame` or None at the end; `rewind()` starts again (not a camera); `close()` releases it.

Bad input: a missing device or file, an unreadable video, a bag without the topic (the error lists the
topics it has) raise `SourceError` at once, naming what is wrong. A frame that cannot be read or decoded
mid-stream is reported through `warn` and skipped (`skipped` counts them).
"""

from __future__ import annotations

import glob
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from strongpose_ros.ros.image_conversion import ImageConversionError, numpy_to_image, to_bgr8

__all__ = [
    "COMPRESSED_TYPE",
    "IMAGE_EXTENSIONS",
    "IMAGE_TYPE",
    "SOURCES",
    "TIMING",
    "BagSource",
    "CameraSource",
    "FolderSource",
    "FrameSource",
    "SourceError",
    "SourceFrame",
    "SourceTiming",
    "VideoSource",
    "open_source",
]

SOURCES = ("camera", "video", "folder", "bag")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_MSG_CLASSES = {IMAGE_TYPE: Image, COMPRESSED_TYPE: CompressedImage, CAMERA_INFO_TYPE: CameraInfo}

@dataclass(frozen=True)
class SourceTiming:
    """Timing constants of the frame sources [ours].

    - `folder_rate_hz`: frames per second of a folder of images at `rate: 0` (a folder has no rate);
    - `video_fallback_fps`: a video whose container gives no frame rate plays at this rate;
    - `camera_read_retries`: consecutive failed camera reads before the camera counts as gone.
    """

    folder_rate_hz: float = 10.0
    video_fallback_fps: float = 30.0
    camera_read_retries: int = 30


TIMING = SourceTiming()


class SourceError(ValueError):
    """A source that cannot be used (missing device or file, unreadable video, bag without the topic)."""


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
