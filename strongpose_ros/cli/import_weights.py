"""`strongpose import NAME SOURCE --out CKPT.safetensors`: another project's published weights as a StrongPose
checkpoint, checked against the source model before anything is written."""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib import import_module
from pathlib import Path

from strongpose_ros.cli.common import write_json
from strongpose_ros.model.importers import IMPORTERS

_DESCRIPTION = """\
Convert a published model into a StrongPose checkpoint. The importer maps every tensor by the source
graph's own structure, evaluates the source model itself (in NumPy) and our network on the same input,
prints the largest difference of each output, and writes --out only when all are within the tolerance
(exit status 1 otherwise; 2 for a model it does not recognise, with what is missing or unexpected).
The checkpoint records the source files (sha256), licence, command and converter version.

Importers:
{listing}

`strongpose import NAME --help` for an importer's own options."""


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  {name:<9} {importer.summary}" for name, importer in IMPORTERS.items())
    parser = subparsers.add_parser(
        "import", help="convert published weights (PoseNet) into a StrongPose checkpoint, checked against the source",
        description=_DESCRIPTION.format(listing=listing), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("importer", choices=sorted(IMPORTERS), metavar="NAME", help="which importer")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="SOURCE --out FILE and the importer's options")
    parser.set_defaults(func=lambda args: run_importer(args.importer, args.options))


def run_importer(name: str, argv: list[str]) -> int:
    """Parse `argv` with importer `name`'s options, convert, print the checks, write the checkpoint if they pass."""
    from strongpose_ros.checkpoint import CheckpointError

    importer = IMPORTERS[name]
    module = import_module(importer.module)
    parser = argparse.ArgumentParser(prog=f"strongpose import {name}", description=importer.summary)
    module.add_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, metavar="CKPT", help="the checkpoint to write")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the file)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="T",
                        help="largest difference allowed per output, as a fraction of its largest magnitude "
                             "(at least 1); the importer's default otherwise")
    parser.add_argument("--json", metavar="FILE", help="also write the differences to FILE")
    args = parser.parse_args(argv)
    if args.tolerance is not None and not args.tolerance >= 0:
        parser.error(f"--tolerance must be >= 0, got {args.tolerance}")
    command = shlex.join(["strongpose", "import", name, *argv])
    try:
        result = module.from_arguments(args, command)
    except ValueError as exc:  # the importers' errors (unrecognised model, unreadable files) are ValueErrors
        print(f"strongpose import {name}: {exc}", file=sys.stderr)
        return 2
    for line in result.lines():
        print(line)
    write_json(args.json, {f"max_abs_diff_{c.name}": c.max_abs_diff for c in result.checks}
               | {f"allowed_{c.name}": c.allowed for c in result.checks} | {"ok": result.ok,
                                                                               "seconds": result.seconds})
    if not result.ok:
        print(f"strongpose import {name}: the network does not reproduce the source model within the tolerance; "
              f"{args.out} not written", file=sys.stderr)
        return 1
    try:
        path = result.save(args.out)
    except (CheckpointError, OSError) as exc:
        print(f"strongpose import {name}: {exc}", file=sys.stderr)
        return 2
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({'float16' if args.fp16 else 'float32'}, {size:.1f} MB) in {result.seconds:.1f} s")
    return 0
