"""Polyak-Ruppert averaging as an exponential moving average of the weights [paper].

The average is a full copy of the network: its floating-point parameters and buffers follow
ema <- d * ema + (1 - d) * current after each optimiser step, other buffers (counters) are copied. The
averaged network is the one evaluated during training and written as the usable model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """An averaged copy of `model` (kept in float32, in eval mode, without gradients).

    The decay at update t is min(decay, (1 + t) / (10 + t)) (TensorFlow's num_updates rule), so that the
    first few hundred steps are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).float().eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards `model`'s current weights (the raw model, not a DDP wrapper)."""
        decay = self.current_decay()
        self.updates += 1
        averaged, current, copied_to, copied_from = [], [], [], []
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.is_floating_point():
                averaged.append(value)
                current.append(new.to(value.dtype))
            else:
                copied_to.append(value)
                copied_from.append(new)
        if averaged:
            torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for dst, src in zip(copied_to, copied_from, strict=True):
            dst.copy_(src)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state, strict=True)
        self.updates = int(updates)
