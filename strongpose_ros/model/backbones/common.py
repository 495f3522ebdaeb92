"""Layers and file reading shared by the backbones: frozen batch norm, weights files read without unpickling."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrozenBatchNorm2d", "read_state_dict"]


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose statistics never change: it always normalises with its running mean and variance.

    The affine scale and shift stay trainable. Being a `BatchNorm2d`, it keeps the same state-dict entries,
    so a checkpoint moves freely between frozen and unfrozen models. StrongPose freezes the statistics of
    its ImageNet-initialised trunk because its batches (a few 401x401 crops) are too small to estimate them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)



def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file without unpickling arbitrary objects (.safetensors, or .pth/.pt loaded with
    `torch.load(weights_only=True)`). A {"state_dict": ...} or {"model": ...} wrapper is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the readers raise many types; say which file and why, in one error type
        raise ValueError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and set(state) == {wrapper}:
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: does not hold a flat dictionary of tensors")
    return dict(state)
