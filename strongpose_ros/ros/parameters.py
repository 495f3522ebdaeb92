"""The pose node's ROS parameters: one table of names, defaults and meanings, and their validation.

`PARAMETERS` is the single list (config/strongpose.yaml documents the same names and defaults; a test
keeps the two in step). `settings_from_values` turns a name -> value mapping into typed settings and is
the only validation: the node calls it at start-up and in its parameter callback, with the current
values updated by the proposed changes, so a bad value is refused with the reason it gives.

When a change takes effect (`ParameterSpec.applies`):
- "now": at the next frame (decoder thresholds, tracking, output switches, markers, max_pixels);
- "activate": at the next activation (input topic, QoS, processing mode), since the subscription and the
  worker are made then;
- "configure": at the next configuration (the model: checkpoint, device, precision, input size);
- "start": read-only after start-up (autostart, diagnostics period).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor

from strongpose_ros.decode import DecoderConfig
from strongpose_ros.ros.adaptive_qos import RELIABILITIES
from strongpose_ros.ros.diagnostics import DiagnosticsConfig
from strongpose_ros.ros.messages import MarkerConfig
from strongpose_ros.tracking import TrackerConfig

__all__ = [
    "DEFAULT_INPUT_DEPTH",
    "PARAMETERS",
    "InputSettings",
    "ModelSettings",
    "NodeSettings",
    "OutputSettings",
    "ParameterError",
    "ParameterSpec",
    "declare_parameters",
    "default_values",
    "settings_from_values",
]

TRANSPORTS = ("raw", "compressed")
MODES = ("newest", "every_frame")
# Input history depth: deep enough that a busy executor takes frames late rather than DDS overwriting them
# (measured: README, "Camera input"); the node's own newest-wins buffer then decides what is dropped.
DEFAULT_INPUT_DEPTH = 10
OUTPUT_STRIDES = (0, 8, 16, 32)
# 8K UHD (7680 x 4320): larger frames are refused rather than risking memory on a resize.
DEFAULT_MAX_PIXELS = 7680 * 4320
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")
# The decoder's NaN policy is the node's, not a parameter: invalid outputs are counted and not published.
_DECODER_FIXED = {"nonfinite": "raise"}
# Where the node's default differs from DecoderConfig's. COCO AP rewards keeping every candidate however weak,
# so the evaluator keeps DecoderConfig's 0.0; a robot acting on ~/persons wants no faint ghost people. With the
# demo weights on the bundled clip, most people scored 0.5-0.9 and most leftovers of the greedy walk below 0.1.
NODE_DECODER_DEFAULTS = {"min_instance_score": 0.15}


class ParameterError(ValueError):
    """A parameter value that cannot be used; the message names the parameter and says why."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: bool | int | float | str
    description: str
    applies: str = "now"


_DECODER_HELP = {
    "vote_radius": "disk radius R of the heat maps, input pixels [paper: 16]",
    "vote_threshold": "only pixels whose heat-map probability exceeds this vote in the Hough maps",
    "blur_sigma": "Gaussian blur of the Hough maps before peak picking, grid cells (0: off)",
    "peak_threshold": "a Hough-map peak must exceed this to seed a person",
    "peak_window": "side of the local-maximum window, cells (odd)",
    "nms_radius": "NMS radius r, input pixels: a seed this close to a kept keypoint of the same type is skipped",
    "refine_steps": "short-range refinements after each seed and mid-range step",
    "reverse_check_radius": "keep a step a->b only if the offset back from b lands this close to a, px (0: off)",
    "max_people": "at most this many people per image",
    "keypoint_score": "keypoint score: 'plain' or 'expected_oks'",
    "score_window": "cells (odd) of the vote mass read as a plain keypoint score",
    "instance_nms": "'keypoint_soft_nms' (Eq. 1), 'oks_hard' or 'soft_nms'",
    "oks_nms_threshold": "'oks_hard': drop a person whose OKS with a better one exceeds this",
    "soft_nms_sigma": "'soft_nms': score * exp(-OKS^2 / sigma)",
    "min_instance_score": "people scoring at or below this are dropped (0 <= value < 1)",
    "keypoint_threshold": "keypoints scoring at least this span the box; also the drawing/marker threshold",
    "merge_fragments": "join complementary pieces of one person that the body heat map connects",
    "fragment_support": "merge_fragments: keypoint score that counts as supported",
    "fragment_min_body": "merge_fragments: body heat map level that defines connected body regions",
    "fragment_max_gap": "merge_fragments: largest gap between the pieces, times the larger piece's extent",
    "fragment_body_reach": "merge_fragments: a piece needs a keypoint this close to the shared body region, px",
    "fragment_min_extent": "merge_fragments: a piece's extent counts as at least this, px",
    "fragment_max_limb_ratio": "merge_fragments: largest length ratio of a limb and its mirror in the other piece",
    "bhm_rescore": "multiply instance scores by the mean body heat map under the keypoints",
    "backend": "decoder backend: 'auto', 'numpy' or 'torch'",
}
_TRACKER_HELP = {
    "min_similarity": "OKS (or box IoU) a detection needs to continue a track",
    "keypoint_threshold": "keypoints scoring at least this take part in OKS",
    "min_common_keypoints": "fewer keypoints seen in both -> compare boxes instead of OKS",
    "max_age": "frames a track survives unseen",
    "max_gap_s": "seconds (stamp time) a track survives unseen; 0: no limit",
    "min_area": "floor of the OKS scale, pixels^2",
}
_MARKER_HELP = {
    "pixel_size": "metres per image pixel in the marker plane",
    "distance": "metres from the camera to the marker plane (along z of the optical frame)",
    "point_size": "keypoint marker size, metres",
    "line_width": "skeleton line width, metres",
}


