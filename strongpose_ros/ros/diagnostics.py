"""What the pose node counts and reports: frame counters, latency percentiles, rate-limited warnings.

`FrameStats` is shared by the subscription callback and the worker thread (all methods are thread-safe).
`diagnostic_status` turns a snapshot into a `diagnostic_msgs/DiagnosticStatus` for `/diagnostics`, with
stable key names that tests and monitoring rely on:
frames_received (reached the subscription callback), frames_lost_in_transport (published but never reached
it: `loss`), frames_processed, frames_dropped (superseded by a newer frame or an overfull queue), frames_bad
(refused input and invalid outputs), bad_<reason> per reason, latency_ms_p50/p95/max (arrival of a frame at
the node to publication of its PersonArray, over the last `latency_window` frames), fps, and the node's
state, device and model. Every frame published to the node ends in exactly one of lost, processed, dropped
or bad (or is in progress): published = frames_lost_in_transport + frames_processed + frames_dropped +
frames_bad.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

__all__ = ["BAD_REASONS", "DiagnosticsConfig", "FrameStats", "RateLimitedLog", "StatsSnapshot", "diagnostic_status"]

# Why a frame produced no output (stable names: they appear in /diagnostics as bad_<reason>).
BAD_REASONS = (
    "empty",  # 0 x 0 (or 0 x N) image
    "too_large",  # more pixels than input.max_pixels
    "encoding",  # unknown or unsupported Image encoding
    "data",  # Image data that does not match its header (truncated, wrong step)
    "compressed",  # CompressedImage that cannot be decoded (corrupt or truncated JPEG/PNG, unknown format)
    "nonfinite_output",  # NaN or infinity in the network's outputs
    "inference_error",  # any other failure while processing (logged with its message)
)


@dataclass(frozen=True)
class DiagnosticsConfig:
    """- `latency_window`: frames over which latency percentiles are taken;
    - `log_period_s`: a given kind of bad input is logged at most once per this many seconds;
    - `stage_window`: frames over which per-stage timings are kept (benchmarks read them)."""

    latency_window: int = 300
    log_period_s: float = 5.0
    stage_window: int = 300

    def __post_init__(self) -> None:
        if self.latency_window < 1 or self.stage_window < 1:
            raise ValueError("DiagnosticsConfig: latency_window and stage_window must be >= 1")
        if not self.log_period_s >= 0:
            raise ValueError(f"DiagnosticsConfig.log_period_s must be >= 0, got {self.log_period_s!r}")


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters and latency figures at one moment."""

    received: int
    processed: int
    dropped: int
    bad: dict[str, int]
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    fps: float
    stage_ms_median: dict[str, float] = field(default_factory=dict)
    lost: int = 0

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


