"""The one-command demo: `source_node` and `pose_node` composed in one process, outputs written to a folder.

Default (no camera needed): the bundled synthetic clip (strongpose_ros/assets/) with the bundled demo
weights (strongpose_ros/weights/), every frame processed in order (the source waits for each frame's
PersonArray: lockstep). When the weights are not bundled, a seeded untrained ResNet-18 stands in, with a
message saying so: the pipeline runs end to end, the skeletons are meaningless. When the clip is not
bundled, it is generated (strongpose_ros.data.synth.generate_clip).

Live (`camera`, `video`, `bag` or `topic`): the same nodes on that source, newest frame wins (as a robot
would run), until the source ends, `seconds` pass, or Ctrl-C.

Written to the output folder (default ./demo_output/):
- annotated.mp4: the pose node's `~/overlay` frames (annotated_frames/*.jpg where OpenCV cannot write mp4);
- bag/: a rosbag2 (MCAP) of the input image, persons, body_heatmap, overlay, schema and /diagnostics;
- summary.json: frames, people per frame, end-to-end latency per frame and its p50/p95, what ran;
- summary.png: people and latency per frame; preview.jpg: the busiest frame with its body heat map.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from strongpose_ros import checkpoint
from strongpose_ros.drawing import blend_heatmap
from strongpose_ros.msg import BodyHeatmap, PersonArray
from strongpose_ros.ros.adaptive_qos import AdaptiveSubscription
from strongpose_ros.ros.image_conversion import ImageConversionError, to_bgr8
from strongpose_ros.ros.image_topics import COMPRESSED_SUFFIX
from strongpose_ros.ros.recorder import BagRecorder, RecordedTopic

__all__ = ["ASSETS_DIR", "WEIGHTS_DIR", "DemoConfig", "DemoError", "DemoOptions", "DemoResult", "bundled_clip",
           "bundled_weights", "run_demo"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ASSETS_DIR = PACKAGE_DIR / "assets"
WEIGHTS_DIR = checkpoint.WEIGHTS_DIR
CLIP_NAME = "demo_clip.mp4"
CLIP_TRUTH_NAME = "demo_clip.json"  # {"fps": ..., "people_per_frame": [...]} of the bundled clip
POSE_NODE = "pose_node"
SOURCE_NODE = "source_node"


class DemoError(RuntimeError):
    """The demo cannot run (bad source, unusable checkpoint, ...); the message says what to do."""


@dataclass(frozen=True)
class DemoConfig:
    """Constants of the demo [ours].

    - `clip_*`: the clip generated when none is bundled (the bundled one was made with the same values);
    - `fallback_*`: the untrained stand-in network when no weights are bundled (small: runs on any CPU);
    - `discovery_timeout_s`: how long to wait for the nodes to see each other before starting the source;
    - `lockstep_timeout_s`: how long the source waits for one frame's result (a slow CPU, a big model);
    - `drain_timeout_s`: how long to wait for the last results after the source ended;
    - `video_fourcc`: codec of annotated.mp4; `preview_quality`: JPEG quality of preview.jpg.
    """

    clip_seconds: float = 6.0
    clip_seed: int = 13
    clip_fps: float = 15.0
    clip_size: tuple[int, int] = (640, 480)
    fallback_backbone: str = "resnet18"
    fallback_input_size: int = 321
    fallback_seed: int = 0
    discovery_timeout_s: float = 20.0
    lockstep_timeout_s: float = 60.0
    drain_timeout_s: float = 15.0
    video_fourcc: str = "mp4v"
    preview_quality: int = 90


@dataclass
class DemoOptions:
    """What to run on and where to write. At most one of camera / video / bag / topic (none: the bundled clip).

    - `camera`: index or /dev/videoN; `video`: a file; `bag` (+ `bag_topic`): a rosbag2; `topic`: an image
      topic published by something else (…/compressed for CompressedImage);
    - `every_frame`: process every frame in order (lockstep); default: on for the bundled clip only;
    - `seconds`: stop after this long (None: at the end of the source or Ctrl-C);
    - `params`: the pose node's parameter file; `input_size`: network input side (0: the checkpoint's).
    """

    output: Path = Path("demo_output")
    camera: str | None = None
    video: Path | None = None
    bag: Path | None = None
    bag_topic: str = ""
    topic: str | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    input_size: int = 0
    params: Path | None = None
    every_frame: bool | None = None
    loop: bool = False
    seconds: float | None = None
    domain_id: int | None = None
    quiet: bool = False


@dataclass
class DemoResult:
    """Where the outputs are and what the run measured (the content of summary.json)."""

    output: Path
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- bundled assets
def bundled_weights(directory: Path | None = None) -> Path | None:
    """The bundled default checkpoint (`checkpoint.default_path()`; in `directory` if given), or None."""
    path = (WEIGHTS_DIR if directory is None else Path(directory)) / checkpoint.DEFAULT_CHECKPOINT_NAME
    return path if path.is_file() else None


def bundled_clip(directory: Path | None = None) -> Path | None:
    """The bundled demo clip (strongpose_ros/assets/demo_clip.mp4), or None."""
    path = (ASSETS_DIR if directory is None else Path(directory)) / CLIP_NAME
    return path if path.is_file() else None


def clip_truth(annotations: Path) -> list[int]:
    """People per frame of a synth clip, from its COCO-style annotation file (frame order)."""
    data = json.loads(Path(annotations).read_text())
    frames = sorted(data["images"], key=lambda image: image["frame_index"])
    counts = {image["id"]: 0 for image in frames}
    for annotation in data["annotations"]:
        if annotation.get("num_keypoints", 0) > 0 and not annotation.get("iscrowd", 0):
            counts[annotation["image_id"]] += 1
    return [counts[image["id"]] for image in frames]


def make_clip(out_dir: Path, config: DemoConfig) -> tuple[Path, list[int]]:
    """Generate the demo clip (as bundled) into `out_dir`; returns the video and its people per frame."""
    from strongpose_ros.data.synth import generate_clip

    video, annotations = generate_clip(out_dir, config.clip_seconds, config.clip_seed, fps=config.clip_fps,
                                       size=config.clip_size)
    return Path(video), clip_truth(Path(annotations))


def untrained_checkpoint(path: Path, config: DemoConfig) -> Path:
    """Save a seeded, untrained network: the pipeline runs, the detections mean nothing."""
    import torch

    from strongpose_ros.model import build_model

    torch.manual_seed(config.fallback_seed)
    size = config.fallback_input_size
    model = build_model(backbone=config.fallback_backbone, input_size=(size, size))
    return checkpoint.save(path, model, metadata={"note": "untrained stand-in for the demo (no bundled weights)"})


# ------------------------------------------------------------------------------------------- the monitor
class _Monitor(Node):
    """Watches the input and the pose node's outputs: latency, people per frame, the annotated video."""

    def __init__(self, image_topic: str, image_type: type, reliable: bool, video_path: Path, fps: float,
                 config: DemoConfig, follow_publishers: bool = False, **kwargs: Any) -> None:
        super().__init__("demo_monitor", **kwargs)
        self.config = config
        self.video_path, self.fps = video_path, fps
        self.seen: dict[tuple[int, int], float] = {}  # stamp -> arrival of the image
        self.frames: list[dict[str, Any]] = []  # per PersonArray, in arrival order
        self.overlays = 0
        self._writer: cv2.VideoWriter | None = None
        self._frames_dir: Path | None = None
        self._heatmaps: dict[tuple[int, int], BodyHeatmap] = {}  # the latest few, to pair with an overlay
        self._best: tuple[int, tuple[int, int], np.ndarray] | None = None  # (people, stamp, overlay)
        self._best_heatmap: BodyHeatmap | None = None
        self._people_by_stamp: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        output_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._input: AdaptiveSubscription | None = None
        if follow_publishers:  # someone else's topic: its QoS as the pose node takes it (input.reliability auto)
            self._input = AdaptiveSubscription(self, image_type, self.resolve_topic_name(image_topic), self._on_image,
                                               reliability="auto", depth=50, log=lambda message: None)
        else:
            input_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE if reliable else
                                   ReliabilityPolicy.BEST_EFFORT)
            self.create_subscription(image_type, image_topic, self._on_image, input_qos)
        self.persons_sub = self.create_subscription(PersonArray, f"/{POSE_NODE}/persons", self._on_persons,
                                                    output_qos)
        self.overlay_sub = self.create_subscription(Image, f"/{POSE_NODE}/overlay", self._on_overlay, output_qos)
        self.heatmap_sub = self.create_subscription(BodyHeatmap, f"/{POSE_NODE}/body_heatmap", self._on_heatmap,
                                                    output_qos)

    @staticmethod
    def _key(msg: Any) -> tuple[int, int]:
        return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)

    def _on_image(self, msg: Any) -> None:
        with self._lock:
            self.seen.setdefault(self._key(msg), time.monotonic())

    def _on_persons(self, msg: PersonArray) -> None:
        now, key = time.monotonic(), self._key(msg)
        with self._lock:
            arrived = self.seen.get(key)
            self.frames.append({"stamp_ns": key[0] * 1_000_000_000 + key[1], "people": len(msg.persons),
                                "latency_ms": (now - arrived) * 1e3 if arrived is not None else None})
            self._people_by_stamp[key] = len(msg.persons)

    def _on_heatmap(self, msg: BodyHeatmap) -> None:
        key = self._key(msg)
        with self._lock:
            self._heatmaps[key] = msg
            while len(self._heatmaps) > 64:
                self._heatmaps.pop(next(iter(self._heatmaps)))
            if self._best is not None and self._best[1] == key:
                self._best_heatmap = msg

    def _on_overlay(self, msg: Image) -> None:
        try:
            frame = to_bgr8(msg)
        except ImageConversionError as exc:
            self.get_logger().warning(f"overlay frame not written: {exc}")
            return
        self._write_frame(frame)
        key = self._key(msg)
        with self._lock:  # the busiest frame (the first of them) becomes the preview
            people = self._people_by_stamp.get(key, 0)
            if self._best is None or people > self._best[0]:
                self._best = (people, key, frame)
                self._best_heatmap = self._heatmaps.get(key)

    @property
    def preview(self) -> np.ndarray | None:
        """The busiest overlay frame next to the same frame under its colourised body heat map."""
        with self._lock:
            if self._best is None:
                return None
            return _preview(self._best[2], self._best_heatmap)

    def _write_frame(self, frame: np.ndarray) -> None:
        if self._writer is None and self._frames_dir is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*self.config.video_fourcc)
            writer = cv2.VideoWriter(str(self.video_path), fourcc, self.fps, (width, height))
            if writer.isOpened():
                self._writer = writer
            else:  # no mp4 encoder in this OpenCV build: numbered JPEG frames instead
                writer.release()
                self._frames_dir = self.video_path.with_name("annotated_frames")
                self._frames_dir.mkdir(parents=True, exist_ok=True)
                self.get_logger().warning(f"cannot write {self.video_path}; writing frames to {self._frames_dir}")
        if self._writer is not None:
            self._writer.write(frame)
        else:
            cv2.imwrite(str(self._frames_dir / f"{self.overlays:06d}.jpg"), frame)
        self.overlays += 1

    @property
    def annotated_path(self) -> Path | None:
        if self._writer is not None:
            return self.video_path
        return self._frames_dir

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._input is not None:
            self._input.close()


