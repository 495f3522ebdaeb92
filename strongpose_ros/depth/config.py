"""Every constant of the depth lifting and of the colour/depth synchroniser, with the reasons.

Two validated, immutable dataclasses: `LiftingConfig` (the robust depth read and the 3D positions) and
`SyncConfig` (pairing colour and depth frames by stamp). Change one with `dataclasses.replace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LiftingConfig", "SyncConfig"]


def _number(owner: str, name: str, value: object, low: float, high: float = math.inf, *, low_open: bool = False
            ) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or value > high:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high == math.inf else f" and <= {high}")
        raise ValueError(f"{owner}.{name} must be {bound}, got {value!r}")


def _integer(owner: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class LiftingConfig:
    """How a keypoint's depth is read from an aligned depth image, and when a 3D position is given.

    The read, per keypoint (see `sampling.py`): a square window around the keypoint's depth pixel; the
    pixels with data in the sensor's range; of those, the ones on the body heat map; of those, the ones
    near the person's own depth; then the median of the nearest surface among them.

    - `window_radius_px` (4): half-side of the window, in pixels of a `reference_width_px`-wide depth
      image, scaled with the depth image's width (4 at 640 px: 9x9; 8 at 1280 px), so the window covers
      the same patch of the scene at any resolution. Why 4: a forearm 7 cm wide at 4 m is 11 px wide at
      640 px (fx about 600), so a 9x9 window centred on it is mostly limb; and a stride-8 network's
      keypoints miss by a few pixels, which the window absorbs. Larger windows see more background,
      which the gates below remove, but cost more.
    - `reference_width_px` (640): the depth width `window_radius_px` is given for.
    - `min_depth_m` (0.1), `max_depth_m` (20.0): depth values outside are no data. Below 0.1 m no
      consumer depth sensor measures (RealSense D4xx's minimum is 0.1-0.3 m); above 20 m they give
      noise, and 16UC1 drivers' saturated 65.535 m is not a measurement.
    - `body_threshold` (0.3): a window pixel is on the body when the body heat map there is at least this.
      The map is at stride 8-16, so a limb's edge is a soft ramp; 0.3 keeps the ramp, drops the
      background (0 by training, 0.06-0.1 in practice).
    - `off_body_factor` (0.5): when fewer than `min_pixels` pixels of a window with data are on the
      body (the coarse map misses a wrist), the window is read without the body mask and the keypoint's
      confidence is multiplied by this: the person gate and the nearest-surface rule still reject the
      background, but the network's two heads disagree, which the consumer should see.
    - `reference_min_score` (0.3): the person's reference depth is the median of the first reads of its
      keypoints scoring at least this (only of all keypoints above `min_keypoint_score` when none does).
      A median over a person's confident keypoints is right as long as fewer than half of them read
      the background.
    - `max_nearer_m` (1.0), `max_farther_m` (0.6): a pixel is near the person when its depth lies within
      [reference - max_nearer_m, reference + max_farther_m]. Nearer: an arm reaching at the camera is
      0.7-0.9 m before the torso. Farther: the torso's keypoints lie on its front, the body's back is
      0.3 m behind them and an arm stretched back 0.5 m; a wall or person 1 m behind is rejected.
    - `surface_percentile` (0.3), `surface_thickness_m` (0.12): the keypoint's depth is the median of the
      nearest surface that holds at least this share of the kept pixels: the depths from the kept ones'
      `surface_percentile` up to `surface_thickness_m` deeper (a forearm or shin is 8-15 cm thick).
      Why not the window's median: behind a thin limb the window also sees what is behind it (the torso,
      a chair, the floor: farther, and within the person gate when close), so a keypoint that misses
      its limb by a pixel or two would read the background. Why not the nearest pixel (a low percentile):
      a neighbouring part that is nearer (the other arm, another person in front) and reaches into the
      window's edge would win. 0.3 of a 9x9 window is three of its nine columns: a limb the keypoint misses
      by up to 2 px still fills them and wins; a nearer part that reaches up to two columns in does not
      (`strongpose bench lifting --layouts 6 --surface-percentile P`, 10 people at 640x480: visible
      keypoints read more than 10 cm off: 2.1% at 0.1, 0.7% at 0.3, 0.1% at 0.5, the median, which
      fails the thin limb). Flying pixels at an occlusion edge lie between the two surfaces, so they never come first.
    - `min_pixels` (3): fewer pixels in that surface -> no position (one pixel can be a flying pixel).
    - `full_support_fraction` (0.4): the coverage part of the confidence is 1 when at least this
      fraction of the window's pixels are in the surface (a thin limb covers about half the window).
    - `min_keypoint_score` (0.1): keypoints scoring below are not lifted: their pixel is not where a body
      part is (the decoder's `keypoint_threshold` and the markers' threshold have the same default).
    - `min_person_keypoints` (2): a person's 3D position needs at least this many lifted keypoints (a
      single read may be a stray).

    Confidence of a keypoint's position, in [0, 1]: keypoint score x min(1, surface fraction /
    `full_support_fraction`) x agreement, where agreement = 1 - (inter-quartile range of the surface's
    depths) / `surface_thickness_m`, clipped to [0, 1] (x `off_body_factor` when read without the mask).
    A person's position confidence is the mean of its keypoints' (0 for those without a position): how
    much of the person was seen in 3D, and how well.
    """

    window_radius_px: int = 4
    reference_width_px: int = 640
    min_depth_m: float = 0.1
    max_depth_m: float = 20.0
    body_threshold: float = 0.3
    off_body_factor: float = 0.5
    reference_min_score: float = 0.3
    max_nearer_m: float = 1.0
    max_farther_m: float = 0.6
    surface_percentile: float = 0.3
    surface_thickness_m: float = 0.12
    min_pixels: int = 3
    full_support_fraction: float = 0.4
    min_keypoint_score: float = 0.1
    min_person_keypoints: int = 2

    def __post_init__(self) -> None:
        owner = "LiftingConfig"
        _integer(owner, "window_radius_px", self.window_radius_px, 0)
        _integer(owner, "reference_width_px", self.reference_width_px, 1)
        _number(owner, "min_depth_m", self.min_depth_m, 0.0, low_open=True)
        _number(owner, "max_depth_m", self.max_depth_m, self.min_depth_m, low_open=True)
        _number(owner, "body_threshold", self.body_threshold, 0.0, 1.0)
        _number(owner, "off_body_factor", self.off_body_factor, 0.0, 1.0)
        _number(owner, "reference_min_score", self.reference_min_score, 0.0)
        _number(owner, "max_nearer_m", self.max_nearer_m, 0.0, low_open=True)
        _number(owner, "max_farther_m", self.max_farther_m, 0.0, low_open=True)
        _number(owner, "surface_percentile", self.surface_percentile, 0.0, 1.0)
        _number(owner, "surface_thickness_m", self.surface_thickness_m, 0.0, low_open=True)
        _integer(owner, "min_pixels", self.min_pixels, 1)
        _number(owner, "full_support_fraction", self.full_support_fraction, 0.0, 1.0, low_open=True)
        _number(owner, "min_keypoint_score", self.min_keypoint_score, 0.0)
        _integer(owner, "min_person_keypoints", self.min_person_keypoints, 1)

    def window_radius(self, depth_width: int) -> int:
        """The window's half-side in pixels of a depth image `depth_width` pixels wide (0 stays 0: one pixel)."""
        if self.window_radius_px == 0:
            return 0
        return max(1, round(self.window_radius_px * depth_width / self.reference_width_px))