def _specs() -> tuple[ParameterSpec, ...]:
    specs = [
        ParameterSpec("autostart", True, "configure and activate at start (false: wait for a lifecycle manager)",
                      "start"),
        ParameterSpec("checkpoint", "", "path of a StrongPose .safetensors checkpoint", "configure"),
        ParameterSpec("device", "auto", "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'", "configure"),
        ParameterSpec("half", True, "float16 inference on a GPU (ignored on the CPU)", "configure"),
        ParameterSpec("input_size", 0, "network input side in pixels (0: the checkpoint's training size)",
                      "configure"),
        ParameterSpec("output_stride", 0, "output stride 8, 16 or 32 (0: the checkpoint's)", "configure"),
        ParameterSpec("warmup", True, "run one blank frame through the model at configure time", "configure"),
        ParameterSpec("input.transport", "raw", "'raw': subscribe `image` (sensor_msgs/Image); 'compressed': "
                      "`image/compressed` (sensor_msgs/CompressedImage)", "activate"),
        ParameterSpec("input.mode", "newest", "'newest': the newest frame wins, older ones are dropped (bounded "
                      "latency); 'every_frame': every message in order (bag processing)", "activate"),
        ParameterSpec("input.reliability", "auto", "input QoS: 'auto' (reliable when every publisher of the topic "
                      "is reliable, else best effort; re-checked as publishers come and go), 'reliable' or "
                      "'best_effort'", "activate"),
        ParameterSpec("input.depth", DEFAULT_INPUT_DEPTH, "input QoS history depth (frames DDS holds until the node "
                      "takes them; the node keeps only the newest)", "activate"),
        ParameterSpec("input.queue_size", 30, "every_frame: frames held before the subscription waits", "activate"),
        ParameterSpec("input.max_pixels", DEFAULT_MAX_PIXELS, "frames with more pixels are refused (counted)"),
    ]
    for f in fields(DecoderConfig):
        if f.name not in _DECODER_FIXED:
            # A KeyError here means a new DecoderConfig field lacks its parameter description above.
            default = NODE_DECODER_DEFAULTS.get(f.name, f.default)
            specs.append(ParameterSpec(f"decoder.{f.name}", default, _DECODER_HELP[f.name]))
    specs.append(ParameterSpec("tracking.enabled", True, "give people stable ids across frames (off: id 0)"))
    for f in fields(TrackerConfig):
        specs.append(ParameterSpec(f"tracking.{f.name}", f.default, _TRACKER_HELP[f.name]))
    specs += [
        ParameterSpec("outputs.body_heatmap", True,
                      "publish ~/body_heatmap and its colourised ~/body_heatmap_image (while subscribed)"),
        ParameterSpec("outputs.keypoint_heatmaps", False, "add the keypoint heat maps (SKHM) to ~/body_heatmap"),
        ParameterSpec("outputs.overlay", True, "publish ~/overlay, the frame with skeletons (while subscribed)"),
        ParameterSpec("outputs.markers", True, "publish ~/markers, RViz markers (while subscribed)"),
        ParameterSpec("outputs.always", False, "compute heavy outputs even when nobody subscribes"),
    ]
    for f in fields(MarkerConfig):
        if f.name in _MARKER_HELP:
            specs.append(ParameterSpec(f"markers.{f.name}", f.default, _MARKER_HELP[f.name]))
    specs += [
        ParameterSpec("diagnostics.period", 1.0, "seconds between /diagnostics messages", "start"),
        ParameterSpec("diagnostics.log_period", DiagnosticsConfig.log_period_s,
                      "seconds between two log lines about the same kind of bad input"),
    ]
    return tuple(specs)


PARAMETERS: tuple[ParameterSpec, ...] = _specs()
_BY_NAME = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class ModelSettings:
    checkpoint: str
    device: str
    half: bool
    input_size: int  # 0: the checkpoint's
    output_stride: int  # 0: the checkpoint's
    warmup: bool


@dataclass(frozen=True)
class InputSettings:
    transport: str
    mode: str
    reliability: str
    depth: int
    queue_size: int
    max_pixels: int


@dataclass(frozen=True)
class OutputSettings:
    body_heatmap: bool
    keypoint_heatmaps: bool
    overlay: bool
    markers: bool
    always: bool


