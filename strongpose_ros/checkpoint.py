"""StrongPose checkpoints: safetensors tensors plus JSON metadata in the safetensors header.

A checkpoint holds the network's state dict and, in the header's string-to-string metadata:
`format` ("strongpose_ros"), `format_version`, `model_config` (the ModelConfig as JSON, schema written out
in full, input normalisation included) and `metadata` (free JSON: training provenance, epoch, metrics).
Loading never unpickles: the header is parsed and checked by hand before any tensor is read, so a
truncated, foreign or mismatched file gives a `CheckpointError` that names the file and the problem.
Saving is atomic (a temporary file in the same folder, then `os.replace`), so a crash never leaves a
half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strongpose_ros.model.config import ModelConfig
from strongpose_ros.model.network import StrongPoseNet, build_model

__all__ = [
    "DEFAULT_CHECKPOINT_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_DIR",
    "Checkpoint",
    "CheckpointError",
    "Header",
    "default_path",
    "load",
    "read_header",
    "resolve_path",
    "save",
]

# The weights installed with the package, and the file an empty `checkpoint` setting stands for (the pose
# node's parameter, the launch file, `strongpose demo` and `strongpose bag process` all resolve it here).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT_NAME = "strongpose_r18_synthetic.safetensors"

FORMAT = "strongpose_ros"
FORMAT_VERSION = 1
# A header larger than this is not a checkpoint of ours (ResNet-152's is about 100 kB).
_MAX_HEADER_BYTES = 64 * 1024 * 1024
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (in eval mode, on the requested device), its config and metadata."""

    model: StrongPoseNet
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass
class Header:
    """What a checkpoint's safetensors header says, read without touching the tensor data."""

    config: ModelConfig
    metadata: dict[str, Any]
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)


def save(path: str | Path, model: nn.Module, config: ModelConfig | None = None,
         metadata: dict[str, Any] | None = None, *, dtype: torch.dtype | None = None) -> Path:
    """Write `model`'s weights and `config` (default: `model.config`) to `path` atomically.

    `metadata` must be JSON-serialisable (training provenance: data, recipe, epoch, metrics...).
    The config must describe the model: a mismatch is refused here rather than discovered at load time.
    `dtype` stores the floating-point tensors in that type (torch.float16 halves the file, for shipping
    weights); `load` gives them back in the model's own type.
    """
    if dtype is not None and not dtype.is_floating_point:
        raise CheckpointError(f"{path}: the storage dtype must be a floating-point type, got {dtype}")
    path = Path(path)
    model = _unwrap(model)
    config = getattr(model, "config", None) if config is None else config
    if not isinstance(config, ModelConfig):
        raise CheckpointError(f"{path}: save needs a ModelConfig (got {type(config).__name__})")
    metadata = {} if metadata is None else metadata
    try:
        header = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "model_config": json.dumps(config.to_dict(), sort_keys=True),
            "metadata": json.dumps(metadata, sort_keys=True, allow_nan=False),
        }
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata is not JSON-serialisable ({exc})") from exc
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    expected = _expected_tensors(config)
    problems = _compare(expected, {n: (t.dtype, tuple(t.shape)) for n, t in tensors.items()})
    if dtype is not None:
        tensors = {n: t.to(dtype) if t.is_floating_point() else t for n, t in tensors.items()}
    if problems:
        raise CheckpointError(f"{path}: the model does not match its config: {problems}")

    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, temp_name, metadata=header)
        # mkstemp creates the file private (0600), and save_file keeps or recreates it so; give it the usual
        # permissions of a new file (a checkpoint shipped or installed must be readable by other users).
        os.chmod(temp_name, 0o666 & ~_current_umask())
        with open(temp_name, "rb") as handle:  # flush to disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def default_path() -> Path:
    """The bundled default checkpoint (what an empty `checkpoint` setting means)."""
    return WEIGHTS_DIR / DEFAULT_CHECKPOINT_NAME


def resolve_path(value: str | Path | None) -> Path:
    """A `checkpoint` setting as a file path: empty (or None) is the bundled default, `~` is expanded.

    Raises `CheckpointError` for a directory or a missing file, naming it; the file's contents are checked
    later, by `read_header` / `load`.
    """
    if value is None or not str(value).strip():
        path = default_path()
        if not path.is_file():
            raise CheckpointError(f"{path}: the bundled default checkpoint is missing (an incomplete install?); "
                                  "set 'checkpoint' to a StrongPose .safetensors file")
        return path
    path = Path(os.path.expanduser(str(value)))
    _check_is_file(path)
    return path


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.safetensors"))
        hint = f" (it holds {', '.join(inside[:3])})" if inside else ""
        raise CheckpointError(f"{path}: a directory, not a checkpoint file; give the .safetensors file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")