def _preview(frame: np.ndarray, heatmap: BodyHeatmap | None) -> np.ndarray:
    """The overlay next to the same frame with the colourised body heat map laid over it."""
    if heatmap is None:
        return frame
    try:
        body = np.frombuffer(bytes(heatmap.body.data), dtype=np.float32).reshape(heatmap.body.height,
                                                                                  heatmap.body.width)
    except ValueError:
        return frame
    blended = blend_heatmap(frame, body, heatmap)
    return np.concatenate([frame, blended], axis=1)


# ------------------------------------------------------------------------------------------- the run
@dataclass
class _Plan:
    """What the options resolve to: the source node's and pose node's parameters, and labels."""

    source_params: dict[str, Any] | None
    image_topic: str
    image_type: type
    input_reliable: bool
    every_frame: bool
    label: str
    fps: float
    truth: list[int] | None = None
    pose_remap: list[str] = field(default_factory=list)
    compressed: bool = False
    follow_publishers: bool = False  # --topic: someone else's publisher, of unknown QoS


def _say(options: DemoOptions, message: str) -> None:
    if not options.quiet:
        print(message, flush=True)


def _resolve_checkpoint(options: DemoOptions, config: DemoConfig, out: Path) -> tuple[Path, str]:
    if options.checkpoint is not None:
        if not Path(options.checkpoint).is_file():
            raise DemoError(f"checkpoint {options.checkpoint} does not exist")
        return Path(options.checkpoint), "given"
    weights = bundled_weights()
    if weights is not None:
        return weights, "bundled"
    print(f"strongpose demo: no bundled demo weights in {WEIGHTS_DIR} (not trained yet). Using an UNTRAINED "
          f"{config.fallback_backbone} instead: the pipeline runs end to end, but its skeletons are meaningless. "
          "Train one (`strongpose train`) and pass --checkpoint FILE.", file=sys.stderr, flush=True)
    return untrained_checkpoint(out / f"untrained_{config.fallback_backbone}.safetensors", config), "untrained"


