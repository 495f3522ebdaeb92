"""ResNet backbones (He et al., 2016) with atrous convolution, torchvision-compatible parameter names.

The layout follows torchvision's ResNet ("v1.5": the stride of a bottleneck sits on its 3x3 conv), so
that an ImageNet checkpoint saved by torchvision loads by file path (`load_torchvision_weights`), with
the classifier (`fc.*`) left out: StrongPose only needs the trunk.

Atrous convolution (DeepLab) trades the last stages' striding for dilation: the same weights then give
features at output stride 16 or 8 instead of 32, which is how StrongPose trains at 16 and evaluates at 8.
`set_output_stride` switches between them after construction, in place.

Every stride-2 operation here (7x7 stem, 3x3 max-pool, 3x3 and 1x1 convs) maps a side n to (n - 1)//2 + 1
with its output cell i centred on input cell 2i, so features at stride s have (n - 1)//s + 1 cells and cell
i sits on input pixel i*s: exactly the grid convention of `outputs.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from strongpose_ros.model.backbones.common import FrozenBatchNorm2d, read_state_dict
from strongpose_ros.model.backbones.registry import OUTPUT_STRIDES, BackboneSpec, register_backbone

__all__ = [
    "RESNETS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNetOptions",
    "ResNetSpec",
    "resnet",
]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut; ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, norm: type[nn.BatchNorm2d] = nn.BatchNorm2d):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, out_channels)
        self.bn2 = norm(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride, norm)

    @property
    def strided_conv(self) -> nn.Conv2d:
        return self.conv1

    @property
    def spatial_convs(self) -> tuple[nn.Conv2d, ...]:
        return self.conv1, self.conv2

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand, with a shortcut; ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, norm: type[nn.BatchNorm2d] = nn.BatchNorm2d):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = norm(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = norm(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride, norm)

    @property
    def strided_conv(self) -> nn.Conv2d:
        return self.conv2

    @property
    def spatial_convs(self) -> tuple[nn.Conv2d, ...]:
        return (self.conv2,)

    @property
    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: type[nn.BatchNorm2d]) -> nn.Sequential | None:
    """Projection shortcut (torchvision's `downsample`: conv at index 0, norm at 1) when shapes change."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm(out_channels))


@dataclass(frozen=True)
class ResNetSpec:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]


RESNETS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(Bottleneck, (3, 8, 36, 3)),
}

# Output strides reachable by dilating the last stages (32: none, 16: layer4, 8: layer3 and layer4): all of
# OUTPUT_STRIDES.
# Stride of the stem (conv1 + maxpool) and of each stage's first block without dilation.
_STEM_STRIDE = 4
_STAGE_STRIDES = (1, 2, 2, 2)


class ResNet(nn.Module):
    """ResNet trunk without the classifier. `forward` returns layer4's features (and layer3's, if asked: the
    intermediate features of intermediate supervision).

    Parameter names match torchvision's `resnet*` models minus `fc.*`. `norm` chooses `nn.BatchNorm2d` or
    `FrozenBatchNorm2d`.
    """

    def __init__(self, spec: ResNetSpec, output_stride: int = 32, norm: type[nn.BatchNorm2d] = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for index, (blocks, stride) in enumerate(zip(spec.layers, _STAGE_STRIDES, strict=True)):
            width = 64 * 2**index
            stage = [spec.block(channels, width, stride, norm)]
            channels = width * spec.block.expansion
            stage += [spec.block(channels, width, 1, norm) for _ in range(blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.out_channels = channels
        self.intermediate_channels = channels // 2  # layer3's
        self._initialise()
        self.output_stride = 32
        self.set_output_stride(output_stride)

    @property
    def stages(self) -> tuple[nn.Sequential, ...]:
        return self.layer1, self.layer2, self.layer3, self.layer4

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Each residual branch starts as zero (Goyal et al., 2017): the trunk starts close to the identity,
        # which keeps training from scratch stable, also with frozen statistics. ImageNet weights replace this.
        for stage in self.stages:
            for block in stage:
                nn.init.zeros_(block.last_norm.weight)

    @property
    def intermediate_stride(self) -> int:
        """Output stride of layer3's features (16 at output stride 16 or 32, 8 at output stride 8)."""
        return min(self.output_stride, 16)

    def set_output_stride(self, output_stride: int) -> None:
        """Switch between output strides 32, 16 and 8 in place, by atrous convolution; weights are unchanged.

        Following DeepLab and torchvision: a dilated stage's first block keeps the previous dilation, the
        others use the stage's new dilation rate.
        """
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
        current, dilation = _STEM_STRIDE, 1
        for stage, stage_stride in zip(self.stages, _STAGE_STRIDES, strict=True):
            previous = dilation
            if current * stage_stride > output_stride:
                dilation, stride = dilation * stage_stride, 1
            else:
                current, stride = current * stage_stride, stage_stride
            for index, block in enumerate(stage):
                rate = previous if index == 0 else dilation
                for conv in block.spatial_convs:
                    conv.dilation = (rate, rate)
                    conv.padding = (rate, rate)
                if index == 0:
                    block.strided_conv.stride = (stride, stride)
                    if block.downsample is not None:
                        block.downsample[0].stride = (stride, stride)
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor,
                return_intermediate: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        c3 = self.layer3(x)
        c4 = self.layer4(c3)
        return (c4, c3) if return_intermediate else c4

    def load_pretrained(self, path: str | Path) -> None:
        """The registry's name for `load_torchvision_weights`."""
        self.load_torchvision_weights(path)

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load a torchvision ImageNet ResNet checkpoint (.pth/.pt or .safetensors) by file path.

        Strict apart from the classifier (`fc.*`, ignored) and `num_batches_tracked` (absent from older
        torchvision files); anything else missing, unexpected or of another shape raises a ValueError
        naming the file and the parameters.
        """
        path = Path(path)
        state = read_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
        unexpected = sorted(k for k in state if k not in own)
        wrong_shape = sorted(
            f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
            for k in own
            if k in state and state[k].shape != own[k].shape
        )
        problems = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if names:
                shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
                problems.append(f"{label}: {shown}")
        if problems:
            raise ValueError(f"{path}: not a matching torchvision ResNet checkpoint; " + "; ".join(problems))
        for name, value in own.items():
            if name in state:
                value.copy_(state[name].to(value.dtype))


def resnet(name: str, output_stride: int = 32, frozen_bn: bool = False) -> ResNet:
    """A ResNet trunk by name ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')."""
    if name not in RESNETS:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(RESNETS)}")
    return ResNet(RESNETS[name], output_stride, FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)


@dataclass(frozen=True)
class ResNetOptions:
    """A ResNet takes no backbone options: its name says it all."""


for _name, _spec in RESNETS.items():
    register_backbone(BackboneSpec(
        name=_name,
        summary=f"ResNet-{_name[6:]} ({_spec.block.__name__}s {_spec.layers}), torchvision layout and names",
        options=ResNetOptions,
        build=lambda options, output_stride, frozen_bn, name=_name: resnet(name, output_stride, frozen_bn),
        output_strides=lambda options: OUTPUT_STRIDES,
        has_batch_norm=lambda options: True,
        intermediate=True,
    ))
