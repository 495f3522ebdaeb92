"""`strongpose bag process IN OUT --topic T`: run the estimator over a rosbag2, outputs into a new rosbag2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strongpose_ros.cli.common import POSITIVE_INT, write_json

_DESCRIPTION = """\
Run every image message of TOPIC in the rosbag2 IN (sqlite3 or MCAP; sensor_msgs/Image or
CompressedImage) through StrongPose and write the results into the new rosbag2 OUT:
PREFIX/persons (PersonArray), PREFIX/body_heatmap (BodyHeatmap, unless --no-heatmap), PREFIX/schema
(PoseSchema, once), optionally PREFIX/overlay (--overlay) and a copy of the input topic (--copy-input).
Outputs keep each input message's bag timestamp and header stamp/frame_id. IN is only read.

Messages that cannot be decoded are reported, skipped and counted. An existing OUT is refused unless
--overwrite (which replaces only a rosbag2 folder). Model, decoder and tracking settings are the pose
node's defaults, or those of its parameter file (--params config/strongpose.yaml), so the results are
those of the node in input.mode every_frame.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bag", help="rosbag2 tools: `bag process` runs StrongPose over a bag")
    actions = parser.add_subparsers(dest="bag_action", metavar="ACTION")
    actions.required = True
    process = actions.add_parser(
        "process", help="run StrongPose over every image of a bag topic, outputs into a new bag",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    process.add_argument("input", type=Path, metavar="IN", help="input rosbag2 folder (never modified)")
    process.add_argument("output", type=Path, metavar="OUT", help="output rosbag2 folder (created)")
    process.add_argument("--topic", required=True, metavar="T", help="image topic in IN, e.g. /camera/image_raw")
    process.add_argument("--compressed", action="store_true",
                         help="T holds sensor_msgs/CompressedImage (T/compressed is tried if T is absent)")
    process.add_argument("--overwrite", action="store_true", help="replace OUT if it is an existing rosbag2")
    process.add_argument("--checkpoint", type=Path, metavar="C",
                         help="StrongPose checkpoint (default: the parameter file's, else the bundled default model)")
    process.add_argument("--params", type=Path, metavar="FILE",
                         help="the pose node's parameter file (decoder, tracking, input size, device)")
    process.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: auto)")
    process.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output storage (mcap)")
    process.add_argument("--prefix", default="/pose_node", help="namespace of the output topics (/pose_node)")
    process.add_argument("--no-heatmap", action="store_true", help="do not write BodyHeatmap messages")
    process.add_argument("--overlay", action="store_true", help="also write overlay images (skeletons drawn)")
    process.add_argument("--copy-input", action="store_true", help="also copy the input topic into OUT")
    process.add_argument("--batch", type=POSITIVE_INT, default=1, metavar="N", help="frames per network call (1)")
    process.add_argument("--quiet", action="store_true", help="no progress bar")
    process.add_argument("--json", metavar="FILE", help="also write the summary figures to FILE")
    process.set_defaults(func=run_process)


def _checkpoint(args: argparse.Namespace, from_params: str) -> str:
    """--checkpoint, else the parameter file's, else '' (the bundled default model, resolved by the estimator's
    loader like the node's empty `checkpoint` parameter)."""
    if args.checkpoint is not None:
        return str(args.checkpoint)
    if from_params:
        return from_params
    from strongpose_ros.checkpoint import default_path

    print(f"using the bundled default model {default_path()}", file=sys.stderr)
    return ""


def run_process(args: argparse.Namespace) -> int:
    try:
        from strongpose_ros.ros.bag_process import (
            BagProcessConfig,
            BagProcessError,
            check_output_paths,
            estimator_from_settings,
            process_bag,
            read_node_parameters,
        )
    except ImportError as exc:
        print(f"strongpose bag: needs ROS 2 Python packages (rclpy, sensor_msgs, strongpose_ros.msg): {exc}. "
              "Source the workspace first (. ./env.sh).", file=sys.stderr)
        return 2
    from strongpose_ros.checkpoint import CheckpointError

    try:
        config = BagProcessConfig(prefix=args.prefix, storage=args.storage, heatmap=not args.no_heatmap,
                                  overlay=args.overlay, copy_input=args.copy_input, batch=args.batch)
        overrides = {} if args.device is None else {"device": args.device}
        settings = read_node_parameters(args.params, overrides)
        overrides["checkpoint"] = _checkpoint(args, settings.model.checkpoint)
        settings = read_node_parameters(args.params, overrides)
        check_output_paths(args.input, args.output, args.overwrite)  # before spending time on the model
        estimator, tracker = estimator_from_settings(settings)
        summary = process_bag(args.input, args.output, args.topic, estimator=estimator, tracker=tracker,
                              compressed=True if args.compressed else None, overwrite=args.overwrite,
                              config=config, progress=not args.quiet)
    except (BagProcessError, CheckpointError, ValueError) as exc:
        print(f"strongpose bag process: {exc}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    write_json(args.json, summary.figures())
    return 0
