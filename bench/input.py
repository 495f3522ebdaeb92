#!/usr/bin/env python3
"""The camera input benchmark (strongpose_ros/bench/input.py); the same as `strongpose bench input`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strongpose_ros.cli.bench import run_benchmark

if __name__ == "__main__":
    sys.exit(run_benchmark("input", sys.argv[1:]))
