"""Training recipes: `config/train/*.yaml` as checked dataclasses.

A recipe has one section per concern; every key is checked, and an unknown one is an error that names
it and lists the valid keys of its section (a typo never silently falls back to a default):

    model:      ModelConfig fields (backbone, backbone_options, output_stride, schema, input_size, frozen_bn, ...)
    init:       backbone_weights (a torchvision ImageNet ResNet file), checkpoint (a StrongPose checkpoint), skip
    data:       workers, require_keypoints, pin_memory
    augment:    AugmentConfig fields (scale, rotation_deg, translation, flip_probability, antialias_below)
    loss:       LossConfig fields (skhm_weight, short_weight, mid_weight, bhm_weight, ...)
    optim:      name (sgd | adamw), lr, momentum, nesterov, weight_decay, betas, decay_norm_and_bias
    schedule:   name (cosine | steps | constant), warmup_steps, warmup_start, final_lr, milestones, gamma
    train:      seed, batch_size (per process), steps, amp, amp_dtype, grad_clip, ema_decay, trainable, ...
    eval:       every, output_stride, input_size, flip, max_images, batch_size, decoder (DecoderConfig fields)
    checkpoint: every, keep

`--set section.key=value` overrides a key (the value is read as YAML: `--set optim.lr=2e-4`,
`--set model.input_size=[257,257]`); `eval.decoder.KEY` and `model.backbone_options.KEY` set one entry of
those mappings (`--set model.backbone_options.width_multiplier=0.5`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from strongpose_ros.data.augment import AugmentConfig
from strongpose_ros.decode import DecoderConfig
from strongpose_ros.model import LossConfig, ModelConfig

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "EvalConfig",
    "InitConfig",
    "OptimConfig",
    "Recipe",
    "RecipeError",
    "ScheduleConfig",
    "TrainConfig",
    "load_recipe",
]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the key and what is valid."""


@dataclass(frozen=True)
class InitConfig:
    """Where the weights start: an ImageNet trunk (torchvision ResNet file) and/or a StrongPose checkpoint.

    `skip`: parameter-name prefixes that keep their initialisation instead of taking `checkpoint`'s (a head
    the checkpoint lacks or holds in another shape, e.g. `[heads.body]` with a `model.body_head_channels` of
    its own on an imported PoseNet); everything else must match the checkpoint exactly.
    """

    backbone_weights: str | None = None
    checkpoint: str | None = None
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        skip = (self.skip,) if isinstance(self.skip, str) else self.skip
        _check(isinstance(skip, (list, tuple)) and all(isinstance(p, str) and p for p in skip),
               f"init.skip must be a list of parameter-name prefixes, got {self.skip!r}")
        object.__setattr__(self, "skip", tuple(skip))


