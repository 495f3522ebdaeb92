"""`strongpose demo`: source + pose node in one process, on the bundled clip or a live source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strongpose_ros.cli.common import NON_NEGATIVE_INT, POSITIVE_FLOAT, write_json

_DESCRIPTION = """\
Without a source option: runs source_node and pose_node in one process on the bundled synthetic clip
with the bundled demo weights (an untrained stand-in, with a warning, where none are bundled), every
frame in order, and writes to --out: annotated.mp4, bag/ (rosbag2, MCAP: image, persons, body_heatmap,
overlay, schema, diagnostics), summary.json (frames, people per frame, latency p50/p95), summary.png and
preview.jpg.

With --camera, --video, --bag or --topic: runs on that source live (newest frame wins; --every-frame
processes each frame in order instead) until it ends, --seconds pass, or Ctrl-C; the same outputs are
written when it stops. Topics: the source publishes /image; the pose node is /pose_node (its outputs are
/pose_node/persons, /pose_node/overlay, ...), so RViz or `ros2 topic echo` can watch while it runs.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the node on the bundled clip (or a camera, video, bag, topic) and write the results",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("demo_output"), metavar="DIR",
                        help="output folder (default ./demo_output)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", nargs="?", const="0", metavar="DEV",
                        help="a V4L2 camera: index or /dev/videoN (default 0)")
    source.add_argument("--video", type=Path, metavar="FILE", help="a video file")
    source.add_argument("--bag", type=Path, metavar="BAG", help="a rosbag2 (sqlite3 or MCAP) holding images")
    source.add_argument("--topic", metavar="T", help="an image topic published by something else (…/compressed: "
                                                      "CompressedImage)")
    parser.add_argument("--bag-topic", default="", metavar="T", help="the image topic in --bag (default: its only one)")
    parser.add_argument("--checkpoint", type=Path, metavar="C", help="StrongPose checkpoint (default: bundled weights)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default auto)")
    parser.add_argument("--input-size", type=NON_NEGATIVE_INT, default=0, metavar="N",
                        help="network input side in pixels (default: the checkpoint's)")
    parser.add_argument("--params", type=Path, metavar="FILE", help="pose node parameter file (config/strongpose.yaml)")
    parser.add_argument("--every-frame", action="store_true", default=None,
                        help="process every frame in order (default for the bundled clip)")
    parser.add_argument("--loop", action="store_true", help="--video/--bag: start again at the end")
    parser.add_argument("--seconds", type=POSITIVE_FLOAT, metavar="S", help="stop after S seconds")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument("--json", metavar="FILE", help="also write the summary figures to FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from strongpose_ros.ros.demo import DemoError, DemoOptions, run_demo
    except ImportError as exc:
        print(f"strongpose demo: needs ROS 2 Python packages (rclpy, sensor_msgs, strongpose_ros.msg): {exc}. "
              "Run `make setup` and source the environment (. ./env.sh).", file=sys.stderr)
        return 2
    from strongpose_ros.checkpoint import CheckpointError

    options = DemoOptions(output=args.out, camera=args.camera, video=args.video, bag=args.bag,
                          bag_topic=args.bag_topic, topic=args.topic, checkpoint=args.checkpoint, device=args.device,
                          input_size=args.input_size, params=args.params, every_frame=args.every_frame,
                          loop=args.loop, seconds=args.seconds, quiet=args.quiet)
    try:
        result = run_demo(options)
    except (DemoError, CheckpointError, ValueError, OSError) as exc:
        print(f"strongpose demo: {exc}", file=sys.stderr)
        return 1
    summary = result.summary
    write_json(args.json, {k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
    return 0 if summary["frames_processed"] > 0 or summary["interrupted"] else 1
