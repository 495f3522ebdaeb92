"""Pairs colour and depth frames by header stamp (message_filters has no wheel here; FACTS.md).

    sync = StampSynchronizer(SyncConfig(tolerance_s=0.02, max_wait_s=0.1))
    ready = sync.add_color(stamp_ns, color_msg, size=(h, w))   # in the colour callback
    ready += sync.add_depth(stamp_ns, depth_msg, size=(h, w))  # in the depth callback
    ready += sync.poll()                                       # from a timer: releases frames whose wait ran out
    for frame in ready: ...   # frame.color, frame.depth (None when missing), frame.status (why)

Every colour frame comes out exactly once, in stamp order, as a `SyncedFrame`, with the depth frame
nearest in stamp within `tolerance_s` (`DepthStatus.OK`) or with none and the reason:
- `NO_MATCH`: the depth stream has passed the colour frame's stamp without a frame within tolerance;
- `LATE`: no depth frame within tolerance had arrived when the wait (`max_wait_s`, wall time) ran out,
  or when the colour queue overflowed (the depth stream lags or is silent);
- `SIZE_MISMATCH`: the depth frame within tolerance does not show the colour image's field of view.
A colour frame waits only while its decision can still change: as soon as a depth frame with a stamp at
or after its own has arrived, no later one can be nearer (streams arrive in stamp order), so it goes.

Nothing blocks: each call takes a lock for a few list operations and returns the frames it released.
The clock is injectable (tests step it by hand). Queues are bounded (`queue_size` per side). Depth frames
are kept until no colour frame can use them; one depth frame may serve several colour frames (a colour
stream faster than depth). Counters (`stats`) say what happened to every frame, so nothing is lost
unseen: depth frames never used, and depth frames that arrived after their colour frame had gone
without depth (late). When a stamp jumps back by more than `reset_jump_s` (a bag looped), the pending
colour frames are released (LATE) and the queues start over.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from strongpose_ros.depth.camera import CameraModelError, scale_between
from strongpose_ros.depth.config import SyncConfig
from strongpose_ros.depth.types import DepthStatus

__all__ = ["StampSynchronizer", "SyncStats", "SyncedFrame", "stamp_to_ns"]

C = TypeVar("C")
D = TypeVar("D")


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces/Time (anything with `sec` and `nanosec`), or of an int."""
    if isinstance(stamp, int):
        return stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class SyncedFrame(Generic[C, D]):
    """A colour frame released by the synchroniser: with its depth frame (`status` OK), or without and why."""

    color: C
    stamp_ns: int
    depth: D | None
    depth_stamp_ns: int | None
    status: DepthStatus

    @property
    def has_depth(self) -> bool:
        return self.depth is not None


@dataclass
class SyncStats:
    """What happened to every frame so far (for /diagnostics)."""

    color_in: int = 0
    depth_in: int = 0
    paired: int = 0
    no_match: int = 0
    late: int = 0
    size_mismatch: int = 0
    depth_unused: int = 0  # dropped from the queue without having been paired
    depth_late: int = 0  # arrived after a colour frame it would have paired with had gone without depth
    resets: int = 0


@dataclass
class _Color:
    stamp: int
    frame: Any
    size: tuple[int, int] | None
    arrived: float


@dataclass(order=True)
class _Depth:
    stamp: int
    frame: Any = field(compare=False)
    size: tuple[int, int] | None = field(compare=False)
    used: bool = field(default=False, compare=False)