@dataclass(frozen=True)
class SyncConfig:
    """How colour and depth frames are paired by their header stamps (see `sync.py`).

    - `tolerance_s` (0.02): a depth frame pairs with a colour frame when their stamps differ by at most
      this; the nearest such depth frame wins. Drivers that align depth to colour (RealSense, Orbbec)
      stamp both alike or within a few ms; 20 ms is below a 30 Hz stream's 33 ms period, so a frame whose
      own depth is missing never pairs with its neighbour's (for 60 Hz streams, set 0.008).
    - `max_wait_s` (0.1): a colour frame waits at most this long (wall time) for a depth frame that has
      not arrived yet, then goes on without depth (reported late). Aligned depth is computed by the
      driver after both frames are captured and usually follows the colour frame by a few ms to a few
      tens of ms; 0 decides at once (never waits).
    - `queue_size` (10): frames kept per side (a third of a second at 30 Hz: enough for the wait above,
      and bounded). When more colour frames wait, the oldest goes on without waiting longer.
    - `aspect_tolerance` (0.02): a depth image of another size than the colour image is aligned when
      its width and height scale by the same factor within this relative difference (848x480 and
      1280x720 differ by 0.6%); otherwise it does not cover the same field of view (not aligned).
    - `reset_jump_s` (1.0): a stamp this much older than the newest seen on its stream means time went
      back (a bag looped, simulated time restarted): the queues start over.
    """

    tolerance_s: float = 0.02
    max_wait_s: float = 0.1
    queue_size: int = 10
    aspect_tolerance: float = 0.02
    reset_jump_s: float = 1.0

    def __post_init__(self) -> None:
        owner = "SyncConfig"
        _number(owner, "tolerance_s", self.tolerance_s, 0.0)
        _number(owner, "max_wait_s", self.max_wait_s, 0.0)
        _integer(owner, "queue_size", self.queue_size, 1)
        _number(owner, "aspect_tolerance", self.aspect_tolerance, 0.0)
        _number(owner, "reset_jump_s", self.reset_jump_s, 0.0, low_open=True)

    @property
    def tolerance_ns(self) -> int:
        return round(self.tolerance_s * 1e9)
