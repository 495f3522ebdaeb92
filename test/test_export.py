"""`strongpose export`: ONNX and TorchScript files that reproduce PyTorch, at the fixed shape they were made for."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from strongpose_ros import checkpoint
from strongpose_ros.cli import main
from strongpose_ros.export import OUTPUT_NAMES, ExportConfig, export_model, run_exported, sample_input
from strongpose_ros.model import build_model

INPUT_SIZE = (65, 81)  # small and not square, so that a height/width swap would show


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", input_size=INPUT_SIZE)
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    checkpoint.save(path, model)
    return path, model.eval()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trip(tmp_path, tiny_checkpoint, fmt, capsys):
    path, model = tiny_checkpoint
    out = tmp_path / f"model.{fmt}"
    figures = tmp_path / "figures.json"
    code = main(["export", "--checkpoint", str(path), "--format", fmt, "--out", str(out), "--batch", "2",
                 "--json", str(figures)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.is_file() and out.stat().st_size > 1_000_000  # ResNet-18 weights are in the file
    for name in OUTPUT_NAMES:
        assert f"{name}" in printed and "max |exported - pytorch|" in printed
    data = json.loads(figures.read_text())
    assert data["ok"] is True and all(data[f"max_abs_diff_{n}"] <= 1e-3 for n in OUTPUT_NAMES)

    # An input the export never saw (a different seed) still matches PyTorch; onnxruntime runs the ONNX file.
    images = sample_input(model, 2, INPUT_SIZE, seed=123)
    got = run_exported(out, fmt, images)
    with torch.no_grad():
        want = [t.numpy() for t in model.forward_tensors(images)]
    for name, g, w in zip(OUTPUT_NAMES, got, want, strict=True):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, atol=1e-3, rtol=0, err_msg=name)
    assert got[0].shape == (2, 17, 5, 6)  # (65-1)//16+1, (81-1)//16+1


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_mobilenet_export_round_trip(tmp_path, fmt):
    # PoseNet's form: depthwise convolutions with biases, no batch norm, ReLU6, [-1, 1] input.
    torch.manual_seed(1)
    options = {"channels": [8, 16, 16, 24, 24], "strides": [2, 2, 2, 2, 1], "batch_norm": False}
    model = build_model(backbone="mobilenet_v1", backbone_options=options, input_size=INPUT_SIZE,
                        input_mean=(0.5, 0.5, 0.5), input_std=(0.5, 0.5, 0.5)).eval()
    path = checkpoint.save(tmp_path / "mobilenet.safetensors", model)
    report = export_model(path, fmt, tmp_path / f"m.{fmt}")
    assert report.ok and max(report.max_abs_diff.values()) <= 1e-3
    # The tolerance scales with each output's size, at least 1: absolute on the heat maps (probabilities).
    assert report.allowed("heatmaps") == 1e-3 and report.allowed("mid_offsets") == pytest.approx(
        1e-3 * max(1.0, report.reference_scale["mid_offsets"]))
    images = sample_input(model, 1, INPUT_SIZE, seed=9)
    with torch.no_grad():
        want = [t.numpy() for t in model.forward_tensors(images)]
    for name, g, w in zip(OUTPUT_NAMES, run_exported(tmp_path / f"m.{fmt}", fmt, images), want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-3, rtol=0, err_msg=name)


def test_fp16_checkpoint_export_is_half_the_size_and_close(tmp_path, tiny_checkpoint, capsys):
    path, model = tiny_checkpoint
    out = tmp_path / "half.safetensors"
    code = main(["export", "--checkpoint", str(path), "--format", "safetensors-fp16", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert out.stat().st_size < 0.55 * path.stat().st_size
    loaded = checkpoint.load(out)
    assert loaded.config == model.config and loaded.metadata["stored_as"] == "float16"
    # Not tied to a shape: another input size runs and stays within the fp16 tolerance.
    images = sample_input(model, 1, (97, 49), seed=5)
    with torch.no_grad():
        want = [t.numpy() for t in model.forward_tensors(images)]
        got = [t.numpy() for t in loaded.model.forward_tensors(images)]
    for name, g, w in zip(OUTPUT_NAMES, got, want, strict=True):
        allowed = ExportConfig().fp16_tolerance * max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, atol=allowed, rtol=0, err_msg=name)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_carries_the_model_config(tmp_path, tiny_checkpoint):
    path, model = tiny_checkpoint
    onnx = pytest.importorskip("onnx")
    report = export_model(path, "onnx", tmp_path / "m.onnx", input_size=(33, 49))
    assert report.ok and report.input_shape == (1, 3, 33, 49)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    config = json.loads(meta["strongpose_model_config"])
    assert config["backbone"] == "resnet18" and config["output_stride"] == 16
    assert config["schema"]["name"] == model.schema.name

    report = export_model(path, "torchscript", tmp_path / "m.pt")
    assert report.input_shape == (1, 3, *INPUT_SIZE)
    extra = {"model_config.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["model_config.json"])["input_size"] == list(INPUT_SIZE)


def test_a_mismatching_export_exits_non_zero(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    path, _ = tiny_checkpoint
    import strongpose_ros.export as export

    real = export.run_exported
    monkeypatch.setattr(export, "run_exported", lambda *a: [o + 0.5 for o in real(*a)])
    code = main(["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    captured = capsys.readouterr()
    assert code == 1
    assert "ABOVE TOLERANCE" in captured.out and "does not match PyTorch" in captured.err


def test_bad_inputs_are_named(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["export", "--checkpoint", str(missing), "--format", "onnx", "--out", str(tmp_path / "m")]) == 2
    assert str(missing) in capsys.readouterr().err
    with pytest.raises(ValueError, match="tolerance"):
        ExportConfig(tolerance=-1.0)
