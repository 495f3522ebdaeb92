"""StrongPose training losses (ALGORITHM.md section 4; PersonLab's weights, the paper's logistic + L1).

| term    | per pixel                          | averaged over                   | weight |
|---------|------------------------------------|---------------------------------|--------|
| `skhm`  | binary cross-entropy of p_k        | all but ignore regions          | 4      |
| `short` | ||S^ - S||_1 / R                   | inside the keypoint disks       | 1      |
| `mid`   | ||M^ - M||_1 / R, after refinement | where the mid target is defined | 0.25   |
| `bhm`   | binary cross-entropy of the BHM    | all but crowd regions           | 2      |

Each term is a mean over the pixels its weights select, pooled over the batch; a term with no such pixel
(an image without people) is 0, never NaN. Cross-entropies use the logits when the outputs carry them
(numerically stable), else the probabilities (oracle outputs). Intermediate-supervision outputs add the
same four terms, prefixed `intermediate_`, scaled by `intermediate_weight` in the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from strongpose_ros.model.outputs import PoseOutputs
from strongpose_ros.model.targets import DISK_RADIUS, Targets

__all__ = ["LOSS_TERMS", "LossConfig", "compute_losses"]

LOSS_TERMS = ("skhm", "short", "mid", "bhm")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms in the total, and the radius R that normalises the offset errors."""

    skhm_weight: float = 4.0
    short_weight: float = 1.0
    mid_weight: float = 0.25
    bhm_weight: float = 2.0
    intermediate_weight: float = 1.0
    radius: float = DISK_RADIUS

    def weight(self, term: str) -> float:
        return getattr(self, f"{term}_weight")


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def _bce(probabilities: torch.Tensor, logits: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
    if logits is not None:
        return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    # torch clamps log(0) to -100, so exact 0/1 predictions give finite values (0 where they are right).
    return F.binary_cross_entropy(probabilities.float().clamp(0.0, 1.0), target, reduction="none")


def _terms(outputs: PoseOutputs, targets: Targets, radius: float) -> dict[str, torch.Tensor]:
    short_error = (outputs.short_offsets.float() - targets.short_offsets).abs().sum(2) / radius
    mid_error = (outputs.mid_offsets.float() - targets.mid_offsets).abs().sum(2) / radius
    return {
        "skhm": _weighted_mean(_bce(outputs.heatmaps, outputs.heatmap_logits, targets.heatmaps),
                               targets.heatmap_weights),
        "short": _weighted_mean(short_error, targets.short_weights),
        "mid": _weighted_mean(mid_error, targets.mid_weights),
        "bhm": _weighted_mean(_bce(outputs.body_heatmap, outputs.body_logits, targets.body), targets.body_weights),
    }


def _check_shapes(outputs: PoseOutputs, targets: Targets) -> None:
    pairs = (
        ("heatmaps", outputs.heatmaps, targets.heatmaps),
        ("short_offsets", outputs.short_offsets, targets.short_offsets),
        ("mid_offsets", outputs.mid_offsets, targets.mid_offsets),
        ("body_heatmap", outputs.body_heatmap, targets.body),
    )
    for name, predicted, target in pairs:
        if predicted.shape != target.shape:
            raise ValueError(f"compute_losses: {name} of shape {tuple(predicted.shape)} but targets of "
                             f"{tuple(target.shape)} (same input size, stride and schema needed)")


def compute_losses(
    outputs: PoseOutputs, targets: Targets, config: LossConfig | None = None
) -> dict[str, torch.Tensor]:
    """Loss terms and their weighted total for a batch.

    `targets` is a batch from `collate_targets` (one image's targets, without a batch dimension, are
    accepted for a batch of 1) on the outputs' device. Returns the unweighted terms `skhm`, `short`, `mid`,
    `bhm` (and `intermediate_*` when the outputs have them) and `total`, the weighted sum to minimise.
    """
    config = LossConfig() if config is None else config
    if targets.heatmaps.dim() == 3:
        targets = Targets(**{name: t.unsqueeze(0) for name, t in vars(targets).items()})
    _check_shapes(outputs, targets)
    losses = _terms(outputs, targets, config.radius)
    total = sum(config.weight(term) * losses[term] for term in LOSS_TERMS)
    if outputs.intermediate is not None:
        _check_shapes(outputs.intermediate, targets)
        extra = _terms(outputs.intermediate, targets, config.radius)
        total = total + config.intermediate_weight * sum(config.weight(t) * extra[t] for t in LOSS_TERMS)
        losses |= {f"intermediate_{term}": value for term, value in extra.items()}
    losses["total"] = total
    return losses
