"""The StrongPose trainer: one process per GPU (torchrun), or one process on a CPU.

Per step: a batch of augmented crops (data/coco.py), the network at the training stride (16 [paper]),
`compute_losses`, backward (autocast + GradScaler on CUDA), gradient clipping, SGD/AdamW with warm-up and
schedule, then the EMA of the weights (Polyak averaging [paper]). Every `eval.every` steps the EMA model
is evaluated on the validation set through the Estimator (COCOeval), every `checkpoint.every` steps the
whole state is checkpointed atomically (state.py), and the run folder gets metrics, TensorBoard scalars
and plots:

    RUN_DIR/recipe.yaml                 the recipe as resolved (overrides applied)
    RUN_DIR/model.safetensors           the latest EMA model (a StrongPose checkpoint, evaluation stride)
    RUN_DIR/best.safetensors            the EMA model with the best validation AP so far
    RUN_DIR/checkpoints/step_N/         training states; checkpoints/latest.json points at the last one
    RUN_DIR/metrics.jsonl, tensorboard/, plots/loss.png, plots/ap.png

Multi-GPU / multi-node: `torchrun --nproc_per_node G [--nnodes N ...] -m strongpose_ros.cli train ...`;
each process takes its slice of every global batch (SampleStream), gradients are averaged by
DistributedDataParallel, rank 0 logs, evaluates and checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import time
import warnings
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from strongpose_ros import checkpoint as model_checkpoint
from strongpose_ros.data.coco import (
    CocoKeypointDataset,
    DataPaths,
    DatasetError,
    load_keypoint_annotations,
    make_loader,
)
from strongpose_ros.model import ModelConfig, build_model, compute_losses
from strongpose_ros.model.backbones import FrozenBatchNorm2d
from strongpose_ros.train.ema import ModelEMA
from strongpose_ros.train.logs import MetricsLog, TensorBoard
from strongpose_ros.train.plots import write_plots
from strongpose_ros.train.recipe import Recipe, RecipeError
from strongpose_ros.train.state import (
    latest_checkpoint,
    load_training_state,
    restore_rng,
    save_training_state,
)

__all__ = ["RESUMABLE_CHANGES", "TrainResult", "Trainer", "TrainerError", "build_optimizer", "freeze_all_but"]

# Recipe keys that may differ between a run and its resumption (they do not change what was learnt so far).
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.max_nonfinite", "train.threads", "train.cpu_amp",
                     "data.workers", "data.pin_memory", "eval.", "checkpoint.", "description")


_BARRIER_MINUTES = 120


class TrainerError(ValueError):
    """A run that cannot start or continue; the message says why and what to do."""


@dataclass
class TrainResult:
    """What a `Trainer.run` did."""

    step: int
    steps_run: int
    images_per_second: float
    losses: dict[str, float]
    eval: dict[str, float] | None
    best_ap: float | None
    run_dir: Path
    stopped_early: bool = False


# --- distributed set-up -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _init_world(device: str) -> _World:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    if not dist.is_initialized():
        backend = "nccl" if (device != "cpu" and torch.cuda.is_available()) else "gloo"
        # Ranks wait at a barrier while rank 0 evaluates; a full COCO val pass can outlast the 10-minute default.
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=_BARRIER_MINUTES))
    return _World(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def _resolve_device(device: str, world: _World) -> torch.device:
    from strongpose_ros.estimator import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and world.distributed:
        resolved = torch.device("cuda", world.local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels once
    return resolved


# --- optimiser ------------------------------------------------------------------------------------------------


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD (momentum [paper]) or AdamW over the trainable parameters; biases and norm scales exempt from
    weight decay unless `optim.decay_norm_and_bias`."""
    optim = recipe.optim
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim > 1 or optim.decay_norm_and_bias else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": optim.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if optim.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    else:
        optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas)
    for group in optimizer.param_groups:
        group["initial_lr"] = optim.lr
    return optimizer


