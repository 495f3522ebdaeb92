"""`strongpose bench NAME`: run one of the benchmarks in `strongpose_ros.bench`.

A benchmark is a module of that package defining `add_arguments(parser)` and `run(args) -> dict` (figures
named for what they measure, units in the name); it prints its own table, and `--json` writes the figures.
Other modules there (the baseline decoder, say) are helpers of the benchmarks and are not listed.
"""

from __future__ import annotations

import argparse
import pkgutil
from importlib import import_module
from types import ModuleType

from strongpose_ros.cli.common import write_json


def available() -> dict[str, ModuleType]:
    """The benchmark modules by name."""
    import strongpose_ros.bench as package

    modules = (import_module(f"strongpose_ros.bench.{m.name}") for m in pkgutil.iter_modules(package.__path__))
    return {m.__name__.rsplit(".", 1)[-1]: m for m in modules if hasattr(m, "run") and hasattr(m, "add_arguments")}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    names = parser.add_subparsers(dest="benchmark", metavar="NAME")
    names.required = True
    for name, module in sorted(available().items()):
        sub = names.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        module.add_arguments(sub)
        sub.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
        sub.set_defaults(func=_runner(module))


def _runner(module):
    def run(args: argparse.Namespace) -> int:
        figures = module.run(args)
        write_json(args.json, figures)
        return 0

    return run
