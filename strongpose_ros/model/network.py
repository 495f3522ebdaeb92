"""StrongPoseNet: a trunk (a registered backbone) with the StrongPose heads, and `build_model`.

    images (B, 3, H, W), normalised RGB
      -> trunk (ResNet, MobileNetV1) at output stride s (atrous) -> features (B, C, h, w), h = (H - 1)//s + 1
      -> SKHM / short / mid / BHM heads, mid refinement          -> PoseOutputs on the h x w grid
      (training, optional, ResNets) layer3 -> intermediate heads -> PoseOutputs.intermediate on the same grid
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from strongpose_ros.model.backbones import get_backbone
from strongpose_ros.model.config import ModelConfig
from strongpose_ros.model.heads import HeadOutputs, PoseHeads
from strongpose_ros.model.outputs import PoseOutputs, output_size

__all__ = ["StrongPoseNet", "build_model"]


class StrongPoseNet(nn.Module):
    """The StrongPose network (ALGORITHM.md section 2).

    `forward` takes normalised RGB images of any size (see `ModelConfig.normalize`) and returns
    `PoseOutputs` on the grid output_size(H, s) x output_size(W, s). The intermediate-supervision heads,
    when configured, run in training mode only (they exist to speed training up).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.schema = config.keypoint_schema
        self.backbone = get_backbone(config.backbone).build(config.backbone_config, config.output_stride,
                                                            config.frozen_bn)
        head_options = dict(
            schema=self.schema,
            hidden=config.head_channels,
            offset_scale=config.offset_scale,
            refinement_steps=config.refinement_steps,
            prior=config.heatmap_prior,
        )
        self.heads = PoseHeads(self.backbone.out_channels, body_hidden=config.body_hidden_channels, **head_options)
        self.intermediate_heads = (
            PoseHeads(self.backbone.intermediate_channels, **head_options) if config.intermediate_supervision
            else None
        )

    @property
    def stride(self) -> int:
        return self.backbone.output_stride

    def set_output_stride(self, output_stride: int) -> None:
        """Switch the trunk to output stride 8, 16 or 32 (same weights; atrous convolution)."""
        self.backbone.set_output_stride(output_stride)
        self.config = replace(self.config, output_stride=output_stride)

    def set_refinement_steps(self, steps: int) -> None:
        """How many times the mid-range offsets are refined in the graph (0: the heads' raw offsets)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"refinement steps must be an integer >= 0, got {steps!r}")
        for heads in (self.heads, self.intermediate_heads):
            if heads is not None:
                heads.refinement_steps = steps
        self.config = replace(self.config, refinement_steps=steps)

    def load_backbone_weights(self, path: str | Path) -> None:
        """Initialise the trunk from its pretrained-weights file (ResNets: a torchvision ImageNet checkpoint,
        .pth or .safetensors); a ValueError naming the file when it does not fit or the trunk reads none."""
        self.backbone.load_pretrained(path)

    def forward(self, images: torch.Tensor) -> PoseOutputs:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"StrongPoseNet expects (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"StrongPoseNet expects normalised float images, got {images.dtype}")
        grid = output_size(images.shape[-2], self.stride), output_size(images.shape[-1], self.stride)
        want_intermediate = self.intermediate_heads is not None and self.training
        if want_intermediate:
            features, layer3 = self.backbone(images, return_intermediate=True)
        else:
            features = self.backbone(images)
        outputs = _to_pose_outputs(self.heads(_fit(features, grid), self.stride), self.stride)
        if want_intermediate:
            stride3 = self.backbone.intermediate_stride
            grid3 = output_size(images.shape[-2], stride3), output_size(images.shape[-1], stride3)
            raw = self.intermediate_heads(_fit(layer3, grid3), stride3)
            # Layer3 is never coarser than the output; cell i of the output is cell i*step of layer3.
            step = self.stride // stride3
            if step > 1:
                raw = HeadOutputs(**{name: t[..., ::step, ::step] for name, t in vars(raw).items()})
            outputs.intermediate = _to_pose_outputs(raw, self.stride)
        return outputs

    def forward_tensors(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(heatmaps, short_offsets, mid_offsets, body_heatmap) as plain tensors, for TorchScript/ONNX export."""
        out = self.forward(images)
        return out.heatmaps, out.short_offsets, out.mid_offsets, out.body_heatmap


def _to_pose_outputs(raw: HeadOutputs, stride: int) -> PoseOutputs:
    return PoseOutputs(
        heatmaps=torch.sigmoid(raw.heatmap_logits),
        short_offsets=raw.short_offsets,
        mid_offsets=raw.mid_offsets,
        body_heatmap=torch.sigmoid(raw.body_logits),
        stride=stride,
        heatmap_logits=raw.heatmap_logits,
        body_logits=raw.body_logits,
    )


def _fit(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Crop or edge-pad features to the exact output grid.

    The ResNet arithmetic already gives (n - 1)//s + 1 cells; this guards the contract against layers whose
    arithmetic differs, without ever shifting cell i away from input pixel i*s.
    """
    h, w = features.shape[-2:]
    if (h, w) == grid:
        return features
    features = features[..., : grid[0], : grid[1]]
    pad_h, pad_w = grid[0] - features.shape[-2], grid[1] - features.shape[-1]
    if pad_h > 0 or pad_w > 0:
        features = F.pad(features, (0, pad_w, 0, pad_h), mode="replicate")
    return features


def build_model(config: ModelConfig | None = None, **overrides: Any) -> StrongPoseNet:
    """Build a StrongPose network from a config (default: `ModelConfig()`), with field overrides.

    >>> net = build_model(backbone="resnet18", output_stride=8)
    """
    config = ModelConfig() if config is None else config
    unknown = sorted(set(overrides) - set(ModelConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"build_model: unknown ModelConfig fields {unknown}")
    if overrides:
        config = replace(config, **overrides)
    return StrongPoseNet(config)
