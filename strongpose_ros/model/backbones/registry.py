"""The backbone registry: a trunk's name -> how to check its options and build it.

`ModelConfig.backbone` names an entry here and `ModelConfig.backbone_options` holds that entry's options
(the fields of its `options` dataclass, only those that differ from the defaults need to be given), so the
config validation, `build_model`, the model benchmark and the trainer take any registered backbone.

A built trunk is an `nn.Module` with:
- `out_channels` (int) and `output_stride` (int) of its final features;
- `set_output_stride(s)`: switch, in place and with the same weights, to another of the strides the entry's
  `output_strides(options)` lists (atrous convolution);
- `forward(x, return_intermediate=False)`: the final features, or (final, intermediate) features for
  intermediate supervision (only when the entry's `intermediate` is true; then it also has
  `intermediate_channels` and `intermediate_stride`, never coarser than the output stride);
- `load_pretrained(path)`: initialise from a pretrained-weights file of the kind the trunk knows (a clear
  `ValueError` when it knows none).
Every stride-2 layer maps a side n to (n - 1)//2 + 1 with output cell i on input pixel 2i, so features at
stride s sit on the grid of `outputs.py`: cell i is input pixel i*s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

__all__ = ["BACKBONES", "OUTPUT_STRIDES", "BackboneSpec", "get_backbone", "register_backbone"]

# The output strides a StrongPose network can run at (a backbone offers a subset).
OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class BackboneSpec:
    """One registered backbone.

    - `options`: a frozen dataclass whose fields are the backbone's options (validated in its
      `__post_init__`); a backbone without options registers an empty dataclass;
    - `build(options, output_stride, frozen_bn)`: the trunk (see the module doc);
    - `output_strides(options)`: the strides it can run at;
    - `has_batch_norm(options)`: whether `frozen_bn` means anything for it;
    - `intermediate`: whether it offers intermediate features (`ModelConfig.intermediate_supervision`).
    """

    name: str
    summary: str
    options: type
    build: Callable[[Any, int, bool], nn.Module]
    output_strides: Callable[[Any], tuple[int, ...]]
    has_batch_norm: Callable[[Any], bool]
    intermediate: bool

    def parse_options(self, given: Mapping[str, Any] | None) -> Any:
        """The options dataclass from a mapping (missing keys take their defaults; unknown ones are an error)."""
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise ValueError(f"backbone_options of {self.name!r} must be a mapping, got {type(given).__name__}")
        valid = [f.name for f in fields(self.options)]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            listing = f"valid: {valid}" if valid else "it takes none"
            raise ValueError(f"backbone_options: {self.name!r} has no option {unknown[0]!r} ({listing})")
        return self.options(**given)


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone under `spec.name` (a name can be registered once)."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    BACKBONES[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone called `name`; a ValueError listing the known ones otherwise."""
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None