def _under(name: str, prefix: str) -> bool:
    """Whether parameter `name` is `prefix` or lies under it ('heads.body' covers 'heads.body.predict.bias')."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def freeze_all_but(model: torch.nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Freeze every parameter whose name starts with none of `prefixes` (`train.trainable`); the trainable names.

    A prefix that matches no parameter is an error (a typo would otherwise train nothing), and so is a batch
    norm whose parameters are frozen but whose statistics would still follow the batches in training mode
    (freeze them with `model.frozen_bn`)."""
    names = [name for name, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(_under(n, p) for n in names)]
    if unmatched:
        tops = sorted({".".join(n.split(".")[:2]) for n in names})
        raise TrainerError(f"train.trainable: {unmatched[0]!r} names no parameter; e.g. {tops}")
    trainable = []
    for name, param in model.named_parameters():
        keep = any(_under(name, p) for p in prefixes)
        param.requires_grad_(keep)
        if keep:
            trainable.append(name)
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.BatchNorm2d) and not isinstance(module, FrozenBatchNorm2d)
                and not any(p.requires_grad for p in module.parameters())):
            raise TrainerError(f"train.trainable freezes the batch norm {name!r}, whose statistics would still "
                               "change in training; set model.frozen_bn: true")
    return trainable


# --- the trainer ------------------------------------------------------------------------------------------------