class FrameStats:
    """Thread-safe counters of the frames a node sees, and a window of their latencies."""

    def __init__(self, config: DiagnosticsConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or DiagnosticsConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._received = 0
            self._lost = 0
            self._processed = 0
            self._dropped = 0
            self._bad: Counter[str] = Counter()
            self._latency: deque[float] = deque(maxlen=self.config.latency_window)
            self._done_at: deque[float] = deque(maxlen=self.config.latency_window)
            self._stages: dict[str, deque[float]] = {}

    def received(self) -> None:
        with self._lock:
            self._received += 1

    def lost(self, count: int = 1) -> None:
        """Frames published to the node that never reached its callback (see `loss`)."""
        with self._lock:
            self._lost += count

    def dropped(self, count: int = 1) -> None:
        with self._lock:
            self._dropped += count

    def bad(self, reason: str) -> None:
        if reason not in BAD_REASONS:
            raise ValueError(f"FrameStats.bad: unknown reason {reason!r}; known: {BAD_REASONS}")
        with self._lock:
            self._bad[reason] += 1

    def processed(self, latency_ms: float, stages_ms: Mapping[str, float] | None = None) -> None:
        with self._lock:
            self._processed += 1
            self._latency.append(float(latency_ms))
            self._done_at.append(self._clock())
            for name, value in (stages_ms or {}).items():
                window = self._stages.get(name)
                if window is None:
                    window = self._stages[name] = deque(maxlen=self.config.stage_window)
                window.append(float(value))

    def stage_samples(self) -> dict[str, list[float]]:
        """Per-stage timings (ms) of the last frames, oldest first."""
        with self._lock:
            return {name: list(values) for name, values in self._stages.items()}

    def latency_samples(self) -> list[float]:
        with self._lock:
            return list(self._latency)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            latency = np.asarray(self._latency, dtype=np.float64)
            done = list(self._done_at)
            stages = {name: float(np.median(values)) for name, values in self._stages.items() if values}
            received, processed, dropped, bad = self._received, self._processed, self._dropped, dict(self._bad)
            lost = self._lost
        if latency.size:
            p50, p95, top = (float(v) for v in (*np.percentile(latency, [50, 95]), latency.max()))
        else:
            p50 = p95 = top = 0.0
        fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) >= 2 and done[-1] > done[0] else 0.0
        return StatsSnapshot(received, processed, dropped, {r: bad.get(r, 0) for r in BAD_REASONS},
                             p50, p95, top, fps, stages, lost)


class RateLimitedLog:
    """Logs each kind of message at most once per period, saying how many were held back.

    >>> warn = RateLimitedLog(node.get_logger().warning, period_s=5.0)
    >>> warn("encoding", "unknown image encoding 'xyz8'")   # logged; the same key is quiet for 5 s
    """

    def __init__(self, log: Callable[[str], object], period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self.period_s = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def __call__(self, key: str, message: str) -> bool:
        """Log `message` unless `key` was logged less than a period ago; True when logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] += 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
        suffix = f" ({held} more like this since the last report)" if held else ""
        self._log(message + suffix)
        return True


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, float):
        value = f"{value:.2f}"
    return KeyValue(key=key, value=str(value))


def diagnostic_status(snapshot: StatsSnapshot, *, name: str, hardware_id: str, state: str,
                      info: Mapping[str, object] | None = None, previous: StatsSnapshot | None = None,
                      error: str | None = None) -> DiagnosticStatus:
    """A DiagnosticStatus for the node.

    Level: ERROR when `error` is given (e.g. the model failed to load), WARN when frames were lost in
    transport or bad frames arrived since `previous` (the last report), OK otherwise.
    """
    new_bad = snapshot.bad_total - (previous.bad_total if previous is not None else 0)
    new_lost = snapshot.lost - (previous.lost if previous is not None else 0)
    problems = []
    if new_lost > 0:
        problems.append(f"{new_lost} frame(s) lost in transport since the last report")
    if new_bad > 0:
        worst = max(snapshot.bad, key=lambda r: snapshot.bad[r] - (previous.bad.get(r, 0) if previous else 0))
        problems.append(f"{new_bad} bad frame(s) since the last report ({worst})")
    if error:
        level, message = DiagnosticStatus.ERROR, error
    elif problems:
        level, message = DiagnosticStatus.WARN, "; ".join([state, *problems])
    else:
        level, message = DiagnosticStatus.OK, state
    values = [
        _kv("state", state),
        _kv("frames_received", snapshot.received),
        _kv("frames_lost_in_transport", snapshot.lost),
        _kv("frames_processed", snapshot.processed),
        _kv("frames_dropped", snapshot.dropped),
        _kv("frames_bad", snapshot.bad_total),
        *(_kv(f"bad_{reason}", count) for reason, count in snapshot.bad.items()),
        _kv("latency_ms_p50", snapshot.latency_ms_p50),
        _kv("latency_ms_p95", snapshot.latency_ms_p95),
        _kv("latency_ms_max", snapshot.latency_ms_max),
        _kv("fps", snapshot.fps),
        *(_kv(key, value) for key, value in (info or {}).items()),
    ]
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
