"""`strongpose import posenet`: tfjs graph models the tests write themselves (every weight encoding, a sharded
manifest), read back, evaluated in NumPy with TensorFlow's semantics, and mapped onto a mobilenet_v1 StrongPose
network that reproduces them; unrecognised graphs and damaged weight files are refused with what is wrong."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from strongpose_ros import checkpoint
from strongpose_ros.cli import main
from strongpose_ros.model.importers.posenet import POSENET_CHAIN, PoseNetError, edge_sources, import_posenet
from strongpose_ros.model.importers.tfjs import TfjsError, conv2d_nhwc, evaluate_graph, read_graph_model
from strongpose_ros.schema import COCO17

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENCODINGS = ("float32", "uint8", "uint16", "float16")
INPUT = 33  # 8 * 4 + 1: the tiny graph runs at output stride 8
# (kind, kernel, out channels, stride, dilation, fused): a stem, then depthwise/pointwise pairs. Block 3's
# depthwise conv lost its stride to atrous convolution (the graph is at output stride 8, its layers reach 16), so
# block 4's dilates by 2. Fused and unfused layer forms alternate.
TRUNK = (
    ("conv", 3, 8, 2, 1, True),
    ("depthwise", 3, 8, 2, 1, False), ("conv", 1, 16, 1, 1, True),
    ("depthwise", 3, 16, 2, 1, True), ("conv", 1, 16, 1, 1, False),
    ("depthwise", 3, 16, 1, 1, True), ("conv", 1, 24, 1, 1, True),
    ("depthwise", 3, 24, 1, 2, False), ("conv", 1, 24, 1, 1, True),
)
HEADS = (("heatmap_2", 17, True), ("offset_2", 34, False), ("displacement_fwd_2", 32, True),
         ("displacement_bwd_2", 32, False))


def _attr_ints(values):
    return {"list": {"i": [str(v) for v in values]}}


def _attr_str(text):
    return {"s": base64.b64encode(text.encode()).decode()}


class TinyGraph:
    """A MobileNetV1 PoseNet-shaped tfjs graph model written to a folder, with random weights."""

    def __init__(self, seed=0, trunk=TRUNK, heads=HEADS, activation="Relu6"):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.weights = [], {}
        self.nodes.append({"name": "image", "op": "Placeholder", "attr": {
            "dtype": {"type": "DT_FLOAT"},
            "shape": {"shape": {"dim": [{"size": "1"}, {"size": str(INPUT)}, {"size": str(INPUT)}, {"size": "3"}]}}}})
        current, channels = "image", 3
        for index, (kind, kernel, out, stride, dilation, fused) in enumerate(trunk):
            name = f"MobilenetV1/Conv2d_{index}"
            current = self.layer(name, current, kind, kernel, channels, out, stride, dilation, fused, activation)
            channels = out
        self.trunk_output = current
        for name, out, fused in heads:
            self.layer(f"MobilenetV1/{name}", current, "conv", 1, channels, out, 1, 1, fused, None)

    def const(self, value):
        name = f"Const_{len(self.weights)}"  # names say nothing about the role: the importer must not need them
        self.weights[name] = value.astype(np.float32)
        self.nodes.insert(0, {"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}})
        return name

    def layer(self, name, source, kind, kernel, cin, cout, stride, dilation, fused, activation):
        depthwise = kind == "depthwise"
        fan_in = kernel * kernel * (1 if depthwise else cin)
        shape = (kernel, kernel, cin, 1) if depthwise else (kernel, kernel, cin, cout)
        w = self.const(self.rng.normal(0, (2 / fan_in) ** 0.5, shape))
        b = self.const(self.rng.normal(0, 0.2, cout))
        attr = {"strides": _attr_ints([1, stride, stride, 1]), "dilations": _attr_ints([1, dilation, dilation, 1]),
                "padding": _attr_str("SAME"), "data_format": _attr_str("NHWC")}
        ops = ["BiasAdd"] + ([activation] if activation else [])
        if fused:
            op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
            attr["fused_ops"] = {"list": {"s": [base64.b64encode(o.encode()).decode() for o in ops]}}
            self.nodes.append({"name": f"{name}/fused", "op": op, "input": [source, w, b], "attr": attr})
            return f"{name}/fused"
        op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        self.nodes.append({"name": f"{name}/conv", "op": op, "input": [source, w], "attr": attr})
        self.nodes.append({"name": f"{name}/BiasAdd", "op": "BiasAdd", "input": [f"{name}/conv", b]})
        if not activation:
            return f"{name}/BiasAdd"
        self.nodes.append({"name": f"{name}/{activation}", "op": activation, "input": [f"{name}/BiasAdd"]})
        return f"{name}/{activation}"

    def write(self, folder: Path, shards: int = 3) -> Path:
        """model.json and the weights: two manifest groups, the second split over `shards` files, the
        encodings cycling through float32, uint8, uint16 and float16."""
        folder.mkdir(parents=True, exist_ok=True)
        names = list(self.weights)
        groups, blobs = [], []
        for number, members in enumerate((names[: len(names) // 3], names[len(names) // 3:])):
            entries, data = [], b""
            for name in members:
                value = self.weights[name]
                encoding = ENCODINGS[names.index(name) % len(ENCODINGS)]
                entry = {"name": name, "shape": list(value.shape), "dtype": "float32"}
                if encoding == "float32":
                    data += value.astype("<f4").tobytes()
                elif encoding == "float16":
                    entry["quantization"] = {"dtype": "float16"}
                    data += value.astype("<f2").tobytes()
                else:
                    levels = 255 if encoding == "uint8" else 65535
                    low, high = float(value.min()), float(value.max())
                    scale = (high - low) / levels or 1.0
                    q = np.round((value - low) / scale).astype("u1" if encoding == "uint8" else "<u2")
                    entry["quantization"] = {"dtype": encoding, "scale": scale, "min": low}
                    data += q.tobytes()
                entries.append(entry)
            parts = 1 if number == 0 else shards
            cut = -(-len(data) // parts)
            paths = []
            for part in range(parts):
                path = f"group{number + 1}-shard{part + 1}of{parts}.bin"
                (folder / path).write_bytes(data[part * cut:(part + 1) * cut])
                paths.append(path)
            groups.append({"paths": paths, "weights": entries})
            blobs.append(data)
        model = {"format": "graph-model", "generatedBy": "test", "convertedBy": "test",
                 "modelTopology": {"node": self.nodes, "library": {}, "versions": {}}, "weightsManifest": groups}
        path = folder / "model.json"
        path.write_text(json.dumps(model))
        return path


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory) -> tuple[TinyGraph, Path]:
    graph = TinyGraph()
    return graph, graph.write(tmp_path_factory.mktemp("tfjs") / "tiny")


# --- reading and evaluating tfjs graphs ---------------------------------------------------------------------------


def test_weights_in_every_encoding_across_shards_decode(tiny_graph):
    source, path = tiny_graph
    graph = read_graph_model(path)
    assert set(graph.encodings.values()) == set(ENCODINGS)
    assert [f.name for f in graph.files][:2] == ["model.json", "group1-shard1of1.bin"] and len(graph.files) == 5
    manifest = json.loads(path.read_text())["weightsManifest"]
    entries = {e["name"]: e for group in manifest for e in group["weights"]}
    for name, original in source.weights.items():
        got, encoding = graph.weights[name], graph.encodings[name]
        assert got.shape == original.shape and got.dtype == np.float32, name
        if encoding == "float32":
            np.testing.assert_array_equal(got, original)
        elif encoding == "float16":
            np.testing.assert_array_equal(got, original.astype(np.float16).astype(np.float32))
        else:  # q * scale + min, as tfjs computes it; within half a step of the original
            q = entries[name]["quantization"]
            np.testing.assert_allclose(got, original, atol=q["scale"] / 2 + 1e-6)
            steps = (got.astype(np.float64) - q["min"]) / q["scale"]
            np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


@pytest.mark.parametrize(("size", "kernel", "stride", "dilation"), [
    (9, 3, 2, 1), (10, 3, 2, 1), (9, 3, 1, 2), (8, 1, 1, 1), (11, 5, 3, 1), (8, 3, 1, 3)])
def test_numpy_convolutions_follow_tensorflows_same_padding(size, kernel, stride, dilation):
    # TF's SAME: out = ceil(n / s), total padding (out - 1) s + (k - 1) d + 1 - n, the odd pixel after.
    rng = np.random.default_rng(size * 100 + kernel)
    x = rng.normal(size=(2, size, size + 1, 4))
    span = (kernel - 1) * dilation + 1
    pads = []
    for n in (size, size + 1):
        total = max((-(-n // stride) - 1) * stride + span - n, 0)
        pads += [total // 2, total - total // 2]
    xt = F.pad(torch.from_numpy(x).permute(0, 3, 1, 2), (pads[2], pads[3], pads[0], pads[1]))
    w = rng.normal(size=(kernel, kernel, 4, 6))
    want = F.conv2d(xt, torch.from_numpy(w).permute(3, 2, 0, 1), stride=stride, dilation=dilation)
    got = conv2d_nhwc(x, w, (stride, stride), (dilation, dilation), "SAME")
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-10)
    # Depthwise with channel multiplier 2: output channel c * 2 + m is input channel c through w[..., c, m].
    wd = rng.normal(size=(kernel, kernel, 4, 2))
    want = F.conv2d(xt, torch.from_numpy(wd).permute(2, 3, 0, 1).reshape(8, 1, kernel, kernel), stride=stride,
                    dilation=dilation, groups=4)
    got = conv2d_nhwc(x, wd, (stride, stride), (dilation, dilation), "SAME", depthwise=True)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-10)
    valid = conv2d_nhwc(x, w, (stride, stride), (dilation, dilation), "VALID")
    want = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(3, 2, 0, 1), stride=stride,
                    dilation=dilation)
    np.testing.assert_allclose(valid, want.permute(0, 2, 3, 1).numpy(), atol=1e-10)


def test_evaluation_applies_bias_and_relu6(tiny_graph):
    _, path = tiny_graph
    graph = read_graph_model(path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, INPUT, INPUT, 3))
    stem = evaluate_graph(graph, {"image": x}, ["MobilenetV1/Conv2d_0/fused"])["MobilenetV1/Conv2d_0/fused"]
    weights = [graph.const(n) for n in graph.nodes["MobilenetV1/Conv2d_0/fused"].inputs[1:]]
    expected = np.clip(conv2d_nhwc(x, weights[0].astype(np.float64), (2, 2), (1, 1), "SAME") + weights[1], 0, 6)
    np.testing.assert_allclose(stem, expected, atol=1e-12)
    assert stem.shape == (1, 17, 17, 8) and stem.max() <= 6 and stem.min() == 0
    with pytest.raises(TfjsError, match="no value given for the input 'image'"):
        evaluate_graph(graph, {})


# --- the PoseNet importer -------------------------------------------------------------------------------------------


def test_posenet_chain_maps_one_to_one_onto_our_directed_edges():
    sources = edge_sources(COCO17)
    assert sorted(sources) == sorted([("fwd", e) for e in range(16)] + [("bwd", e) for e in range(16)])
    names = COCO17.keypoints
    for (a, b), (direction, edge) in zip(COCO17.directed_edges, sources, strict=True):
        parent, child = POSENET_CHAIN[edge]
        assert (names[a], names[b]) == ((parent, child) if direction == "fwd" else (child, parent))


def test_imported_network_reproduces_the_graph(tiny_graph):
    _, path = tiny_graph
    result = import_posenet(path, refinement_steps=0)
    assert result.ok and [c.name for c in result.checks] == ["heatmap", "offset", "displacement_fwd",
                                                             "displacement_bwd"]
    assert all(c.max_abs_diff < 1e-4 * max(1.0, c.largest) for c in result.checks)
    config = result.model.config
    assert config.backbone == "mobilenet_v1" and config.output_stride == 8 and config.input_size == (INPUT, INPUT)
    assert config.backbone_options == {"channels": [8, 16, 16, 24, 24], "strides": [2, 2, 2, 2, 1],
                                       "batch_norm": False}
    assert config.input_mean == config.input_std == (0.5, 0.5, 0.5)

    # Independently of the importer's own check: each of our outputs is the graph's channel it should be.
    graph = read_graph_model(path)
    x = np.random.default_rng(7).uniform(-1, 1, (1, INPUT, INPUT, 3))
    heads = ["MobilenetV1/heatmap_2/fused", "MobilenetV1/offset_2/BiasAdd", "MobilenetV1/displacement_fwd_2/fused",
             "MobilenetV1/displacement_bwd_2/BiasAdd"]
    heat, offset, fwd, bwd = (v[0] for v in evaluate_graph(graph, {"image": x}, heads).values())
    with torch.inference_mode():
        out = result.model(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    close = dict(atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out.heatmap_logits[0].permute(1, 2, 0).numpy(), heat, **close)
    for k in (0, 9, 16):  # PoseNet: 17 y then 17 x; ours (dx, dy) per keypoint
        np.testing.assert_allclose(out.short_offsets[0, k, 0].numpy(), offset[..., 17 + k], **close)
        np.testing.assert_allclose(out.short_offsets[0, k, 1].numpy(), offset[..., k], **close)
    edges = COCO17.directed_edges
    for pair, maps, edge in (((0, 1), fwd, 0), ((1, 0), bwd, 0), ((0, 5), fwd, 4), ((13, 11), bwd, 8),
                             ((16, 14), bwd, 15)):
        index = edges.index(pair)
        np.testing.assert_allclose(out.mid_offsets[0, index, 0].numpy(), maps[..., 16 + edge], **close)
        np.testing.assert_allclose(out.mid_offsets[0, index, 1].numpy(), maps[..., edge], **close)
    # PoseNet has no body heat map: a constant prior until one is trained.
    assert torch.allclose(out.body_heatmap, torch.tensor(0.01))

    # The recovered layer strides let the same weights run at output stride 16 too.
    result.model.set_output_stride(16)
    with torch.inference_mode():
        assert result.model(torch.zeros(1, 3, INPUT, INPUT)).grid_size == (3, 3)


def test_refinement_steps_refine_the_raw_displacements(tiny_graph):
    _, path = tiny_graph
    raw, refined = import_posenet(path, refinement_steps=0).model, import_posenet(path).model
    assert refined.config.refinement_steps == 2 and raw.config.refinement_steps == 0
    x = torch.rand(1, 3, INPUT, INPUT) * 2 - 1
    with torch.inference_mode():
        a, b = raw(x), refined(x)
        torch.testing.assert_close(a.short_offsets, b.short_offsets)
        assert not torch.allclose(a.mid_offsets, b.mid_offsets)
        refined.set_refinement_steps(0)
        torch.testing.assert_close(refined(x).mid_offsets, a.mid_offsets)


def test_cli_writes_a_checkpoint_with_provenance(tiny_graph, tmp_path, capsys):
    _, path = tiny_graph
    out, figures = tmp_path / "tiny_posenet.safetensors", tmp_path / "figures.json"
    code = main(["import", "posenet", str(path), "--out", str(out), "--json", str(figures)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for name in ("heatmap", "offset", "displacement_fwd", "displacement_bwd"):
        assert f"{name}" in printed
    assert "max |ours - graph|" in printed and f"wrote {out}" in printed and json.loads(figures.read_text())["ok"]
    loaded = checkpoint.load(out)
    meta = loaded.metadata
    assert meta["licence"]["weights"] == "Apache-2.0" and meta["command"].startswith("strongpose import posenet ")
    files = {f["name"]: f["sha256"] for f in meta["source"]["files"]}
    assert len(files) == 5
    for name, digest in files.items():
        assert hashlib.sha256((path.parent / name).read_bytes()).hexdigest() == digest
    assert meta["converter"]["version"] >= 1 and meta["untrained_outputs"] == ["body_heatmap"]
    reference = import_posenet(path).model
    x = torch.rand(1, 3, INPUT, INPUT)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x).mid_offsets, reference(x).mid_offsets)

    half = tmp_path / "half.safetensors"
    assert main(["import", "posenet", str(path), "--out", str(half), "--fp16"]) == 0
    header = checkpoint.read_header(half)
    assert {dtype for dtype, _ in header.tensors.values()} == {"F16"} and half.stat().st_size < out.stat().st_size
    assert header.metadata["verification"]["weights"] == "float16"


def test_above_the_tolerance_nothing_is_written(tiny_graph, tmp_path, capsys):
    _, path = tiny_graph
    out = tmp_path / "strict.safetensors"
    assert main(["import", "posenet", str(path), "--out", str(out), "--fp16", "--tolerance", "0"]) == 1
    captured = capsys.readouterr()
    assert "TOO LARGE" in captured.out and "not written" in captured.err and not out.exists()


def _refused(path: Path, tmp_path: Path, capsys) -> str:
    out = tmp_path / "refused.safetensors"
    assert main(["import", "posenet", str(path), "--out", str(out)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_unknown_op_is_named(tmp_path, capsys):
    graph = TinyGraph()
    # A residual addition after block 1, as a ResNet would have.
    graph.nodes.append({"name": "res/add", "op": "AddV2", "input": ["MobilenetV1/Conv2d_2/fused",
                                                                    "MobilenetV1/Conv2d_2/fused"]})
    for node in graph.nodes:
        if node.get("input", [None])[0] == "MobilenetV1/Conv2d_2/fused" and node["name"] != "res/add":
            node["input"][0] = "res/add"
    message = _refused(graph.write(tmp_path / "add"), tmp_path, capsys)
    assert "'AddV2'" in message and "'res/add'" in message and "ResNet" in message


def test_missing_or_unknown_head_is_named(tmp_path, capsys):
    three = TinyGraph(heads=HEADS[:3]).write(tmp_path / "three")
    assert "no 'displacement_bwd' head" in _refused(three, tmp_path, capsys)
    with pytest.raises(PoseNetError, match="no 'displacement_bwd' head"):  # a ValueError, from the API too
        import_posenet(three)
    renamed = TinyGraph(heads=(*HEADS[:3], ("segments_2", 32, False)))
    message = _refused(renamed.write(tmp_path / "renamed"), tmp_path, capsys)
    assert "'MobilenetV1/segments_2/conv'" in message and "none of the heads" in message
    narrow = TinyGraph(heads=(("heatmap_2", 14, True), *HEADS[1:]))
    message = _refused(narrow.write(tmp_path / "narrow"), tmp_path, capsys)
    assert "head 'heatmap'" in message and "expected 24 to 17" in message


def test_wrong_activation_and_padding_are_named(tmp_path, capsys):
    relu = TinyGraph(activation="Relu")
    assert "activation Relu, not Relu6" in _refused(relu.write(tmp_path / "relu"), tmp_path, capsys)
    valid = TinyGraph()
    for node in valid.nodes:
        if node["name"] == "MobilenetV1/Conv2d_3/fused":
            node["attr"]["padding"] = _attr_str("VALID")
    assert "VALID padding" in _refused(valid.write(tmp_path / "valid"), tmp_path, capsys)


def test_wrong_sized_weight_files_are_named(tmp_path, capsys):
    folder = tmp_path / "damaged"
    path = TinyGraph().write(folder)
    last = folder / "group2-shard3of3.bin"
    last.write_bytes(last.read_bytes()[:-10])
    message = _refused(path, tmp_path, capsys)
    assert str(last) in message and "short" in message
    middle = folder / "group2-shard2of3.bin"
    middle.write_bytes(middle.read_bytes()[:-4])
    assert str(middle) in _refused(path, tmp_path, capsys)
    (folder / "group1-shard1of1.bin").unlink()
    message = _refused(path, tmp_path, capsys)
    assert "group1-shard1of1.bin" in message and "missing" in message


def test_not_a_graph_model(tmp_path, capsys):
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps({"modelTopology": {"model_config": {}}, "weightsManifest": []}))
    assert "layers model" in _refused(layers, tmp_path, capsys)
    with pytest.raises(TfjsError, match="no such file"):
        import_posenet(tmp_path / "absent.json")