def _plan(options: DemoOptions, config: DemoConfig, out: Path) -> _Plan:
    chosen = [name for name in ("camera", "video", "bag", "topic") if getattr(options, name) not in (None, "")]
    if len(chosen) > 1:
        raise DemoError(f"choose one source, not {' and '.join('--' + c for c in chosen)}")
    live_every = bool(options.every_frame)
    base = {"autostart": False, "loop": options.loop}
    if options.topic:
        topic = options.topic.rstrip("/")
        compressed = topic.endswith(COMPRESSED_SUFFIX)
        # image_transport's naming: remapping `image` to the base topic moves `<image>/compressed` with it.
        remap = ["--ros-args", "-r", f"image:={topic[: -len(COMPRESSED_SUFFIX)] if compressed else topic}"]
        return _Plan(None, topic, CompressedImage if compressed else Image, False, live_every,
                     f"topic {topic}", 15.0, pose_remap=remap, compressed=compressed, follow_publishers=True)
    if options.camera not in (None, ""):
        params = {**base, "source": "camera", "path": str(options.camera)}
        return _Plan(params, "/image", Image, True, live_every, f"camera {options.camera}", 30.0)
    if options.video is not None or options.bag is not None:
        kind, path = ("video", options.video) if options.video is not None else ("bag", options.bag)
        params = {**base, "source": kind, "path": str(path), "topic": options.bag_topic if kind == "bag" else ""}
        fps = 15.0
        if kind == "video":
            capture = cv2.VideoCapture(str(path))
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 15.0
            capture.release()
        return _Plan(params, "/image", Image, True, live_every, f"{kind} {path}", fps)
    clip, truth = bundled_clip(), None
    if clip is not None:
        truth_file = clip.with_name(CLIP_TRUTH_NAME)
        if truth_file.is_file():
            truth = json.loads(truth_file.read_text()).get("people_per_frame")
    else:
        _say(options, f"no bundled clip in {ASSETS_DIR}: generating one ({config.clip_seconds:g} s, "
                      f"{config.clip_size[0]}x{config.clip_size[1]})")
        clip, truth = make_clip(out / "clip", config)
    every = True if options.every_frame is None else options.every_frame
    params = {**base, "source": "video", "path": str(clip)}
    return _Plan(params, "/image", Image, True, every, f"bundled clip {clip.name}", config.clip_fps, truth=truth)