class Trainer:
    """Train a StrongPose network from a recipe (see the module doc).

    Construction checks everything a run needs (data, validation data, run folder, resume state) before
    any training work, and raises `DatasetError`, `RecipeError` or `TrainerError` with a clear message.
    """

    def __init__(self, recipe: Recipe, train_data: DataPaths, out_dir: str | Path, *,
                 val_data: DataPaths | None = None, resume: bool = False, device: str = "auto",
                 progress: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.val_data = val_data
        self.train_data = train_data

        # --- checks first: nothing below this block starts before the inputs are known to be usable ---
        state_path = latest_checkpoint(self.out_dir / "checkpoints")
        if state_path is not None and not resume:
            raise TrainerError(f"{self.out_dir} already holds a run (checkpoint {state_path.name}); pass --resume "
                               "to continue it or choose another --out")
        self.loaded = None
        if resume and state_path is not None:
            self.loaded = load_training_state(state_path)
            recipe = self._check_resumed_recipe(recipe, self.loaded.recipe)
        self.recipe = recipe
        if self.loaded is None:  # a resumed run takes every weight from its checkpoint instead
            init = recipe.init
            for key, path in (("backbone_weights", init.backbone_weights), ("checkpoint", init.checkpoint)):
                if path and not Path(path).is_file():
                    raise TrainerError(f"init.{key}: {path} does not exist")
        pretrained = recipe.init.backbone_weights or recipe.init.checkpoint
        if recipe.model.frozen_bn and not pretrained and self.loaded is None:
            warnings.warn("model.frozen_bn without init.backbone_weights: the trunk's batch-norm statistics stay at "
                          "their initial values (mean 0, variance 1); give ImageNet weights or set frozen_bn: false",
                          stacklevel=2)
        self.model_config = recipe.model
        self.dataset = CocoKeypointDataset(train_data, self.model_config, augment=recipe.augment,
                                           seed=recipe.train.seed, require_keypoints=recipe.data.require_keypoints,
                                           radius=recipe.loss.radius)
        if val_data is not None:
            load_keypoint_annotations(val_data.annotations, self.model_config.keypoint_schema)
            if not val_data.images.is_dir():
                raise DatasetError(f"validation: image folder {val_data.images} does not exist")

        # --- set-up ---
        self.world = _init_world(device)
        self.device = _resolve_device(device, self.world)
        if recipe.train.threads:
            torch.set_num_threads(recipe.train.threads)
        if self.device.type == "cuda":
            self.amp = recipe.train.amp
            self.amp_dtype = torch.float16 if recipe.train.amp_dtype == "float16" else torch.bfloat16
        else:  # the CPU autocasts to bfloat16 only; it needs no GradScaler (bfloat16 has float32's range)
            self.amp = recipe.train.cpu_amp and self.device.type == "cpu"
            self.amp_dtype = torch.bfloat16
        self.start_step = 0 if self.loaded is None else self.loaded.step
        self._build()
        self._stop_requested = False

    # --- construction helpers ---

    def _check_resumed_recipe(self, recipe: Recipe, saved: dict[str, Any]) -> Recipe:
        saved_recipe = Recipe.from_dict(saved, f"{self.out_dir} (saved recipe)")
        changed = [key for key in saved_recipe.differences(recipe)
                   if not any(key == allowed or (allowed.endswith(".") and key.startswith(allowed))
                              for allowed in RESUMABLE_CHANGES)]
        if changed:
            raise RecipeError(f"--resume: the recipe differs from the run's in {changed}; these cannot change "
                              f"mid-run (changeable: {list(RESUMABLE_CHANGES)})")
        return recipe

    def _build(self) -> None:
        recipe = self.recipe
        torch.manual_seed(recipe.train.seed)  # the same initial weights on every rank and every rerun
        model = build_model(self.model_config)
        if recipe.init.backbone_weights and self.loaded is None:
            try:
                model.load_backbone_weights(recipe.init.backbone_weights)
            except ValueError as exc:
                raise TrainerError(f"init.backbone_weights: {exc}") from None
        if recipe.init.checkpoint and self.loaded is None:
            loaded = model_checkpoint.load(recipe.init.checkpoint)
            state = loaded.model.state_dict()
            skip = recipe.init.skip
            if skip:
                for prefix in skip:
                    if not any(_under(name, prefix) for name in model.state_dict()):
                        raise TrainerError(f"init.skip: {prefix!r} names no parameter of the recipe's model")
                state = {name: value for name, value in state.items() if not any(_under(name, p) for p in skip)}
            try:
                missing, unexpected = model.load_state_dict(state, strict=not skip)
            except RuntimeError as exc:
                raise TrainerError(f"init.checkpoint {recipe.init.checkpoint}: does not fit the recipe's model "
                                   f"({exc})") from None
            missing = [name for name in missing if not any(_under(name, p) for p in skip)]
            if missing or unexpected:
                raise TrainerError(f"init.checkpoint {recipe.init.checkpoint}: does not fit the recipe's model "
                                   f"(missing {missing[:8]}, unexpected {unexpected[:8]})")
        if recipe.train.trainable:
            freeze_all_but(model, recipe.train.trainable)
        self.model = model.to(self.device)
        self.ema = ModelEMA(self.model, recipe.train.ema_decay)
        self.optimizer = build_optimizer(self.model, recipe)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        if self.loaded is not None:
            self.model.load_state_dict(self.loaded.model, strict=True)
            self.ema.load_state_dict(self.loaded.ema, self.loaded.ema_updates)
            self.optimizer.load_state_dict(self.loaded.optimizer)
            if self.loaded.scaler and self.scaler.is_enabled():
                self.scaler.load_state_dict(self.loaded.scaler)
            restore_rng(self.loaded.rng["tensors"], self.loaded.rng["data"])
        self.ema.module.to(self.device)
        self.train_model: torch.nn.Module = self.model
        if self.world.distributed:
            if self.device.type == "cuda" and not self.model_config.frozen_bn:
                self.train_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.train_model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.train_model, device_ids=ids)
        self.best_ap = None if self.loaded is None else self.loaded.metadata.get("best_ap")

    # --- the loop ---

    def _install_signal_handlers(self) -> list[tuple[int, Any]]:
        """SIGINT/SIGTERM finish the current step, write a checkpoint and stop (main thread only)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return []

        def request_stop(signum: int, frame: Any) -> None:
            self._stop_requested = True

        previous = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous.append((sig, signal.signal(sig, request_stop)))
        return previous

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train to `train.steps` (or to step `stop_after`, then checkpoint and return)."""
        recipe = self.recipe
        total = recipe.train.steps
        end = total if stop_after is None else min(total, stop_after)
        main = self.world.main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # The recipe as run (a resumed run may have changed the resumable keys, e.g. train.steps).
            (self.out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
            self.metrics = MetricsLog(self.out_dir / "metrics.jsonl",
                                      resume_step=self.start_step if self.loaded is not None else None)
            self.board = TensorBoard(self.out_dir / "tensorboard", purge_step=self.start_step or None)
        previous_handlers = self._install_signal_handlers()
        step = self.start_step
        steps_run, images_seen, started = 0, 0, time.perf_counter()
        self._paused = 0.0  # seconds spent evaluating and checkpointing: not training throughput
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start, window_paused = 0, time.perf_counter(), 0.0
        nonfinite = 0
        last_losses: dict[str, float] = {}
        last_eval: dict[str, float] | None = None
        bar = None
        try:
            if step >= end:
                return self._result(step, 0, 0.0, last_losses, last_eval, stopped=stop_after is not None)
            loader = make_loader(self.dataset, recipe.train.batch_size, start_step=step, num_steps=end - step,
                                 rank=self.world.rank, world_size=self.world.size, workers=recipe.data.workers,
                                 pin_memory=(self.device.type == "cuda") if recipe.data.pin_memory is None
                                 else recipe.data.pin_memory)
            if main and self.progress:
                from tqdm import tqdm

                bar = tqdm(total=total, initial=step, unit="step", desc="train", dynamic_ncols=True)
            for batch in loader:
                losses = self._train_step(batch, step, total)
                step += 1
                steps_run += 1
                images_seen += len(batch) * self.world.size
                if losses is None:
                    nonfinite += 1
                    if nonfinite >= recipe.train.max_nonfinite:
                        raise TrainerError(f"{nonfinite} consecutive steps with a non-finite loss at step {step}; "
                                           "lower optim.lr or check the data (the last checkpoint is intact)")
                else:
                    nonfinite = 0
                    for name, value in losses.items():
                        window[name] = window.get(name, 0.0) + value
                    window_steps += 1
                if bar is not None:
                    bar.update(1)
                if step % recipe.train.log_every == 0 or step == end:
                    elapsed = time.perf_counter() - window_start - (self._paused - window_paused)
                    last_losses = self._log_window(window, window_steps, step, elapsed, bar)
                    window, window_steps, window_start, window_paused = {}, 0, time.perf_counter(), self._paused
                evaluate_now = (recipe.eval.every and step % recipe.eval.every == 0) or step == total
                if evaluate_now and self.val_data is not None:
                    last_eval = self._evaluate(step)
                stop = self._agree_to_stop(step, recipe.train.log_every)
                if step % recipe.checkpoint.every == 0 or step == end or stop:
                    # Plots (about a second of matplotlib) after evaluations and at the end, not at every checkpoint.
                    evaluated = bool(evaluate_now and self.val_data is not None)
                    self._checkpoint(step, plots=evaluated or step == end or stop)
                if stop:
                    break
            elapsed = time.perf_counter() - started - self._paused
            rate = images_seen / elapsed if elapsed > 0 else 0.0
            return self._result(step, steps_run, rate, last_losses, last_eval,
                                stopped=step < total)
        finally:
            if bar is not None:
                bar.close()
            for sig, handler in previous_handlers:
                signal.signal(sig, handler)
            if main:
                self.board.close()

    def _agree_to_stop(self, step: int, every: int) -> bool:
        if not self.world.distributed:
            return self._stop_requested
        if step % every:
            return False
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _train_step(self, batch: Any, step: int, total: int) -> dict[str, torch.Tensor] | None:
        """One optimiser step; the detached loss terms, or None when the loss was not finite (step skipped)."""
        recipe = self.recipe
        self.train_model.train()
        factor = recipe.schedule.factor(step, total)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        non_blocking = self.device.type == "cuda"
        batch = batch.to(self.device, non_blocking=non_blocking)
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.amp_dtype) if self.amp
                    else contextlib.nullcontext())
        with autocast:
            outputs = self.train_model(batch.images)
        losses = compute_losses(outputs, batch.targets, recipe.loss)
        total_loss = losses["total"]
        finite = torch.isfinite(total_loss)
        if self.world.distributed:  # every rank must take (or skip) the step together
            flag = finite.float()
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag > 0
        if not bool(finite):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.scaler.scale(total_loss).backward()
        grad_norm = None
        if recipe.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), recipe.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        out = {name: value.detach().float() for name, value in losses.items()}
        if grad_norm is not None:
            out["grad_norm"] = grad_norm.detach().float()
        return out

    def _log_window(self, window: dict[str, Any], count: int, step: int, elapsed: float, bar: Any) -> dict[str, float]:
        names = sorted(window)
        if count == 0 or not names:
            return {}
        values = torch.stack([torch.as_tensor(window[n], device=self.device, dtype=torch.float32) for n in names])
        values = values / count
        if self.world.distributed:
            dist.all_reduce(values)
            values /= self.world.size
        means = dict(zip(names, values.tolist(), strict=True))
        means["images_per_s"] = count * self.recipe.train.batch_size * self.world.size / max(elapsed, 1e-9)
        means["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.world.main:
            self.metrics.append("train", step, means)
            self.board.scalars("train", step, means)
            if bar is not None:
                bar.set_postfix(loss=f"{means['total']:.4f}", img_s=f"{means['images_per_s']:.1f}")
        return means

    def eval_model_config(self) -> ModelConfig:
        """The model config the usable (EMA) checkpoint carries: how the trainer evaluates it, so that
        `Estimator.from_checkpoint` and `strongpose eval --checkpoint` run it the same way by default
        (the evaluation stride [paper: 8], and eval.input_size when the recipe sets one)."""
        evaluation = self.recipe.eval
        size = self.model_config.input_size if evaluation.input_size is None else evaluation.input_size
        return replace(self.model_config, output_stride=evaluation.output_stride, input_size=size)

    def estimator(self):
        """The EMA model, copied, in an Estimator configured like the recipe's evaluation."""
        from strongpose_ros.estimator import Estimator

        evaluation = self.recipe.eval
        return Estimator(copy.deepcopy(self.ema.module), device=self.device, output_stride=evaluation.output_stride,
                         input_size=evaluation.input_size, flip=evaluation.flip,
                         decoder=evaluation.decoder_config())

    def _evaluate(self, step: int) -> dict[str, float] | None:
        began = time.perf_counter()
        result = None
        if self.world.main:
            from strongpose_ros.train.evaluate import evaluate_estimator

            figures = evaluate_estimator(self.estimator(), self.val_data.annotations, self.val_data.images,
                                         max_images=self.recipe.eval.max_images, batch_size=self.recipe.eval.batch_size,
                                         progress=self.progress)
            self.metrics.append("eval", step, figures)
            self.board.scalars("eval", step, figures)
            if self.best_ap is None or figures["AP"] > self.best_ap:
                self.best_ap = figures["AP"]
                model_checkpoint.save(self.out_dir / "best.safetensors", self.ema.module, self.eval_model_config(),
                                      self._metadata(step) | {"eval": figures})
            if self.progress:
                from tqdm import tqdm

                tqdm.write(f"step {step}: AP {figures['AP']:.3f}  AP50 {figures['AP50']:.3f}  AR {figures['AR']:.3f}")
            result = figures
        self.world.barrier()
        self._paused += time.perf_counter() - began
        return result

    def _metadata(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "train_output_stride": self.model_config.output_stride,
            "train_input_size": list(self.model_config.input_size),
            "recipe": self.recipe.to_dict(),
            "train_data": str(self.train_data.annotations),
            "best_ap": self.best_ap,
            "world_size": self.world.size,
        }

    def _checkpoint(self, step: int, plots: bool = True) -> None:
        began = time.perf_counter()
        if self.world.main:
            metadata = self._metadata(step)
            save_training_state(self.out_dir / "checkpoints", step, model=self.model, ema=self.ema.module,
                                ema_updates=self.ema.updates, optimizer=self.optimizer,
                                scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else {},
                                model_config=self.eval_model_config(), recipe=self.recipe.to_dict(),
                                metadata=metadata, keep=self.recipe.checkpoint.keep)
            model_checkpoint.save(self.out_dir / "model.safetensors", self.ema.module, self.eval_model_config(),
                                  metadata | {"weights": "ema"})
            self.board.flush()
            if plots:
                write_plots(self.metrics.read(), self.out_dir / "plots")
        self.world.barrier()
        self._paused += time.perf_counter() - began

    def _result(self, step: int, steps_run: int, rate: float, losses: dict[str, float],
                evaluation: dict[str, float] | None, stopped: bool) -> TrainResult:
        return TrainResult(step=step, steps_run=steps_run, images_per_second=rate, losses=losses, eval=evaluation,
                           best_ap=self.best_ap, run_dir=self.out_dir, stopped_early=stopped)

