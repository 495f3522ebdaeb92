"""`strongpose bag process`: every image message of a rosbag2 through the estimator, into a new rosbag2.

Input: a rosbag2 (sqlite3 or MCAP) read with `rosbags`; the image topic holds sensor_msgs/Image or
sensor_msgs/CompressedImage. It is only read, never written (the output goes to another folder).
Output: a new rosbag2 with, per input frame, `<prefix>/persons` (PersonArray) and by default
`<prefix>/body_heatmap` (BodyHeatmap), optionally `<prefix>/overlay` (Image) and a copy of the input
topic, and one `<prefix>/schema` (PoseSchema, offered transient local). The default prefix is the pose
node's name, so a processed bag reads like a recording of the node. Every output keeps the input
message's bag timestamp and header (stamp and frame_id): outputs line up with the camera stream.

The output messages are built by the node's own builders (`strongpose_ros.ros.messages`) and serialised
by rclpy, so they are byte-for-byte what the node would publish; the estimator, decoder and tracker
settings can be read from the node's parameter file (`params_file`), so that `ros2 bag play` into the
node (input.mode every_frame) and this tool give the same skeletons.

A message that cannot be deserialised or decoded (corrupt CDR, truncated JPEG, wrong step, ...) is
reported, skipped and counted in the summary. The bag is written under a temporary name next to OUT and
renamed at the end, so an interrupted run never leaves a half-written bag at OUT.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, Writer
from sensor_msgs.msg import CompressedImage, Image

from strongpose_ros import checkpoint
from strongpose_ros.drawing import DrawingConfig, draw_poses
from strongpose_ros.estimator import Estimator
from strongpose_ros.ros.bag_types import typestore
from strongpose_ros.ros.image_conversion import ImageConversionError, numpy_to_image, to_bgr8
from strongpose_ros.ros.messages import body_heatmap_msg, person_array_msg, pose_schema_msg
from strongpose_ros.ros.parameters import NodeSettings, settings_from_values
from strongpose_ros.ros.recorder import STORAGES, RecordedTopic, open_writer
from strongpose_ros.tracking import Tracker

__all__ = [
    "STORAGES",
    "BagProcessConfig",
    "BagProcessError",
    "BagProcessSummary",
    "check_output_paths",
    "estimator_from_settings",
    "process_bag",
    "read_node_parameters",
    "read_parameter_file",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
_NODE_NAME = "pose_node"


class BagProcessError(ValueError):
    """Bad arguments or an unusable input bag; the message says which and why."""


@dataclass(frozen=True)
class BagProcessConfig:
    """- `prefix`: namespace of the output topics (the pose node's fully qualified name by default);
    - `storage`: 'mcap' (rosbag2's default since Iron) or 'sqlite3';
    - `heatmap`: write BodyHeatmap messages; `overlay`: write overlay images (skeletons on the frame);
    - `copy_input`: copy the input image messages into the output bag (a self-contained bag to view);
    - `batch`: frames per network call (more is faster on a GPU; results are the same)."""

    prefix: str = f"/{_NODE_NAME}"
    storage: str = "mcap"
    heatmap: bool = True
    overlay: bool = False
    copy_input: bool = False
    batch: int = 1

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise BagProcessError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if self.batch < 1:
            raise BagProcessError(f"batch must be at least 1, got {self.batch}")
        if not self.prefix.startswith("/"):
            raise BagProcessError(f"prefix must be an absolute topic namespace (start with '/'), got {self.prefix!r}")


@dataclass
class BagProcessSummary:
    """What a run did: frames read, written and skipped (with reasons), people found, time taken."""

    input: Path
    output: Path
    topic: str
    msgtype: str
    frames: int = 0
    processed: int = 0
    skipped: int = 0
    skipped_reasons: Counter = field(default_factory=Counter)
    skipped_messages: list[str] = field(default_factory=list)
    people: int = 0
    seconds: float = 0.0
    topics_written: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        fps = self.processed / self.seconds if self.seconds > 0 else 0.0
        out = [f"{self.input} [{self.topic}, {self.msgtype}] -> {self.output}",
               f"  frames {self.frames}: processed {self.processed}, skipped {self.skipped}"
               + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.skipped_reasons.items()))})" if self.skipped
                  else ""),
               f"  people {self.people} ({self.people / max(1, self.processed):.2f} per frame), "
               f"{self.seconds:.1f} s ({fps:.1f} frames/s)",
               f"  topics written: {', '.join(self.topics_written)}"]
        return out

    def figures(self) -> dict[str, Any]:
        return {"frames": self.frames, "frames_processed": self.processed, "frames_skipped": self.skipped,
                "people": self.people, "seconds": self.seconds,
                **{f"skipped_{k}": v for k, v in self.skipped_reasons.items()}}


# ------------------------------------------------------------------------------------------- node settings
def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_parameter_file(path: str | Path) -> dict[str, Any]:
    """The pose node's values in a ROS parameter file (config/strongpose.yaml layout: the node's name or
    `/**`, then `ros__parameters`), as dotted names ('decoder.peak_threshold': 0.1, ...)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BagProcessError(f"cannot read the parameter file {path}: {exc}") from exc
    # 'pose_node', '/pose_node', '/**/pose_node', '/**': every key that names this node (by its last part).
    sections = [v.get("ros__parameters") for k, v in (data or {}).items()
                if isinstance(v, dict) and str(k).strip("/").split("/")[-1] in (_NODE_NAME, "**")]
    sections = [s for s in sections if isinstance(s, dict)]
    if not sections:
        raise BagProcessError(f"{path} has no '{_NODE_NAME}: ros__parameters:' (or '/**') section")
    values: dict[str, Any] = {}
    for section in sections:
        values.update(_flatten(section))
    return values


def read_node_parameters(path: str | Path | None, overrides: dict[str, Any] | None = None) -> NodeSettings:
    """The pose node's settings from its parameter file (None: the defaults), with `overrides` on top."""
    values = read_parameter_file(path) if path is not None else {}
    values.update(overrides or {})
    try:
        return settings_from_values(values)
    except ValueError as exc:
        raise BagProcessError(f"{path or 'parameters'}: {exc}") from exc


def estimator_from_settings(settings: NodeSettings) -> tuple[Estimator, Tracker | None]:
    """The estimator (and tracker, when tracking is on) the node would build from these settings."""
    model = settings.model
    estimator = Estimator.from_checkpoint(
        checkpoint.resolve_path(model.checkpoint), device=model.device, half=model.half,
        input_size=model.input_size or None, output_stride=model.output_stride or None, decoder=settings.decoder,
    )  # fmt: skip
    tracker = Tracker(estimator.schema, settings.tracking) if settings.tracking_enabled else None
    return estimator, tracker


# ------------------------------------------------------------------------------------------------ the tool
def _topics_listing(reader: Reader) -> str:
    if not reader.connections:
        return "it has no topics"
    return "its topics: " + ", ".join(f"{c.topic} ({c.msgtype}, {c.msgcount} messages)"
                                      for c in sorted(reader.connections, key=lambda c: c.topic))


def _select_connections(reader: Reader, path: Path, topic: str, compressed: bool | None) -> list:
    by_topic = [c for c in reader.connections if c.topic == topic]
    if not by_topic and compressed and not topic.endswith("/compressed"):
        topic = topic.rstrip("/") + "/compressed"  # image_transport's name for the compressed stream
        by_topic = [c for c in reader.connections if c.topic == topic]
    if not by_topic:
        raise BagProcessError(f"bag {path} has no topic {topic!r}; {_topics_listing(reader)}")
    msgtype = by_topic[0].msgtype
    if msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
        raise BagProcessError(f"bag {path}: topic {topic!r} holds {msgtype}, not {IMAGE_TYPE} or {COMPRESSED_TYPE}")
    if compressed is True and msgtype != COMPRESSED_TYPE:
        raise BagProcessError(f"bag {path}: topic {topic!r} holds {msgtype}; --compressed expects {COMPRESSED_TYPE}")
    if compressed is False and msgtype != IMAGE_TYPE:
        raise BagProcessError(f"bag {path}: topic {topic!r} holds {msgtype}; use --compressed for it")
    return by_topic


def check_output_paths(in_path: Path, out_path: Path, overwrite: bool) -> None:
    if not in_path.exists():
        raise BagProcessError(f"input bag {in_path} does not exist")
    src, dst = in_path.resolve(), out_path.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise BagProcessError(f"output {out_path} must not be the input bag {in_path}, inside it, or contain it")
    if out_path.exists() or out_path.is_symlink():
        if not overwrite:
            raise BagProcessError(f"output {out_path} exists; pass --overwrite to replace it")
        is_bag = out_path.is_dir() and (out_path / "metadata.yaml").is_file()
        is_empty_dir = out_path.is_dir() and not any(out_path.iterdir())
        if not (is_bag or is_empty_dir):
            # --overwrite replaces a bag, never an arbitrary file or folder a typo pointed at.
            raise BagProcessError(f"output {out_path} exists and is not a rosbag2 folder; not replacing it")


def process_bag(
    in_path: str | Path,
    out_path: str | Path,
    topic: str,
    *,
    estimator: Estimator,
    tracker: Tracker | None = None,
    compressed: bool | None = None,
    overwrite: bool = False,
    config: BagProcessConfig | None = None,
    drawing: DrawingConfig | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = None,
) -> BagProcessSummary:
    """Run `estimator` over every message of `topic` in the bag at `in_path`; write the outputs to `out_path`.

    `compressed`: None accepts either image type; True expects CompressedImage (and tries `topic`/compressed);
    False expects Image. `overwrite` allows replacing an existing output bag. Raises BagProcessError for bad
    arguments or an unusable input; undecodable messages are skipped and counted in the summary, and
    reported through `log` (default: tqdm.write to stderr, which keeps the progress bar intact).
    """
    config = config or BagProcessConfig()
    in_path, out_path = Path(in_path), Path(out_path)
    check_output_paths(in_path, out_path, overwrite)
    try:
        reader = Reader(in_path)
        reader.open()
    except Exception as exc:  # rosbags has an error type per storage problem
        raise BagProcessError(f"{in_path} could not be read as a rosbag2: {exc}") from exc
    temp = out_path.with_name(f".{out_path.name}.partial-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        connections = _select_connections(reader, in_path, topic, compressed)
        summary = BagProcessSummary(in_path, out_path, connections[0].topic, connections[0].msgtype)
        summary.frames = sum(c.msgcount for c in connections)
        started = time.perf_counter()
        writer = open_writer(temp, config.storage)
        try:
            _Run(reader, writer, connections, summary, estimator, tracker, config, drawing, log).run(progress)
        finally:
            writer.close()
        summary.seconds = time.perf_counter() - started
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    finally:
        reader.close()
    if out_path.exists():
        shutil.rmtree(out_path)
    os.replace(temp, out_path)
    return summary


class _Run:
    """One pass over the input: decode, estimate in batches, track, write."""

    def __init__(self, reader: Reader, writer: Writer, connections: Sequence, summary: BagProcessSummary,
                 estimator: Estimator, tracker: Tracker | None, config: BagProcessConfig,
                 drawing: DrawingConfig | None, log: Callable[[str], Any] | None) -> None:
        from tqdm import tqdm

        self.reader, self.writer, self.connections, self.summary = reader, writer, connections, summary
        self.estimator, self.tracker, self.config = estimator, tracker, config
        self.log = log or (lambda message: tqdm.write(message, file=sys.stderr))
        self.msg_class = CompressedImage if summary.msgtype == COMPRESSED_TYPE else Image
        self.drawing = drawing or DrawingConfig(keypoint_threshold=estimator.decoder_config.keypoint_threshold)
        store = typestore()
        prefix = config.prefix.rstrip("/")
        add = writer.add_connection
        self.out = {"persons": add(f"{prefix}/persons", "strongpose_ros/msg/PersonArray", typestore=store)}
        if config.heatmap:
            self.out["body_heatmap"] = add(f"{prefix}/body_heatmap", "strongpose_ros/msg/BodyHeatmap",
                                           typestore=store)
        if config.overlay:
            self.out["overlay"] = add(f"{prefix}/overlay", IMAGE_TYPE, typestore=store)
        # Offered as the node offers it (reliable, transient local), so that `ros2 bag play` latches it.
        schema = RecordedTopic(f"{prefix}/schema", "strongpose_ros/msg/PoseSchema", latched=True)
        self.out["schema"] = add(schema.topic, schema.msgtype, typestore=store,
                                 offered_qos_profiles=schema.offered_qos())
        self.copy = add(summary.topic, summary.msgtype, typestore=store) if config.copy_input else None
        summary.topics_written = sorted(c.topic for c in [*self.out.values(), *([self.copy] if self.copy else [])])
        self.schema_written = False
        self.bar = None

    def run(self, progress: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.summary.frames, unit="frame", disable=not progress, dynamic_ncols=True)
        pending: list[tuple[int, Any, np.ndarray]] = []
        try:
            for _, timestamp, raw in self.reader.messages(connections=self.connections):
                if self.copy is not None:
                    self.writer.write(self.copy, timestamp, raw)
                decoded = self._decode(timestamp, raw)
                if decoded is None:
                    self.bar.update(1)
                    continue
                pending.append((timestamp, *decoded))
                if len(pending) >= self.config.batch:
                    self._flush(pending)
            self._flush(pending)
        finally:
            self.bar.close()

    def _skip(self, timestamp: int, reason: str, detail: str) -> None:
        summary = self.summary
        summary.skipped += 1
        summary.skipped_reasons[reason] += 1
        message = f"skipped the message at {timestamp} ns on {summary.topic} ({reason}): {detail}"
        summary.skipped_messages.append(message)
        self.log(message)

    def _decode(self, timestamp: int, raw: bytes) -> tuple[Any, np.ndarray] | None:
        try:
            msg = deserialize_message(raw, self.msg_class)
        except Exception as exc:  # rclpy raises RMWError for corrupt CDR
            self._skip(timestamp, "deserialize", str(exc).split(", at ")[0])
            return None
        try:
            return msg, to_bgr8(msg)
        except ImageConversionError as exc:
            self._skip(timestamp, "decode", str(exc))
            return None

    def _flush(self, pending: list) -> None:
        if not pending:
            return
        batch, pending[:] = list(pending), []
        try:
            results = self.estimator.estimate_batch([image for _, _, image in batch], heatmaps=self.config.heatmap)
        except ValueError as exc:  # a NaN output, a refused image: retry one by one to keep the others
            if len(batch) == 1:
                self._skip(batch[0][0], "estimate", str(exc))
                self.bar.update(1)
                return
            for item in batch:
                self._flush([item])
            return
        for (timestamp, msg, image), result in zip(batch, results, strict=True):
            self._write(timestamp, msg, image, result)
            self.bar.update(1)

    def _write(self, timestamp: int, msg: Any, image: np.ndarray, result: Any) -> None:
        header, schema = msg.header, self.estimator.schema
        if not self.schema_written:
            self.writer.write(self.out["schema"], timestamp, serialize_message(pose_schema_msg(schema)))
            self.schema_written = True
        people = result.people
        if self.tracker is not None:
            ids = self.tracker.update(people, header.stamp.sec + header.stamp.nanosec * 1e-9)
        else:
            ids = [0] * len(people)
        persons = person_array_msg(header, people, result.image_size, schema.name, ids)
        self.writer.write(self.out["persons"], timestamp, serialize_message(persons))
        if "body_heatmap" in self.out:
            heatmap = body_heatmap_msg(header, result.body_heatmap, result.heatmap_transform)
            self.writer.write(self.out["body_heatmap"], timestamp, serialize_message(heatmap))
        if "overlay" in self.out:
            drawn = draw_poses(image, people, schema, ids, self.drawing, copy=False)
            self.writer.write(self.out["overlay"], timestamp, serialize_message(numpy_to_image(drawn, "bgr8", header)))
        self.summary.processed += 1
        self.summary.people += len(people)
