"""Every constant of the decoder, in one validated dataclass with the paper's defaults.

Tags as in ALGORITHM.md: [paper] StrongPose, [PL] PersonLab practice, [ours] this project's choice.
Distances are in input-image pixels unless a name says otherwise; the decoder converts them to the
output grid (R/s) itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["BACKENDS", "KEYPOINT_SCORE_MODES", "NMS_MODES", "NONFINITE_MODES", "DecoderConfig"]

KEYPOINT_SCORE_MODES = ("plain", "expected_oks")
NMS_MODES = ("keypoint_soft_nms", "oks_hard", "soft_nms")
NONFINITE_MODES = ("raise", "zero")
BACKENDS = ("auto", "numpy", "torch")


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder settings. Immutable: change one with `config.replace(peak_threshold=0.2)`.

    - `vote_radius` R: disk radius of the heat maps, input px; the Hough maps are normalised by
      1/(pi (R/s)^2), so a fully supported keypoint scores about 1 [paper: R = 16].
    - `vote_threshold`: only pixels with p_k above it vote; cuts the work to the disks [ours].
    - `blur_sigma`: Gaussian blur of the Hough maps before peak picking, in grid cells; 0 turns it off.
    - `peak_threshold`: a local maximum of the (blurred) Hough map must exceed it to become a candidate.
    - `peak_window`: side of the local-maximum window, in cells (3x3 at stride 8) [PL].
    - `nms_radius` r: a candidate within r of the same keypoint type of an existing person is skipped,
      and Eq. 1 counts a keypoint only if it is farther than r from every better person's [paper: 10 px].
    - `refine_steps`: short-range refinements y <- y + S(y) after each seed and each mid-range step [PL: 2].
    - `max_people`: at most this many people per image (COCO evaluates the top 20).
    - `keypoint_score`: "plain" (s = h_k(y), clipped to [0, 1]) or "expected_oks" [paper, PL].
    - `score_window`: the plain score reads h_k(y) as the vote mass in this many cells square around y
      (votes are splatted bilinearly, so a bilinear read would lose up to 3/4 of them) [ours].
    - `instance_nms`: "keypoint_soft_nms" (Eq. 1) [paper], "oks_hard" (greedy OKS-NMS over people,
      instance score = mean keypoint score) or "soft_nms" (Gaussian soft-NMS over people on OKS).
    - `oks_nms_threshold`: "oks_hard" drops a person whose OKS with a better kept one exceeds it.
    - `soft_nms_sigma`: "soft_nms" multiplies a score by exp(-OKS^2 / sigma) (Bodla et al.).
    - `min_instance_score`: people scoring at or below it are dropped (with Eq. 1, pure duplicates score 0).
    - `keypoint_threshold`: keypoints scoring at least this span a person's box (and the BHM mean).
    - `reverse_check_radius`: the walk keeps a step a->b only if the reverse offset M_{b->a} from b,
      refined, lands within this distance of a; otherwise b and what lies beyond it stay placeholders
      (0 turns the check off; see `greedy.py`) [ours: 20 px, a little over R so that at stride 16, one
      cell per R, overlapping people still pass].
    - `merge_fragments`: join the pieces of one person that the walk left apart (see `fragments.py`) [ours]:
      B joins the nearer earlier piece A when their supported keypoints (score >= `fragment_support`) are of
      disjoint types; a tree edge between them has an offset leading from one end to the other (within
      `reverse_check_radius`); no limb of one is over `fragment_max_limb_ratio` times as long or as short
      as its mirror image in the other; some keypoint of each lies within `fragment_body_reach` px of one
      connected region of the body map >= `fragment_min_body` (unless one of them is off the map); and the
      gap between them, where the skeleton would join them, is at most `fragment_max_gap` times the larger
      one's extent, at least `fragment_min_extent` px.
    - `bhm_rescore`: multiply each instance score by the mean body heat map under its keypoints [ours, off].
    - `nonfinite`: NaN/inf in the maps: "raise" a ValueError naming the tensor, or read them as "zero".
    - `backend`: "auto" (torch for CUDA tensors, numpy/numba otherwise), "numpy" or "torch" (voting and
      peak finding with torch ops on the tensors' device; the greedy grouping always runs on the CPU).
    """

    vote_radius: float = 16.0
    vote_threshold: float = 0.01
    blur_sigma: float = 0.0
    peak_threshold: float = 0.1
    peak_window: int = 3
    nms_radius: float = 10.0
    refine_steps: int = 2
    reverse_check_radius: float = 20.0
    max_people: int = 20
    keypoint_score: str = "plain"
    score_window: int = 3
    instance_nms: str = "keypoint_soft_nms"
    oks_nms_threshold: float = 0.5
    soft_nms_sigma: float = 0.5
    min_instance_score: float = 0.0
    keypoint_threshold: float = 0.1
    merge_fragments: bool = True
    fragment_support: float = 0.5
    fragment_min_body: float = 0.5
    fragment_max_gap: float = 5.0
    fragment_body_reach: float = 32.0
    fragment_min_extent: float = 48.0
    fragment_max_limb_ratio: float = 3.0
    bhm_rescore: bool = False
    nonfinite: str = "raise"
    backend: str = "auto"

    def __post_init__(self) -> None:
        def number(name: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"DecoderConfig.{name} must be a finite number, got {value!r}")
            if value < low or (low_open and value == low) or value > high:
                bound = f"{'>' if low_open else '>='} {low}" + ("" if high == math.inf else f" and <= {high}")
                raise ValueError(f"DecoderConfig.{name} must be {bound}, got {value!r}")

        def integer(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"DecoderConfig.{name} must be an integer >= {low}, got {value!r}")

        def choice(name: str, options: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"DecoderConfig.{name} must be one of {options}, got {value!r}")

        number("vote_radius", 0.0, low_open=True)
        number("vote_threshold", 0.0)
        number("blur_sigma", 0.0, 10.0)
        number("peak_threshold", 0.0)
        integer("peak_window", 1)
        if self.peak_window % 2 == 0:
            raise ValueError(f"DecoderConfig.peak_window must be odd (a centred window), got {self.peak_window}")
        number("nms_radius", 0.0)
        integer("refine_steps", 0)
        number("reverse_check_radius", 0.0)
        integer("max_people", 1)
        choice("keypoint_score", KEYPOINT_SCORE_MODES)
        integer("score_window", 1)
        if self.score_window % 2 == 0:
            raise ValueError(f"DecoderConfig.score_window must be odd (a centred window), got {self.score_window}")
        choice("instance_nms", NMS_MODES)
        number("oks_nms_threshold", 0.0, 1.0)
        number("soft_nms_sigma", 0.0, low_open=True)
        number("min_instance_score", 0.0)
        number("keypoint_threshold", 0.0)
        number("fragment_support", 0.0)
        number("fragment_min_body", 0.0, 1.0)
        number("fragment_max_gap", 0.0)
        number("fragment_body_reach", 0.0)
        number("fragment_min_extent", 0.0)
        number("fragment_max_limb_ratio", 0.0)
        for name in ("merge_fragments", "bhm_rescore"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"DecoderConfig.{name} must be a bool, got {getattr(self, name)!r}")
        choice("nonfinite", NONFINITE_MODES)
        choice("backend", BACKENDS)

    def replace(self, **changes: Any) -> DecoderConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - set(asdict(self)))
        if unknown:
            raise ValueError(f"DecoderConfig has no field(s) {unknown}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        """Build from a mapping (YAML, ROS parameters); unknown keys are an error, missing ones default."""
        return cls().replace(**dict(data))