@dataclass(frozen=True)
class DataConfig:
    """Loading: worker processes per trainer process, image filter, pinned memory (None: on GPU)."""

    workers: int = 4
    require_keypoints: bool = False
    pin_memory: bool | None = None

    def __post_init__(self) -> None:
        _check(self.workers >= 0, "data.workers must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser [paper: SGD, momentum 0.9, lr 1e-3].

    `decay_norm_and_bias: false` exempts batch-norm parameters and biases from weight decay (common practice:
    decaying a normalisation's scale only fights the next layer).
    """

    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    decay_norm_and_bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _check(self.name in ("sgd", "adamw"), f"optim.name must be 'sgd' or 'adamw', got {self.name!r}")
        _check(self.lr > 0 and math.isfinite(self.lr), f"optim.lr must be > 0, got {self.lr!r}")
        _check(0 <= self.momentum < 1, f"optim.momentum must be in [0, 1), got {self.momentum!r}")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay!r}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas must be two values in [0, 1)")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate factor over the steps: linear warm-up from `warmup_start`, then the schedule.

    - `cosine`: half a cosine from 1 down to `final_lr` (a fraction of the base lr) at the last step;
    - `steps`: multiply by `gamma` at each of `milestones` (fractions of the run in (0, 1), or step numbers);
    - `constant`: 1 after the warm-up.
    """

    name: str = "cosine"
    warmup_steps: int = 1000
    warmup_start: float = 0.001
    final_lr: float = 0.01
    milestones: tuple[float, ...] = (0.8, 0.95)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        _check(self.name in ("cosine", "steps", "constant"),
               f"schedule.name must be 'cosine', 'steps' or 'constant', got {self.name!r}")
        _check(self.warmup_steps >= 0, "schedule.warmup_steps must be >= 0")
        _check(0 < self.warmup_start <= 1, "schedule.warmup_start must be in (0, 1]")
        _check(0 <= self.final_lr <= 1, "schedule.final_lr must be in [0, 1]")
        _check(all(m > 0 for m in self.milestones), "schedule.milestones must be positive")
        _check(0 < self.gamma <= 1, "schedule.gamma must be in (0, 1]")

    def factor(self, step: int, total_steps: int) -> float:
        """The learning-rate multiplier at `step` (0-based) of a `total_steps` run."""
        if step < self.warmup_steps:
            return self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
        if self.name == "constant":
            return 1.0
        if self.name == "steps":
            marks = [m * total_steps if m < 1 else m for m in self.milestones]
            return self.gamma ** sum(step >= m for m in marks)
        span = max(1, total_steps - 1 - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.final_lr + (1.0 - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainConfig:
    """The loop.

    - `batch_size`: images per process (per GPU); the global batch is this times the world size
      [paper: 2 on one GTX 1080 Ti];
    - `steps`: optimiser steps of the whole run;
    - `amp`: mixed precision on CUDA (autocast + GradScaler for float16); ignored on the CPU;
    - `cpu_amp`: bfloat16 autocast when training on the CPU (weights, optimiser and losses stay float32).
      Worth it only on CPUs with native bfloat16 (AVX512-BF16 or AMX): there a ResNet-18 step at 193x193
      took 1.2 s instead of 2.1 s (one thread, measured on the 2-core AMD EPYC build machine); elsewhere
      bfloat16 is emulated: compare a few steps both ways first;
    - `grad_clip`: clip the global gradient norm to this (0: off);
    - `ema_decay`: Polyak averaging of the weights [paper]; the EMA is the model that is evaluated and
      exported. Early on the effective decay is min(ema_decay, (1 + t) / (10 + t)), so the average does not
      drag the random initialisation along for thousands of steps;
    - `max_nonfinite`: abort after this many consecutive steps with a NaN/inf loss (each is skipped);
    - `trainable`: train only the parameters whose names start with one of these prefixes, the rest stays
      frozen (e.g. `[heads.body]`: a body heat-map head on an imported network's frozen features); empty:
      train everything.
    """

    seed: int = 0
    batch_size: int = 2
    steps: int = 1000
    amp: bool = True
    amp_dtype: str = "float16"
    cpu_amp: bool = False
    grad_clip: float = 10.0
    ema_decay: float = 0.999
    log_every: int = 20
    max_nonfinite: int = 20
    threads: int = 0  # CPU threads for torch (0: torch's default)
    trainable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        trainable = (self.trainable,) if isinstance(self.trainable, str) else self.trainable
        _check(isinstance(trainable, (list, tuple)) and all(isinstance(p, str) and p for p in trainable),
               f"train.trainable must be a list of parameter-name prefixes, got {self.trainable!r}")
        object.__setattr__(self, "trainable", tuple(trainable))
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(self.steps >= 1, "train.steps must be >= 1")
        _check(self.amp_dtype in ("float16", "bfloat16"), "train.amp_dtype must be 'float16' or 'bfloat16'")
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0")
        _check(0 <= self.ema_decay < 1, "train.ema_decay must be in [0, 1)")
        _check(self.log_every >= 1 and self.max_nonfinite >= 1, "train.log_every and max_nonfinite must be >= 1")
        _check(self.threads >= 0, "train.threads must be >= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Periodic COCOeval of the EMA model on the validation set, through the Estimator.

    `every`: steps between evaluations (0: only at the end); `output_stride`: the stride at evaluation
    [paper: 8]; `input_size`: the Estimator's input (None: the model's); `max_images`: evaluate the first N
    validation images (0: all); `decoder`: DecoderConfig overrides.
    """

    every: int = 5000
    output_stride: int = 8
    input_size: tuple[int, int] | None = None
    flip: bool = False
    max_images: int = 500
    batch_size: int = 4
    decoder: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_size is not None:
            size = self.input_size
            size = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
            object.__setattr__(self, "input_size", size)
        _check(self.every >= 0 and self.max_images >= 0 and self.batch_size >= 1,
               "eval.every and eval.max_images must be >= 0, eval.batch_size >= 1")
        _check(self.output_stride in (8, 16, 32), "eval.output_stride must be 8, 16 or 32")
        try:
            DecoderConfig(**dict(self.decoder))
        except TypeError as exc:
            raise RecipeError(f"eval.decoder: {exc} (valid: {sorted(f.name for f in fields(DecoderConfig))})") from None
        except ValueError as exc:
            raise RecipeError(f"eval.decoder: {exc}") from None

    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(**dict(self.decoder))


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints every `every` steps (and at the end); the last `keep` training states are kept."""

    every: int = 1000
    keep: int = 3

    def __post_init__(self) -> None:
        _check(self.every >= 1 and self.keep >= 1, "checkpoint.every and checkpoint.keep must be >= 1")


@dataclass(frozen=True)
class Recipe:
    """A whole training recipe (see the module doc)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML data (tuples as lists; the schema by name when it is a built-in one)."""
        out: dict[str, Any] = {"description": self.description}
        for f in fields(self):
            if f.name == "description":
                continue
            value = getattr(self, f.name)
            data = asdict(value)
            if f.name == "model" and not isinstance(value.schema, str):
                data["schema"] = value.keypoint_schema.to_dict()
            out[f.name] = _plain(data)
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "recipe") -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError(f"{source}: a recipe is a mapping of sections, got {type(data).__name__}")
        sections = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise RecipeError(f"{source}: unknown section {unknown[0]!r}; valid sections: {sorted(sections)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name == "description":
                values[name] = "" if value is None else str(value)
                continue
            section_type = _SECTION_TYPES[name]
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise RecipeError(f"{source}: section {name!r} must be a mapping, got {type(value).__name__}")
            valid = [f.name for f in fields(section_type)]
            bad = sorted(set(value) - set(valid))
            if bad:
                raise RecipeError(f"{source}: unknown key '{name}.{bad[0]}'; valid keys of {name!r}: {valid}")
            value = _coerce_numbers(section_type, value)
            try:
                values[name] = (ModelConfig.from_dict(value) if section_type is ModelConfig
                                else section_type(**value))
            except RecipeError as exc:
                raise RecipeError(f"{source}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise RecipeError(f"{source}: section {name!r}: {exc}") from None
        return cls(**values)

    def with_overrides(self, overrides: list[str] | tuple[str, ...], source: str = "--set") -> Recipe:
        """A copy with `section.key=value` overrides applied (values parsed as YAML)."""
        data = self.to_dict()
        for item in overrides:
            key, value = parse_override(item, source)
            section, _, name = key.partition(".")
            if section == "description" and not name:
                data["description"] = str(value)
                continue
            if section not in data or not name:
                raise RecipeError(f"{source} {item!r}: keys look like section.key; valid sections: "
                                  f"{sorted(k for k in data if k != 'description')}")
            mapping, dot, entry = name.partition(".")
            if dot and (section, mapping) in (("eval", "decoder"), ("model", "backbone_options")):
                data[section][mapping] = dict(data[section].get(mapping) or {}) | {entry: value}
                continue
            data[section][name] = value
        return Recipe.from_dict(data, source)

    def differences(self, other: Recipe) -> list[str]:
        """Dotted keys whose values differ between two recipes."""
        a, b = self.to_dict(), other.to_dict()
        out = []
        for section in a:
            if section == "description":
                continue
            for key in sorted(set(a[section]) | set(b[section])):
                if a[section].get(key) != b[section].get(key):
                    out.append(f"{section}.{key}")
        return out

    def replace(self, **sections: Any) -> Recipe:
        return replace(self, **sections)


_SECTION_TYPES: dict[str, type] = {
    "model": ModelConfig,
    "init": InitConfig,
    "data": DataConfig,
    "augment": AugmentConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "checkpoint": CheckpointConfig,
}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RecipeError(message)


def _to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce_numbers(section_type: type, values: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 reads `1e-3` (no dot) as a string: read such strings as numbers where the field is a float."""
    types = {f.name: str(f.type) for f in fields(section_type)}
    out = dict(values)
    for key, value in values.items():
        kind = types.get(key, "")
        if kind.startswith("float"):
            out[key] = _to_float(value)
        elif kind.startswith("tuple[float") and isinstance(value, list | tuple):
            out[key] = [_to_float(v) for v in value]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parse_override(item: str, source: str = "--set") -> tuple[str, Any]:
    """'section.key=value' -> ('section.key', YAML-parsed value)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"{source} {item!r}: expected section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source} {item!r}: value is not valid YAML ({exc})") from None
    return key.strip(), value


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe YAML file and apply `--set` overrides; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    recipe = Recipe.from_dict({} if data is None else data, str(path))
    return recipe.with_overrides(list(overrides)) if overrides else recipe
