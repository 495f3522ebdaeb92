"""Keypoint schemas: the one place that says what a skeleton is.

A schema holds everything the rest of the package needs to know about a keypoint set: names, the
left/right flip pairs, the OKS sigmas COCOeval uses, the kinematic tree the decoder walks (PersonLab's
16 COCO edges) and the drawing links. Network heads, target encoding, decoding, evaluation, messages
and drawing all read it from here, so a model trained on another keypoint set (CrowdPose-14, say)
runs through the same code.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["COCO17", "CROWDPOSE14", "SCHEMAS", "KeypointSchema", "get_schema"]


@dataclass(frozen=True)
class KeypointSchema:
    """A keypoint set, immutable and validated on construction.

    `tree` lists undirected edges (a, b), 0-based; the decoder and the mid-range head use its directed
    form: the edges as given followed by their reverses (2E in all). `skeleton` lists drawing links,
    0-based, and may contain more links than the tree (COCO's has 19).
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    tree: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        k = len(self.keypoints)
        if k == 0:
            raise ValueError(f"schema {self.name!r}: no keypoints")
        if len(set(self.keypoints)) != k:
            raise ValueError(f"schema {self.name!r}: duplicate keypoint names")
        if len(self.sigmas) != k:
            raise ValueError(f"schema {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if any(not s > 0 for s in self.sigmas):
            raise ValueError(f"schema {self.name!r}: OKS sigmas must be positive")
        for what, pairs in (("flip pair", self.flip_pairs), ("tree edge", self.tree), ("skeleton link", self.skeleton)):
            for a, b in pairs:
                if not (0 <= a < k and 0 <= b < k) or a == b:
                    raise ValueError(f"schema {self.name!r}: bad {what} ({a}, {b}) for {k} keypoints")
        flipped = [i for pair in self.flip_pairs for i in pair]
        if len(flipped) != len(set(flipped)):
            raise ValueError(f"schema {self.name!r}: a keypoint appears in two flip pairs")
        self._check_spanning_tree()

    def _check_spanning_tree(self) -> None:
        k = len(self.keypoints)
        if len(self.tree) != k - 1:
            raise ValueError(
                f"schema {self.name!r}: a tree over {k} keypoints needs {k - 1} edges, got {len(self.tree)}"
            )
        neighbours: list[list[int]] = [[] for _ in range(k)]
        for a, b in self.tree:
            neighbours[a].append(b)
            neighbours[b].append(a)
        seen = {0}
        queue = deque([0])
        while queue:
            for n in neighbours[queue.popleft()]:
                if n not in seen:
                    seen.add(n)
                    queue.append(n)
        if len(seen) != k:
            missing = sorted(set(range(k)) - seen)
            raise ValueError(f"schema {self.name!r}: the tree does not reach keypoints {missing}")

    # --- derived views -------------------------------------------------------------------------

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def num_edges(self) -> int:
        """E, the number of undirected tree edges (the mid-range head has 4E channels)."""
        return len(self.tree)

    @cached_property
    def directed_edges(self) -> tuple[tuple[int, int], ...]:
        """The 2E directed edges: the tree edges as given, then their reverses."""
        return tuple(self.tree) + tuple((b, a) for a, b in self.tree)

    @cached_property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float32)

    @cached_property
    def flip_permutation(self) -> np.ndarray:
        """perm[k] is the keypoint that k becomes in a horizontally mirrored image."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    @cached_property
    def directed_edge_flip_permutation(self) -> np.ndarray:
        """perm[e] is the directed edge that e becomes in a mirrored image.

        Needed to mirror mid-range offsets (flip test-time augmentation); raises if the tree is not
        left/right symmetric, in which case mirroring the mid-range field is not defined.
        """
        index = {edge: i for i, edge in enumerate(self.directed_edges)}
        fp = self.flip_permutation
        perm = np.empty(len(self.directed_edges), dtype=np.int64)
        for i, (a, b) in enumerate(self.directed_edges):
            mirrored = (int(fp[a]), int(fp[b]))
            if mirrored not in index:
                raise ValueError(f"schema {self.name!r}: tree is not left/right symmetric at edge {(a, b)}")
            perm[i] = index[mirrored]
        return perm

    def index(self, keypoint_name: str) -> int:
        return self.keypoints.index(keypoint_name)

    # --- serialisation (checkpoints, PoseSchema messages) ---------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
            "tree": [list(e) for e in self.tree],
            "skeleton": [list(e) for e in self.skeleton],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeypointSchema:
        try:
            return cls(
                name=str(data["name"]),
                keypoints=tuple(str(n) for n in data["keypoints"]),
                flip_pairs=tuple((int(a), int(b)) for a, b in data["flip_pairs"]),
                sigmas=tuple(float(s) for s in data["sigmas"]),
                tree=tuple((int(a), int(b)) for a, b in data["tree"]),
                skeleton=tuple((int(a), int(b)) for a, b in data["skeleton"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a keypoint schema: {exc}") from exc


# COCO-17: order, flip pairs and sigmas from the COCO keypoint task; the grouping tree is PersonLab's;
# the drawing links are the annotation file's categories[0].skeleton, converted to 0-based.
COCO17 = KeypointSchema(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=tuple(s / 10.0 for s in (
        0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
    )),
    tree=(
        (0, 1), (0, 2), (0, 5), (0, 6), (1, 3), (2, 4), (5, 7), (6, 8),
        (7, 9), (8, 10), (5, 11), (6, 12), (11, 13), (12, 14), (13, 15), (14, 16),
    ),
    skeleton=tuple((a - 1, b - 1) for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
        (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    )),
)

# CrowdPose-14: its keypoint order and sigmas (crowdposetools); the tree hangs the limbs off the neck.
CROWDPOSE14 = KeypointSchema(
    name="crowdpose14",
    keypoints=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
    ),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    sigmas=tuple(s / 10.0 for s in (
        0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79,
    )),
    tree=(
        (12, 13), (13, 0), (13, 1), (0, 2), (1, 3), (2, 4), (3, 5),
        (0, 6), (1, 7), (6, 8), (7, 9), (8, 10), (9, 11),
    ),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 2), (1, 3), (2, 4), (3, 5),
        (0, 6), (1, 7), (6, 7), (6, 8), (7, 9), (8, 10), (9, 11),
    ),
)

SCHEMAS: dict[str, KeypointSchema] = {s.name: s for s in (COCO17, CROWDPOSE14)}


def get_schema(name: str) -> KeypointSchema:
    """Look a built-in schema up by name ('coco17', 'crowdpose14')."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint schema {name!r}; known: {sorted(SCHEMAS)}") from None
