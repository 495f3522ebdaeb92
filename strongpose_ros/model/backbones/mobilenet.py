"""MobileNetV1 (Howard et al., 2017) with atrous convolution: the backbone of Google's PoseNet.

A 3x3 convolution (the stem), then depthwise-separable blocks: a depthwise 3x3 convolution (one filter per
channel) and a pointwise 1x1 convolution, each followed by batch norm (or a bias) and ReLU6. The standard
network has 13 blocks whose channels scale with a width multiplier (PoseNet was published at 0.50, 0.75 and
1.00); the options can also list the channels and strides explicitly (PoseNet's 0.75 graph, for one, keeps its
last two blocks at 384 channels and stride 1; `strongpose import posenet` writes what a graph holds).

Layer form (`batch_norm`):
- true (the default, for training from scratch): convolutions without bias, then `BatchNorm2d`
  (`FrozenBatchNorm2d` with `ModelConfig.frozen_bn`);
- false: convolutions with a bias and no normalisation, the form of a network whose batch norm was folded
  into its convolutions, as PoseNet's published graphs are. Such weights load exactly and fine-tune as they
  are: there are no batch statistics to re-estimate from a few crops per batch.

Output stride: walking the layers, once the wanted stride is reached, a stride-2 layer runs at stride 1 with
the current dilation and every later depthwise convolution dilates by the skipped factor (TF-slim's
mobilenet_v1 and PoseNet do the same), so the same weights run at output stride 32, 16 or 8, as far as the
layer strides allow (a network whose strides multiply to 16 has no stride-32 form).

Padding: every 3x3 convolution pads by its dilation on each side. TensorFlow's SAME padding of a stride-2
3x3 convolution on an odd side n pads (ceil(n/2) - 1)*2 + 3 - n = 2 pixels, one on each side, so on inputs of
s*n+1 (every side the network then sees is odd) this reproduces TF's graphs exactly, and output cell i sits on
input pixel i*s, the grid convention of `outputs.py`. (On an even side TF would pad 0 before and 1 after.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from strongpose_ros.model.backbones.common import FrozenBatchNorm2d
from strongpose_ros.model.backbones.registry import OUTPUT_STRIDES, BackboneSpec, register_backbone

__all__ = [
    "MOBILENET_V1_CHANNELS",
    "MOBILENET_V1_STRIDES",
    "ConvUnit",
    "MobileNetV1",
    "MobileNetV1Options",
    "SeparableBlock",
    "scaled_channels",
]

# The stem's and the 13 blocks' output channels and strides at width 1.0 (Howard et al., Table 1).
MOBILENET_V1_CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
MOBILENET_V1_STRIDES = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
# Fewest channels a layer keeps under a width multiplier (TF-slim's `min_depth`).
MIN_CHANNELS = 8


def scaled_channels(width_multiplier: float, channels: tuple[int, ...] = MOBILENET_V1_CHANNELS) -> tuple[int, ...]:
    """Channels at a width multiplier, as TF-slim computes them: max(int(c * m), 8)."""
    return tuple(max(int(c * width_multiplier), MIN_CHANNELS) for c in channels)


@dataclass(frozen=True)
class MobileNetV1Options:
    """`ModelConfig.backbone_options` of 'mobilenet_v1'.

    - `width_multiplier`: scales the standard channels (0.75: 24, 48, ..., 768);
    - `channels`: the stem's and each block's output channels, explicitly (then no width multiplier);
      the number of entries is the number of layers (1 + blocks); empty: the standard 14 at the multiplier;
    - `strides`: each layer's stride (1 or 2) before any dilation (the stem's, then each block's depthwise
      convolution's); empty: the standard ones (needs 14 layers);
    - `batch_norm`: true: conv + batch norm; false: conv with bias, no normalisation (folded, as PoseNet's).
    """

    width_multiplier: float = 1.0
    channels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    batch_norm: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", _positive_ints("channels", self.channels))
        object.__setattr__(self, "strides", _positive_ints("strides", self.strides))
        width = self.width_multiplier
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not (math.isfinite(width) and width > 0):
            raise ValueError(f"mobilenet_v1 width_multiplier must be a number > 0, got {width!r}")
        object.__setattr__(self, "width_multiplier", float(width))
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"mobilenet_v1 batch_norm must be true or false, got {self.batch_norm!r}")
        if self.channels and self.width_multiplier != 1.0:
            raise ValueError("mobilenet_v1: give channels or width_multiplier, not both")
        if any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"mobilenet_v1 strides must be 1 or 2, got {list(self.strides)}")
        layers = len(self.channels or MOBILENET_V1_CHANNELS)
        if self.strides and len(self.strides) != layers:
            raise ValueError(f"mobilenet_v1: {len(self.strides)} strides for {layers} layers (stem + blocks)")
        if not self.strides and layers != len(MOBILENET_V1_STRIDES):
            raise ValueError(f"mobilenet_v1: {layers} channels given; layers other than the standard "
                             f"{len(MOBILENET_V1_STRIDES)} need their strides too")
        if layers < 2:
            raise ValueError("mobilenet_v1 needs the stem and at least one block")

    @property
    def layer_channels(self) -> tuple[int, ...]:
        return self.channels or scaled_channels(self.width_multiplier)

    @property
    def layer_strides(self) -> tuple[int, ...]:
        return self.strides or MOBILENET_V1_STRIDES

    @property
    def output_strides(self) -> tuple[int, ...]:
        """The strides it can run at: those of OUTPUT_STRIDES that a prefix of its layers reaches."""
        reached = set()
        product = 1
        for stride in self.layer_strides:
            product *= stride
            reached.add(product)
        return tuple(s for s in OUTPUT_STRIDES if s in reached)


def _positive_ints(name: str, values: object) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                   for v in values):
        raise ValueError(f"mobilenet_v1 {name} must be a list of positive integers, got {values!r}")
    return tuple(values)


class ConvUnit(nn.Module):
    """A convolution, then batch norm (or the convolution's own bias when `norm` is None), then ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                 norm: type[nn.BatchNorm2d] | None = nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups,
                              bias=norm is None)
        self.norm = nn.Identity() if norm is None else norm(out_channels)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (strided or dilated) and pointwise 1x1 units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: type[nn.BatchNorm2d] | None):
        super().__init__()
        self.depthwise = ConvUnit(in_channels, in_channels, 3, stride, groups=in_channels, norm=norm)
        self.pointwise = ConvUnit(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNetV1 trunk without the classifier; `forward` returns the last block's features.

    Parameters: `stem.conv`, `stem.norm`, `blocks.{i}.depthwise.conv|norm`, `blocks.{i}.pointwise.conv|norm`
    (a `.bias` on each conv and no norm entries when `batch_norm` is false).
    """

    def __init__(self, options: MobileNetV1Options | None = None, output_stride: int = 16, frozen_bn: bool = False):
        super().__init__()
        options = MobileNetV1Options() if options is None else options
        if frozen_bn and not options.batch_norm:
            raise ValueError("mobilenet_v1: frozen_bn needs batch_norm (with batch_norm false there is none)")
        norm = None if not options.batch_norm else FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self.options = options
        channels, strides = options.layer_channels, options.layer_strides
        self.stem = ConvUnit(3, channels[0], 3, strides[0], norm=norm)
        self.blocks = nn.Sequential(*(SeparableBlock(channels[i - 1], channels[i], strides[i], norm)
                                      for i in range(1, len(channels))))
        self.out_channels = channels[-1]
        self._initialise()
        self.output_stride = math.prod(strides)
        self.set_output_stride(output_stride)

    @property
    def spatial_convs(self) -> tuple[nn.Conv2d, ...]:
        """The 3x3 convolutions in order (stem, then each block's depthwise), the ones that stride or dilate."""
        return (self.stem.conv, *(block.depthwise.conv for block in self.blocks))

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # fan_in keeps the activations' scale layer after layer, also for depthwise convolutions
                # (9 inputs each) and without batch norm.
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def set_output_stride(self, output_stride: int) -> None:
        """Switch the output stride in place, by atrous convolution; the weights are unchanged."""
        allowed = self.options.output_strides
        if output_stride not in allowed:
            raise ValueError(f"output stride must be one of {allowed} for this mobilenet_v1 (layer strides "
                             f"{list(self.options.layer_strides)}), got {output_stride!r}")
        current, rate = 1, 1
        for conv, stride in zip(self.spatial_convs, self.options.layer_strides, strict=True):
            if current == output_stride:
                # The layer keeps the dilation so far; the layers after it dilate by its skipped stride.
                conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
                rate *= stride
            else:
                conv.stride, conv.dilation, conv.padding = (stride, stride), (1, 1), (1, 1)
                current *= stride
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor, return_intermediate: bool = False) -> torch.Tensor:
        if return_intermediate:
            raise ValueError("mobilenet_v1 has no intermediate features (intermediate supervision is a ResNet option)")
        return self.blocks(self.stem(x))

    def load_pretrained(self, path: str | Path) -> None:
        raise ValueError(f"{path}: mobilenet_v1 reads no ImageNet weights file (torchvision has no MobileNetV1); "
                         "start from a StrongPose checkpoint instead (init.checkpoint), e.g. one written by "
                         "`strongpose import posenet`")


register_backbone(BackboneSpec(
    name="mobilenet_v1",
    summary="MobileNetV1 (PoseNet's backbone): width multiplier or explicit channels/strides, ReLU6, "
            "batch norm or folded biases",
    options=MobileNetV1Options,
    build=lambda options, output_stride, frozen_bn: MobileNetV1(options, output_stride, frozen_bn),
    output_strides=lambda options: options.output_strides,
    has_batch_norm=lambda options: options.batch_norm,
    intermediate=False,
))
