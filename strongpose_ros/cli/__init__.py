"""The `strongpose` command: one entry point, one module per verb.

Each verb module in this package defines `register(subparsers)`, which adds its parser and sets
`func` (a callable taking the parsed arguments and returning an exit code). Verb modules keep heavy
imports (torch, rclpy) inside their functions so that `strongpose --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# Verbs in the order `--help` lists them; a module per verb in this package.
VERBS: tuple[str, ...] = ("demo", "synth", "train", "eval", "bench", "bag", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongpose", description="StrongPose multi-person pose estimation tools.")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    subparsers.required = True
    for verb in VERBS:
        import_module(f"strongpose_ros.cli.{verb}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