def read_header(path: str | Path) -> Header:
    """Parse and check a checkpoint's header (config, metadata, tensor table) without reading tensors."""
    path = Path(path)
    _check_is_file(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated or empty ({size} bytes; a safetensors file starts with an "
                                  "8-byte header length)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: {_describe_foreign(prefix, header_len, size)}")
        raw = handle.read(header_len)
    try:
        table = json.loads(raw)
        if not isinstance(table, dict):
            raise ValueError("the header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file (unreadable header: {exc})") from None

    info = table.pop("__metadata__", None) or {}
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a strongpose_ros checkpoint "
                              f"(header metadata 'format' is {info.get('format')!r}, expected {FORMAT!r})")
    if info.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {info.get('format_version')!r}; "
                              f"this code reads version {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(json.loads(info["model_config"]))
        metadata = json.loads(info.get("metadata", "{}"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model config or metadata in the header ({exc})") from None

    data_bytes = size - 8 - header_len
    tensors = {}
    for name, entry in table.items():
        try:
            dtype, shape = entry["dtype"], tuple(int(d) for d in entry["shape"])
            _, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed header entry for tensor {name!r}") from None
        if end > data_bytes:
            raise CheckpointError(f"{path}: truncated: tensor {name!r} ends at data byte {end} but the file holds "
                                  f"only {data_bytes} data bytes")
        if dtype not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        tensors[name] = (dtype, shape)
    return Header(config, metadata, tensors)


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint: the network (eval mode, on `device`), its config and metadata.

    Raises `CheckpointError` (a ValueError) naming the file for a missing, truncated, foreign or
    mismatched (tensor names or shapes against the config) file.
    """
    path = Path(path)
    header = read_header(path)
    found = {n: (_DTYPES[dtype], shape) for n, (dtype, shape) in header.tensors.items()}
    expected = _expected_tensors(header.config)
    problems = _compare(expected, found, any_float=True)
    if problems:
        raise CheckpointError(f"{path}: tensors do not match the model config ({header.config.backbone}, "
                              f"{header.config.keypoint_schema.name}): {problems}")

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the tensors ({exc})") from exc
    # Weights stored in a narrower float type (save(dtype=...)) come back in the model's own type.
    state = {n: t.to(expected[n][0]) if t.dtype != expected[n][0] else t for n, t in state.items()}
    # Built on the meta device, then given the file's tensors: no time spent on a random initialisation.
    with torch.device("meta"):
        model = build_model(header.config)
    model.load_state_dict(state, strict=True, assign=True)
    return Checkpoint(model=model.to(device).eval(), config=header.config, metadata=header.metadata, path=path)


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside torch.compile / DataParallel / DistributedDataParallel wrappers."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _expected_tensors(config: ModelConfig) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    with torch.device("meta"):
        reference = build_model(config)
    return {n: (t.dtype, tuple(t.shape)) for n, t in reference.state_dict().items()}


def _compare(expected: dict[str, tuple[torch.dtype, tuple[int, ...]]],
             found: dict[str, tuple[torch.dtype, tuple[int, ...]]], *, any_float: bool = False) -> str:
    """A readable list of what differs between two tensor tables, or '' when they agree.

    With `any_float`, a floating-point tensor stored in another floating-point type still agrees."""

    def agrees(want: tuple[torch.dtype, tuple[int, ...]], got: tuple[torch.dtype, tuple[int, ...]]) -> bool:
        if want[1] != got[1]:
            return False
        return want[0] == got[0] or (any_float and want[0].is_floating_point and got[0].is_floating_point)

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        f"{n} {found[n][1]} {found[n][0]} (expected {expected[n][1]} {expected[n][0]})"
        for n in set(expected) & set(found)
        if not agrees(expected[n], found[n])
    )
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape or dtype", wrong)):
        if names:
            parts.append(f"{label} ({len(names)}): " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else ""))
    return "; ".join(parts)


def _describe_foreign(prefix: bytes, header_len: int, size: int) -> str:
    if prefix.startswith(b"PK\x03\x04"):
        return "a zip archive (a torch.save checkpoint?), not safetensors; this loader never unpickles"
    if prefix[:1] == b"\x80":
        return "a Python pickle (a legacy torch.save checkpoint?), not safetensors; this loader never unpickles"
    return (f"truncated or not a safetensors file (header length {header_len} bytes, but the file has "
            f"{size} bytes)")