def _prepare_output(out: Path) -> dict[str, Path]:
    if out.exists() and not out.is_dir():
        raise DemoError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    files = {"video": out / "annotated.mp4", "bag": out / "bag", "summary": out / "summary.json",
             "plot": out / "summary.png", "preview": out / "preview.jpg"}
    # A previous demo run's outputs are replaced; anything else in the folder is left alone.
    if files["bag"].exists():
        if not (files["bag"] / "metadata.yaml").is_file():
            raise DemoError(f"{files['bag']} exists and is not a rosbag2 from a previous demo; move it away")
        shutil.rmtree(files["bag"])
    shutil.rmtree(out / "annotated_frames", ignore_errors=True)
    for key in ("video", "summary", "plot", "preview"):
        files[key].unlink(missing_ok=True)
    return files


def _pose_parameters(options: DemoOptions, checkpoint: Path, every_frame: bool, compressed: bool) -> list[Parameter]:
    values: dict[str, Any] = {}
    if options.params is not None:
        from strongpose_ros.ros.bag_process import read_parameter_file  # one reading of a parameter file

        values.update(read_parameter_file(options.params))
    values.update({"checkpoint": str(checkpoint), "device": options.device,
                   # The demo records every output, so they are computed whether or not RViz watches.
                   "outputs.always": True})
    if options.input_size:
        values["input_size"] = int(options.input_size)
    if compressed:
        values["input.transport"] = "compressed"
    if every_frame:
        values.update({"input.mode": "every_frame", "input.reliability": "reliable", "input.depth": 10})
    return [Parameter(name, value=value) for name, value in values.items()]


