"""Backbones (trunks), registered by name: `registry` (BackboneSpec, get_backbone), `resnet` (ResNet-18 to
-152, torchvision layout), `mobilenet` (MobileNetV1, PoseNet's), `common` (frozen batch norm, weights files).

Importing this package registers the built-in backbones (importing their modules does); `register_backbone`
adds others.
"""

from strongpose_ros.model.backbones.common import FrozenBatchNorm2d, read_state_dict
from strongpose_ros.model.backbones.mobilenet import MobileNetV1, MobileNetV1Options
from strongpose_ros.model.backbones.registry import (
    BACKBONES,
    OUTPUT_STRIDES,
    BackboneSpec,
    get_backbone,
    register_backbone,
)
from strongpose_ros.model.backbones.resnet import RESNETS, ResNet
from strongpose_ros.model.backbones.resnet import resnet as build_resnet

__all__ = [
    "BACKBONES",
    "OUTPUT_STRIDES",
    "RESNETS",
    "BackboneSpec",
    "FrozenBatchNorm2d",
    "MobileNetV1",
    "MobileNetV1Options",
    "ResNet",
    "build_resnet",
    "get_backbone",
    "read_state_dict",
    "register_backbone",
]
