"""The trainer: recipes, EMA, state on disk, a short run that learns, exact resumption, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from strongpose_ros import checkpoint
from strongpose_ros.data.coco import DataPaths, DatasetError, collate_samples, resolve_data
from strongpose_ros.data.synth import SynthConfig, generate_dataset
from strongpose_ros.model import build_model, compute_losses
from strongpose_ros.train import state as state_module
from strongpose_ros.train.ema import ModelEMA
from strongpose_ros.train.evaluate import evaluate_checkpoint, evaluate_estimator
from strongpose_ros.train.recipe import Recipe, RecipeError, ScheduleConfig, load_recipe
from strongpose_ros.train.state import (
    flatten_optimizer_state,
    latest_checkpoint,
    load_training_state,
    unflatten_optimizer_state,
)
from strongpose_ros.train.trainer import Trainer, TrainerError

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "config" / "train"

# A tiny, quick set-up: ResNet-18 on 129x129 synthetic images, no augmentation (the test overfits 8 images).
TINY = [
    "model.backbone=resnet18", "model.input_size=[129,129]", "model.output_stride=8",
    "train.amp=false", "train.threads=1", "train.log_every=1", "train.ema_decay=0.9",
    "optim.name=adamw", "optim.weight_decay=0", "schedule.name=constant", "schedule.warmup_steps=5",
    "augment.scale=[1,1]", "augment.rotation_deg=0", "augment.translation=0", "augment.flip_probability=0",
    "eval.output_stride=8", "eval.input_size=[129,129]", "eval.max_images=0", "eval.batch_size=1", "data.workers=0",
]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> DataPaths:
    root = tmp_path_factory.mktemp("synth")
    config = SynthConfig(max_people=2, min_stature_px=70.0, crowd_fraction=0.0)
    generate_dataset(root, 8, seed=1, size=(129, 129), config=config)
    return resolve_data(root)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_recipe(*overrides: str) -> Recipe:
    return Recipe().with_overrides([*TINY, *overrides])


# --- recipes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet101_coco", "resnet152_coco", "synthetic_small"])
def test_shipped_recipes_load(name: str) -> None:
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert recipe.description
    if name.endswith("coco"):
        assert recipe.model.backbone == name.split("_")[0]
        assert (recipe.model.output_stride, recipe.model.input_size) == (16, (401, 401))  # [paper]
        assert (recipe.optim.name, recipe.optim.lr, recipe.optim.momentum) == ("sgd", 1e-3, 0.9)  # [paper]
        assert recipe.model.frozen_bn and recipe.train.ema_decay > 0 and recipe.eval.output_stride == 8
    else:
        assert recipe.model.backbone == "resnet18"


def test_unknown_recipe_keys_are_named_with_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"unknown key 'optim.learning_rate'.*valid keys.*'lr'"):
        load_recipe(path)
    path.write_text("optimizer:\n  lr: 0.1\n")
    with pytest.raises(RecipeError, match=r"unknown section 'optimizer'.*'optim'"):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"unknown key 'model.depth'.*'backbone'"):
        Recipe().with_overrides(["model.depth=50"])
    with pytest.raises(RecipeError, match=r"section\.key=value"):
        Recipe().with_overrides(["lr"])
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_recipe_values_are_read_and_checked() -> None:
    recipe = Recipe().with_overrides(["optim.lr=1e-3", "model.input_size=[257,257]", "eval.decoder.peak_threshold=0.2"])
    assert recipe.optim.lr == 1e-3 and isinstance(recipe.optim.lr, float)  # YAML reads 1e-3 as a string
    assert recipe.model.input_size == (257, 257) and recipe.eval.decoder_config().peak_threshold == 0.2
    with pytest.raises(RecipeError, match=r"optim\.name"):
        Recipe().with_overrides(["optim.name=rmsprop"])
    with pytest.raises(RecipeError, match="backbone"):
        Recipe().with_overrides(["model.backbone=vgg16"])
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()


def test_schedules() -> None:
    cosine = ScheduleConfig(name="cosine", warmup_steps=10, warmup_start=0.1, final_lr=0.01)
    assert cosine.factor(0, 100) == pytest.approx(0.1)
    assert cosine.factor(5, 100) == pytest.approx(0.55)
    assert cosine.factor(10, 100) == pytest.approx(1.0)
    assert cosine.factor(99, 100) == pytest.approx(0.01)
    steps = ScheduleConfig(name="steps", warmup_steps=0, milestones=(0.5, 80), gamma=0.1)
    assert [steps.factor(s, 100) for s in (49, 50, 79, 80)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


# --- EMA and state ------------------------------------------------------------------------------------------------


def test_ema_follows_the_weights_with_a_warming_decay() -> None:
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.99, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, torch.full_like(model.weight, 0.9))
    for _ in range(2000):
        ema.update(model)
    assert ema.current_decay() == pytest.approx(0.99)
    assert torch.allclose(ema.module.weight, model.weight, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_state_round_trips_without_pickle(name: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    from strongpose_ros.train.trainer import build_optimizer

    optimizer = build_optimizer(model, Recipe().with_overrides([f"optim.name={name}"]))
    for _ in range(3):
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    original = optimizer.state_dict()
    tensors, data = flatten_optimizer_state(original)
    restored = unflatten_optimizer_state(tensors, json.loads(json.dumps(data)))
    fresh = build_optimizer(model, Recipe().with_overrides([f"optim.name={name}"]))
    fresh.load_state_dict(restored)
    again = fresh.state_dict()
    assert again["param_groups"] == original["param_groups"]
    for pid, entries in original["state"].items():
        for key, value in entries.items():
            assert torch.equal(again["state"][pid][key], value) if isinstance(value, torch.Tensor) else \
                again["state"][pid][key] == value


# --- training ------------------------------------------------------------------------------------------------------


def _losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["total"] for r in records if r["kind"] == "train"]


def test_a_short_cpu_run_lowers_the_loss_and_raises_ap(tmp_path: Path, synthetic: DataPaths) -> None:
    recipe = tiny_recipe("train.steps=24", "train.batch_size=4", "optim.lr=3e-3", "eval.every=24",
                         "checkpoint.every=24")
    trainer = Trainer(recipe, synthetic, tmp_path / "run", val_data=synthetic, progress=False)
    before = evaluate_estimator(trainer.estimator(), synthetic.annotations, synthetic.images, progress=False)
    result = trainer.run()
    losses = _losses(tmp_path / "run")
    assert len(losses) == 24
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
    assert result.eval is not None and result.eval["AP"] > before["AP"] + 0.05, (before, result.eval)
    # The run folder: usable EMA model (at the evaluation stride), best model, plots, TensorBoard, recipe.
    run = tmp_path / "run"
    loaded = checkpoint.load(run / "model.safetensors")
    assert loaded.config.output_stride == 8 and loaded.metadata["weights"] == "ema"
    assert loaded.metadata["train_output_stride"] == 8 and loaded.metadata["step"] == 24
    for name in ("best.safetensors", "plots/loss.png", "plots/ap.png", "recipe.yaml"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    assert load_recipe(run / "recipe.yaml") == recipe
    # One inference path: the saved best model, evaluated like `strongpose eval --checkpoint` does, scores what
    # the trainer's periodic evaluation of the EMA model scored.
    assert evaluate_checkpoint(run / "best.safetensors", synthetic.annotations, synthetic.images, device="cpu",
                               progress=False) == result.eval
    # The EMA weights are what was saved as the model.
    ema = {k: v for k, v in trainer.ema.module.state_dict().items()}
    assert all(torch.equal(loaded.model.state_dict()[k], ema[k]) for k in ema)


def test_cpu_bfloat16_autocast_computes_in_bfloat16_and_learns(tmp_path: Path, synthetic: DataPaths) -> None:
    """train.cpu_amp: the trunk computes in bfloat16 on the CPU; weights and losses stay float32; it learns."""
    recipe = tiny_recipe("train.steps=24", "train.batch_size=4", "optim.lr=3e-3", "eval.every=0",
                         "checkpoint.every=24", "train.cpu_amp=true")
    trainer = Trainer(recipe, synthetic, tmp_path / "run", progress=False)
    seen: set[torch.dtype] = set()
    first_conv = next(m for m in trainer.train_model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda _module, _inputs, output: seen.add(output.dtype))
    trainer.run()
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    losses = _losses(tmp_path / "run")
    assert len(losses) == 24 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run_dir / "checkpoints") / "state.safetensors"))


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, synthetic: DataPaths) -> None:
    # AdamW (more state than SGD's momentum, which the round-trip test above covers too) and a loader worker.
    optimizer, workers = "adamw", 1
    recipe = tiny_recipe("model.input_size=[65,65]", "model.output_stride=16", "train.steps=4",
                         "train.batch_size=2", f"optim.name={optimizer}", "optim.lr=1e-2", "checkpoint.every=2",
                         "schedule.name=cosine", "schedule.warmup_steps=1", "augment.scale=[0.8,2.0]",
                         "augment.rotation_deg=30", "augment.flip_probability=0.5", f"data.workers={workers}",
                         "train.seed=3")
    Trainer(recipe, synthetic, tmp_path / "whole", progress=False).run()
    stopped = Trainer(recipe, synthetic, tmp_path / "split", progress=False).run(stop_after=2)
    assert stopped.step == 2 and stopped.stopped_early
    # A new process would start from here: a fresh Trainer, other RNG state, same folder.
    torch.manual_seed(12345)
    resumed = Trainer(recipe, synthetic, tmp_path / "split", resume=True, progress=False)
    assert resumed.start_step == 2
    resumed.run()
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert set(whole) == set(split)
    for name in whole:
        if not name.startswith("rng."):
            torch.testing.assert_close(split[name], whole[name], rtol=0, atol=1e-6, msg=name)
    assert load_training_state(latest_checkpoint(tmp_path / "split" / "checkpoints")).step == 4
    # The metrics history holds each step once.
    assert [r for r in _losses(tmp_path / "split")] == pytest.approx(_losses(tmp_path / "whole"), abs=1e-5)


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(tmp_path: Path, synthetic: DataPaths,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = tiny_recipe("model.input_size=[65,65]", "model.output_stride=16", "train.steps=4",
                         "train.batch_size=1", "checkpoint.every=2")
    trainer = Trainer(recipe, synthetic, tmp_path / "run", progress=False)
    calls = {"n": 0}
    real = state_module.save_file

    def dying_save(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies half-way (after the model file was written)
            raise KeyboardInterrupt("killed")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(state_module, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    checkpoints = tmp_path / "run" / "checkpoints"
    assert latest_checkpoint(checkpoints).name == "step_00000002"
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".tmp")]  # no half-written folder left
    monkeypatch.setattr(state_module, "save_file", real)
    resumed = Trainer(recipe, synthetic, tmp_path / "run", resume=True, progress=False)
    assert resumed.start_step == 2 and resumed.run().step == 4


def _losses_of(run_dir: Path, term: str) -> list[float]:  # one loss term per training step
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[term] for r in records if r["kind"] == "train"]


# A PoseNet-like trunk, small: folded batch norm (biases), layer strides reaching 16, run at 8.
MOBILENET = ["model.backbone=mobilenet_v1", "model.input_mean=[0.5,0.5,0.5]", "model.input_std=[0.5,0.5,0.5]",
             "model.backbone_options={channels: [8, 16, 16, 24], strides: [2, 2, 2, 2], batch_norm: false}"]


def test_body_head_alone_trains_on_the_frozen_features_of_an_imported_mobilenet(tmp_path: Path,
                                                                               synthetic: DataPaths) -> None:
    recipe = tiny_recipe(*MOBILENET, "train.steps=12", "train.batch_size=4", "optim.lr=0.02", "eval.every=0",
                         "checkpoint.every=12", "train.ema_decay=0")
    torch.manual_seed(5)
    start = checkpoint.save(tmp_path / "imported.safetensors", build_model(recipe.model))  # 1x1 heads, as imported
    # A body head with a hidden layer of its own, initialised afresh; everything else from the checkpoint, frozen.
    recipe = recipe.with_overrides([f"init.checkpoint={start}", "init.skip=[heads.body]", "train.trainable=heads.body",
                                    "model.body_head_channels=8"])
    assert recipe.train.trainable == recipe.init.skip == ("heads.body",)
    trainer = Trainer(recipe, synthetic, tmp_path / "run", progress=False)
    body = {"heads.body.hidden.0.weight", "heads.body.hidden.0.bias", "heads.body.predict.weight",
            "heads.body.predict.bias"}
    assert {n for n, p in trainer.model.named_parameters() if p.requires_grad} == body
    trainer.run()
    initial, after = checkpoint.load(start), checkpoint.load(tmp_path / "run" / "model.safetensors")
    assert after.config.body_head_channels == 8 and set(after.model.state_dict()) - set(initial.model.state_dict()) \
        == {"heads.body.hidden.0.weight", "heads.body.hidden.0.bias"}
    for name, value in initial.model.state_dict().items():
        if not name.startswith("heads.body."):
            assert torch.equal(after.model.state_dict()[name], value), name
    assert len(_losses_of(tmp_path / "run", "bhm")) == 12
    # On all 8 training images, the body heat-map loss fell; the frozen outputs did not move.
    batch = collate_samples([trainer.dataset[i] for i in range(len(trainer.dataset))])
    with torch.no_grad():
        first, last = (compute_losses(c.model.train()(batch.images), batch.targets, recipe.loss)
                       for c in (initial, after))
    assert last["bhm"] < 0.8 * first["bhm"], (first["bhm"], last["bhm"])  # 0.55 -> 0.40 measured
    assert all(torch.equal(last[t], first[t]) for t in ("skhm", "short", "mid"))
    assert after.config.backbone == "mobilenet_v1" and after.config.backbone_options["batch_norm"] is False


def test_mobilenet_training_errors_are_clear(tmp_path: Path, synthetic: DataPaths) -> None:
    recipe = tiny_recipe(*MOBILENET, "train.steps=1")
    with pytest.raises(TrainerError, match=r"'heads\.bodee' names no parameter"):
        Trainer(recipe.with_overrides(["train.trainable=[heads.bodee]"]), synthetic, tmp_path / "a", progress=False)
    start = checkpoint.save(tmp_path / "start.safetensors", build_model(recipe.model))
    grown = recipe.with_overrides([f"init.checkpoint={start}", "model.body_head_channels=8"])
    with pytest.raises(TrainerError, match="does not fit the recipe's model"):
        Trainer(grown, synthetic, tmp_path / "a", progress=False)
    with pytest.raises(TrainerError, match=r"init\.skip: 'heads\.bodee' names no parameter"):
        Trainer(grown.with_overrides(["init.skip=[heads.bodee]"]), synthetic, tmp_path / "a", progress=False)
    weights = tmp_path / "r18.pth"
    weights.write_bytes(b"")
    with pytest.raises(TrainerError, match=r"init\.backbone_weights.*torchvision has no MobileNetV1"):
        Trainer(recipe.with_overrides([f"init.backbone_weights={weights}"]), synthetic, tmp_path / "b",
                progress=False)
    with_bn = recipe.with_overrides(["model.backbone_options.batch_norm=true", "train.trainable=[heads]"])
    assert with_bn.model.backbone_options == {"channels": [8, 16, 16, 24], "strides": [2, 2, 2, 2]}
    with pytest.raises(TrainerError, match=r"freezes the batch norm 'backbone\.stem\.norm'.*frozen_bn: true"):
        Trainer(with_bn, synthetic, tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="frozen_bn without init.backbone_weights"):
        frozen = Trainer(with_bn.with_overrides(["model.frozen_bn=true"]), synthetic, tmp_path / "d", progress=False)
    assert frozen.run().step == 1


# --- clear errors before any work ------------------------------------------------------------------------------------


def test_clear_errors_before_any_work(tmp_path: Path, synthetic: DataPaths, coco_mini_annotations: Path) -> None:
    recipe = tiny_recipe("train.steps=1")
    out = tmp_path / "out"
    instances = tmp_path / "instances.json"
    data = json.loads(synthetic.annotations.read_text())
    instances.write_text(json.dumps(data | {"categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(DatasetError, match="not a COCO keypoints file"):
        Trainer(recipe, DataPaths(instances, synthetic.images), out, progress=False)
    with pytest.raises(DatasetError, match="not a COCO keypoints file"):
        Trainer(recipe, synthetic, out, val_data=DataPaths(instances, synthetic.images), progress=False)
    with pytest.raises(TrainerError, match="backbone_weights"):
        Trainer(recipe.with_overrides(["init.backbone_weights=/nowhere/r18.pth"]), synthetic, out, progress=False)
    assert not out.exists()  # nothing was started
    Trainer(recipe, synthetic, out, progress=False).run()
    with pytest.raises(TrainerError, match=r"already holds a run.*--resume"):
        Trainer(recipe, synthetic, out, progress=False)
    with pytest.raises(RecipeError, match=r"differs from the run's in \['optim.lr'\]"):
        Trainer(recipe.with_overrides(["optim.lr=0.5"]), synthetic, out, resume=True, progress=False)


def _cli(*argv: str) -> int:
    from strongpose_ros.cli import train as train_verb

    parser = argparse.ArgumentParser(prog="strongpose")
    train_verb.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["train", *argv])
    return args.func(args)


def test_cli_reports_bad_input_clearly(tmp_path: Path, synthetic: DataPaths, capsys: pytest.CaptureFixture) -> None:
    from strongpose_ros.cli import VERBS

    assert "train" in VERBS
    recipe = str(RECIPES / "synthetic_small.yaml")
    assert _cli("--config", recipe, "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "a")) == 2
    assert "data folder" in capsys.readouterr().err
    code = _cli("--config", recipe, "--data", str(synthetic.annotations.parent), "--out", str(tmp_path / "b"),
                "--set", "train.stepz=3")
    assert code == 2 and "unknown key 'train.stepz'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
