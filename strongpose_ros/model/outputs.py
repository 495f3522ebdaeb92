"""The network's outputs as a small named structure, shared by the model, the oracle and the decoder."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

__all__ = ["PoseOutputs", "output_size"]


def output_size(input_size: int, stride: int) -> int:
    """Feature-map size for an input side at an output stride (the s·n+1 convention: 401 -> 51 at s=8).

    Output cell i sits on input pixel i * stride, so the last cell covers the last pixel exactly when
    input_size = stride * n + 1, and never lies outside the image otherwise.
    """
    return (input_size - 1) // stride + 1


@dataclass
class PoseOutputs:
    """StrongPose outputs for a batch, at output stride `stride`.

    Grid convention: cell (row i, column j) is input-image pixel (x = j * stride, y = i * stride).
    Offsets are in input-image pixels, (dx, dy) along dimension 2.

    - `heatmaps`: (B, K, H, W) strong keypoint heat maps (SKHM), probabilities in [0, 1];
    - `short_offsets`: (B, K, 2, H, W) short-range offsets;
    - `mid_offsets`: (B, 2E, 2, H, W) mid-range offsets for `schema.directed_edges`, after refinement;
    - `body_heatmap`: (B, 1, H, W) body heat map (BHM), probabilities in [0, 1];
    - `heatmap_logits`, `body_logits`: the pre-sigmoid values when a network produced them (losses
      use these for numerically stable cross-entropy); None for oracle outputs;
    - `intermediate`: outputs of the optional intermediate-supervision head, or None.
    """

    heatmaps: torch.Tensor
    short_offsets: torch.Tensor
    mid_offsets: torch.Tensor
    body_heatmap: torch.Tensor
    stride: int
    heatmap_logits: torch.Tensor | None = None
    body_logits: torch.Tensor | None = None
    intermediate: PoseOutputs | None = None

    @property
    def batch_size(self) -> int:
        return self.heatmaps.shape[0]

    @property
    def grid_size(self) -> tuple[int, int]:
        """(H, W) of the output grid."""
        return self.heatmaps.shape[-2], self.heatmaps.shape[-1]

    def to(self, *args, **kwargs) -> PoseOutputs:
        """Move or cast every tensor (like `Tensor.to`)."""
        def move(t):
            return None if t is None else t.to(*args, **kwargs)
        return replace(
            self,
            heatmaps=move(self.heatmaps),
            short_offsets=move(self.short_offsets),
            mid_offsets=move(self.mid_offsets),
            body_heatmap=move(self.body_heatmap),
            heatmap_logits=move(self.heatmap_logits),
            body_logits=move(self.body_logits),
            intermediate=None if self.intermediate is None else self.intermediate.to(*args, **kwargs),
        )

    def select(self, index: int) -> PoseOutputs:
        """The outputs of one batch element, keeping a batch dimension of 1."""
        def pick(t):
            return None if t is None else t[index:index + 1]
        return replace(
            self,
            heatmaps=pick(self.heatmaps),
            short_offsets=pick(self.short_offsets),
            mid_offsets=pick(self.mid_offsets),
            body_heatmap=pick(self.body_heatmap),
            heatmap_logits=pick(self.heatmap_logits),
            body_logits=pick(self.body_logits),
            intermediate=None if self.intermediate is None else self.intermediate.select(index),
        )
