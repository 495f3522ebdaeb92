"""A camera stand-in in its own process: publishes real-size frames at a rate, as a camera driver would.

    python -m strongpose_ros.bench.camera_publisher --width 1280 --height 720 --rate 15 --frames 45 \\
        --reliability reliable --transport raw --topic /image

Frames are the first picture of the bundled demo clip (people in it) resized to the size, as bgr8
`sensor_msgs/Image` on `--topic`, or JPEG `CompressedImage` on `<topic>/compressed` (image_transport's
name); the header stamp is the wall-clock time of publishing (end-to-end latency = arrival - stamp on the
same machine), frame_id `camera_optical_frame`. It waits until a subscriber is matched (and then
`--settle` seconds, so that a subscriber that adapts its QoS has done so), publishes `--frames` frames at
`--rate`, waits `--linger` seconds for reliable delivery to finish, and prints one JSON line: frames
published, bytes per frame, and when the subscriber was matched. Exit status 2 when nobody subscribed in
`--match-timeout` seconds. The input benchmark and the transport tests start it with `subprocess`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "picture"]

CLIP = Path(__file__).resolve().parents[1] / "assets" / "demo_clip.mp4"


def picture(width: int, height: int) -> np.ndarray:
    """The demo clip's first frame at width x height (a smooth synthetic picture if the clip is absent)."""
    import cv2

    capture = cv2.VideoCapture(str(CLIP))
    ok, frame = capture.read()
    capture.release()
    if not ok or frame is None:
        frame = cv2.resize(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8), (64, 48))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camera_publisher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second")
    parser.add_argument("--frames", type=int, default=45, help="frames to publish")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--depth", type=int, default=10, help="publisher history depth (KEEP_LAST)")
    parser.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    parser.add_argument("--topic", default="/image", help="the image topic (compressed: <topic>/compressed)")
    parser.add_argument("--match-timeout", type=float, default=30.0, help="seconds to wait for a subscriber")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between matching and the first frame")
    parser.add_argument("--linger", type=float, default=1.0, help="seconds to stay after the last frame")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image
    from strongpose_ros.ros.image_topics import compressed_topic

    rclpy.init(args=[])
    node = rclpy.create_node("camera_publisher")
    policy = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(depth=args.depth, history=HistoryPolicy.KEEP_LAST, reliability=policy)
    header = Header(frame_id="camera_optical_frame")
    image = picture(args.width, args.height)
    if args.transport == "raw":
        msg = numpy_to_image(image, "bgr8", header)
        publisher = node.create_publisher(Image, args.topic, qos)
    else:
        msg = numpy_to_compressed(image, "jpeg", header)
        publisher = node.create_publisher(CompressedImage, compressed_topic(args.topic), qos)
    started = time.monotonic()
    while publisher.get_subscription_count() == 0:
        if time.monotonic() - started > args.match_timeout:
            print(json.dumps({"published": 0, "error": "no subscriber matched"}), flush=True)
            node.destroy_node()
            rclpy.shutdown()
            return 2
        time.sleep(0.02)
    matched_after = time.monotonic() - started
    time.sleep(args.settle)
    first = time.monotonic()
    for i in range(args.frames):
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        publisher.publish(msg)
        due = first + (i + 1) / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
    elapsed = time.monotonic() - first
    time.sleep(args.linger)
    print(json.dumps({"published": args.frames, "frame_bytes": len(msg.data), "matched_after_s": matched_after,
                      "publish_seconds": elapsed}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
