"""Stable person ids across frames: greedy association by OKS (or box overlap) with a short memory.

Downstream consumers (action recognition, following, gesture control) need one sequence per person, so
every person the decoder returns gets a track id. The tracker is deliberately simple and deterministic:

- Similarity between a track and a detection is the OKS of the detection's keypoints against the track's
  last keypoints (COCO's formula, the schema's sigmas, the mean box area of the two as the scale), over
  the keypoints both see (score >= `keypoint_threshold`). With fewer than `min_common_keypoints` seen by
  both, OKS is not meaningful, and the intersection-over-union of the boxes is used instead.
- Association is greedy: all (track, detection) pairs at or above `min_similarity`, best first, each
  track and detection used once (ties broken by track age, then by detection order, for determinism).
- Memory: a track not matched for more than `max_age` consecutive frames, or for more than `max_gap_s`
  seconds of stamp time (when stamps are given), is forgotten.
- Id rules: ids start at 1 and increase; 0 is never given (it means "tracking off" in messages). A person
  re-found within the memory keeps its id; after that a new id is given. An id is never re-used while the
  tracker lives, except after 2**32 - 1 ids, when numbering wraps to 1 and skips ids still in use.
  When the stamps go backwards (a bag looped or was restarted, simulated time reset), the tracker starts
  over from id 1, so replaying the same input gives the same ids.

No ROS here: the node, the demo and the bag tool share this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from strongpose_ros.decode import PersonPose
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = ["MAX_TRACK_ID", "Track", "Tracker", "TrackerConfig", "box_iou", "oks"]

# Person.id is a uint32 and 0 means "no tracking".
MAX_TRACK_ID = 2**32 - 1


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings (all [ours]; chosen for 10-30 fps camera streams).

    - `min_similarity`: a detection continues a track only when their OKS (or box IoU) is at least this;
    - `keypoint_threshold`: keypoints scoring at least this take part in OKS (the decoder's default);
    - `min_common_keypoints`: fewer keypoints seen by both -> compare boxes instead of OKS;
    - `max_age`: frames a track survives without a match (short memory, about 1/3 s at 30 fps);
    - `max_gap_s`: seconds of stamp time a track survives without a match (0: no time limit);
    - `min_area`: floor of the OKS scale s^2, in pixels^2, so that tiny boxes do not make OKS collapse.
    """

    min_similarity: float = 0.3
    keypoint_threshold: float = 0.1
    min_common_keypoints: int = 3
    max_age: int = 10
    max_gap_s: float = 1.0
    min_area: float = 32.0 * 32.0

    def __post_init__(self) -> None:
        for name, low, high in (("min_similarity", 0.0, 1.0), ("keypoint_threshold", 0.0, 1.0),
                                ("max_gap_s", 0.0, math.inf), ("min_area", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                bound = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
                raise ValueError(f"TrackerConfig.{name} must be a finite number {bound}, got {value!r}")
        for name, low in (("min_common_keypoints", 1), ("max_age", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TrackerConfig.{name} must be an integer >= {low}, got {value!r}")

    def replace(self, **changes: Any) -> TrackerConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"TrackerConfig has no field(s) {unknown}")
        return replace(self, **changes)


@dataclass
class Track:
    """One tracked person: its id and where it was last seen."""

    track_id: int
    keypoints: np.ndarray  # (K, 3) x, y, score of the last matched detection
    box: tuple[float, float, float, float]
    last_stamp: float | None = None
    age: int = 0  # frames since the last match
    hits: int = 1  # frames matched in all
    born: int = field(default=0, repr=False)  # frame number of creation (tie-breaking: older first)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x_min, y_min, x_max, y_max) boxes; 0 for empty boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def oks(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray, area: float, mask: np.ndarray | None = None) -> float:
    """COCO's object keypoint similarity of two (K, 2+) keypoint sets at scale s^2 = `area`.

    OKS = mean over the keypoints in `mask` (all when None) of exp(-d^2 / (2 s^2 (2 sigma)^2)).
    """
    d2 = np.sum((np.asarray(a, np.float64)[:, :2] - np.asarray(b, np.float64)[:, :2]) ** 2, axis=1)
    e = d2 / (2.0 * max(area, np.finfo(np.float64).tiny) * (2.0 * np.asarray(sigmas, np.float64)) ** 2)
    values = np.exp(-e)
    if mask is not None:
        if not mask.any():
            return 0.0
        values = values[mask]
    return float(values.mean())


class Tracker:
    """Gives each person a stable id across frames.

    >>> tracker = Tracker(COCO17)
    >>> ids = tracker.update(people, stamp=1.25)   # one id per person, in the order given
    """

    def __init__(self, schema: KeypointSchema = COCO17, config: TrackerConfig | None = None,
                 first_id: int = 1) -> None:
        if not 1 <= first_id <= MAX_TRACK_ID:
            raise ValueError(f"Tracker: first_id must be in 1..{MAX_TRACK_ID}, got {first_id}")
        self.schema = schema
        self.config = config or TrackerConfig()
        self._sigmas = schema.sigmas_array.astype(np.float64)
        self.reset()
        self._next_id = int(first_id)

    def reset(self) -> None:
        """Forget every track; numbering starts again at 1 (what a replay from the start wants)."""
        self.tracks: list[Track] = []
        self._next_id = 1
        self._frame = 0
        self._last_stamp: float | None = None

    def forget(self) -> None:
        """Forget every track; numbering goes on, so no id is given out twice (tracking switched off and on)."""
        next_id = self._next_id
        self.reset()
        self._next_id = next_id

    @property
    def next_id(self) -> int:
        """The id the next new track gets (unless it is still live after a wrap-around)."""
        return self._next_id

    def set_config(self, config: TrackerConfig) -> None:
        """New settings between frames (tracks are kept)."""
        self.config = config

    def similarity(self, track: Track, person: PersonPose) -> float:
        """OKS of `person` against the track's last pose, or box IoU when too few keypoints are shared."""
        cfg = self.config
        kp = person.keypoints
        if kp.shape[0] != self._sigmas.shape[0]:
            raise ValueError(f"Tracker: a person has {kp.shape[0]} keypoints, the schema "
                             f"{self.schema.name!r} {self._sigmas.shape[0]}")
        common = (track.keypoints[:, 2] >= cfg.keypoint_threshold) & (kp[:, 2] >= cfg.keypoint_threshold)
        if int(common.sum()) >= cfg.min_common_keypoints:
            area = max(0.5 * (_area(track.box) + _area(person.box)), cfg.min_area)
            return oks(track.keypoints, kp, self._sigmas, area, common)
        return box_iou(track.box, person.box)

    def update(self, people: Sequence[PersonPose], stamp: float | None = None) -> list[int]:
        """Associate this frame's people with the tracks; returns one id per person, in the order given."""
        cfg = self.config
        if stamp is not None:
            stamp = float(stamp)
            if not math.isfinite(stamp):
                raise ValueError(f"Tracker.update: stamp must be finite, got {stamp!r}")
            if self._last_stamp is not None and stamp < self._last_stamp:
                self.reset()  # time went backwards: a replay restarted
            self._last_stamp = stamp
        self._frame += 1
        if cfg.max_gap_s > 0 and stamp is not None:
            # Too long unseen in stamp time: forgotten before association, so it cannot be continued.
            self.tracks = [t for t in self.tracks if t.last_stamp is None or stamp - t.last_stamp <= cfg.max_gap_s]

        pairs = []
        for ti, track in enumerate(self.tracks):
            for di, person in enumerate(people):
                s = self.similarity(track, person)
                if s >= cfg.min_similarity and s > 0.0:
                    pairs.append((-s, track.born, di, ti))
        pairs.sort()  # best similarity first; then older tracks, then earlier (higher-scoring) detections
        ids = [0] * len(people)
        used_tracks: set[int] = set()
        for _, _, di, ti in pairs:
            if ids[di] or ti in used_tracks:
                continue
            track = self.tracks[ti]
            ids[di] = track.track_id
            used_tracks.add(ti)
            self._refresh(track, people[di], stamp)

        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.age += 1
                if track.age > cfg.max_age:
                    continue
            survivors.append(track)
        self.tracks = survivors

        for di, person in enumerate(people):
            if not ids[di]:
                track = Track(self._new_id(), person.keypoints.copy(), tuple(person.box), stamp, born=self._frame)
                self.tracks.append(track)
                ids[di] = track.track_id
        return ids

    def _refresh(self, track: Track, person: PersonPose, stamp: float | None) -> None:
        track.keypoints = person.keypoints.copy()
        track.box = tuple(person.box)
        track.last_stamp = stamp
        track.age = 0
        track.hits += 1

    def _new_id(self) -> int:
        live = {t.track_id for t in self.tracks}
        candidate = self._next_id
        while candidate in live:  # only after a wrap-around
            candidate = candidate % MAX_TRACK_ID + 1
        self._next_id = candidate % MAX_TRACK_ID + 1
        return candidate
