"""The StrongPose network, its training targets, losses and the oracle.

Public names are re-exported here; each lives in a small module named for what it holds:
`config` (ModelConfig), `backbones` (the trunks, registered by name: ResNets, MobileNetV1), `heads` (the four
heads, mid-range refinement), `network` (StrongPoseNet, build_model), `targets` (encode_targets), `oracle`,
`losses`, `outputs`; `importers` (other projects' published weights as StrongPose checkpoints).

The names are imported on first use, so that importing a light submodule (the importer registry, which
`strongpose --help` lists) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ModelConfig": "config",
    "LossConfig": "losses",
    "compute_losses": "losses",
    "StrongPoseNet": "network",
    "build_model": "network",
    "oracle_from_targets": "oracle",
    "oracle_outputs": "oracle",
    "PoseOutputs": "outputs",
    "output_size": "outputs",
    "DISK_RADIUS": "targets",
    "Targets": "targets",
    "collate_targets": "targets",
    "encode_targets": "targets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f"strongpose_ros.model.{_EXPORTS[name]}"), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'strongpose_ros.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
