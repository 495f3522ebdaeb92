"""`strongpose train`: train a StrongPose network from a recipe on COCO-format keypoint data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_DESCRIPTION = """\
Train a StrongPose network from a recipe (config/train/*.yaml) on COCO-format keypoint data.

Data layout (--data DIR), either
  DIR/annotations.json + DIR/images/                       (what `strongpose synth` writes), or
  DIR/annotations/person_keypoints_<split>.json + DIR/<split>/   (COCO's own, e.g. train2017)
--annotations FILE / --images DIR override what is found there. The validation set (--val-data, or
--val-annotations/--val-images) is evaluated every eval.every steps with COCOeval, through the Estimator.

The run folder (--out) receives recipe.yaml, model.safetensors (the EMA model, the one to use),
best.safetensors, checkpoints/ (atomic training states), metrics.jsonl, tensorboard/ and plots/*.png.
--resume continues from the last checkpoint exactly (data paths default to the run's own).
Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and stops.

Several GPUs or nodes: torchrun --nproc_per_node G -m strongpose_ros.cli train ... (one process per GPU;
train.batch_size is per GPU).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a network from a recipe on COCO-format keypoint data",
                                   description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, metavar="RECIPE.yaml",
                        help="training recipe (with --resume, defaults to the run's recipe.yaml)")
    parser.add_argument("--data", type=Path, metavar="DIR", help="training data folder (layouts above)")
    parser.add_argument("--annotations", type=Path, metavar="FILE", help="training annotation file (COCO keypoints)")
    parser.add_argument("--images", type=Path, metavar="DIR", help="training image folder")
    parser.add_argument("--val-data", type=Path, metavar="DIR", help="validation data folder")
    parser.add_argument("--val-annotations", type=Path, metavar="FILE", help="validation annotation file")
    parser.add_argument("--val-images", type=Path, metavar="DIR", help="validation image folder")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder (created)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a recipe key, e.g. --set optim.lr=2e-4 --set train.steps=50000 (repeatable)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", metavar="FILE", help="also write the run's summary figures to FILE")
    parser.set_defaults(func=run)


def _data_paths(args: argparse.Namespace, saved: dict) -> tuple:
    from strongpose_ros.data.coco import DataPaths, resolve_data

    def pick(data, annotations, images, key, what):
        if data is None and annotations is None and images is None:
            if key in saved:
                return DataPaths(Path(saved[key]["annotations"]), Path(saved[key]["images"]))
            return None
        return resolve_data(data, annotations, images, what=what)

    train = pick(args.data, args.annotations, args.images, "train", "training data")
    if train is None:
        raise SystemExit("strongpose train: give the training data: --data DIR (or --annotations FILE --images DIR)")
    val = pick(args.val_data, args.val_annotations, args.val_images, "val", "validation data")
    return train, val


def run(args: argparse.Namespace) -> int:
    from strongpose_ros.checkpoint import CheckpointError
    from strongpose_ros.cli.common import write_json
    from strongpose_ros.data.coco import DatasetError
    from strongpose_ros.train.recipe import RecipeError, load_recipe
    from strongpose_ros.train.state import StateError
    from strongpose_ros.train.trainer import Trainer, TrainerError

    run_file = args.out / "run.json"
    try:
        saved = json.loads(run_file.read_text()) if args.resume and run_file.is_file() else {}
        config = args.config
        if config is None:
            if not args.resume:
                raise SystemExit("strongpose train: --config RECIPE.yaml is required (except with --resume)")
            config = args.out / "recipe.yaml"
            if not config.is_file():
                raise SystemExit(f"strongpose train: --resume without --config, but {config} does not exist")
        recipe = load_recipe(config, args.overrides)
        train_data, val_data = _data_paths(args, saved)
        trainer = Trainer(recipe, train_data, args.out, val_data=val_data, resume=args.resume, device=args.device,
                          progress=not args.quiet)
        if trainer.world.main:
            args.out.mkdir(parents=True, exist_ok=True)
            paths = {"train": {"annotations": str(train_data.annotations.resolve()),
                               "images": str(train_data.images.resolve())}}
            if val_data is not None:
                paths["val"] = {"annotations": str(val_data.annotations.resolve()),
                                "images": str(val_data.images.resolve())}
            run_file.write_text(json.dumps(paths, indent=2) + "\n")
            if val_data is None:
                print("strongpose train: no validation set given (--val-data): no periodic evaluation")
            if trainer.loaded is not None:
                print(f"strongpose train: resuming {args.out} from step {trainer.start_step}")
            elif args.resume:
                print(f"strongpose train: no checkpoint in {args.out} yet: starting a new run")
        result = trainer.run()
    except (DatasetError, RecipeError, TrainerError, StateError, CheckpointError) as exc:
        print(f"strongpose train: error: {exc}", file=sys.stderr)
        return 2
    if trainer.world.main:
        figures = {"steps": result.step, "train_images_per_s": result.images_per_second,
                   **{f"loss_{k}": v for k, v in result.losses.items() if k not in ("images_per_s", "lr", "grad_norm")}}
        if result.eval:
            figures |= result.eval
        if result.best_ap is not None:
            figures["best_AP"] = result.best_ap
        print(f"strongpose train: step {result.step}, {result.images_per_second:.2f} images/s; "
              f"model: {args.out / 'model.safetensors'}" + (" (stopped early)" if result.stopped_early else ""))
        write_json(args.json, figures)
    return 130 if result.stopped_early and result.step < trainer.recipe.train.steps else 0