def run_demo(options: DemoOptions | None = None, config: DemoConfig | None = None) -> DemoResult:
    """Run the demo (see the module docstring); returns where the outputs are and the summary."""
    options, config = options or DemoOptions(), config or DemoConfig()
    out = Path(options.output)
    files = _prepare_output(out)
    plan = _plan(options, config, out)
    checkpoint, weights = _resolve_checkpoint(options, config, out)
    _say(options, f"strongpose demo: {plan.label}, checkpoint {checkpoint} ({weights} weights), "
                  f"{'every frame' if plan.every_frame else 'newest frame wins'}")

    from rclpy.signals import SignalHandlerOptions

    context = rclpy.context.Context()
    # Ctrl-C stays a KeyboardInterrupt in this thread, so the outputs are finished cleanly.
    rclpy.init(context=context, domain_id=options.domain_id, signal_handler_options=SignalHandlerOptions.NO)
    run = _Run(options, config, plan, files, checkpoint, context)
    started = time.monotonic()
    try:
        run.start()
        run.spin()
    finally:
        run.close()
    wall = time.monotonic() - started
    intake = run.pose.stats.snapshot() if run.pose is not None else None
    return _finish(options, config, plan, files, run.monitor, run.recorder, run.source, checkpoint, weights, wall,
                   run.interrupted, intake)


