"""Google's PoseNet (a MobileNetV1 tfjs graph model) as a StrongPose network: `import_posenet`.

PoseNet is the PersonLab model StrongPose extends, with our output layout at its output stride: keypoint heat
maps (17 logits), short-range offsets, mid-range displacements along the 16 tree edges, forward and backward.
The importer reads the graph by its own topology, never by the names of its constants:

1. from the only Placeholder (NHWC RGB in [-1, 1]) it follows the chain of convolution layers, each a
   Conv2D / DepthwiseConv2dNative (or their fused forms) with its BiasAdd and Relu6, reading strides,
   padding, dilations and fused ops from the attributes: a 3x3 stem, then (depthwise 3x3, pointwise 1x1)
   pairs, i.e. MobileNetV1 with folded batch norm;
2. the last layer's readers are the four 1x1 heads, told apart by their node names (the only thing that says
   which is which) and checked by their widths: `heatmap` (K = 17 logits), `offset` (2K: K y-channels then K
   x-channels, input pixels), `displacement_fwd` and `displacement_bwd` (2E = 32 each: E y then E x);
3. the layer strides before dilation are recovered from the graph's strides and dilations (an atrous graph
   at output stride 8 or 16 dilates the layers after a skipped stride), and checked against what
   `MobileNetV1.set_output_stride` makes of them;
4. tensors change layout (HWIO -> OIHW; depthwise H, W, C, 1 -> C, 1, H, W); the offsets become our (dx, dy)
   per keypoint, divided by `offset_scale` (our heads multiply by it); displacement edge e follows PoseNet's
   parent->child chain (`POSENET_CHAIN`; forward parent->child, backward child->parent) and lands on the
   directed edge of `schema.directed_edges` with the same two keypoints, a permutation computed from names;
5. the network is checked against `tfjs.evaluate_graph`, the graph itself evaluated in NumPy (float64) at
   the graph's input size: the largest difference of each output is reported, and the import fails above
   the tolerance.

PoseNet has no body heat map: the imported BHM head reads the same final features, with zero weights and its
bias at the logit of `heatmap_prior`, so `body_heatmap` is a constant 0.01 until a BHM head is trained on the
frozen features (the trainer's `train.trainable: [heads.body]`; with `model.body_head_channels: N` and
`init.skip: [heads.body]` that head gets a hidden 3x3 layer of its own). Our heads refine the mid-range offsets in
the graph (`refinement_steps`, M + S_b(x + M), PersonLab's 2 by default); PoseNet's raw displacements are
unrefined, so 0 gives them unchanged (`StrongPoseNet.set_refinement_steps` changes it on a loaded network).

Supported: MobileNetV1 PoseNet graphs at any width (the channels are read from the graph: the published
0.50, 0.75 and 1.00) and output stride 8, 16 or 32 (strides and dilations in the convolutions' attributes),
with ReLU6, SAME padding and weights in any tfjs encoding. Not supported, with an error naming the node:
ResNet-50 PoseNet graphs (residual additions, max pooling, an input normalisation inside the graph: their
trunk has not been mapped onto our ResNet, and the importer refuses rather than guess), atrous convolution
written as SpaceToBatchND/BatchToSpaceND, and any other op.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strongpose_ros.model.backbones.mobilenet import MobileNetV1, scaled_channels
from strongpose_ros.model.config import SYMMETRIC_MEAN, SYMMETRIC_STD, ModelConfig
from strongpose_ros.model.importers.tfjs import (
    ACTIVATIONS,
    CONV_OPS,
    DEPTHWISE_OPS,
    FUSED_OPS,
    GraphModel,
    GraphNode,
    TfjsError,
    evaluate_graph,
    read_graph_model,
    sha256_of,
)
from strongpose_ros.model.network import StrongPoseNet, build_model
from strongpose_ros.schema import COCO17, KeypointSchema

__all__ = [
    "CONVERTER_VERSION",
    "HEADS",
    "POSENET_CHAIN",
    "ImportResult",
    "OutputCheck",
    "PoseNetError",
    "add_arguments",
    "from_arguments",
    "import_posenet",
]

# Bumped when the conversion changes what it writes.
CONVERTER_VERSION = 1
LICENCE = {
    "weights": "Apache-2.0",
    "holder": "Google LLC",
    "source": "PoseNet, tensorflow/tfjs-models (https://github.com/tensorflow/tfjs-models)",
    "notice": "Licensed under the Apache License, Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). "
              "Converted to the StrongPose layout (tensor layouts, channel order, offset scaling); "
              "the body heat-map head is not PoseNet's.",
}
# PoseNet's keypoints are COCO's, in COCO's order; its displacement edges follow this parent->child chain
# (tfjs-models posenet `poseChain`); forward displacements go parent->child, backward child->parent.
POSENET_CHAIN = (
    ("nose", "left_eye"), ("left_eye", "left_ear"), ("nose", "right_eye"), ("right_eye", "right_ear"),
    ("nose", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_shoulder", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("nose", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_shoulder", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)
# The four heads, by the first word of a node-name component ("MobilenetV1/heatmap_2/BiasAdd").
HEADS = ("heatmap", "offset", "displacement_fwd", "displacement_bwd")
# Largest difference allowed between our network and the graph, as a fraction of each output's largest
# magnitude (at least 1). Float32 weights agree to rounding (PoseNet 0.75: 6e-6 of the largest value). Float16
# weights move this network's outputs much more than a ResNet's: up to 2.5% of the largest value on the check
# input (its folded batch norm amplifies the rounding), with no loss of AP (0.259 -> 0.260 on the 80 mini-set
# images at input 641); a mapping error moves them by their whole size.
TOLERANCE = 1e-4
FP16_TOLERANCE = 0.05
_SEED = 0


class PoseNetError(TfjsError):
    """A graph the importer does not recognise as a MobileNetV1 PoseNet; the message names what is missing or
    unexpected (op, node, tensor, head)."""


@dataclass(frozen=True)
class _Layer:
    """One convolution layer of the graph: the conv node with its bias and activation (fused or not)."""

    node: GraphNode
    output: str  # the node whose value is the layer's output (conv, BiasAdd or activation)
    weight: np.ndarray  # HWIO, or H, W, C, multiplier for depthwise
    bias: np.ndarray | None
    activation: str | None
    stride: int
    dilation: int
    padding: str

    @property
    def depthwise(self) -> bool:
        return self.node.op in DEPTHWISE_OPS

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[0]), int(self.weight.shape[1])

    @property
    def out_channels(self) -> int:
        w = self.weight
        return int(w.shape[2] * w.shape[3]) if self.depthwise else int(w.shape[3])


@dataclass(frozen=True)
class OutputCheck:
    """One output compared with the graph: largest |ours - graph|, the graph's largest |value|, the bound."""

    name: str
    max_abs_diff: float
    largest: float
    allowed: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.allowed


