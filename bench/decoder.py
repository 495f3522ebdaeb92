#!/usr/bin/env python3
"""Decoder speed benchmark (see strongpose_ros/bench/decoder.py); same as `strongpose bench decoder`."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strongpose_ros.bench import decoder
from strongpose_ros.cli.common import write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=(decoder.__doc__ or "").strip().splitlines()[0])
    decoder.add_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    write_json(args.json, decoder.run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
