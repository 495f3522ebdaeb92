"""Training state on disk, without pickle: safetensors for tensors, JSON for everything else.

A checkpoint is a folder RUN_DIR/checkpoints/step_NNNNNNNN/ holding
- `model.safetensors`: the EMA network as a StrongPose checkpoint (`strongpose_ros.checkpoint.save`), the
  usable model (`strongpose eval --checkpoint`, the Estimator, export);
- `state.safetensors`: the raw weights (`model.*`), the EMA weights (`ema.*`), the optimiser's tensors
  (`optimizer.<param>.<name>`) and the torch RNG states (`rng.*`);
- `state.json`: step, optimiser hyper-parameters and non-tensor state, GradScaler state, numpy/Python RNG
  states, EMA update count, the recipe and free metadata.

Atomicity: the folder is written under a temporary name, every file fsynced, then renamed into place, and
only then does `latest.json` (replaced atomically) point at it. A trainer killed at any moment leaves
either the previous checkpoint or the new one as the latest, never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from strongpose_ros import checkpoint as model_checkpoint
from strongpose_ros.model import ModelConfig

__all__ = [
    "LATEST",
    "LoadedState",
    "StateError",
    "capture_rng",
    "flatten_optimizer_state",
    "latest_checkpoint",
    "load_training_state",
    "restore_rng",
    "save_training_state",
    "unflatten_optimizer_state",
]

LATEST = "latest.json"
STATE_VERSION = 1
_PREFIX = "step_"


class StateError(ValueError):
    """A training state that cannot be resumed from; the message names the folder and the problem."""


@dataclass
class LoadedState:
    """What `load_training_state` read back."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    ema_updates: int
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    rng: dict[str, Any]
    recipe: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


# --- optimiser state <-> (tensors, JSON) ------------------------------------------------------------------


def flatten_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into named tensors and a JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        plain_state[str(param_id)] = {}
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param_id}.{name}"] = value.detach().cpu().contiguous()
                plain_state[str(param_id)][name] = {"__tensor__": f"optimizer.{param_id}.{name}"}
            else:
                plain_state[str(param_id)][name] = value
    return tensors, {"state": plain_state, "param_groups": _json_safe(state["param_groups"])}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer_state`: a dict `optimizer.load_state_dict` accepts."""
    state: dict[int, dict[str, Any]] = {}
    for param_id, entries in data["state"].items():
        state[int(param_id)] = {
            name: tensors[value["__tensor__"]] if isinstance(value, dict) and "__tensor__" in value else value
            for name, value in entries.items()
        }
    groups = []
    for group in data["param_groups"]:
        group = dict(group)
        if "betas" in group:  # Adam's betas are a tuple
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


# --- RNG ----------------------------------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch (CPU, every CUDA device), numpy and Python RNG states as (tensors, JSON)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    data = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    return tensors, data


def restore_rng(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in data:
        kind, keys, pos, has_gauss, cached = data["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in data:
        version, internal, gauss_next = data["python"]
        random.setstate((version, tuple(internal), gauss_next))


# --- saving and loading ---------------------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync folders; the renames are still atomic
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False))
    _fsync_file(temp)
    os.replace(temp, path)


def save_training_state(
    checkpoints_dir: str | Path,
    step: int,
    *,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    ema_updates: int,
    optimizer: torch.optim.Optimizer,
    scaler_state: dict[str, Any],
    model_config: ModelConfig,
    recipe: dict[str, Any],
    metadata: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write the checkpoint of `step` atomically, point `latest.json` at it, drop all but the last `keep`."""
    root = Path(checkpoints_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{_PREFIX}{step:08d}"
    final = root / name
    temp = root / f".tmp-{name}-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    try:
        model_checkpoint.save(temp / "model.safetensors", ema, model_config,
                              metadata | {"step": step, "weights": "ema"})
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
        optimizer_tensors, optimizer_data = flatten_optimizer_state(optimizer.state_dict())
        rng_tensors, rng_data = capture_rng()
        tensors |= optimizer_tensors | rng_tensors
        save_file(tensors, str(temp / "state.safetensors"))
        _fsync_file(temp / "state.safetensors")
        data = {
            "version": STATE_VERSION,
            "step": int(step),
            "ema_updates": int(ema_updates),
            "optimizer": optimizer_data,
            "scaler": _json_safe(scaler_state),
            "rng": rng_data,
            "recipe": recipe,
            "metadata": metadata,
        }
        (temp / "state.json").write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False))
        _fsync_file(temp / "state.json")
        if final.exists():  # the same step written again (a resumed run that stopped there): replace it
            stale = root / f".old-{name}-{os.getpid()}"
            os.replace(final, stale)
            os.replace(temp, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(temp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _write_json_atomic(root / LATEST, {"step": int(step), "dir": name})
    _fsync_dir(root)
    _prune(root, keep, current=name)
    return final


def _prune(root: Path, keep: int, current: str) -> None:
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))
    for old in steps[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    # Leftovers of a trainer killed while writing (never pointed at, so never read) go too.
    for stale in root.iterdir():
        if stale.is_dir() and stale.name.startswith((".tmp-", ".old-")):
            shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The folder `latest.json` points at (or, without a readable pointer, the highest complete step folder)."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return None
    pointer = root / LATEST
    if pointer.is_file():
        try:
            target = root / json.loads(pointer.read_text())["dir"]
            if (target / "state.json").is_file():
                return target
        except (ValueError, KeyError, TypeError):
            pass
    complete = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)
                      and (p / "state.json").is_file())
    return complete[-1] if complete else None


def load_training_state(path: str | Path) -> LoadedState:
    """Read a checkpoint folder written by `save_training_state`."""
    path = Path(path)
    try:
        data = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except FileNotFoundError as exc:
        raise StateError(f"{path}: incomplete training checkpoint ({exc.filename} is missing)") from None
    except (ValueError, OSError) as exc:
        raise StateError(f"{path}: unreadable training checkpoint ({exc})") from None
    if data.get("version") != STATE_VERSION:
        raise StateError(f"{path}: training state version {data.get('version')!r}, this code reads {STATE_VERSION}")

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return LoadedState(
        path=path,
        step=int(data["step"]),
        model=section("model."),
        ema=section("ema."),
        ema_updates=int(data["ema_updates"]),
        optimizer=unflatten_optimizer_state(optimizer_tensors, data["optimizer"]),
        scaler=data.get("scaler") or {},
        rng={"tensors": {k: v for k, v in tensors.items() if k.startswith("rng.")}, "data": data.get("rng", {})},
        recipe=data.get("recipe", {}),
        metadata=data.get("metadata", {}),
    )
