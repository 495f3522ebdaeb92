"""The network as a TorchScript or ONNX file (or a half-size fp16 checkpoint), checked against PyTorch on a
sample input (no ROS).

What is exported is `StrongPoseNet.forward_tensors`: normalised RGB images (B, 3, H, W) in, the four raw
output tensors out, in this order and with these names:
    heatmaps (B, K, h, w)  short_offsets (B, K, 2, h, w)  mid_offsets (B, 2E, 2, h, w)  body_heatmap (B, 1, h, w)
with h = (H - 1) // stride + 1 (see `PoseOutputs`). Preprocessing (resize, pad, (x/255 - mean) / std in RGB
order) and decoding stay outside the file; the model config (stride, schema, normalisation) is stored in it
(ONNX metadata `strongpose_model_config`, TorchScript extra file `model_config.json`) so a consumer can redo both.

`safetensors-fp16` is not a new runtime but the same StrongPose checkpoint with its floating-point tensors
stored in float16: half the file (how the demo weights ship), loaded back into float32 by `checkpoint.load`,
its provenance metadata kept. Its check compares the rounded network with the original; any input size
works with it.

Shapes are FIXED at export time for ONNX and TorchScript: tracing bakes in the input height and width and the
batch size (a reshape in the heads uses them), so the file runs only on (batch, 3, H, W) as exported. Export
once per size.

The check runs the exported file (onnxruntime for ONNX, torch.jit.load for TorchScript) and PyTorch on the
same seeded sample input and reports the largest absolute difference of each output; the export counts as
good when every difference is within `ExportConfig.tolerance` times the output's largest magnitude (at least 1).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from strongpose_ros import checkpoint as checkpoint_io
from strongpose_ros.model import StrongPoseNet

__all__ = ["FORMATS", "OUTPUT_NAMES", "ExportConfig", "ExportError", "ExportReport", "export_model", "verify_export"]

FORMATS = ("onnx", "torchscript", "safetensors-fp16")
INPUT_NAME = "images"
OUTPUT_NAMES = ("heatmaps", "short_offsets", "mid_offsets", "body_heatmap")
METADATA_KEY = "strongpose_model_config"
TORCHSCRIPT_CONFIG_FILE = "model_config.json"


class ExportError(RuntimeError):
    """An export that failed or does not match PyTorch; the message says which and by how much."""


@dataclass(frozen=True)
class ExportConfig:
    """- `opset`: ONNX opset (17 runs on every onnxruntime since 1.14);
    - `tolerance`: largest difference allowed between an exported output and PyTorch's, as a fraction of the
      output's largest magnitude, at least 1 (so 1e-3 absolute on heat maps, which are probabilities, and on
      small offsets): float32 rounding differs between runtimes in proportion to the values, and the imported
      PoseNet's mid-range offsets reach 270 px on the sample input at 641x641 (its ONNX export differed by
      4e-3 px there, 1e-7 on the heat maps);
    - `fp16_tolerance`: for `safetensors-fp16`, a fraction of each output's largest magnitude (at least 1):
      float16 keeps about 3 significant digits, so its rounded weights move an output in proportion to its
      size (on the demo weights, mid-range offsets of up to 56 px moved by 0.13 px, heat maps by 3e-5);
    - `seed`: of the sample input used for tracing and checking."""

    opset: int = 17
    tolerance: float = 1e-3
    fp16_tolerance: float = 5e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("tolerance", "fp16_tolerance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ExportConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    def tolerance_for(self, fmt: str) -> float:
        return self.fp16_tolerance if fmt == "safetensors-fp16" else self.tolerance


@dataclass
class ExportReport:
    """What was written and how closely it reproduces PyTorch."""

    path: Path
    format: str
    input_shape: tuple[int, int, int, int]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0
    # The tolerance is a fraction of each output's largest magnitude (at least 1); None: absolute.
    reference_scale: dict[str, float] | None = None

    def allowed(self, name: str) -> float:
        """The largest difference allowed for output `name`."""
        if self.reference_scale is None:
            return self.tolerance
        return self.tolerance * max(1.0, self.reference_scale[name])

    @property
    def ok(self) -> bool:
        return all(np.isfinite(d) and d <= self.allowed(n) for n, d in self.max_abs_diff.items())

    def lines(self) -> list[str]:
        shape = "checked on" if self.format == "safetensors-fp16" else "fixed shape"
        out = [f"{self.format} export: {self.path} (input {INPUT_NAME} {list(self.input_shape)}, {shape})"]
        for name, diff in self.max_abs_diff.items():
            allowed = self.allowed(name)
            verdict = "ok" if np.isfinite(diff) and diff <= allowed else "ABOVE TOLERANCE"
            how = "" if self.reference_scale is None else f" = {self.tolerance:g} x max(1, max |output|)"
            out.append(f"  {name:14s} max |exported - pytorch| = {diff:.3g}  ({verdict}, tolerance {allowed:.3g}{how})")
        return out


class _TensorOutputs(nn.Module):
    """The network with tuple-of-tensors outputs (tracers do not follow dataclasses)."""

    def __init__(self, model: StrongPoseNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.forward_tensors(images)


def sample_input(model: StrongPoseNet, batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded random image batch, normalised as the network expects (uniform pixels in [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand((batch, 3, size[0], size[1]), generator=generator)
    return model.config.normalize(pixels)


def export_model(
    checkpoint: str | Path,
    fmt: str,
    out: str | Path,
    *,
    input_size: tuple[int, int] | None = None,
    batch: int = 1,
    config: ExportConfig | None = None,
) -> ExportReport:
    """Export the checkpoint's network to `out` in `fmt` (one of FORMATS) and check it.

    `input_size` is (height, width), default the checkpoint's training input size; `batch` the batch size.
    Both are fixed in the exported file. Raises ExportError when the export fails; the returned report
    holds the per-output differences (check `report.ok`).
    """
    config = config or ExportConfig()
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if batch < 1:
        raise ExportError(f"batch must be at least 1, got {batch}")
    loaded = checkpoint_io.load(checkpoint, device="cpu")
    model = loaded.model.eval()
    size = tuple(int(v) for v in (input_size or model.config.input_size))
    if len(size) != 2 or min(size) < 2:
        raise ExportError(f"input size must be (height, width) of at least 2 pixels, got {size}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _TensorOutputs(model).eval()
    sample = sample_input(model, batch, size, config.seed)
    model_config = json.dumps(model.config.to_dict(), sort_keys=True)
    # The tracer warns about every Python-level shape use (the fixed shape is the documented contract), and
    # torch flags TorchScript and the TorchScript-based ONNX exporter as deprecated: they are chosen on
    # purpose (the dynamo exporter needs onnxscript; TorchScript runs from C++ without Python).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "onnx":
            _export_onnx(wrapper, sample, out, config.opset, model_config)
        elif fmt == "torchscript":
            _export_torchscript(wrapper, sample, out, model_config)
        else:
            metadata = loaded.metadata | {"stored_as": "float16", "exported_from": Path(checkpoint).name}
            checkpoint_io.save(out, model, metadata=metadata, dtype=torch.float16)
    report = ExportReport(out, fmt, (batch, 3, size[0], size[1]), tolerance=config.tolerance_for(fmt))
    reference = _pytorch_outputs(model, sample)
    report.max_abs_diff = verify_export(out, fmt, model, sample, reference=reference)
    report.reference_scale = {n: float(np.abs(r).max()) for n, r in zip(OUTPUT_NAMES, reference, strict=True)}
    return report


def _export_onnx(wrapper: nn.Module, sample: torch.Tensor, out: Path, opset: int, model_config: str) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise ExportError("ONNX export needs the `onnx` package (pip install 'strongpose_ros[export]')") from exc
    try:
        # The TorchScript-based exporter: torch's default (dynamo) exporter needs onnxscript.
        torch.onnx.export(wrapper, (sample,), str(out), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # the exporter raises many types; the message is what matters
        raise ExportError(f"ONNX export to {out} failed: {exc}") from exc
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, model_config
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def _export_torchscript(wrapper: nn.Module, sample: torch.Tensor, out: Path, model_config: str) -> None:
    try:
        traced = torch.jit.trace(wrapper, (sample,), check_trace=False)
        torch.jit.save(traced, str(out), _extra_files={TORCHSCRIPT_CONFIG_FILE: model_config})
    except Exception as exc:
        raise ExportError(f"TorchScript export to {out} failed: {exc}") from exc


def run_exported(path: str | Path, fmt: str, images: torch.Tensor) -> list[np.ndarray]:
    """Run an exported file on `images` (normalised (B, 3, H, W)); outputs in OUTPUT_NAMES order."""
    path = Path(path)
    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError as exc:
            raise ExportError("checking an ONNX export needs `onnxruntime` (pip install 'strongpose_ros[export]')"
                              ) from exc
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return list(session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()}))
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return [t.numpy() for t in module(images)]
    if fmt == "safetensors-fp16":
        with torch.no_grad():
            return [t.numpy() for t in checkpoint_io.load(path, device="cpu").model.forward_tensors(images)]
    raise ExportError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")


def _pytorch_outputs(model: StrongPoseNet, images: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in model.eval().forward_tensors(images)]


def verify_export(path: str | Path, fmt: str, model: StrongPoseNet, images: torch.Tensor,
                  reference: list[np.ndarray] | None = None) -> dict[str, float]:
    """Largest absolute difference per output between the exported file and PyTorch on `images`
    (`reference`: PyTorch's outputs on them, when the caller already has them)."""
    if reference is None:
        reference = _pytorch_outputs(model, images)
    exported = run_exported(path, fmt, images)
    diffs = {}
    for name, ref, got in zip(OUTPUT_NAMES, reference, exported, strict=True):
        if ref.shape != got.shape:
            raise ExportError(f"{path}: output {name} has shape {list(got.shape)}, PyTorch gives {list(ref.shape)}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        diffs[name] = float(np.nanmax(diff)) if np.isfinite(got).all() else float("inf")
    return diffs
