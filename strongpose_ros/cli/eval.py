"""`strongpose eval`: COCO keypoint evaluation, printing the paper's AP/AR table.

Modes (exactly one):
- `--oracle`: the decoder alone. Each image's annotations are encoded into the outputs a perfect network
  would give (optionally degraded by the noise model of `strongpose_ros.evaluation.NoiseModel`), decoded
  and scored with COCOeval.
- `--checkpoint FILE`: a trained network over the images, through the Estimator
  (`strongpose_ros.train.evaluate.evaluate_checkpoint`).

A mode is a runner in `MODES` taking the parsed arguments and the decoder settings and returning the
ten figures and a title.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from strongpose_ros.cli.common import POSITIVE_INT

_DESCRIPTION = """\
Evaluate with pycocotools' COCOeval (keypoints, 20 detections per image) and print AP, AP50, AP75, AP_M,
AP_L, AR, AR50, AR75, AR_M, AR_L; --json writes the ten numbers under the names AP, AP50, AP75, APM, APL,
AR, AR50, AR75, ARM, ARL.

--checkpoint FILE --images DIR: the network in FILE over every image of the annotation file (at the
checkpoint's own evaluation stride unless --stride is given, at its own input size unless --input-size is
given; --flip adds flip test-time augmentation).

--oracle: perfect network outputs encoded from --annotations at --stride, decoded and evaluated: what
decoding loses, with the network taken out. --noise LEVEL degrades them first (Gaussian noise on the
offsets, blurred heat maps, spurious peaks; 0 = perfect; see strongpose_ros.evaluation.NoiseModel),
reproducibly for a given --seed. --connected-only scores only the people whose labelled keypoints are
connected in the kinematic tree (across an unlabelled joint the oracle has no mid-range offsets to follow).

Decoder settings: --set KEY=VALUE (repeatable), any DecoderConfig field, e.g. --set keypoint_score=expected_oks.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="COCO keypoint evaluation (AP/AR table) of the oracle or a network",
                                   description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--oracle", action="store_true",
                      help="evaluate the decoder on perfect outputs from the annotations")
    mode.add_argument("--checkpoint", type=Path, metavar="FILE", help="evaluate a trained network")
    parser.add_argument("--annotations", type=Path, required=True, metavar="FILE", help="COCO keypoint annotation file")
    parser.add_argument("--images", type=Path, metavar="DIR", help="checkpoint: the image folder")
    parser.add_argument("--stride", type=int, default=None,
                        help="output stride (oracle: default 8; checkpoint: default the checkpoint's)")
    parser.add_argument("--input-size", nargs="+", type=POSITIVE_INT, default=None, metavar="SIZE",
                        help="checkpoint: the network input, one side (square) or HEIGHT WIDTH, stride*n+1 "
                             "(default: the checkpoint's input size)")
    parser.add_argument("--device", default="auto", help="checkpoint: auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--flip", action="store_true", help="checkpoint: flip test-time augmentation")
    parser.add_argument("--max-images", type=int, default=0, metavar="N", help="checkpoint: first N images (0: all)")
    parser.add_argument("--results", type=Path, metavar="FILE", help="checkpoint: also write the COCO results file")
    parser.add_argument("--noise", type=float, default=0.0, metavar="LEVEL", help="oracle noise level (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the oracle noise (default 0)")
    parser.add_argument("--connected-only", action="store_true",
                        help="oracle: score only people whose labelled keypoints are connected in the kinematic "
                             "tree (the others become crowd regions; see strongpose_ros.evaluation)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="decoder",
                        help="decoder setting (a DecoderConfig field), repeatable")
    parser.add_argument("--json", metavar="FILE", help="also write the ten figures to FILE")
    parser.set_defaults(func=run)


def _decoder_config(pairs: list[str]):
    from strongpose_ros.decode import DecoderConfig

    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            changes[key.strip()] = json.loads(text)  # numbers, true/false
        except json.JSONDecodeError:
            changes[key.strip()] = text  # a bare word: a mode name
    return DecoderConfig.from_dict(changes)


def _run_oracle(args: argparse.Namespace, config) -> tuple[dict[str, float], str]:
    from strongpose_ros.evaluation import evaluate_coco, load_coco, oracle_results, without_disconnected
    from strongpose_ros.schema import COCO17

    stride = 8 if args.stride is None else args.stride  # [paper] evaluation stride
    if stride < 1:
        raise ValueError(f"--stride must be a positive integer, got {stride}")
    if not args.noise >= 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    coco = load_coco(args.annotations)
    results = oracle_results(coco, stride=stride, noise=args.noise, seed=args.seed, config=config)
    people = sum(1 for a in coco.dataset.get("annotations", []) if a.get("num_keypoints", 0) > 0
                 and not a.get("iscrowd", 0))
    title = (f"Oracle evaluation of the decoder: {args.annotations} ({len(coco.getImgIds())} images, {people} people "
             f"with keypoints), stride {stride}, noise {args.noise:g}, seed {args.seed}")
    if args.connected_only:
        coco = without_disconnected(coco, COCO17)
        title += ", people with tree-connected labels only"
    return evaluate_coco(coco, results), title


def _run_checkpoint(args: argparse.Namespace, config) -> tuple[dict[str, float], str]:
    from strongpose_ros.checkpoint import CheckpointError
    from strongpose_ros.train.evaluate import EvaluationError, evaluate_checkpoint

    if args.images is None:
        raise ValueError("--checkpoint needs --images DIR, the folder of the annotation file's images")
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    input_size = args.input_size
    if input_size is not None:
        if len(input_size) > 2:
            raise ValueError(f"--input-size takes one side or HEIGHT WIDTH, got {len(input_size)} numbers")
        input_size = (input_size[0], input_size[-1])
    try:
        figures = evaluate_checkpoint(args.checkpoint, args.annotations, args.images, flip=args.flip,
                                      device=args.device, output_stride=args.stride, results_path=args.results,
                                      decoder=config, max_images=args.max_images, input_size=input_size)
    except (CheckpointError, EvaluationError) as exc:
        raise ValueError(str(exc)) from exc
    first = f" (first {args.max_images} images)" if args.max_images else ""
    size = f", input {input_size[0]}x{input_size[1]}" if input_size else ""
    title = f"Evaluation of {args.checkpoint} on {args.annotations}{first}{size}{', flip' if args.flip else ''}"
    return figures, title


MODES = {"oracle": _run_oracle, "checkpoint": _run_checkpoint}


def run(args: argparse.Namespace) -> int:
    from strongpose_ros.cli.common import write_json
    from strongpose_ros.evaluation import format_table

    if not args.oracle and args.checkpoint is None:
        print("strongpose eval: say what to evaluate: --oracle (perfect outputs from the annotations) or "
              "--checkpoint FILE (a trained network)", file=sys.stderr)
        return 2
    mode = "oracle" if args.oracle else "checkpoint"
    try:
        config = _decoder_config(args.decoder)
        figures, title = MODES[mode](args, config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"strongpose eval: {exc}", file=sys.stderr)
        return 2
    print(format_table(figures, title))
    write_json(args.json, figures)
    return 0
