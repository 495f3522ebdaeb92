"""`strongpose bench NAME [options]`: run one of the benchmarks registered in `strongpose_ros.bench`.

The benchmark's own options are parsed by its own parser, built only when it runs; `--json FILE`
writes its figures.
"""

from __future__ import annotations

import argparse
from importlib import import_module

from strongpose_ros.bench import BENCHMARKS
from strongpose_ros.cli.common import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  {name:<9} {summary}" for name, summary in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench", help="run a benchmark and print its figures",
        description=f"Benchmarks:\n{listing}\n\n`strongpose bench NAME --help` for a benchmark's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS), metavar="NAME", help="which benchmark")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    parser.set_defaults(func=lambda args: run_benchmark(args.benchmark, args.options))


def run_benchmark(name: str, argv: list[str] | None = None) -> int:
    """Parse `argv` with benchmark `name`'s options, run it, and write `--json` when asked."""
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    module = import_module(f"strongpose_ros.bench.{name}")
    parser = argparse.ArgumentParser(prog=f"strongpose bench {name}", description=BENCHMARKS[name])
    module.add_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    write_json(args.json, module.run(args))
    return 0
