"""`strongpose synth`: write the synthetic people data set (COCO keypoint format) and, optionally, a clip."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from strongpose_ros.cli.common import FRACTION, NON_NEGATIVE_INT

_DESCRIPTION = """\
Generate synthetic people in COCO keypoint format: DIR/images/*.jpg and DIR/annotations.json (keypoints,
visible-part masks as RLE, boxes, a few iscrowd regions), and with --clip a video DIR/clip.mp4 (clip.avi
where this OpenCV has no mp4v encoder) with per-frame annotations DIR/clip_annotations.json.

This is a test bed for the whole loop (training, evaluation, demo, node tests) on machines without real
data, with labels exact by construction. It is NOT a substitute for COCO: a model trained on it only
knows these drawn figures.
"""


def _size(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    from strongpose_ros.data.synth import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate the synthetic people data set and clip (a test bed, not a substitute for COCO)",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    parser.add_argument("--images", type=NON_NEGATIVE_INT, default=200, metavar="N",
                        help="number of images (default 200; 0 with --clip writes only the clip)")
    parser.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, metavar="S",
                        help="random seed; the same seed gives identical files (default 0)")
    parser.add_argument("--size", type=_size, default="400x400", metavar="WxH[:WxH]",
                        help="image size, or a range drawn per image, e.g. 320x240:640x480 (default 400x400)")
    parser.add_argument("--clip", type=float, default=0.0, metavar="SECONDS",
                        help="also write a clip of people walking, this many seconds long")
    parser.add_argument("--fps", type=float, default=15.0, help="clip frame rate (default 15)")
    parser.add_argument("--clip-size", type=_size, default="640x480", metavar="WxH",
                        help="clip frame size (default 640x480)")
    parser.add_argument("--crowd-fraction", type=FRACTION, default=None, metavar="F",
                        help="fraction of images with an iscrowd region (default 0.15)")
    parser.add_argument("--max-people", type=NON_NEGATIVE_INT, default=None, metavar="N",
                        help="most people per image (default 8)")
    parser.add_argument("--min-height", type=float, default=None, metavar="PX",
                        help="smallest person's standing height in pixels (default 30)")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (default jpg)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from strongpose_ros.data.synth import SynthConfig, generate_clip, generate_dataset

    if args.images == 0 and not args.clip > 0:
        raise SystemExit("strongpose synth: nothing to do: --images is 0 and no --clip SECONDS was given")
    if args.clip < 0:
        raise SystemExit(f"strongpose synth: --clip must be positive seconds, got {args.clip}")
    if args.clip_size[0] != args.clip_size[1]:
        raise SystemExit("strongpose synth: --clip-size takes one size (WxH), not a range")
    overrides = {}
    if args.max_people is not None:
        if args.max_people < 1:
            raise SystemExit("strongpose synth: --max-people must be at least 1")
        overrides["max_people"] = args.max_people
    if args.min_height is not None:
        if not args.min_height >= 4:
            raise SystemExit(f"strongpose synth: --min-height must be at least 4 pixels, got {args.min_height}")
        overrides["min_stature_px"] = args.min_height
    config = replace(SynthConfig(), **overrides)
    progress = not args.quiet
    if args.images > 0:
        start = time.perf_counter()
        path = generate_dataset(args.out, args.images, args.seed, size=args.size, config=config,
                                crowd_fraction=args.crowd_fraction, image_format=args.format,
                                workers=args.workers, progress=progress)
        elapsed = time.perf_counter() - start
        print(f"wrote {args.images} images and {path} in {elapsed:.1f} s ({args.images / elapsed:.1f} images/s)")
    if args.clip > 0:
        start = time.perf_counter()
        video, annotations = generate_clip(args.out, args.clip, args.seed, fps=args.fps, size=args.clip_size[0],
                                           config=config, progress=progress)
        print(f"wrote {video} and {annotations} in {time.perf_counter() - start:.1f} s")
    return 0
