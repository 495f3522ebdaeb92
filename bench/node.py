#!/usr/bin/env python3
"""pose_node end to end over DDS: latency, throughput, node overhead; the same as `strongpose bench node`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strongpose_ros.bench import node as bench
from strongpose_ros.cli.common import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(bench.__doc__ or "").strip().splitlines()[0])
    bench.add_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    write_json(args.json, bench.run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
