"""The `strongpose` command: one entry point, one module per verb.

Each verb module in this package defines `register(subparsers)`, which adds its parser and sets
`func` (a callable taking the parsed arguments and returning an exit code). Verb modules keep heavy
imports (torch, rclpy) inside their functions so that `strongpose --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# Verbs in the order `--help` lists them; a module per verb in this package (named as the verb, unless listed in
# VERB_MODULES: `import` is a Python keyword).
VERBS: tuple[str, ...] = ("demo", "synth", "train", "eval", "bench", "bag", "export", "import")
VERB_MODULES: dict[str, str] = {"import": "import_weights"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongpose", description="StrongPose multi-person pose estimation tools.")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    subparsers.required = True
    for verb in VERBS:
        import_module(f"strongpose_ros.cli.{VERB_MODULES.get(verb, verb)}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
