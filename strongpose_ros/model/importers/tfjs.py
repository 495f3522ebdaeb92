"""TensorFlow.js graph models: reading `model.json` and its weight files, and evaluating the graph in NumPy.

The format (what tfjs-converter writes for a "graph-model"):
- `model.json` holds `modelTopology` (a TensorFlow GraphDef as JSON: nodes with `name`, `op`, `input` and
  `attr`), `weightsManifest` (groups, each with `paths`, its weight files relative to model.json, and
  `weights`: name, shape, dtype and an optional `quantization`), `signature` (named inputs and outputs) and
  free-text `format`, `generatedBy`, `convertedBy`;
- a group's weights lie back to back, in manifest order, in the concatenation of its files (tfjs shards
  them into files of a few MB); nothing pads or aligns them;
- encodings: `float32` and `int32` (4 bytes, little-endian); quantised, `quantization: {dtype: uint8 |
  uint16, scale, min}` (value = q * scale + min, rounded to float32 as tfjs does) and `{dtype: float16}`
  (IEEE half precision).

`evaluate_graph` runs a graph in NumPy (float64 by default), with TensorFlow's semantics for the ops
importers meet: Conv2D, DepthwiseConv2dNative and their fused forms (_FusedConv2D,
FusedDepthwiseConv2dNative with BiasAdd, Relu, Relu6), BiasAdd, Relu, Relu6 and Identity, NHWC, with SAME,
VALID and explicit padding. It is the reference an importer checks its PyTorch network against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CONV_OPS",
    "GraphModel",
    "GraphNode",
    "TfjsError",
    "conv2d_nhwc",
    "evaluate_graph",
    "read_graph_model",
    "same_padding",
    "sha256_of",
]

CONV_OPS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
DEPTHWISE_OPS = ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
FUSED_OPS = ("_FusedConv2D", "FusedDepthwiseConv2dNative")
ACTIVATIONS = ("Relu", "Relu6")
EVALUATED_OPS = ("Const", "Placeholder", "Identity", "BiasAdd", *ACTIVATIONS, *CONV_OPS)

# Bytes per value of each stored encoding.
_STORED = {"float32": ("<f4", 4), "int32": ("<i4", 4), "bool": ("u1", 1), "uint8": ("u1", 1),
           "uint16": ("<u2", 2), "float16": ("<f2", 2)}


class TfjsError(ValueError):
    """A tfjs model that cannot be read or evaluated; the message names the file, node, tensor or op."""


@dataclass(frozen=True)
class GraphNode:
    """One node of the GraphDef: its inputs are node names (the `:0` output suffix and control inputs removed)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict[str, Any] = field(default_factory=dict, compare=False)

    def ints(self, key: str) -> tuple[int, ...] | None:
        value = self.attr.get(key)
        if value is None:
            return None
        return tuple(int(v) for v in value.get("list", {}).get("i", []))

    def string(self, key: str) -> str | None:
        value = self.attr.get(key)
        return None if value is None or "s" not in value else base64.b64decode(value["s"]).decode()

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.attr.get(key) or {}
        return tuple(base64.b64decode(s).decode() for s in value.get("list", {}).get("s", []))

    def shape(self) -> tuple[int, ...] | None:
        """The `shape` attribute of a Placeholder (-1 for an unknown dimension), or None."""
        value = (self.attr.get("shape") or {}).get("shape")
        if value is None:
            return None
        return tuple(int(d.get("size", -1)) for d in value.get("dim", []))


