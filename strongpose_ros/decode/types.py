"""What the decoder returns: one `PersonPose` per detected person."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PersonPose"]


@dataclass(eq=False)
class PersonPose:
    """One person: all K keypoints (never missing; weak ones just score low), an instance score, a box.

    - `keypoints`: (K, 3) float32 rows [x, y, score], x/y in input-image pixels (COCO's convention),
      scores in [0, 1];
    - `score`: the instance score (Eq. 1 by default), comparable between images;
    - `box`: (x_min, y_min, x_max, y_max) of the keypoints scoring at least the decoder's
      `keypoint_threshold` (of all keypoints when none does).
    """

    keypoints: np.ndarray
    score: float
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise ValueError(f"PersonPose.keypoints must have shape (K, 3), got {kp.shape}")
        self.keypoints = kp
        self.score = float(self.score)
        if len(self.box) != 4:
            raise ValueError(f"PersonPose.box must be (x_min, y_min, x_max, y_max), got {self.box!r}")
        self.box = tuple(float(v) for v in self.box)

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def xy(self) -> np.ndarray:
        """(K, 2) keypoint positions."""
        return self.keypoints[:, :2]

    @property
    def keypoint_scores(self) -> np.ndarray:
        """(K,) keypoint scores."""
        return self.keypoints[:, 2]

    def to_coco_keypoints(self, visibility: str = "score") -> list[float]:
        """The 3K list COCO results use: x, y, v per keypoint.

        COCOeval reads only x and y of detections; v is `"score"` (the keypoint score, keeps the
        information) or `"one"` (v = 1, for tools that insist on a visibility flag).
        """
        if visibility not in ("score", "one"):
            raise ValueError(f"visibility must be 'score' or 'one', got {visibility!r}")
        out = self.keypoints.astype(np.float64)
        if visibility == "one":
            out[:, 2] = 1.0
        return [float(v) for v in out.reshape(-1)]

    def to_dict(self) -> dict:
        return {"keypoints": self.keypoints.tolist(), "score": self.score, "box": list(self.box)}

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        return f"PersonPose(score={self.score:.3f}, box=({box}), K={self.num_keypoints})"
