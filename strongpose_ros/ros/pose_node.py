"""`pose_node`: the StrongPose ROS 2 node (DESIGN.md, "Nodes").

Images in (`image` or `image/compressed`), people out (`~/persons`), with the body heat map, an overlay,
RViz markers, the keypoint schema and `/diagnostics`. A lifecycle node:

- configure: load the checkpoint (errors name the file), warm up, create the publishers, publish the schema;
- activate: subscribe (`camera_input.CameraInput`) and start the worker thread;
- deactivate: unsubscribe, stop the worker, move the network off the GPU (`Estimator.release`);
- cleanup (and shutdown, error): release everything.

With `autostart` (default) the node configures and activates itself in its constructor, so `ros2 run` or
a launch file without a lifecycle manager just works; a failure leaves `startup_error` set and `main`
exits with status 1.

Input: `CameraInput` subscribes `image` (or image_transport's `<image>/compressed`) with adaptive QoS
(`input.reliability: auto` follows the publishers) on an executor thread of its own, counts frames lost
before its callback, keeps the newest CameraInfo, and hands frames to a `FrameBuffer`.

Processing: a worker thread takes frames from the buffer, converts, runs the estimator, tracks, and
publishes. Track ids are never given out twice in a node's life (tracking switched off and on, or the
node configured again), except that stamps going backwards (a replay from the start) restart them.
Output headers are the input's (stamp and frame_id), whatever the clock (`use_sim_time` included). Heavy
outputs (heat map, overlay, markers) are computed only while someone subscribes, unless `outputs.always`
is set; markers use the camera's CameraInfo when one is published. Bad input (see
`diagnostics.BAD_REASONS`) is counted, logged at most once per `diagnostics.log_period` per reason, and
produces no output; the node carries on with the next frame.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import Executor, ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from strongpose_ros import checkpoint
from strongpose_ros.checkpoint import CheckpointError
from strongpose_ros.decode import warmup as warmup_decoder
from strongpose_ros.drawing import DrawingConfig, blend_heatmap, draw_poses
from strongpose_ros.estimator import Estimator
from strongpose_ros.msg import BodyHeatmap, PersonArray, PoseSchema
from strongpose_ros.ros.camera_info import intrinsics
from strongpose_ros.ros.camera_input import CameraInput
from strongpose_ros.ros.diagnostics import DiagnosticsConfig, FrameStats, RateLimitedLog, diagnostic_status
from strongpose_ros.ros.image_conversion import ImageConversionError, encoding_info, numpy_to_image, to_bgr8
from strongpose_ros.ros.intake import Frame, FrameBuffer
from strongpose_ros.ros.messages import body_heatmap_msg, marker_array_msg, person_array_msg, pose_schema_msg
from strongpose_ros.ros.parameters import (
    PARAMETERS,
    NodeSettings,
    ParameterError,
    declare_parameters,
    settings_from_values,
)
from strongpose_ros.ros.startup import init_rclpy, warn_undeclared_parameters
from strongpose_ros.tracking import Tracker

__all__ = ["OUTPUT_QOS", "SCHEMA_QOS", "PoseNode", "main", "run_nodes"]

# Outputs are reliable so that `ros2 bag record` keeps every one; heavy ones keep a short history.
OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
HEAVY_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
SCHEMA_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# How long deactivation waits for the frame in progress (a large network on a slow CPU takes seconds).
WORKER_JOIN_TIMEOUT_S = 60.0
_PARAMETER_NAMES = frozenset(spec.name for spec in PARAMETERS)
_APPLIES = {spec.name: spec.applies for spec in PARAMETERS}


def _stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _is_nonfinite_error(exc: Exception) -> bool:
    # The decoder's nonfinite='raise' check says "NaN or infinite" (strongpose_ros.decode.decoder).
    return isinstance(exc, ValueError) and "NaN or infinite" in str(exc)


def _conversion_reason(msg: Any, exc: ImageConversionError) -> str:
    """Which BAD_REASONS entry a conversion failure counts under."""
    if not hasattr(msg, "encoding"):
        return "compressed"
    try:
        encoding_info(msg.encoding)
    except ImageConversionError:
        return "encoding"
    # to_bgr8 refuses known encodings that make no picture (signed, 2-channel generic) with this prefix.
    return "encoding" if str(exc).startswith("to_bgr8:") else "data"


class PoseNode(LifecycleNode):
    """The StrongPose lifecycle node. Extra keyword arguments go to rclpy's Node (context, namespace,
    parameter_overrides, cli_args, ...).

    Public state: `lifecycle_state` ("unconfigured", "inactive", "active", "finalized"), `startup_error`
    (why configure failed, or None), `settings`, `estimator`, `tracker`, `camera` (the CameraInput),
    `stats` (its FrameStats) and `output_counts` (messages built per output).
    """

    def __init__(self, node_name: str = "pose_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._values = declare_parameters(self)
        warn_undeclared_parameters(self, _PARAMETER_NAMES)
        self.stats = FrameStats()
        self._warn = RateLimitedLog(self.get_logger().warning, DiagnosticsConfig().log_period_s)
        self.camera = CameraInput(self, stats=self.stats, warn=self._warn)
        self.startup_error: str | None = None
        self.lifecycle_state = "unconfigured"
        self._settings: NodeSettings | None = None
        try:
            self._settings = settings_from_values(self._values)
            self._warn.period_s = self._settings.log_period
        except ParameterError as exc:
            self.startup_error = f"bad parameters: {exc}"
            self.get_logger().error(self.startup_error)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.estimator: Estimator | None = None
        self.tracker: Tracker | None = None
        self._configured_model = None  # the model settings of the last successful configure
        self._released = False
        self._pubs: dict[str, Any] = {}
        self._buffer: FrameBuffer | None = None
        self._worker: threading.Thread | None = None
        self._next_track_id = 1  # ids are never given out twice in the node's life
        # Counts of heavy outputs built (tests check that nothing is built without subscribers).
        self.output_counts = {"persons": 0, "body_heatmap": 0, "body_heatmap_image": 0, "overlay": 0, "markers": 0}

        # Diagnostics run in every state (a failed configure is reported too), on a steady clock so that
        # they keep coming with use_sim_time before any /clock arrives.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self._last_snapshot = None
        period = self._settings.diagnostics_period if self._settings else 1.0
        self._diag_timer = self.create_timer(period, self.publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        if self._settings is not None and self._settings.autostart:
            self.start()

    @property
    def settings(self) -> NodeSettings | None:
        """The validated parameters (None when the start-up values were refused: see `startup_error`)."""
        return self._settings

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Configure and activate (what autostart does); True when the node ends up active."""
        if self.lifecycle_state == "unconfigured" and self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        if self.lifecycle_state == "inactive" and self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.lifecycle_state == "active"

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._settings is None:
                raise ParameterError(self.startup_error or "bad parameters")
            self.estimator = self._load_estimator(self._settings)
        except (CheckpointError, ParameterError, ValueError, OSError) as exc:  # messages name the file/parameter
            self.startup_error = f"cannot configure: {exc}"
            self.get_logger().error(self.startup_error)
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # anything else (a CUDA error, say) also fails the transition, with its reason
            self.startup_error = f"cannot configure: {type(exc).__name__}: {exc}"
            self.get_logger().error(self.startup_error)
            return TransitionCallbackReturn.FAILURE
        self.startup_error = None
        self._released = False
        settings = self._settings
        self._configured_model = settings.model
        self.tracker = Tracker(self.estimator.schema, settings.tracking, first_id=self._next_track_id)
        self._pubs = {
            "persons": self.create_publisher(PersonArray, "~/persons", OUTPUT_QOS),
            "body_heatmap": self.create_publisher(BodyHeatmap, "~/body_heatmap", HEAVY_QOS),
            # The same map colourised over the frame, for RViz (which cannot draw a BodyHeatmap).
            "body_heatmap_image": self.create_publisher(Image, "~/body_heatmap_image", HEAVY_QOS),
            "overlay": self.create_publisher(Image, "~/overlay", HEAVY_QOS),
            "markers": self.create_publisher(MarkerArray, "~/markers", HEAVY_QOS),
            "schema": self.create_publisher(PoseSchema, "~/schema", SCHEMA_QOS),
        }
        self._pubs["schema"].publish(pose_schema_msg(self.estimator.schema))
        self.lifecycle_state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self._settings
        if self._released:  # deactivate moved the network to the CPU: put it back where it belongs
            try:
                self.estimator = self._rewrap(self.estimator, settings)
            except (ValueError, RuntimeError) as exc:
                self.get_logger().error(f"cannot activate: {exc}")
                return TransitionCallbackReturn.FAILURE
            self._released = False
        inputs = settings.input
        self._buffer = self.camera.start(inputs)
        self._worker = threading.Thread(target=self._work, args=(self._buffer,), name="pose_node_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"active: {self.camera.topic} ({inputs.transport}, {inputs.mode}, input.reliability "
                               f"{inputs.reliability}, depth {inputs.depth}) on {self.estimator.device}")
        self.lifecycle_state = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        if self.estimator is not None:
            self.estimator.release()
            self._released = True
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        self.lifecycle_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in state {state.label}: releasing everything")
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Stop the worker and free the model without lifecycle transitions (process exit)."""
        self._release_all()
        self.camera.close()

    def destroy_node(self) -> None:
        self.camera.close()
        super().destroy_node()

    def _release_all(self) -> None:
        self._stop_input()
        for publisher in self._pubs.values():
            self.destroy_publisher(publisher)
        self._pubs = {}
        if self.estimator is not None:
            self.estimator.release()
        self.estimator = None
        if self.tracker is not None:
            self._next_track_id = self.tracker.next_id
        self.tracker = None
        self._released = False
        self.lifecycle_state = "unconfigured"

    def _stop_input(self) -> None:
        self._buffer = None
        self.camera.stop()  # closes the buffer: the worker ends after the frame in progress
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(WORKER_JOIN_TIMEOUT_S)
            if worker.is_alive():
                self.get_logger().error(f"the worker did not stop within {WORKER_JOIN_TIMEOUT_S} s")

    def _load_estimator(self, settings: NodeSettings) -> Estimator:
        model = settings.model
        path = checkpoint.resolve_path(model.checkpoint)  # empty: the bundled default model
        estimator = Estimator.from_checkpoint(
            path, device=model.device, half=model.half, input_size=model.input_size or None,
            output_stride=model.output_stride or None, decoder=settings.decoder,
        )  # fmt: skip
        if model.warmup:
            # Compile the decoder's kernels and run the network once, so the first real frame is not slow.
            warmup_decoder(estimator.schema)
            try:
                estimator.estimate(np.zeros((*estimator.input_size, 3), dtype=np.uint8))
            except ValueError as exc:
                raise ValueError(f"{path}: the network fails on a blank warm-up frame: {exc}") from exc
        config = estimator.model_config
        self.get_logger().info(
            f"loaded {path}: {config.backbone}, schema {estimator.schema.name}, input {estimator.input_size}, "
            f"stride {estimator.stride}, {estimator.device}{' float16' if estimator.half else ''}"
        )
        return estimator

    def _rewrap(self, estimator: Estimator, settings: NodeSettings) -> Estimator:
        # Device and precision as configured (a changed `device` parameter waits for the next configure).
        model = self._configured_model
        return Estimator(estimator.model, device=model.device, half=model.half, input_size=estimator.input_size,
                         decoder=settings.decoder)

    # --- parameters --------------------------------------------------------------------------------------

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in _PARAMETER_NAMES}
        if not changes:
            return SetParametersResult(successful=True)
        proposed = {**self._values, **changes}
        try:
            settings = settings_from_values(proposed)
            if "checkpoint" in changes:  # a file that is not there is refused now, not at the next configure
                checkpoint.resolve_path(settings.model.checkpoint)
        except (ParameterError, CheckpointError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        previous = self._settings
        self._values, self._settings = proposed, settings
        if self.estimator is not None:
            self.estimator.set_decoder_config(settings.decoder)
        if self.tracker is not None:
            self.tracker.set_config(settings.tracking)
            if previous is not None and settings.tracking_enabled and not previous.tracking_enabled:
                self.tracker.forget()  # old tracks are stale; their ids are not given out again
        self._warn.period_s = settings.log_period
        later = sorted(name for name in changes if _APPLIES[name] in ("configure", "activate"))
        if later:
            self.get_logger().info(f"parameters {later} take effect at the next configure/activate transition")
        if previous is None and self.startup_error and self.startup_error.startswith("bad parameters"):
            self.startup_error = None
        return SetParametersResult(successful=True)

    # --- frames ------------------------------------------------------------------------------------------

    def _refuse(self, reason: str, message: str) -> None:
        self.camera.refuse(reason, message)

    def _work(self, buffer: FrameBuffer) -> None:
        while True:
            frame = buffer.get(timeout=0.5)
            if frame is None:
                if buffer.closed:
                    return
                continue
            try:
                self._process(frame)
            except Exception as exc:  # the worker must outlive any one frame
                self._refuse("inference_error", f"{type(exc).__name__}: {exc}")
            finally:
                buffer.done()

    def _wanted(self, name: str, enabled: bool, always: bool) -> bool:
        publisher = self._pubs.get(name)
        return enabled and publisher is not None and (always or publisher.get_subscription_count() > 0)

    def _process(self, frame: Frame) -> None:
        settings, estimator, tracker = self._settings, self.estimator, self.tracker
        if estimator is None:
            return
        msg, header = frame.msg, frame.msg.header
        started = time.perf_counter()
        try:
            image = to_bgr8(msg)
        except ImageConversionError as exc:
            self._refuse(_conversion_reason(msg, exc), str(exc))
            return
        converted = time.perf_counter()

        out = settings.outputs
        want_heatmap = self._wanted("body_heatmap", out.body_heatmap, out.always)
        want_heatmap_image = self._wanted("body_heatmap_image", out.body_heatmap, out.always)
        want_overlay = self._wanted("overlay", out.overlay, out.always)
        want_markers = self._wanted("markers", out.markers, out.always)
        try:
            # The body map is always fetched (a few hundred floats) so that a NaN in it is caught even when
            # nobody subscribes to it: the decoder reads it too (fragment merging).
            result = estimator.estimate(image, heatmaps=True, keypoint_heatmaps=want_heatmap and out.keypoint_heatmaps)
        except ValueError as exc:
            if _is_nonfinite_error(exc):
                self._refuse("nonfinite_output", f"the network output is invalid, nothing published: {exc}")
                return
            raise
        maps = [m for m in (result.body_heatmap, result.keypoint_heatmaps) if m is not None]
        if any(not np.isfinite(m).all() for m in maps):
            self._refuse("nonfinite_output", "NaN or infinity in the heat maps, nothing published")
            return
        estimated = time.perf_counter()

        people = result.people
        if settings.tracking_enabled and tracker is not None:
            ids = tracker.update(people, _stamp_seconds(header))
        else:
            ids = [0] * len(people)
        tracked = time.perf_counter()
        persons = person_array_msg(header, people, result.image_size, estimator.schema.name, ids)
        built = time.perf_counter()
        self._pubs["persons"].publish(persons)
        published = time.perf_counter()
        self.output_counts["persons"] += 1

        if want_heatmap:
            self._pubs["body_heatmap"].publish(body_heatmap_msg(header, result.body_heatmap, result.heatmap_transform,
                                                                result.keypoint_heatmaps))
            self.output_counts["body_heatmap"] += 1
        if want_markers:
            camera = intrinsics(self.camera.camera_info, result.image_size)
            self._pubs["markers"].publish(marker_array_msg(header, people, estimator.schema, result.image_size, ids,
                                                           settings.markers, camera))
            self.output_counts["markers"] += 1
        if want_heatmap_image:
            blended = blend_heatmap(image, result.body_heatmap, result.heatmap_transform)
            self._pubs["body_heatmap_image"].publish(numpy_to_image(blended, "bgr8", header))
            self.output_counts["body_heatmap_image"] += 1
        if want_overlay:  # last: it draws on the frame itself
            drawn = draw_poses(image, people, estimator.schema, ids,
                               DrawingConfig(keypoint_threshold=settings.decoder.keypoint_threshold), copy=False)
            self._pubs["overlay"].publish(numpy_to_image(drawn, "bgr8", header))
            self.output_counts["overlay"] += 1
        finished = time.perf_counter()

        timings = result.timings_ms
        self.stats.processed(
            latency_ms=(published - frame.received) * 1e3,
            stages_ms={
                "queue": (started - frame.received) * 1e3,
                "conversion": (converted - started) * 1e3,
                "preprocess": timings.get("preprocess", 0.0),
                "network": timings.get("network", 0.0),
                "decode": timings.get("decode", 0.0),
                "estimator_other": (estimated - converted) * 1e3 - sum(timings.values()),
                "tracking": (tracked - estimated) * 1e3,
                "messages": (built - tracked) * 1e3,
                "publish": (published - built) * 1e3,
                "heavy_outputs": (finished - published) * 1e3,
            },
        )

    # --- diagnostics -------------------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no frame is waiting or in progress (tests and benchmarks); False on timeout."""
        buffer = self._buffer
        return True if buffer is None else buffer.wait_idle(timeout)

    def publish_diagnostics(self) -> DiagnosticArray:
        snapshot = self.stats.snapshot()
        settings = self._settings
        info: dict[str, object] = self.camera.info()
        if settings is not None:
            info.update(checkpoint=settings.model.checkpoint)
        estimator = self.estimator
        device = str(estimator.device) if estimator is not None else (settings.model.device if settings else "?")
        if estimator is not None:
            config = estimator.model_config
            info.update(device=device, half=estimator.half,
                        model=f"{config.backbone} input {estimator.input_size[0]}x{estimator.input_size[1]} "
                              f"stride {estimator.stride} schema {estimator.schema.name}")
        status = diagnostic_status(snapshot, name=f"{self.get_fully_qualified_name()}: pose estimation",
                                   hardware_id=device, state=self.lifecycle_state, info=info,
                                   previous=self._last_snapshot, error=self.startup_error)
        self._last_snapshot = snapshot
        array_msg = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        if self.context.ok():
            self._diag_pub.publish(array_msg)
        return array_msg


def run_nodes(nodes: Sequence[Node], *, executor: Executor | None = None, context: Any = None) -> None:
    """Spin several nodes in one executor (one process) until Ctrl-C or shutdown, then destroy them.

    The demo composes `source_node` and `pose_node` this way. Default: a MultiThreadedExecutor, so a
    subscription waiting for room in every_frame mode holds back only itself.
    """
    if executor is None:
        executor = MultiThreadedExecutor(context=context if context is not None else nodes[0].context)
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            if isinstance(node, PoseNode):
                node.close()
            node.destroy_node()


def main(args: list[str] | None = None) -> int:
    """`ros2 run strongpose_ros pose_node [--ros-args ...]`: run the node; 1 when it cannot start."""
    if not init_rclpy(args, "pose_node"):
        return 1
    node = None
    try:
        node = PoseNode()
        if node.startup_error is not None or (node.settings.autostart and node.lifecycle_state != "active"):
            if node.startup_error is None:  # the error itself was logged once already
                print("pose_node: could not start", file=sys.stderr)
            return 1
        run_nodes([node])
        node = None  # run_nodes destroyed it
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
