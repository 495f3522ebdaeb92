"""How frames enter the pose node: cheap admission checks, and the buffer between subscription and worker.

The subscription callback (`camera_input.CameraInput`, on the input's own thread) must stay cheap: it reads
the frame's size (from the Image header, or from the JPEG/PNG header of a CompressedImage, without
decoding) to refuse empty and oversized frames at once, then hands the message to a `FrameBuffer`. A
worker thread takes frames from the buffer and does the expensive work.

`FrameBuffer` has two policies:
- "newest" (capacity 1): a new frame replaces a waiting one, which is counted as dropped; the worker
  always gets the newest frame, so latency stays bounded by one frame's processing time and memory by
  one waiting frame, however fast frames arrive;
- "every_frame" (capacity N): frames are kept in order; when the buffer is full, `put` waits for room,
  which holds back the subscription (and, with reliable QoS, the publisher): nothing is skipped.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["POLICIES", "Frame", "FrameBuffer", "check_frame", "frame_size"]

POLICIES = ("newest", "every_frame")

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8 and CC are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}


@dataclass
class Frame:
    """A message waiting for the worker, with its arrival time (time.monotonic) and arrival number."""

    msg: Any
    received: float
    seq: int
    extra: dict = field(default_factory=dict)


def _buffer(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(bytes(data), dtype=np.uint8)


def _jpeg_size(buf: np.ndarray) -> tuple[int, int] | None:
    i, n = 2, buf.size
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = int(buf[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", buf[i + 5:i + 9].tobytes())
            return height, width
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        (length,) = struct.unpack(">H", buf[i + 2:i + 4].tobytes())
        i += 2 + length
    return None


def frame_size(msg: Any) -> tuple[int, int] | None:
    """(height, width) of an Image (from its header) or a CompressedImage (from the JPEG/PNG header,
    without decoding); None when a compressed header cannot be read (decoding will then say why)."""
    if hasattr(msg, "encoding"):
        return int(msg.height), int(msg.width)
    buf = _buffer(msg.data)
    if buf.size >= 24 and buf[:8].tobytes() == _PNG_SIGNATURE and buf[12:16].tobytes() == b"IHDR":
        width, height = struct.unpack(">II", buf[16:24].tobytes())
        return int(height), int(width)
    if buf.size >= 4 and buf[:2].tobytes() == _JPEG_SOI:
        return _jpeg_size(buf)
    return None


def check_frame(msg: Any, max_pixels: int) -> tuple[str, str] | None:
    """(reason, message) when the frame must be refused before decoding: empty or too large; else None."""
    size = frame_size(msg)
    if size is None:
        return None
    height, width = size
    if height <= 0 or width <= 0:
        return "empty", f"refused an empty {width}x{height} frame"
    if height * width > max_pixels:
        return "too_large", (f"refused a {width}x{height} frame: {width * height} pixels is more than "
                             f"input.max_pixels = {max_pixels}")
    return None


class FrameBuffer:
    """A thread-safe hand-over of frames from the subscription to the worker (see the module docstring)."""

    def __init__(self, policy: str = "newest", capacity: int = 1) -> None:
        if policy not in POLICIES:
            raise ValueError(f"FrameBuffer policy must be one of {POLICIES}, got {policy!r}")
        if capacity < 1:
            raise ValueError(f"FrameBuffer capacity must be >= 1, got {capacity}")
        self.policy = policy
        self.capacity = 1 if policy == "newest" else int(capacity)
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0  # frames taken by the worker and not yet marked done
        self.high_water = 0

    def put(self, item: Any) -> int:
        """Hand a frame over; returns how many frames were dropped by doing so (0 or 1).

        "newest": a waiting frame is replaced (1 dropped). "every_frame": waits for room; when the buffer
        is closed meanwhile, the new frame is dropped (1).
        """
        with self._cond:
            if self._closed:
                return 1
            dropped = 0
            if self.policy == "newest":
                if self._items:
                    self._items.clear()
                    dropped = 1
            else:
                while len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait(0.1)
                if self._closed:
                    return 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The next frame, or None after `timeout` seconds or once closed. Call `done()` when finished."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed or not self._items:
                return None
            self._busy += 1
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def done(self) -> None:
        """The worker finished the frame it got."""
        with self._cond:
            self._busy = max(0, self._busy - 1)
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no frame is waiting or being processed; True if that happened within `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout)

    def close(self) -> int:
        """Stop handing over; wakes waiting callers. Returns how many waiting frames were discarded."""
        with self._cond:
            self._closed = True
            discarded = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return discarded

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
