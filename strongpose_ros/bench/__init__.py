"""Benchmarks, one module each, run by `strongpose bench NAME` or `python bench/NAME.py`.

A benchmark module defines `add_arguments(parser)` and `run(args) -> dict` (figures named for what they
measure, units in the names); it prints its own table. Registered here by name with a one-line summary,
so that listing them imports none of them (they import torch, numba and rclpy).
"""

BENCHMARKS: dict[str, str] = {
    "model": "network cost per backbone: forward time, parameters, GMACs, target encoding",
    "decoder": "decoder speed against the pure-Python baseline on the same maps, 1 to 40 people",
    "node": "pose_node end to end over DDS: latency, throughput and the node's own overhead",
    "lifting": "3D keypoints from aligned depth: cost per frame for 1 to 20 people at 640x480 and 1280x720",
    "input": "camera input from another process: frames published, received, lost, dropped, processed; latency",
}
