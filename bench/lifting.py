#!/usr/bin/env python3
"""The 3D lifting benchmark (strongpose_ros/bench/lifting.py); the same as `strongpose bench lifting`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strongpose_ros.cli.bench import run_benchmark

if __name__ == "__main__":
    sys.exit(run_benchmark("lifting", sys.argv[1:]))