@dataclass
class GraphModel:
    """A tfjs graph model read from disk: nodes in file order, weights decoded to NumPy arrays.

    `encodings` says how each weight was stored ('float32', 'uint8', 'uint16', 'float16', 'int32');
    `files` lists model.json then the weight files; `info` holds format, generatedBy, convertedBy.
    """

    path: Path
    nodes: dict[str, GraphNode]
    weights: dict[str, np.ndarray]
    encodings: dict[str, str]
    files: list[Path]
    info: dict[str, str]
    signature: dict[str, Any]
    _consumers: dict[str, list[GraphNode]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        consumers: dict[str, list[GraphNode]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for name in node.inputs:
                if name not in self.nodes:
                    raise TfjsError(f"{self.path}: node {node.name!r} reads {name!r}, which is not in the graph")
                consumers[name].append(node)
        self._consumers = consumers

    def consumers(self, name: str) -> list[GraphNode]:
        """The nodes that read node `name`'s output, in file order."""
        return self._consumers[name]

    def placeholders(self) -> list[GraphNode]:
        return [n for n in self.nodes.values() if n.op == "Placeholder"]

    def const(self, name: str) -> np.ndarray:
        """The value of Const node `name` (from the weights manifest, or inline in the node)."""
        node = self.nodes.get(name)
        if node is None or node.op != "Const":
            raise TfjsError(f"{self.path}: {name!r} is not a constant")
        if name in self.weights:
            return self.weights[name]
        tensor = (node.attr.get("value") or {}).get("tensor")
        if tensor is None:
            raise TfjsError(f"{self.path}: constant {name!r} has no weights in the manifest and no inline value")
        return _inline_tensor(tensor, name, self.path)

    def output_names(self) -> list[str]:
        """The signature's outputs (names without ':0'), else the nodes nothing reads."""
        outputs = [name.split(":")[0] for name in (self.signature.get("outputs") or {})]
        return outputs or [n for n, readers in self._consumers.items() if not readers and self.nodes[n].op != "Const"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_graph_model(path: str | Path) -> GraphModel:
    """Read a tfjs graph model: `model.json` and the weight files its manifest names (next to it).

    Raises `TfjsError` naming the file for a missing or unreadable file, a layers model, an unknown
    weight encoding, or weight files whose sizes do not match the manifest (naming the short or long one).
    """
    path = Path(path)
    if not path.is_file():
        raise TfjsError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfjsError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("modelTopology"), dict):
        raise TfjsError(f"{path}: not a tfjs model (no 'modelTopology')")
    topology = data["modelTopology"]
    if "node" not in topology:
        kind = "a tfjs layers model (Keras)" if "model_config" in topology or "config" in topology else "unknown"
        raise TfjsError(f"{path}: {kind}, not a tfjs graph model (its topology has no 'node' list)")
    manifest = data.get("weightsManifest")
    if not isinstance(manifest, list):
        raise TfjsError(f"{path}: no 'weightsManifest' list")

    nodes: dict[str, GraphNode] = {}
    for raw in topology["node"]:
        try:
            name, op = str(raw["name"]), str(raw["op"])
        except (KeyError, TypeError):
            raise TfjsError(f"{path}: a graph node without a name or op: {str(raw)[:120]}") from None
        inputs = []
        for text in raw.get("input", []):
            if text.startswith("^"):
                continue  # a control dependency: no data flows
            base, _, index = text.partition(":")
            if index not in ("", "0"):
                raise TfjsError(f"{path}: node {name!r} reads output {index} of {base!r}; only single-output "
                                "nodes are supported")
            inputs.append(base)
        if name in nodes:
            raise TfjsError(f"{path}: two nodes are called {name!r}")
        nodes[name] = GraphNode(name, op, tuple(inputs), dict(raw.get("attr") or {}))

    weights, encodings, files = _read_weights(path, manifest)
    info = {key: str(data[key]) for key in ("format", "generatedBy", "convertedBy") if key in data}
    return GraphModel(path, nodes, weights, encodings, [path, *files], info, dict(data.get("signature") or {}))


def _read_weights(path: Path, manifest: list[Any]) -> tuple[dict[str, np.ndarray], dict[str, str], list[Path]]:
    weights: dict[str, np.ndarray] = {}
    encodings: dict[str, str] = {}
    all_files: list[Path] = []
    for number, group in enumerate(manifest):
        try:
            files = [path.parent / str(p) for p in group["paths"]]
            entries = list(group["weights"])
        except (KeyError, TypeError):
            raise TfjsError(f"{path}: weightsManifest group {number} has no 'paths' or 'weights'") from None
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise TfjsError(f"{path}: weight file {missing[0]} (group {number}) is missing")
        sizes = [_entry_bytes(path, entry) for entry in entries]
        _check_sizes(path, number, files, sum(sizes), len(entries))
        buffer = b"".join(f.read_bytes() for f in files)
        offset = 0
        for entry, size in zip(entries, sizes, strict=True):
            name = str(entry["name"])
            if name in weights:
                raise TfjsError(f"{path}: the manifest lists weight {name!r} twice")
            weights[name] = _decode(entry, buffer[offset:offset + size], path)
            encodings[name] = _encoding(entry)
            offset += size
        all_files += files
    return weights, encodings, all_files


def _encoding(entry: dict[str, Any]) -> str:
    quantization = entry.get("quantization")
    return str(quantization["dtype"]) if quantization else str(entry.get("dtype"))


def _entry_bytes(path: Path, entry: Any) -> int:
    try:
        name, shape = str(entry["name"]), [int(d) for d in entry["shape"]]
    except (KeyError, TypeError, ValueError):
        raise TfjsError(f"{path}: a manifest weight without a name or shape: {str(entry)[:120]}") from None
    encoding = _encoding(entry)
    if encoding not in _STORED:
        raise TfjsError(f"{path}: weight {name!r} is stored as {encoding!r}; readable: {sorted(_STORED)}")
    if entry.get("quantization") and encoding not in ("uint8", "uint16", "float16"):
        raise TfjsError(f"{path}: weight {name!r} has an unknown quantization {entry['quantization']!r}")
    return math.prod(shape) * _STORED[encoding][1]


def _check_sizes(path: Path, number: int, files: list[Path], expected: int, count: int) -> None:
    sizes = [f.stat().st_size for f in files]
    if sum(sizes) == expected:
        return
    what = f"group {number} of {path.name}: {count} weights need {expected} bytes in {len(files)} file(s)"
    # tfjs writes every shard but the last at the same size: a smaller one before the last is the short one.
    shard = max(sizes[:-1], default=0)
    for f, size in zip(files[:-1], sizes[:-1], strict=True):
        if size < shard:
            raise TfjsError(f"{f}: {size} bytes, shorter than the group's other shards ({shard} bytes); {what}")
    last_expected = expected - sum(sizes[:-1])
    state = "short" if sizes[-1] < last_expected else "too long"
    raise TfjsError(f"{files[-1]}: {sizes[-1]} bytes, {state}: expected {max(last_expected, 0)}; {what}")


def _decode(entry: dict[str, Any], raw: bytes, path: Path) -> np.ndarray:
    shape = tuple(int(d) for d in entry["shape"])
    encoding, dtype = _encoding(entry), str(entry.get("dtype"))
    values = np.frombuffer(raw, dtype=_STORED[encoding][0])
    if encoding in ("uint8", "uint16"):
        quantization = entry["quantization"]
        try:
            scale, low = float(quantization["scale"]), float(quantization["min"])
        except (KeyError, TypeError, ValueError):
            raise TfjsError(f"{path}: weight {entry['name']!r}: {encoding} quantization without scale and "
                            "min") from None
        # tfjs computes q * scale + min in double precision and stores it in a Float32Array.
        values = (values.astype(np.float64) * scale + low).astype(np.float32)
        if dtype == "int32":
            values = np.round(values).astype(np.int32)
    elif encoding == "float16":
        values = values.astype(np.float32)
    elif encoding == "bool":
        values = values.astype(bool)
    return values.reshape(shape).copy()


def _inline_tensor(tensor: dict[str, Any], name: str, path: Path) -> np.ndarray:
    dims = [int(d.get("size", 0)) for d in (tensor.get("tensorShape") or {}).get("dim", [])]
    kind = tensor.get("dtype")
    if kind == "DT_INT32":
        values = np.asarray([int(v) for v in tensor.get("intVal", [])], dtype=np.int32)
    elif kind == "DT_FLOAT":
        values = np.asarray([float(v) for v in tensor.get("floatVal", [])], dtype=np.float32)
    else:
        raise TfjsError(f"{path}: constant {name!r} has an inline {kind} value; not supported")
    if "tensorContent" in tensor:
        values = np.frombuffer(base64.b64decode(tensor["tensorContent"]), dtype=values.dtype)
    count = math.prod(dims)
    if values.size == 1 and count > 1:
        values = np.full(count, values[0], dtype=values.dtype)  # TF stores a splat as one value
    if values.size != count:
        raise TfjsError(f"{path}: constant {name!r}: {values.size} values for shape {dims}")
    return values.reshape(dims)


# --- evaluation -------------------------------------------------------------------------------------------------


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """TensorFlow's SAME padding on one side of length `size`: (pad before, pad after, output size).

    out = ceil(size / stride); the total padding makes the last window end at the last pixel, and an odd total
    puts the extra pixel after (so a stride-2 3x3 conv pads an odd side 1 + 1, an even one 0 + 1)."""
    out = -(-size // stride)
    span = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2, out


def conv2d_nhwc(x: np.ndarray, w: np.ndarray, strides: tuple[int, int], dilations: tuple[int, int],
                padding: str, explicit: tuple[int, int, int, int] | None = None,
                depthwise: bool = False) -> np.ndarray:
    """TensorFlow's Conv2D (w: HWIO) or DepthwiseConv2dNative (w: H, W, C, multiplier) on NHWC input.

    `padding` is 'SAME', 'VALID' or 'EXPLICIT' (then `explicit` = (top, bottom, left, right)). A depthwise
    output channel c * multiplier + m is input channel c filtered by w[..., c, m], as in TensorFlow.
    """
    _, height, width, channels = x.shape
    kh, kw = w.shape[:2]
    (sh, sw), (dh, dw) = strides, dilations
    if padding == "SAME":
        top, bottom, oh = same_padding(height, kh, sh, dh)
        left, right, ow = same_padding(width, kw, sw, dw)
    else:
        top, bottom, left, right = explicit if padding == "EXPLICIT" and explicit else (0, 0, 0, 0)
        oh = (height + top + bottom - (kh - 1) * dh - 1) // sh + 1
        ow = (width + left + right - (kw - 1) * dw - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise TfjsError(f"convolution: a {kh}x{kw} kernel does not fit a {height}x{width} input with {padding} padding")
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_channels = channels * w.shape[3] if depthwise else w.shape[3]
    out = np.zeros((x.shape[0], oh, ow, out_channels), dtype=np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]
            if depthwise:
                out += (window[..., :, None] * w[i, j]).reshape(out.shape)
            else:
                out += window @ w[i, j]
    return out


def evaluate_graph(graph: GraphModel, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
                   dtype: type = np.float64) -> dict[str, np.ndarray]:
    """Values of `outputs` (default: the graph's outputs) given the Placeholder values in `feeds`.

    Computes in `dtype` (float64: a reference for float32 networks). An op outside `EVALUATED_OPS`, an
    attribute it does not handle (NCHW data, a fused op other than BiasAdd/Relu/Relu6) or a missing feed
    raises `TfjsError` naming the node.
    """
    outputs = graph.output_names() if outputs is None else outputs
    values: dict[str, np.ndarray] = {}
    for name in _dependencies(graph, outputs):
        node = graph.nodes[name]
        values[name] = _evaluate_node(graph, node, values, feeds, dtype)
    return {name: values[name] for name in outputs}


def _dependencies(graph: GraphModel, outputs: list[str]) -> list[str]:
    """The nodes `outputs` need, each after its inputs (iterative depth-first order)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: in progress, 2: done
    for target in outputs:
        if target not in graph.nodes:
            raise TfjsError(f"{graph.path}: no node {target!r} to evaluate")
        stack = [(target, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise TfjsError(f"{graph.path}: the graph has a cycle through {name!r}")
            state[name] = 1
            stack.append((name, True))
            stack += [(i, False) for i in reversed(graph.nodes[name].inputs) if state.get(i) != 2]
    return order


def _evaluate_node(graph: GraphModel, node: GraphNode, values: dict[str, np.ndarray],
                   feeds: dict[str, np.ndarray], dtype: type) -> np.ndarray:
    op = node.op
    if op not in EVALUATED_OPS:
        raise TfjsError(f"{graph.path}: node {node.name!r}: op {op!r} is not supported by the NumPy evaluator "
                        f"(supported: {', '.join(EVALUATED_OPS)})")
    if op == "Const":
        value = graph.const(node.name)
        return value.astype(dtype) if value.dtype.kind == "f" else value
    if op == "Placeholder":
        if node.name not in feeds:
            raise TfjsError(f"{graph.path}: no value given for the input {node.name!r}")
        return np.asarray(feeds[node.name], dtype=dtype)
    args = [values[i] for i in node.inputs]
    if op == "Identity":
        return args[0]
    if op == "BiasAdd":
        _check_nhwc(graph, node)
        return args[0] + args[1]
    if op in ACTIVATIONS:
        return _activate(args[0], op)
    _check_nhwc(graph, node)
    strides, dilations = node.ints("strides") or (1, 1, 1, 1), node.ints("dilations") or (1, 1, 1, 1)
    padding = node.string("padding") or "VALID"
    explicit = node.ints("explicit_paddings")
    explicit = tuple(explicit[2:6]) if explicit and len(explicit) == 8 else None
    out = conv2d_nhwc(args[0], args[1], strides[1:3], dilations[1:3], padding, explicit, depthwise=op in DEPTHWISE_OPS)
    if op in FUSED_OPS:
        extra = list(args[2:])
        for fused in node.strings("fused_ops"):
            if fused == "BiasAdd" and extra:
                out = out + extra.pop(0)
            elif fused in ACTIVATIONS:
                out = _activate(out, fused)
            else:
                raise TfjsError(f"{graph.path}: node {node.name!r} fuses {fused!r}; supported: BiasAdd, Relu, Relu6")
    return out


def _activate(x: np.ndarray, op: str) -> np.ndarray:
    return np.clip(x, 0, 6) if op == "Relu6" else np.maximum(x, 0)


def _check_nhwc(graph: GraphModel, node: GraphNode) -> None:
    layout = node.string("data_format")
    if layout not in (None, "NHWC"):
        raise TfjsError(f"{graph.path}: node {node.name!r} uses data format {layout!r}; only NHWC is supported")
