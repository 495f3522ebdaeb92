"""`strongpose export`: the network as ONNX or TorchScript (or an fp16 checkpoint), checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from strongpose_ros.cli.common import POSITIVE_INT, write_json

_DESCRIPTION = """\
Export a checkpoint's network (normalised RGB images in; heatmaps, short_offsets, mid_offsets,
body_heatmap out) to ONNX or TorchScript, then run the exported file and PyTorch on the same sample input
and print the largest absolute difference of each output. Exits non-zero when a difference is above
--tolerance (default 1e-3) times the output's largest magnitude (at least 1).

--format safetensors-fp16 writes the same StrongPose checkpoint with float16 weights (half the file; the
demo weights ship this way; it loads anywhere a checkpoint does, at any input size), checked the same way,
with a tolerance relative to each output's size (default 5e-3 of its largest magnitude, at least 1).

For ONNX and TorchScript the shapes are FIXED: tracing bakes the batch size and the input height and width
into the file, so it runs only on (BATCH, 3, H, W) as exported (default: batch 1 and the checkpoint's training
input size). Resizing, padding and normalisation ((x/255 - mean) / std, RGB) and the decoder stay outside the
file; the model config is stored in it (ONNX metadata 'strongpose_model_config', TorchScript extra file
'model_config.json'). """


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export the network to ONNX or TorchScript (fixed shapes), or as an fp16 checkpoint, "
                       "and check it against PyTorch",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="C",
                        help="StrongPose .safetensors checkpoint")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors-fp16"),
                        help="export format")
    parser.add_argument("--out", required=True, type=Path, metavar="F", help="file to write")
    parser.add_argument("--input-size", nargs=2, type=POSITIVE_INT, metavar=("H", "W"), default=None,
                        help="fixed input height and width (default: the checkpoint's training input size)")
    parser.add_argument("--batch", type=POSITIVE_INT, default=1, metavar="N", help="fixed batch size (default 1)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="T",
                        help="largest difference allowed per output, as a fraction of its largest magnitude "
                             "(at least 1): default 1e-3, and 5e-3 for safetensors-fp16")
    parser.add_argument("--json", metavar="FILE", help="also write the differences to FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from strongpose_ros.checkpoint import CheckpointError
    from strongpose_ros.export import ExportConfig, ExportError, export_model

    config = (ExportConfig() if args.tolerance is None
              else ExportConfig(tolerance=args.tolerance, fp16_tolerance=args.tolerance))
    try:
        report = export_model(args.checkpoint, args.format, args.out, input_size=args.input_size, batch=args.batch,
                              config=config)
    except (CheckpointError, ExportError, ValueError) as exc:
        print(f"strongpose export: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    write_json(args.json, {f"max_abs_diff_{name}": value for name, value in report.max_abs_diff.items()}
               | {"ok": report.ok, "tolerance": report.tolerance})
    if not report.ok:
        print(f"strongpose export: {args.out} does not match PyTorch within {report.tolerance:g}", file=sys.stderr)
        return 1
    return 0
