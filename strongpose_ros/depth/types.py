"""What the lifting returns (`PeoplePositions`, one `Person3D` per person) and why a frame has no 3D
(`DepthStatus`, the values of PersonArray's `depth_status` constants)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["DepthStatus", "PeoplePositions", "Person3D"]


class DepthStatus(IntEnum):
    """Whether a frame's keypoints were lifted to 3D, and if not, why (PersonArray.DEPTH_* constants).

    - OFF: depth is not enabled;
    - OK: lifted with a depth frame paired by stamp (each keypoint's validity says which got a position);
    - NO_MATCH: depth frames arrive, but none within the stamp tolerance of this frame;
    - LATE: no depth frame for this stamp arrived in time (the depth stream lags or is silent);
    - SIZE_MISMATCH: the paired depth frame does not show the colour image's field of view (aspect ratio);
    - NO_CAMERA_INFO: no usable CameraInfo (none received yet, or refused: e.g. a zero focal length);
    - BAD_DEPTH: the depth frame could not be read (unsupported encoding, corrupt message).
    """

    OFF = 0
    OK = 1
    NO_MATCH = 2
    LATE = 3
    SIZE_MISMATCH = 4
    NO_CAMERA_INFO = 5
    BAD_DEPTH = 6


@dataclass(frozen=True, eq=False)
class Person3D:
    """One person in 3D, in the camera's optical frame (x right, y down, z forward), metres.

    - `keypoints`: (K, 3) float32 positions, NaN rows where `keypoint_valid` is False (never zeros);
    - `keypoint_valid`: (K,) bool; `keypoint_confidence`: (K,) float32 in [0, 1], 0 where not valid;
    - `position`: (3,) float32 robust centre of the person (per-axis median of its valid keypoints), NaN
      where `valid` is False; `confidence`: in [0, 1].
    """

    keypoints: np.ndarray
    keypoint_valid: np.ndarray
    keypoint_confidence: np.ndarray
    position: np.ndarray
    valid: bool
    confidence: float

    @classmethod
    def absent(cls, num_keypoints: int) -> Person3D:
        """A person with no 3D at all (no depth): every position NaN and marked invalid."""
        return cls(
            np.full((num_keypoints, 3), np.nan, np.float32), np.zeros(num_keypoints, bool),
            np.zeros(num_keypoints, np.float32), np.full(3, np.nan, np.float32), False, 0.0,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class PeoplePositions:
    """The 3D of P people with K keypoints each, as arrays (see `Person3D` for the meaning of each).

    `people[i]` is a `Person3D`; `reference_depth` (P,) is each person's reference depth for the read
    (NaN where none), for diagnostics.
    """

    keypoints: np.ndarray  # (P, K, 3) float32
    keypoint_valid: np.ndarray  # (P, K) bool
    keypoint_confidence: np.ndarray  # (P, K) float32
    positions: np.ndarray  # (P, 3) float32
    position_valid: np.ndarray  # (P,) bool
    position_confidence: np.ndarray  # (P,) float32
    reference_depth: np.ndarray  # (P,) float32

    def __post_init__(self) -> None:
        p, k = self.keypoint_valid.shape
        shapes = {
            "keypoints": (p, k, 3), "keypoint_confidence": (p, k), "positions": (p, 3),
            "position_valid": (p,), "position_confidence": (p,), "reference_depth": (p,),
        }  # fmt: skip
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"PeoplePositions.{name} must have shape {shape}, got {getattr(self, name).shape}")

    @classmethod
    def absent(cls, num_people: int, num_keypoints: int) -> PeoplePositions:
        """No 3D for anyone (a frame without depth)."""
        return cls.stack([Person3D.absent(num_keypoints)] * num_people, num_keypoints)

    @classmethod
    def stack(cls, people: Sequence[Person3D], num_keypoints: int | None = None) -> PeoplePositions:
        """Arrays of a list of `Person3D` (`num_keypoints` is needed only when the list is empty)."""
        if not people:
            k = int(num_keypoints or 0)
            return cls(np.zeros((0, k, 3), np.float32), np.zeros((0, k), bool), np.zeros((0, k), np.float32),
                       np.zeros((0, 3), np.float32), np.zeros(0, bool), np.zeros(0, np.float32),
                       np.zeros(0, np.float32))  # fmt: skip
        return cls(
            np.stack([p.keypoints for p in people]).astype(np.float32),
            np.stack([p.keypoint_valid for p in people]).astype(bool),
            np.stack([p.keypoint_confidence for p in people]).astype(np.float32),
            np.stack([p.position for p in people]).astype(np.float32),
            np.array([p.valid for p in people], bool),
            np.array([p.confidence for p in people], np.float32),
            np.full(len(people), np.nan, np.float32),
        )

    def __len__(self) -> int:
        return int(self.keypoint_valid.shape[0])

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoint_valid.shape[1])

    def __getitem__(self, index: int) -> Person3D:
        return Person3D(
            self.keypoints[index], self.keypoint_valid[index], self.keypoint_confidence[index],
            self.positions[index], bool(self.position_valid[index]), float(self.position_confidence[index]),
        )  # fmt: skip

    def __iter__(self):
        return (self[i] for i in range(len(self)))