class StampSynchronizer(Generic[C, D]):
    """Pairs colour frames with the depth frame nearest in stamp within a tolerance; never blocks."""

    def __init__(self, config: SyncConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SyncConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._colors: list[_Color] = []  # pending, sorted by stamp
        self._depths: list[_Depth] = []  # sorted by stamp
        self._went_without: deque[int] = deque(maxlen=4 * self.config.queue_size)  # stamps released w/o depth
        self._newest_color: int | None = None
        self._newest_depth: int | None = None
        self._released_up_to: int | None = None  # stamp of the newest colour frame released
        self.stats = SyncStats()

    # --- input --------------------------------------------------------------------------------------

    def add_color(self, stamp_ns: int | Any, color: C, size: tuple[int, int] | None = None
                  ) -> list[SyncedFrame[C, D]]:
        """Queue a colour frame; returns the frames this releases (possibly none, possibly older ones).

        `stamp_ns`: the header stamp, as integer nanoseconds or a builtin_interfaces/Time; `size`: the
        image's (height, width), to check the depth frame's against (None: not checked).
        """
        stamp_ns = stamp_to_ns(stamp_ns)
        with self._lock:
            released = self._jumped_back(stamp_ns, self._newest_color)
            self.stats.color_in += 1
            self._newest_color = stamp_ns if self._newest_color is None else max(self._newest_color, stamp_ns)
            entry = _Color(stamp_ns, color, _size(size), self._clock())
            bisect.insort(self._colors, entry, key=lambda c: c.stamp)
            return released + self._release()

    def add_depth(self, stamp_ns: int | Any, depth: D, size: tuple[int, int] | None = None
                  ) -> list[SyncedFrame[C, D]]:
        """Queue a depth frame (stamp and size as for `add_color`); returns the colour frames this releases."""
        stamp_ns = stamp_to_ns(stamp_ns)
        with self._lock:
            released = self._jumped_back(stamp_ns, self._newest_depth)
            self.stats.depth_in += 1
            self._newest_depth = stamp_ns if self._newest_depth is None else max(self._newest_depth, stamp_ns)
            tolerance = self.config.tolerance_ns
            if any(abs(stamp_ns - gone) <= tolerance for gone in self._went_without):
                self.stats.depth_late += 1
            bisect.insort(self._depths, _Depth(stamp_ns, depth, _size(size)))
            return released + self._release()

    def poll(self) -> list[SyncedFrame[C, D]]:
        """Release the colour frames whose wait has run out (call it from a timer, e.g. every 10-50 ms)."""
        with self._lock:
            return self._release()

    def flush(self) -> list[SyncedFrame[C, D]]:
        """Release every pending colour frame now (end of input), paired where a depth frame is in tolerance."""
        with self._lock:
            out = [self._decide(c, force=True) for c in self._colors]
            self._colors.clear()
            self._prune()
            return out

    def reset(self) -> list[SyncedFrame[C, D]]:
        """Start over (time went back): pending colour frames are released without depth (LATE)."""
        with self._lock:
            return self._reset()

    @property
    def pending(self) -> int:
        """Colour frames waiting for their depth."""
        with self._lock:
            return len(self._colors)

    # --- internals (lock held) ---------------------------------------------------------------------

    def _jumped_back(self, stamp: int, newest: int | None) -> list[SyncedFrame[C, D]]:
        if newest is not None and newest - stamp > self.config.reset_jump_s * 1e9:
            return self._reset()
        return []

    def _reset(self) -> list[SyncedFrame[C, D]]:
        out = [self._without(c, DepthStatus.LATE) for c in self._colors]
        self._colors.clear()
        self.stats.depth_unused += sum(not d.used for d in self._depths)
        self._depths.clear()
        self._went_without.clear()
        self._newest_color = self._newest_depth = self._released_up_to = None
        self.stats.resets += 1
        return out

    def _release(self) -> list[SyncedFrame[C, D]]:
        """Release pending colour frames in stamp order while each is decided (or forced by wait/overflow)."""
        out = []
        now = self._clock()
        while self._colors:
            oldest = self._colors[0]
            overflow = len(self._colors) > self.config.queue_size
            expired = now - oldest.arrived >= self.config.max_wait_s
            frame = self._decide(oldest, force=overflow or expired)
            if frame is None:
                break
            self._colors.pop(0)
            out.append(frame)
        self._prune()
        return out

    def _decide(self, color: _Color, force: bool) -> SyncedFrame[C, D] | None:
        tolerance = self.config.tolerance_ns
        depths = self._depths
        # Depth frames within tolerance are a contiguous run of the sorted queue.
        lo = bisect.bisect_left(depths, color.stamp - tolerance, key=lambda d: d.stamp)
        hi = bisect.bisect_right(depths, color.stamp + tolerance, key=lambda d: d.stamp)
        passed = bool(depths) and depths[-1].stamp >= color.stamp
        if not passed and not force:
            return None  # a nearer depth frame may still come
        if hi == lo:
            return self._without(color, DepthStatus.NO_MATCH if passed else DepthStatus.LATE)
        best = min(depths[lo:hi], key=lambda d: (abs(d.stamp - color.stamp), d.stamp))
        if color.size is not None and best.size is not None:
            try:
                scale_between(color.size, best.size, self.config.aspect_tolerance)
            except CameraModelError:
                return self._without(color, DepthStatus.SIZE_MISMATCH)
        best.used = True
        self.stats.paired += 1
        self._mark_released(color.stamp)
        return SyncedFrame(color.frame, color.stamp, best.frame, best.stamp, DepthStatus.OK)

    def _without(self, color: _Color, status: DepthStatus) -> SyncedFrame[C, D]:
        counter = {DepthStatus.NO_MATCH: "no_match", DepthStatus.LATE: "late",
                   DepthStatus.SIZE_MISMATCH: "size_mismatch"}[status]  # fmt: skip
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if status == DepthStatus.LATE:
            self._went_without.append(color.stamp)
        self._mark_released(color.stamp)
        return SyncedFrame(color.frame, color.stamp, None, None, status)

    def _mark_released(self, stamp: int) -> None:
        self._released_up_to = stamp if self._released_up_to is None else max(self._released_up_to, stamp)

    def _prune(self) -> None:
        """Drop depth frames no pending or future colour frame can use, and keep the queue bounded."""
        tolerance = self.config.tolerance_ns
        if self._colors:
            horizon = self._colors[0].stamp - tolerance
        elif self._released_up_to is not None:
            horizon = self._released_up_to - tolerance  # a later colour frame is at least this new
        else:
            horizon = None
        keep_from = 0
        if horizon is not None:
            keep_from = bisect.bisect_left(self._depths, horizon, key=lambda d: d.stamp)
        keep_from = max(keep_from, len(self._depths) - self.config.queue_size)
        if keep_from > 0:
            self.stats.depth_unused += sum(not d.used for d in self._depths[:keep_from])
            del self._depths[:keep_from]


def _size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    height, width = size
    return int(height), int(width)
