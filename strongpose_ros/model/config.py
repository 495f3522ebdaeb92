"""`ModelConfig`: everything needed to rebuild a StrongPose network; it travels inside checkpoints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from strongpose_ros.model.backbones import BACKBONES, get_backbone
from strongpose_ros.schema import SCHEMAS, KeypointSchema, get_schema

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SYMMETRIC_MEAN", "SYMMETRIC_STD", "ModelConfig"]

# ImageNet RGB statistics (the normalisation torchvision's ResNet weights were trained with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# [0, 1] to [-1, 1] (x * 2/255 - 1 on 8-bit values): the input of Google's MobileNet PoseNet.
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)
SYMMETRIC_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelConfig:
    """A StrongPose network, as data. Defaults are the paper's where it gives them.

    - `backbone`: a registered backbone (`model.backbones`): 'resnet18' | 'resnet34' | 'resnet50' |
      'resnet101' | 'resnet152' (paper: 101 and 152) | 'mobilenet_v1' (PoseNet's);
    - `backbone_options`: the backbone's own options, as a mapping (ResNets take none; 'mobilenet_v1':
      width_multiplier, channels, strides, batch_norm, see `MobileNetV1Options`); entries equal to their
      default are dropped, so equal networks have equal configs;
    - `output_stride`: 16 in training, 8 at evaluation [paper] (32 also works where the backbone's strides
      reach it); switchable on a built model;
    - `schema`: a built-in schema name ('coco17', 'crowdpose14') or a `KeypointSchema`;
    - `input_size`: (height, width) of the training input, s*n+1 (401x401 [paper]); the network itself
      accepts any size;
    - `frozen_bn`: freeze the trunk's batch-norm statistics [paper, for an ImageNet-initialised trunk].
      Off by default because no ImageNet weights ship with this project: a trunk trained from scratch
      must learn its statistics. An error for a trunk without batch norm (mobilenet_v1 with folded biases);
    - `intermediate_supervision`: a second set of heads on layer3, trained with its own losses [paper]
      (ResNets only);
    - `input_mean`, `input_std`: RGB normalisation of [0, 1] images, (x - mean) / std (ImageNet's by
      default; PoseNet's MobileNet takes SYMMETRIC_MEAN/STD, i.e. [-1, 1]);
    - `head_channels`: width of a hidden 3x3 layer in each head, 0 for a single 1x1 conv (PersonLab's);
    - `body_head_channels`: the same for the body heat-map head alone (None: `head_channels`), so that a
      BHM head with its own hidden layer can be trained on an imported network's frozen features;
    - `offset_scale`: pixels per raw offset-head unit (R = 16), `refinement_steps`: mid-range refinements
      (2 [PL]), `heatmap_prior`: initial heat-map probability.
    """

    backbone: str = "resnet101"
    output_stride: int = 16
    schema: str | KeypointSchema = "coco17"
    input_size: tuple[int, int] = (401, 401)
    frozen_bn: bool = False
    intermediate_supervision: bool = False
    input_mean: tuple[float, float, float] = IMAGENET_MEAN
    input_std: tuple[float, float, float] = IMAGENET_STD
    head_channels: int = 0
    offset_scale: float = 16.0
    refinement_steps: int = 2
    heatmap_prior: float = 0.01
    backbone_options: dict[str, Any] = field(default_factory=dict)
    body_head_channels: int | None = None

    def __post_init__(self) -> None:
        # Normalise containers (lists from JSON) so that equal configs compare equal.
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "input_mean", tuple(float(v) for v in self.input_mean))
        object.__setattr__(self, "input_std", tuple(float(v) for v in self.input_std))
        if not isinstance(self.backbone, str) or self.backbone not in BACKBONES:
            raise ValueError(f"ModelConfig.backbone: unknown {self.backbone!r}; known: {sorted(BACKBONES)}")
        spec = get_backbone(self.backbone)
        try:
            options = spec.parse_options(self.backbone_options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ModelConfig.backbone_options: {exc}") from None
        defaults = spec.options()
        canonical = {f.name: _plain(getattr(options, f.name)) for f in fields(options)
                     if getattr(options, f.name) != getattr(defaults, f.name)}
        object.__setattr__(self, "backbone_options", canonical)
        strides = spec.output_strides(options)
        if self.output_stride not in strides:
            raise ValueError(f"ModelConfig.output_stride must be one of {strides} for {self.backbone!r}, "
                             f"got {self.output_stride!r}")
        if self.frozen_bn and not spec.has_batch_norm(options):
            raise ValueError(f"ModelConfig.frozen_bn: this {self.backbone!r} has no batch norm to freeze "
                             "(its convolutions carry biases)")
        if self.intermediate_supervision and not spec.intermediate:
            raise ValueError(f"ModelConfig.intermediate_supervision: {self.backbone!r} offers no intermediate "
                             "features (it is a ResNet option: heads on layer3)")
        if self.body_head_channels is not None and (isinstance(self.body_head_channels, bool)
                                                    or not isinstance(self.body_head_channels, int)
                                                    or self.body_head_channels < 0):
            raise ValueError(f"ModelConfig.body_head_channels must be None or >= 0, got {self.body_head_channels!r}")
        if isinstance(self.schema, str):
            get_schema(self.schema)  # raises for unknown names
        elif not isinstance(self.schema, KeypointSchema):
            raise ValueError(f"ModelConfig.schema must be a schema name or a KeypointSchema, got {self.schema!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"ModelConfig.input_size must be (height, width) > 0, got {self.input_size!r}")
        if len(self.input_mean) != 3 or len(self.input_std) != 3 or min(self.input_std) <= 0:
            raise ValueError("ModelConfig.input_mean/input_std must be 3 RGB values (std > 0)")
        if self.head_channels < 0 or self.refinement_steps < 0 or not self.offset_scale > 0:
            raise ValueError("ModelConfig: head_channels and refinement_steps must be >= 0, offset_scale > 0")
        if not 0.0 < self.heatmap_prior < 1.0:
            raise ValueError(f"ModelConfig.heatmap_prior must be in (0, 1), got {self.heatmap_prior!r}")

    def __hash__(self) -> int:  # backbone_options is a dict; hash the JSON form
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def keypoint_schema(self) -> KeypointSchema:
        return get_schema(self.schema) if isinstance(self.schema, str) else self.schema

    @property
    def backbone_config(self) -> Any:
        """The backbone's options dataclass (e.g. `MobileNetV1Options`), defaults filled in."""
        return get_backbone(self.backbone).parse_options(self.backbone_options)

    @property
    def body_hidden_channels(self) -> int:
        """Hidden width of the body heat-map head (`body_head_channels`, or `head_channels` when None)."""
        return self.head_channels if self.body_head_channels is None else self.body_head_channels

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images in [0, 1], (B, 3, H, W) or (3, H, W), to the network's input normalisation."""
        shape = (3, 1, 1)
        mean = torch.tensor(self.input_mean, dtype=images.dtype, device=images.device).view(shape)
        std = torch.tensor(self.input_std, dtype=images.dtype, device=images.device).view(shape)
        return (images - mean) / std

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the schema is written out in full so that a checkpoint is self-describing."""
        data = asdict(self) | {"schema": self.keypoint_schema.to_dict()}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict` (missing entries take their defaults; unknown ones are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelConfig: unknown entries {unknown}")
        data = dict(data)
        if isinstance(data.get("schema"), dict):
            schema = KeypointSchema.from_dict(data["schema"])
            # A built-in schema comes back as its name, so that configs round-trip to equal objects.
            data["schema"] = schema.name if SCHEMAS.get(schema.name) == schema else schema
        return cls(**data)


def _plain(value: Any) -> Any:
    """JSON's form of an option value (tuples as lists), so that a config equals its JSON round trip."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