@dataclass(frozen=True)
class NodeSettings:
    """Everything the node's parameters say, typed and validated."""

    autostart: bool
    model: ModelSettings
    input: InputSettings
    decoder: DecoderConfig
    tracking_enabled: bool
    tracking: TrackerConfig
    outputs: OutputSettings
    markers: MarkerConfig
    diagnostics_period: float
    log_period: float


def default_values() -> dict[str, Any]:
    return {spec.name: spec.default for spec in PARAMETERS}


def _typed(name: str, value: Any) -> Any:
    """Check a value against its default's type (ints are accepted for floats: YAML writes 0, not 0.0)."""
    default = _BY_NAME[name].default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"parameter '{name}' must be a bool, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"parameter '{name}' must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"parameter '{name}' must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterError(f"parameter '{name}' must be finite, got {value!r}")
    elif not isinstance(value, str):
        raise ParameterError(f"parameter '{name}' must be a string, got {value!r}")
    return value


def _choice(values: Mapping[str, Any], name: str, options: tuple) -> Any:
    value = values[name]
    if value not in options:
        raise ParameterError(f"parameter '{name}' must be one of {list(options)}, got {value!r}")
    return value


def _at_least(values: Mapping[str, Any], name: str, low: float) -> Any:
    value = values[name]
    if value < low:
        raise ParameterError(f"parameter '{name}' must be >= {low}, got {value!r}")
    return value


def _group(values: Mapping[str, Any], prefix: str, cls: type, **fixed: Any) -> Any:
    """Build a config dataclass from `prefix.<field>` values; its own validation names the field."""
    changes = {name[len(prefix) + 1:]: value for name, value in values.items()
               if name.startswith(prefix + ".") and name[len(prefix) + 1:] in cls.__dataclass_fields__}
    try:
        return cls(**{**changes, **fixed})
    except (TypeError, ValueError) as exc:
        # "DecoderConfig.peak_threshold must be ..." -> "parameter 'decoder.peak_threshold' must be ..."
        message = re.sub(rf"\b{cls.__name__}\.(\w+)", rf"parameter '{prefix}.\1'", str(exc))
        raise ParameterError(message) from None


def settings_from_values(values: Mapping[str, Any]) -> NodeSettings:
    """Validate a complete set of parameter values (name -> value) and type them; raises ParameterError."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}")
    merged = default_values()
    merged.update(values)
    v = {name: _typed(name, value) for name, value in merged.items()}

    device = v["device"]
    if not _DEVICE_RE.fullmatch(device):
        raise ParameterError(f"parameter 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    input_size = v["input_size"]
    if input_size != 0 and input_size < 17:
        raise ParameterError(f"parameter 'input_size' must be 0 (the checkpoint's) or at least 17, got {input_size}")
    model = ModelSettings(v["checkpoint"], device, v["half"], input_size, _choice(v, "output_stride", OUTPUT_STRIDES),
                          v["warmup"])
    inputs = InputSettings(
        transport=_choice(v, "input.transport", TRANSPORTS), mode=_choice(v, "input.mode", MODES),
        reliability=_choice(v, "input.reliability", RELIABILITIES), depth=_at_least(v, "input.depth", 1),
        queue_size=_at_least(v, "input.queue_size", 1), max_pixels=_at_least(v, "input.max_pixels", 1),
    )  # fmt: skip
    decoder = _group(v, "decoder", DecoderConfig, **_DECODER_FIXED)
    if not decoder.min_instance_score < 1.0:
        raise ParameterError(f"parameter 'decoder.min_instance_score' must be below 1 (instance scores lie in 0..1, "
                             f"so every person would be dropped), got {decoder.min_instance_score!r}")
    tracking = _group(v, "tracking", TrackerConfig)
    outputs = OutputSettings(v["outputs.body_heatmap"], v["outputs.keypoint_heatmaps"], v["outputs.overlay"],
                             v["outputs.markers"], v["outputs.always"])
    markers = _group(v, "markers", MarkerConfig, keypoint_threshold=decoder.keypoint_threshold)
    period = v["diagnostics.period"]
    if not period > 0:
        raise ParameterError(f"parameter 'diagnostics.period' must be > 0, got {period!r}")
    return NodeSettings(
        autostart=v["autostart"], model=model, input=inputs, decoder=decoder,
        tracking_enabled=v["tracking.enabled"], tracking=tracking, outputs=outputs, markers=markers,
        diagnostics_period=period, log_period=_at_least(v, "diagnostics.log_period", 0.0),
    )  # fmt: skip


def declare_parameters(node: Any) -> dict[str, Any]:
    """Declare every parameter on `node` (an rclpy Node) with its description; returns name -> value.

    Float parameters are declared with dynamic typing so that `0` from YAML or the command line is
    accepted for `0.0`; `settings_from_values` checks every type instead.
    """
    values = {}
    for spec in PARAMETERS:
        is_float = isinstance(spec.default, float)
        descriptor = ParameterDescriptor(
            description=f"{spec.description} [applies: {spec.applies}]",
            read_only=spec.applies == "start",
            dynamic_typing=is_float,
        )
        param = node.declare_parameter(spec.name, spec.default, descriptor)
        values[spec.name] = param.value
    return values
