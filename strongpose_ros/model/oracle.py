"""The oracle: the outputs a perfect network would produce for an image's annotations.

Feeding these to the decoder measures the decoder alone, with the network's errors taken out: on real
COCO annotations, whatever AP the oracle loses is lost by decoding (and by the target encoding itself,
e.g. two same-type keypoints closer than a grid cell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from strongpose_ros.model.outputs import PoseOutputs
from strongpose_ros.model.targets import DISK_RADIUS, Targets, encode_targets
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = ["oracle_from_targets", "oracle_outputs"]


def oracle_from_targets(targets: Targets, stride: int) -> PoseOutputs:
    """Perfect outputs (batch 1) from one image's encoded targets.

    Heat maps are the 0/1 SKHM and BHM targets, offsets are the targets where defined and 0 elsewhere
    (the encoder already zeroes them outside their weights). No logits: losses fall back to probabilities.
    """
    if targets.heatmaps.dim() != 3:
        shape = tuple(targets.heatmaps.shape)
        raise ValueError(f"oracle_from_targets: expects one image's targets (K, H, W), got {shape}")
    return PoseOutputs(
        heatmaps=targets.heatmaps.unsqueeze(0).clone(),
        short_offsets=(targets.short_offsets * targets.short_weights.unsqueeze(1)).unsqueeze(0),
        mid_offsets=(targets.mid_offsets * targets.mid_weights.unsqueeze(1)).unsqueeze(0),
        body_heatmap=targets.body.unsqueeze(0).clone(),
        stride=int(stride),
    )


def oracle_outputs(
    annotations: Sequence[Mapping[str, Any]],
    image_size: tuple[int, int],
    stride: int,
    schema: KeypointSchema = COCO17,
    radius: float = DISK_RADIUS,
) -> PoseOutputs:
    """Perfect network outputs (batch 1, float32, CPU) for one image's COCO annotations.

    Arguments as `encode_targets`: `image_size` is (height, width) of the network input.
    """
    return oracle_from_targets(encode_targets(annotations, image_size, stride, schema, radius), stride)