class _Run:
    """The composed nodes of one demo run, their start, their spin and their orderly end."""

    def __init__(self, options: DemoOptions, config: DemoConfig, plan: _Plan, files: dict[str, Path],
                 checkpoint: Path, context: Any) -> None:
        self.options, self.config, self.plan, self.files = options, config, plan, files
        self.checkpoint, self.context = checkpoint, context
        self.executor = MultiThreadedExecutor(context=context)
        self.nodes: list[Node] = []
        self.pose = self.source = self.recorder = self.monitor = None
        self.interrupted = False

    def start(self) -> None:
        from strongpose_ros.ros.pose_node import PoseNode
        from strongpose_ros.ros.source_node import SourceNode

        options, config, plan, context = self.options, self.config, self.plan, self.context
        self.pose = PoseNode(POSE_NODE, context=context, cli_args=plan.pose_remap or None,
                             parameter_overrides=_pose_parameters(options, self.checkpoint, plan.every_frame,
                                                                  plan.compressed))
        self.nodes.append(self.pose)
        if self.pose.startup_error is not None or self.pose.lifecycle_state != "active":
            raise DemoError(f"the pose node could not start: {self.pose.startup_error or self.pose.lifecycle_state}")
        image_msgtype = "sensor_msgs/msg/CompressedImage" if plan.compressed else "sensor_msgs/msg/Image"
        topics = [
            RecordedTopic(plan.image_topic, image_msgtype, reliable=plan.input_reliable or plan.follow_publishers,
                          follow_publishers=plan.follow_publishers),
            RecordedTopic(f"/{POSE_NODE}/persons", "strongpose_ros/msg/PersonArray"),
            RecordedTopic(f"/{POSE_NODE}/body_heatmap", "strongpose_ros/msg/BodyHeatmap"),
            RecordedTopic(f"/{POSE_NODE}/overlay", "sensor_msgs/msg/Image"),
            RecordedTopic(f"/{POSE_NODE}/schema", "strongpose_ros/msg/PoseSchema", latched=True, depth=1),
            RecordedTopic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        ]
        self.recorder = BagRecorder(self.files["bag"], topics, context=context)
        self.nodes.append(self.recorder)
        self.monitor = _Monitor(plan.image_topic, plan.image_type, plan.input_reliable, self.files["video"], plan.fps,
                                config, follow_publishers=plan.follow_publishers, context=context)
        self.nodes.append(self.monitor)
        if plan.source_params is not None:
            params = dict(plan.source_params)
            if plan.every_frame:
                # As fast as the pose node goes, never faster: each frame waits for its PersonArray.
                params.update(rate=1000.0, lockstep_topic=f"/{POSE_NODE}/persons",
                              lockstep_timeout=config.lockstep_timeout_s)
            self.source = SourceNode(SOURCE_NODE, context=context,
                                     parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
            self.nodes.append(self.source)
            if self.source.startup_error is not None:
                raise DemoError(self.source.startup_error)
        for node in self.nodes:
            self.executor.add_node(node)

    def _connected(self) -> bool:
        """Every subscription matched, so that no frame or output is lost at the start."""
        plan, source, monitor = self.plan, self.source, self.monitor
        counts = self.recorder.publisher_counts()
        # With --topic, the image publisher is someone else's and may come later.
        ready = all(n > 0 for topic, n in counts.items() if topic != plan.image_topic or source is not None)
        ready = ready and all(s.get_publisher_count() > 0 for s in (monitor.persons_sub, monitor.overlay_sub))
        if source is not None:
            matched = source.connections()
            ready = ready and matched["image_subscribers"] >= 3  # pose node, recorder, monitor
            ready = ready and (not plan.every_frame or matched["lockstep_publishers"] > 0)
        return ready

    def _spin_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def spin(self) -> None:
        options, config, source = self.options, self.config, self.source
        try:
            if not self._spin_until(self._connected, config.discovery_timeout_s):
                _say(options, "warning: not every node saw the others in time; starting anyway")
            if source is not None:
                source.start()
            _say(options, "running" + ("" if self.plan.every_frame and source is not None else "; Ctrl-C to stop"))
            stop_at = None if options.seconds is None else time.monotonic() + options.seconds
            self._spin_until(lambda: (source is not None and source.done.is_set())
                             or (stop_at is not None and time.monotonic() > stop_at), None)
            if source is not None:
                source.stop()
            # The last frames' results are still on their way.
            monitor = self.monitor
            published = source.frames_published if source is not None else len(monitor.seen)
            self.pose.wait_idle(config.drain_timeout_s)
            self._spin_until(lambda: len(monitor.frames) >= published and monitor.overlays >= published
                             and self._recorded_everything(),
                             config.drain_timeout_s if self.plan.every_frame else 1.0)
        except (KeyboardInterrupt, ExternalShutdownException):
            self.interrupted = True
            _say(options, "\nstopping")

    def _recorded_everything(self) -> bool:
        """The bag holds every per-frame output the pose node has published (its subscription may lag)."""
        if self.recorder is None:
            return True
        published = self.pose.output_counts
        return all(self.recorder.counts[f"/{POSE_NODE}/{name}"] >= published[name]
                   for name in ("persons", "body_heatmap", "overlay"))

    def close(self) -> None:
        """Stop the source, finish the video and the bag, destroy the nodes (also after an error)."""
        if self.source is not None:
            self.source.stop()
        self.executor.shutdown()
        if self.monitor is not None:
            self.monitor.close()
        if self.recorder is not None:
            self.recorder.close()
        for node in reversed(self.nodes):
            if node is self.pose:
                self.pose.close()
            node.destroy_node()
        self.context.try_shutdown()


# ------------------------------------------------------------------------------------------- outputs
def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _finish(options: DemoOptions, config: DemoConfig, plan: _Plan, files: dict[str, Path], monitor: _Monitor,
            recorder: BagRecorder, source: Any, checkpoint: Path, weights: str, wall: float,
            interrupted: bool, intake: Any = None) -> DemoResult:
    frames = monitor.frames
    people = [f["people"] for f in frames]
    latency = [f["latency_ms"] for f in frames if f["latency_ms"] is not None]
    if source is not None:
        published = source.frames_published
    elif intake is not None:  # someone else's publisher: what reached the pose node or was lost on the way
        published = intake.received + intake.lost
    else:
        published = len(monitor.seen)
    summary: dict[str, Any] = {
        "source": plan.label,
        "mode": "every_frame" if plan.every_frame else "newest",
        "checkpoint": str(checkpoint),
        "weights": weights,
        "frames": published,
        "frames_processed": len(frames),
        "frames_dropped": max(0, published - len(frames)),
        "frames_lost_in_transport": intake.lost if intake is not None else 0,
        "frames_skipped_by_source": source.frames_skipped if source is not None else 0,
        "people_per_frame": people,
        "people_mean": float(np.mean(people)) if people else 0.0,
        "latency_ms_per_frame": [f["latency_ms"] for f in frames],
        "latency_ms_p50": _percentile(latency, 50),
        "latency_ms_p95": _percentile(latency, 95),
        "stamps_ns": [f["stamp_ns"] for f in frames],
        "wall_s": wall,
        "processed_fps": len(frames) / wall if wall > 0 else 0.0,
        "interrupted": interrupted,
        "bag_messages": {topic: int(n) for topic, n in sorted(recorder.counts.items())},
    }
    if plan.truth is not None:
        summary["true_people_per_frame"] = plan.truth
    files = dict(files)
    annotated = monitor.annotated_path
    if annotated is None:
        files.pop("video")
    else:
        files["video"] = annotated
    if monitor.preview is not None:
        cv2.imwrite(str(files["preview"]), monitor.preview, [cv2.IMWRITE_JPEG_QUALITY, config.preview_quality])
    else:
        files.pop("preview")
    try:
        _plot(summary, files["plot"])
    except ImportError:
        files.pop("plot")
    summary["outputs"] = {key: str(path) for key, path in files.items()}
    files["summary"].write_text(json.dumps(_json_ready(summary), indent=2) + "\n")
    _say(options, _report(summary, files))
    return DemoResult(Path(options.output), summary, files)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    people = summary["people_per_frame"]
    latency = [np.nan if v is None else v for v in summary["latency_ms_per_frame"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    frames = np.arange(len(people))
    top.step(frames, people, where="mid", label="detected")
    truth = summary.get("true_people_per_frame")
    if truth:
        top.step(np.arange(len(truth)), truth, where="mid", linestyle="--", label="in the clip")
    top.set_ylabel("people")
    top.legend(loc="upper right")
    top.set_title(f"strongpose demo: {summary['source']} ({summary['weights']} weights)", fontsize=9)
    bottom.plot(frames, latency, ".-", markersize=3, label="latency")
    for key, style in (("latency_ms_p50", ":"), ("latency_ms_p95", "--")):
        if summary.get(key) is not None:
            bottom.axhline(summary[key], linestyle=style, color="gray", label=f"{key[11:]} {summary[key]:.0f} ms")
    bottom.set_xlabel("frame")
    bottom.set_ylabel("image -> persons (ms)")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(summary: dict[str, Any], files: dict[str, Path]) -> str:
    p50, p95 = summary["latency_ms_p50"], summary["latency_ms_p95"]
    latency = f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms" if p50 is not None else "no latency measured"
    lines = [f"processed {summary['frames_processed']} of {summary['frames']} frames, "
             f"{summary['people_mean']:.2f} people per frame, {latency}"]
    if summary["weights"] == "untrained":
        lines.append("(untrained stand-in network: the skeletons are meaningless)")
    names = {"video": "annotated video", "bag": "rosbag2 (MCAP)", "summary": "summary", "plot": "plot",
             "preview": "preview"}
    lines += [f"  {names[key]:16s} {path}" for key, path in files.items()]
    return "\n".join(lines)
