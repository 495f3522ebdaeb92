"""StrongPose prediction heads and the mid-range offset refinement.

Four small convolutional heads read the trunk's features (ALGORITHM.md section 2):

| head   | channels | meaning                                                 |
|--------|----------|---------------------------------------------------------|
| SKHM   | K        | strong keypoint heat-map logits (sigmoid -> p_k)        |
| short  | 2K       | short-range offsets S_k, (dx, dy) per keypoint type     |
| mid    | 4E       | mid-range offsets M_{a->b}, (dx, dy) per directed edge  |
| BHM    | 1        | body heat-map logit (sigmoid -> body probability)       |

Offsets are predicted in units of the disk radius R and scaled to pixels, so that their raw outputs live
in the same range as the heat-map logits. The mid-range offsets are then refined twice, inside the graph
(PersonLab): M_{a->b}(x) <- M_{a->b}(x) + S_b(x + M_{a->b}(x)), with S_b read bilinearly at the point the
edge lands on, so the loss on the refined offsets also trains the short-range head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from strongpose_ros.schema import KeypointSchema

__all__ = ["HeadOutputs", "PoseHead", "PoseHeads", "refine_mid_offsets"]


class PoseHead(nn.Module):
    """1x1 convolution, or a 3x3 convolution + ReLU followed by a 1x1 when `hidden` > 0."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 0):
        super().__init__()
        if hidden > 0:
            self.hidden = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
            in_channels = hidden
        else:
            self.hidden = nn.Identity()
        self.predict = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.hidden(x))


@dataclass
class HeadOutputs:
    """Raw head outputs on a (B, ., H, W) grid; offsets in input pixels, mid-range after refinement."""

    heatmap_logits: torch.Tensor  # (B, K, H, W)
    short_offsets: torch.Tensor  # (B, K, 2, H, W)
    mid_offsets: torch.Tensor  # (B, 2E, 2, H, W)
    body_logits: torch.Tensor  # (B, 1, H, W)


class PoseHeads(nn.Module):
    """The four StrongPose heads on one feature map, with mid-range refinement.

    `offset_scale` (pixels per raw output unit) is R; `prior` is the initial probability of the heat maps
    (the bias starts at its logit so that the first steps are not spent learning that most pixels are 0).
    `body_hidden` is the body head's own hidden width (None: `hidden`).
    """

    def __init__(
        self,
        in_channels: int,
        schema: KeypointSchema,
        hidden: int = 0,
        offset_scale: float = 16.0,
        refinement_steps: int = 2,
        prior: float = 0.01,
        body_hidden: int | None = None,
    ):
        super().__init__()
        k, e2 = schema.num_keypoints, len(schema.directed_edges)
        self.num_keypoints = k
        self.offset_scale = float(offset_scale)
        self.refinement_steps = int(refinement_steps)
        # A plain tuple, not a buffer: models built on the meta device (checkpoint loading) need no fix-up.
        self.edge_ends = tuple(b for _, b in schema.directed_edges)
        self.heatmap = PoseHead(in_channels, k, hidden)
        self.short = PoseHead(in_channels, 2 * k, hidden)
        self.mid = PoseHead(in_channels, 2 * e2, hidden)
        self.body = PoseHead(in_channels, 1, hidden if body_hidden is None else body_hidden)
        for head in (self.heatmap, self.short, self.mid, self.body):
            nn.init.normal_(head.predict.weight, std=0.01)
            nn.init.zeros_(head.predict.bias)
        bias = -math.log((1.0 - prior) / prior)
        nn.init.constant_(self.heatmap.predict.bias, bias)
        nn.init.constant_(self.body.predict.bias, bias)

    def forward(self, features: torch.Tensor, stride: int) -> HeadOutputs:
        b, _, h, w = features.shape
        short = (self.short(features) * self.offset_scale).view(b, self.num_keypoints, 2, h, w)
        mid = (self.mid(features) * self.offset_scale).view(b, -1, 2, h, w)
        ends = torch.tensor(self.edge_ends, dtype=torch.long, device=features.device)
        for _ in range(self.refinement_steps):
            mid = refine_mid_offsets(mid, short, ends, stride)
        return HeadOutputs(self.heatmap(features), short, mid, self.body(features))


def refine_mid_offsets(mid: torch.Tensor, short: torch.Tensor, edge_ends: torch.Tensor, stride: int) -> torch.Tensor:
    """One refinement step M_{a->b}(x) + S_b(x + M_{a->b}(x)), S_b sampled bilinearly (differentiable).

    `mid` (B, 2E, 2, H, W) and `short` (B, K, 2, H, W) are in input pixels on a grid whose cell (i, j) is
    pixel (j*stride, i*stride); `edge_ends` (2E,) holds b for each directed edge. Points that land outside
    the grid read the nearest border cell.
    """
    b, e2, _, h, w = mid.shape
    ends = short.index_select(1, edge_ends).reshape(b * e2, 2, h, w)  # S_b for each edge
    ys = torch.arange(h, device=mid.device, dtype=mid.dtype).view(h, 1) * stride
    xs = torch.arange(w, device=mid.device, dtype=mid.dtype).view(1, w) * stride
    # Landing point in pixels -> grid_sample's [-1, 1] (align_corners=True: -1 and 1 are the outer cells).
    gx = (xs + mid[:, :, 0]) / (stride * max(w - 1, 1)) * 2 - 1
    gy = (ys + mid[:, :, 1]) / (stride * max(h - 1, 1)) * 2 - 1
    grid = torch.stack((gx, gy), dim=-1).reshape(b * e2, h, w, 2)
    sampled = F.grid_sample(ends, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return mid + sampled.view(b, e2, 2, h, w)