@dataclass
class ImportResult:
    """An imported network, how it compares with the source graph, and the checkpoint metadata to write."""

    model: StrongPoseNet
    checks: list[OutputCheck]
    metadata: dict[str, Any]
    summary: str
    fp16: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        verification = self.metadata["verification"]
        size = "x".join(str(v) for v in verification["input_size"])
        lines = [self.summary, f"checked against a NumPy evaluation (float64) of the graph at {size}, "
                               f"{'float16' if self.fp16 else 'float32'} weights:"]
        for check in self.checks:
            verdict = "ok" if check.ok else "TOO LARGE"
            lines.append(f"  {check.name:<18} max |ours - graph| {check.max_abs_diff:.3g}  (outputs up to "
                         f"{check.largest:.3g}; allowed {check.allowed:.3g})  {verdict}")
        return lines + [f"  {note}" for note in self.notes]

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint (float16 tensors when imported with fp16)."""
        from strongpose_ros import checkpoint

        return checkpoint.save(path, self.model, metadata=self.metadata,
                               dtype=torch.float16 if self.fp16 else None)


# --- reading the graph ---------------------------------------------------------------------------------------


def _layer(graph: GraphModel, node: GraphNode) -> _Layer:
    """The layer starting at conv node `node`: its weights, attributes, and the BiasAdd/activation after it."""
    if len(node.inputs) < 2:
        raise PoseNetError(f"{graph.path}: node {node.name!r} ({node.op}) has no filter input")
    layout = node.string("data_format")
    if layout not in (None, "NHWC"):
        raise PoseNetError(f"{graph.path}: node {node.name!r} uses data format {layout!r}; only NHWC is supported")
    weight = _const(graph, node.inputs[1], node)
    bias, activation = None, None
    if node.op in FUSED_OPS:
        extra = list(node.inputs[2:])
        for fused in node.strings("fused_ops"):
            if fused == "BiasAdd" and extra and bias is None:
                bias = _const(graph, extra.pop(0), node)
            elif fused in ACTIVATIONS and activation is None:
                activation = fused
            else:
                raise PoseNetError(f"{graph.path}: node {node.name!r} fuses {fused!r}; a PoseNet layer fuses "
                                   "BiasAdd and Relu6")
    output = node.name
    while True:  # unfused BiasAdd / activation / Identity nodes that follow
        readers = graph.consumers(output)
        if len(readers) != 1:
            break
        reader = readers[0]
        if reader.op == "BiasAdd" and bias is None and activation is None:
            bias = _const(graph, reader.inputs[1], reader)
        elif reader.op in ACTIVATIONS and activation is None:
            activation = reader.op
        elif reader.op != "Identity":
            break
        output = reader.name
    strides = node.ints("strides") or (1, 1, 1, 1)
    dilations = node.ints("dilations") or (1, 1, 1, 1)
    if strides[1] != strides[2] or dilations[1] != dilations[2]:
        raise PoseNetError(f"{graph.path}: node {node.name!r} has unequal strides {strides} or dilations "
                           f"{dilations} along height and width")
    if weight.ndim != 4:
        raise PoseNetError(f"{graph.path}: node {node.name!r}: filter {node.inputs[1]!r} has shape {weight.shape}")
    layer = _Layer(node, output, weight, bias, activation, strides[1], dilations[1], node.string("padding") or "VALID")
    if bias is not None and bias.shape != (layer.out_channels,):
        raise PoseNetError(f"{graph.path}: node {node.name!r}: bias of shape {bias.shape} for {layer.out_channels} "
                           "channels")
    return layer


def _const(graph: GraphModel, name: str, reader: GraphNode) -> np.ndarray:
    source = graph.nodes[name]
    while source.op == "Identity":
        source = graph.nodes[source.inputs[0]]
    if source.op != "Const":
        raise PoseNetError(f"{graph.path}: node {reader.name!r} reads {name!r} ({source.op}) where a constant "
                           "(weights) is expected")
    return np.asarray(graph.const(source.name), dtype=np.float32)


def _trunk_and_heads(graph: GraphModel) -> tuple[GraphNode, list[_Layer], list[_Layer]]:
    """Walk from the input: the chain of layers, then the layers reading the last one (the heads)."""
    inputs = graph.placeholders()
    if len(inputs) != 1:
        raise PoseNetError(f"{graph.path}: expected one input (Placeholder), found {len(inputs)}: "
                           f"{[n.name for n in inputs]}")
    image = inputs[0]
    layers: list[_Layer] = []
    current = image.name
    while True:
        readers = graph.consumers(current)
        while len(readers) == 1 and readers[0].op == "Identity":
            current = readers[0].name
            readers = graph.consumers(current)
        if len(readers) == 1 and readers[0].op in CONV_OPS:
            layer = _layer(graph, readers[0])
            layers.append(layer)
            current = layer.output
            continue
        break
    if not layers:
        raise PoseNetError(f"{graph.path}: the input {image.name!r} is not read by a convolution "
                           f"({_describe(readers)}){_resnet_hint(graph)}")
    unexpected = [r for r in readers if r.op not in CONV_OPS]
    if unexpected:
        raise PoseNetError(f"{graph.path}: unexpected op {unexpected[0].op!r} at node {unexpected[0].name!r} after "
                           f"layer {layers[-1].node.name!r}{_resnet_hint(graph)}")
    if len(readers) <= 1:
        raise PoseNetError(f"{graph.path}: the last layer {layers[-1].node.name!r} feeds {len(readers)} node(s); "
                           f"a PoseNet feeds its four heads {list(HEADS)} from it")
    heads = [_layer(graph, reader) for reader in readers]
    return image, layers, heads


def _describe(nodes: list[GraphNode]) -> str:
    return ", ".join(f"{n.name!r} ({n.op})" for n in nodes) or "nothing"


def _resnet_hint(graph: GraphModel) -> str:
    ops = {n.op for n in graph.nodes.values()}
    if ops & {"Add", "AddV2", "MaxPool"}:
        return ("; the graph has residual additions or max pooling, as a ResNet-50 PoseNet does: only MobileNetV1 "
                "PoseNet graphs are supported (a ResNet PoseNet's trunk is not mapped onto our ResNet)")
    if ops & {"SpaceToBatchND", "BatchToSpaceND"}:
        return "; atrous convolution written as SpaceToBatchND/BatchToSpaceND is not supported (only dilations)"
    return ""


def _check_trunk(graph: GraphModel, layers: list[_Layer]) -> None:
    """Stem 3x3 conv, then (depthwise 3x3, pointwise 1x1) pairs, all with bias and ReLU6, SAME padding."""

    def refuse(layer: _Layer, problem: str) -> None:
        raise PoseNetError(f"{graph.path}: layer {layer.node.name!r} ({layer.node.op}): {problem}; a MobileNetV1 "
                           "PoseNet trunk is a 3x3 conv, then depthwise 3x3 / pointwise 1x1 pairs, each with a "
                           "bias and Relu6")

    for index, layer in enumerate(layers):
        role = "stem" if index == 0 else "depthwise" if index % 2 else "pointwise"
        if layer.bias is None:
            refuse(layer, "no bias")
        if layer.activation != "Relu6":
            refuse(layer, f"activation {layer.activation or 'none'}, not Relu6")
        if role == "depthwise":
            if not layer.depthwise:
                refuse(layer, "a full convolution where a depthwise one belongs")
            if layer.weight.shape[3] != 1:
                refuse(layer, f"depthwise channel multiplier {layer.weight.shape[3]}, not 1")
        elif layer.depthwise:
            refuse(layer, f"a depthwise convolution where the {role} convolution belongs")
        kernel = (1, 1) if role == "pointwise" else (3, 3)
        if layer.kernel != kernel:
            refuse(layer, f"a {layer.kernel[0]}x{layer.kernel[1]} kernel where the {role} has {kernel[0]}x{kernel[1]}")
        if kernel == (3, 3) and layer.padding != "SAME":
            refuse(layer, f"{layer.padding} padding (our layers pad like TensorFlow's SAME)")
        if role == "pointwise" and (layer.stride, layer.dilation) != (1, 1):
            refuse(layer, f"stride {layer.stride}, dilation {layer.dilation} on a 1x1 convolution")
        if layer.stride not in (1, 2):
            refuse(layer, f"stride {layer.stride}")
    if layers[0].weight.shape[2] != 3:
        refuse(layers[0], f"{layers[0].weight.shape[2]} input channels, not 3 (RGB)")
    if len(layers) % 2 == 0:
        refuse(layers[-1], "the last depthwise convolution has no pointwise one after it")
    for previous, layer in itertools.pairwise(layers):
        if layer.weight.shape[2] != previous.out_channels and not layer.depthwise:
            refuse(layer, f"{layer.weight.shape[2]} input channels after a layer with {previous.out_channels}")
        if layer.depthwise and layer.weight.shape[2] != previous.out_channels:
            refuse(layer, f"{layer.weight.shape[2]} channels after a layer with {previous.out_channels}")


def _layer_strides(graph: GraphModel, spatial: list[_Layer]) -> tuple[tuple[int, ...], int]:
    """The strides before dilation, and the graph's output stride, from the 3x3 layers' strides and dilations.

    A layer whose stride was traded for dilation runs at stride 1, and the layer after it dilates by that
    factor more: its stride before dilation is stride * (next dilation / own dilation)."""
    native = []
    for index, layer in enumerate(spatial):
        following = spatial[index + 1].dilation if index + 1 < len(spatial) else layer.dilation
        if following % layer.dilation:
            raise PoseNetError(f"{graph.path}: dilation goes from {layer.dilation} at {layer.node.name!r} to "
                               f"{following}: not an atrous MobileNetV1")
        stride = layer.stride * following // layer.dilation
        if stride not in (1, 2) or (layer.stride == 2 and layer.dilation != 1):
            raise PoseNetError(f"{graph.path}: layer {layer.node.name!r} has stride {layer.stride} and dilation "
                               f"{layer.dilation} before dilation {following}: not an atrous MobileNetV1")
        native.append(stride)
    return tuple(native), math.prod(layer.stride for layer in spatial)


def _heads_by_role(graph: GraphModel, heads: list[_Layer], channels: int, schema: KeypointSchema) -> dict[str, _Layer]:
    width = {"heatmap": schema.num_keypoints, "offset": 2 * schema.num_keypoints,
             "displacement_fwd": 2 * schema.num_edges, "displacement_bwd": 2 * schema.num_edges}
    found: dict[str, _Layer] = {}
    for head in heads:
        names = (head.node.name, head.output)
        roles = {role for role in HEADS for name in names
                 if any(re.fullmatch(rf"{role}(_\d+)?", part) for part in name.split("/"))}
        if len(roles) != 1:
            raise PoseNetError(f"{graph.path}: node {head.node.name!r} reads the last layer but is none of the "
                               f"heads {list(HEADS)} (by its name)")
        role = roles.pop()
        if role in found:
            raise PoseNetError(f"{graph.path}: two {role!r} heads: {found[role].node.name!r} and {head.node.name!r}")
        if head.kernel != (1, 1) or head.depthwise or head.stride != 1:
            raise PoseNetError(f"{graph.path}: head {head.node.name!r} is not a 1x1 convolution")
        if head.bias is None or head.activation is not None:
            raise PoseNetError(f"{graph.path}: head {head.node.name!r} must have a bias and no activation")
        if head.weight.shape[2] != channels or head.out_channels != width[role]:
            raise PoseNetError(f"{graph.path}: head {role!r} ({head.node.name!r}) maps {head.weight.shape[2]} to "
                               f"{head.out_channels} channels; expected {channels} to {width[role]}")
        readers = graph.consumers(head.output)
        if readers:
            raise PoseNetError(f"{graph.path}: head {head.node.name!r} is read by {_describe(readers)}; a head is "
                               "an output")
        found[role] = head
    missing = [role for role in HEADS if role not in found]
    if missing:
        raise PoseNetError(f"{graph.path}: no {missing[0]!r} head among the readers of the last layer "
                           f"({_describe([h.node for h in heads])})")
    return found


def edge_sources(schema: KeypointSchema = COCO17) -> list[tuple[str, int]]:
    """For each of `schema.directed_edges`: ('fwd' or 'bwd', PoseNet edge index), matched by keypoint names."""
    chain = {pair: e for e, pair in enumerate(POSENET_CHAIN)}
    sources = []
    for a, b in schema.directed_edges:
        pair = (schema.keypoints[a], schema.keypoints[b])
        if pair in chain:
            sources.append(("fwd", chain[pair]))
        elif pair[::-1] in chain:
            sources.append(("bwd", chain[pair[::-1]]))
        else:
            raise PoseNetError(f"schema {schema.name!r}: edge {pair[0]}->{pair[1]} is not in PoseNet's chain")
    return sources


# --- building our network ------------------------------------------------------------------------------------------


def _state_dict(model: StrongPoseNet, layers: list[_Layer], heads: dict[str, _Layer],
                schema: KeypointSchema) -> dict[str, torch.Tensor]:
    def oihw(w: np.ndarray) -> torch.Tensor:  # HWIO -> OIHW
        return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))

    def depthwise(w: np.ndarray) -> torch.Tensor:  # H, W, C, 1 -> C, 1, H, W
        return torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1)))

    state: dict[str, torch.Tensor] = {"backbone.stem.conv.weight": oihw(layers[0].weight),
                                      "backbone.stem.conv.bias": torch.from_numpy(layers[0].bias)}
    for block, index in enumerate(range(1, len(layers), 2)):
        dw, pw = layers[index], layers[index + 1]
        prefix = f"backbone.blocks.{block}"
        state |= {f"{prefix}.depthwise.conv.weight": depthwise(dw.weight),
                  f"{prefix}.depthwise.conv.bias": torch.from_numpy(dw.bias),
                  f"{prefix}.pointwise.conv.weight": oihw(pw.weight),
                  f"{prefix}.pointwise.conv.bias": torch.from_numpy(pw.bias)}

    def head(role: str) -> tuple[np.ndarray, np.ndarray]:  # (out, in) weights and biases
        return heads[role].weight[0, 0].T.astype(np.float32), heads[role].bias.astype(np.float32)

    k, e = schema.num_keypoints, schema.num_edges
    scale = model.heads.offset_scale
    w, b = head("heatmap")
    state |= {"heads.heatmap.predict.weight": _as_1x1(w), "heads.heatmap.predict.bias": torch.from_numpy(b)}
    # PoseNet: K y-channels then K x-channels; ours: (dx, dy) per keypoint, in units of offset_scale.
    w, b = head("offset")
    order = [c for key in range(k) for c in (k + key, key)]
    state |= {"heads.short.predict.weight": _as_1x1(w[order] / scale),
              "heads.short.predict.bias": torch.from_numpy(b[order] / scale)}
    rows_w, rows_b = [], []
    for direction, edge in edge_sources(schema):
        w, b = head("displacement_" + direction)
        rows_w += [w[e + edge], w[edge]]
        rows_b += [b[e + edge], b[edge]]
    state |= {"heads.mid.predict.weight": _as_1x1(np.stack(rows_w) / scale),
              "heads.mid.predict.bias": torch.from_numpy(np.asarray(rows_b, dtype=np.float32) / scale)}
    # No body heat map in PoseNet: a constant prior until a BHM head is trained on the frozen features.
    body = model.heads.body.predict
    prior = model.config.heatmap_prior
    state |= {"heads.body.predict.weight": torch.zeros(body.weight.shape),
              "heads.body.predict.bias": torch.full(body.bias.shape, math.log(prior / (1.0 - prior)))}
    return {name: t.to(torch.float32) for name, t in state.items()}


def _as_1x1(w: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)[:, :, None, None])


def _check_dilations(graph: GraphModel, model: StrongPoseNet, spatial: list[_Layer]) -> None:
    backbone = model.backbone
    if not isinstance(backbone, MobileNetV1):
        raise TypeError(f"expected a mobilenet_v1 trunk, got {type(backbone).__name__}")
    for conv, layer in zip(backbone.spatial_convs, spatial, strict=True):
        if (conv.stride[0], conv.dilation[0]) != (layer.stride, layer.dilation):
            raise PoseNetError(f"{graph.path}: layer {layer.node.name!r} has stride {layer.stride}, dilation "
                               f"{layer.dilation}; MobileNetV1 at output stride {backbone.output_stride} gives "
                               f"stride {conv.stride[0]}, dilation {conv.dilation[0]} there")


def _variant(channels: tuple[int, ...], strides: tuple[int, ...]) -> str:
    """A readable name for the trunk, decided from its channels and strides (not from file names)."""
    width = channels[0] / 32
    if len(channels) == 14 and channels == scaled_channels(width):
        return f"MobileNetV1 {width:.2f}"
    if len(channels) == 14 and channels[:12] == scaled_channels(width)[:12] and set(channels[12:]) == {channels[11]}:
        return (f"MobileNetV1 {width:.2f}, PoseNet's form: the last two blocks keep {channels[11]} channels"
                + (" and stride 1" if strides[12] == 1 else ""))
    return f"MobileNetV1-like, {len(channels) - 1} blocks, channels {list(channels)}"


# --- the importer --------------------------------------------------------------------------------------------------


def import_posenet(model_json: str | Path, *, refinement_steps: int = 2, fp16: bool = False,
                   tolerance: float | None = None, command: str | None = None) -> ImportResult:
    """Convert a MobileNetV1 PoseNet tfjs graph model (model.json and its weight files) to a StrongPose network.

    Returns the network, its comparison with the graph (`ImportResult.checks`, `ok`) and the checkpoint
    metadata (source files and their sha256, licence, command, converter version); `ImportResult.save`
    writes it. `fp16` rounds the weights to float16 before the comparison (the file then stores them so);
    `tolerance` is a fraction of each output's largest magnitude, at least 1 (default 1e-4, fp16 5e-3).
    Raises `PoseNetError` (a ValueError) naming what is missing or unexpected in a graph it does not recognise.
    """
    started = time.perf_counter()
    schema = COCO17
    graph = read_graph_model(model_json)
    image, layers, head_layers = _trunk_and_heads(graph)
    _check_trunk(graph, layers)
    heads = _heads_by_role(graph, head_layers, layers[-1].out_channels, schema)
    spatial = [layers[0], *layers[1::2]]
    native, output_stride = _layer_strides(graph, spatial)
    channels = (layers[0].out_channels, *(layer.out_channels for layer in layers[2::2]))
    input_size, size_note = _input_size(graph, image, output_stride)
    try:
        config = ModelConfig(
            backbone="mobilenet_v1",
            backbone_options={"channels": list(channels), "strides": list(native), "batch_norm": False},
            output_stride=output_stride, schema=schema.name, input_size=input_size,
            input_mean=SYMMETRIC_MEAN, input_std=SYMMETRIC_STD, head_channels=0, refinement_steps=refinement_steps,
        )
    except ValueError as exc:
        raise PoseNetError(f"{graph.path}: the graph's network does not fit a StrongPose model: {exc}") from None
    with torch.device("meta"):
        model = build_model(config)
    _check_dilations(graph, model, spatial)
    state = _state_dict(model, layers, heads, schema)
    if fp16:
        state = {name: t.to(torch.float16).to(torch.float32) for name, t in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()

    default = FP16_TOLERANCE if fp16 else TOLERANCE
    checks = _verify(graph, image.name, model, heads, schema, input_size, default if tolerance is None else tolerance)
    summary = (f"{graph.path.name}: {_variant(channels, native)}, output stride {output_stride}, input "
               f"{'x'.join(map(str, input_size))} RGB in [-1, 1], {len(graph.weights)} tensors "
               f"({', '.join(sorted(set(graph.encodings.values())))}), "
               f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    metadata = _metadata(graph, checks, input_size, summary, fp16, command, refinement_steps, default
                         if tolerance is None else tolerance)
    notes = [size_note] if size_note else []
    notes.append("body_heatmap: none in PoseNet; a constant prior until a BHM head is trained on frozen features")
    return ImportResult(model, checks, metadata, summary, fp16, time.perf_counter() - started, notes)


def _input_size(graph: GraphModel, image: GraphNode, stride: int) -> tuple[tuple[int, int], str]:
    """The graph's input size when it is s*n+1 (our grid convention), else the nearest such size below it."""
    shape = image.shape() or ()
    if len(shape) != 4 or shape[3] not in (3, -1):
        raise PoseNetError(f"{graph.path}: the input {image.name!r} has shape {list(shape)}; expected "
                           "[batch, height, width, 3]")
    sides = [s if s > 0 else 16 * stride + 1 for s in shape[1:3]]
    fitted = tuple(max((s - 1) // stride, 1) * stride + 1 for s in sides)
    note = ""
    if list(fitted) != list(shape[1:3]):
        note = (f"the graph's input {shape[1]}x{shape[2]} is not stride*n+1: checked, and configured, at "
                f"{fitted[0]}x{fitted[1]}")
    return (int(fitted[0]), int(fitted[1])), note


def _verify(graph: GraphModel, input_name: str, model: StrongPoseNet, heads: dict[str, _Layer],
            schema: KeypointSchema, input_size: tuple[int, int], tolerance: float) -> list[OutputCheck]:
    """Our network's raw outputs (unrefined mid-range offsets) against the graph's, on a seeded random image."""
    rng = np.random.default_rng(_SEED)
    image = rng.uniform(-1.0, 1.0, (1, *input_size, 3))
    reference = evaluate_graph(graph, {input_name: image}, [h.output for h in heads.values()])
    reference = {role: reference[heads[role].output][0] for role in HEADS}  # (h, w, C)
    steps = model.heads.refinement_steps
    model.heads.refinement_steps = 0
    try:
        with torch.inference_mode():
            out = model(torch.from_numpy(image.transpose(0, 3, 1, 2)).float())
    finally:
        model.heads.refinement_steps = steps
    ours = {"heatmap": out.heatmap_logits[0].permute(1, 2, 0).numpy()}
    short = out.short_offsets[0].numpy()  # (K, 2, h, w)
    ours["offset"] = np.concatenate([short[:, 1], short[:, 0]]).transpose(1, 2, 0)
    mid = out.mid_offsets[0].numpy()  # (2E, 2, h, w)
    e = schema.num_edges
    for direction in ("fwd", "bwd"):
        rows = np.zeros((2 * e, *mid.shape[2:]), dtype=np.float32)
        for index, (source, edge) in enumerate(edge_sources(schema)):
            if source == direction:
                rows[edge], rows[e + edge] = mid[index, 1], mid[index, 0]
        ours[f"displacement_{direction}"] = rows.transpose(1, 2, 0)
    checks = []
    for role in HEADS:
        want, got = reference[role], ours[role]
        if want.shape != got.shape:
            raise PoseNetError(f"{graph.path}: head {role!r}: the graph gives {want.shape}, our network {got.shape}")
        largest = float(np.abs(want).max())
        checks.append(OutputCheck(role, float(np.abs(got - want).max()), largest, tolerance * max(1.0, largest)))
    return checks


def _metadata(graph: GraphModel, checks: list[OutputCheck], input_size: tuple[int, int], summary: str, fp16: bool,
              command: str | None, refinement_steps: int, tolerance: float) -> dict[str, Any]:
    import strongpose_ros

    source: dict[str, Any] = {
        "importer": "posenet",
        "format": "tfjs graph-model",
        "files": [{"name": f.name, "sha256": sha256_of(f), "bytes": f.stat().st_size} for f in graph.files],
        "model_json": graph.path.name,
    } | {key: value for key, value in graph.info.items()}
    package = _npm_package(graph.path)
    if package:
        source["package"] = package
    return {
        "description": summary,
        "source": source,
        "licence": LICENCE,
        "command": command,
        "converter": {"name": __name__, "version": CONVERTER_VERSION, "strongpose_ros": strongpose_ros.__version__},
        "verification": {"input_size": list(input_size), "tolerance": tolerance,
                         "weights": "float16" if fp16 else "float32",
                         "max_abs_diff": {c.name: c.max_abs_diff for c in checks},
                         "largest": {c.name: c.largest for c in checks}},
        "refinement_steps": refinement_steps,
        "untrained_outputs": ["body_heatmap"],
    }


def _npm_package(model_json: Path) -> dict[str, str] | None:
    """name, version and licence of the npm package holding the model (a package.json up to 3 folders up)."""
    folder = model_json.resolve().parent
    for candidate in (folder, *list(folder.parents)[:3]):
        path = candidate / "package.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None
            return {key: str(data[key]) for key in ("name", "version", "license") if key in data}
    return None


# --- command line (`strongpose import posenet`) ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_json", type=Path, metavar="MODEL.json",
                        help="the tfjs graph model (its weight files next to it, as its manifest names them)")
    parser.add_argument("--refinement-steps", type=int, default=2, metavar="N",
                        help="mid-range refinements in the network (0: PoseNet's raw displacements; default 2, "
                             "PersonLab's)")


def from_arguments(args: argparse.Namespace, command: str) -> ImportResult:
    if args.refinement_steps < 0:
        raise PoseNetError(f"--refinement-steps must be >= 0, got {args.refinement_steps}")
    return import_posenet(args.model_json, refinement_steps=args.refinement_steps, fp16=args.fp16,
                          tolerance=args.tolerance, command=command)
