"""Importers: other projects' published weights as StrongPose checkpoints, registered by name.

`strongpose import NAME SOURCE --out CKPT.safetensors` runs one. An importer module defines
`add_arguments(parser)` (its SOURCE argument and own options) and `from_arguments(args, command)`, which
returns an `ImportResult`-like object (`model`, `checks`, `ok`, `lines()`, `save(path)`, `seconds`); the
command adds `--out`, `--fp16`, `--tolerance` and `--json`, and writes the checkpoint only when every check
passes. Registered here by name with a one-line summary, so that listing them imports none of them.

- `tfjs`: reading TensorFlow.js graph models (manifest, weight encodings) and evaluating them in NumPy;
- `posenet`: Google's PoseNet (MobileNetV1) tfjs graph model -> a `mobilenet_v1` StrongPose network.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IMPORTERS", "Importer"]


@dataclass(frozen=True)
class Importer:
    name: str
    summary: str
    module: str


IMPORTERS: dict[str, Importer] = {
    "posenet": Importer("posenet", "Google's PoseNet, a MobileNetV1 tfjs graph model (model.json + .bin files)",
                        "strongpose_ros.model.importers.posenet"),
}
