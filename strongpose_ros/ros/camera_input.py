"""One camera's input to the pose node: its image subscription, CameraInfo, loss accounting and frame buffer.

A `CameraInput` lives as long as its node (its counters span lifecycle transitions). Its subscriptions
belong to a hidden helper node (`_<node>_input`, in the node's namespace and context, without the
process's global arguments: topic names are resolved by the node itself, remappings included), spun by a
SingleThreadedExecutor on a thread of its own, so frames are taken promptly whatever the node's executor
is doing. Measured here with 1920x1080 frames at 30 Hz from a reliable publisher and a busy Python or
NumPy thread beside the subscriber: its own SingleThreadedExecutor took 180 and 176 of 180, a
MultiThreadedExecutor 162 and 162 (README, "Camera input"). `start(settings)` at activation makes there:
- the image subscription (`adaptive_qos.AdaptiveSubscription`): `image`, or image_transport's
  `<image>/compressed`, with `input.reliability` (auto by default) and a history of `input.depth` frames,
  so that a busy executor takes frames late instead of DDS overwriting them;
- the CameraInfo subscription beside it (`camera_info.CameraInfoListener`: `/camera/image_raw` ->
  `/camera/camera_info`), whose newest message `camera_info` holds;
- a `FrameBuffer` (`intake`): newest-wins or every_frame, from which the node's worker takes frames.

The callback is cheap: account, check the frame's size (`intake.check_frame`), hand it to the buffer.
Every frame published to the node ends in one counter of `stats`: lost in transport (before the callback:
sequence gaps and the middleware's message-lost events), bad (refused), dropped (superseded in the buffer)
or processed (by the node's worker). Losses are logged at most once per `diagnostics.log_period`, with what
to do about them.

`stop()` unsubscribes and closes the buffer (frames still waiting in it count as dropped); `close()` also
ends the helper node and its thread (the node's destruction).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from strongpose_ros.ros.adaptive_qos import AdaptiveQosConfig, AdaptiveSubscription
from strongpose_ros.ros.camera_info import CameraInfoListener
from strongpose_ros.ros.diagnostics import FrameStats
from strongpose_ros.ros.image_topics import camera_topics
from strongpose_ros.ros.intake import Frame, FrameBuffer, check_frame
from strongpose_ros.ros.parameters import InputSettings

__all__ = ["LARGE_DATA_PROFILE", "CameraInput"]

# The Fast DDS profile for best-effort publishers of large images (config/), named in warnings.
LARGE_DATA_PROFILE = "config/fastdds_large_images.xml"


class CameraInput:
    """One camera's intake (see the module docstring).

    `stats`: where frames are counted (a new FrameStats by default); `warn(key, message)`: a rate-limited
    warning (`diagnostics.RateLimitedLog`); `name`: the camera's name in log lines ('' for a node's only one).
    """

    def __init__(self, node: Node, *, stats: FrameStats | None = None,
                 warn: Callable[[str, str], Any] | None = None, name: str = "",
                 qos_config: AdaptiveQosConfig | None = None) -> None:
        self.node, self.name = node, name
        self.stats = stats if stats is not None else FrameStats()
        self._warn = warn or (lambda key, message: node.get_logger().warning(message))
        self.qos_config = qos_config or AdaptiveQosConfig()
        self.callback_group = MutuallyExclusiveCallbackGroup()
        self.settings: InputSettings | None = None
        self.topic = ""
        self.camera_info_topic = ""
        self.buffer: FrameBuffer | None = None
        self._subscription: AdaptiveSubscription | None = None
        self._camera_info: CameraInfoListener | None = None
        self._latest_info: CameraInfo | None = None  # kept across stop/start
        self._arrivals = 0
        self._helper: Node | None = None
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None

    def _intake_node(self) -> Node:
        """The hidden helper node and its executor thread, made at the first start."""
        if self._helper is None:
            node = self.node
            suffix = f"_{self.name}" if self.name else ""
            self._helper = Node(f"_{node.get_name()}_input{suffix}", namespace=node.get_namespace(),
                                context=node.context, use_global_arguments=False, enable_rosout=False,
                                start_parameter_services=False)
            self._executor = SingleThreadedExecutor(context=node.context)
            self._executor.add_node(self._helper)
            self._thread = threading.Thread(target=self._spin, name=f"{node.get_name()}_input{suffix}", daemon=True)
            self._thread.start()
        return self._helper

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException):  # the context was shut down: the process ends
            self._executor.spin()

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, settings: InputSettings) -> FrameBuffer:
        """Subscribe and open a new buffer (what activation does); returns the buffer for the worker."""
        if self._subscription is not None:
            raise RuntimeError("CameraInput.start: already started")
        self.settings = settings
        self.topic, self.camera_info_topic = camera_topics(self.node, settings.transport)  # the node's remappings
        self.buffer = FrameBuffer(settings.mode, settings.queue_size)
        msg_type = Image if settings.transport == "raw" else CompressedImage
        helper = self._intake_node()
        self._subscription = AdaptiveSubscription(
            helper, msg_type, self.topic, self._on_frame, reliability=settings.reliability, depth=settings.depth,
            callback_group=self.callback_group, setting="input.reliability", on_lost=self._on_lost,
            log=self.node.get_logger().info, warn=self._warn, config=self.qos_config)  # fmt: skip
        self._camera_info = CameraInfoListener(helper, self.camera_info_topic, self.callback_group)
        if settings.mode == "every_frame" and settings.reliability == "best_effort":
            self.node.get_logger().warning("input.mode every_frame with input.reliability best_effort: DDS may drop "
                                           "frames before the node sees them (they are counted); use auto or "
                                           "reliable")
        return self.buffer

    def stop(self) -> None:
        """Unsubscribe and close the buffer; waiting frames count as dropped (idempotent)."""
        buffer, self.buffer = self.buffer, None
        if buffer is not None:
            discarded = buffer.close()  # wakes a callback waiting for room (every_frame)
            if discarded:
                self.stats.dropped(discarded)
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._camera_info is not None:
            self._latest_info = self._camera_info.latest or self._latest_info
            self._camera_info.close()
            self._camera_info = None

    def close(self) -> None:
        """`stop()`, then end the helper node and its executor thread (idempotent)."""
        self.stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.destroy_node()

    @property
    def active(self) -> bool:
        return self._subscription is not None

    # --- what the node reads -------------------------------------------------------------------------------
    @property
    def camera_info(self) -> CameraInfo | None:
        """The newest CameraInfo of this camera, or None before the first one."""
        listener = self._camera_info
        latest = listener.latest if listener is not None else None
        return latest or self._latest_info

    @property
    def reliability(self) -> str:
        """The input reliability in use now ('reliable', 'best_effort'; '' while stopped)."""
        return self._subscription.reliability if self._subscription is not None else ""

    def info(self) -> dict[str, object]:
        """What /diagnostics reports about this input."""
        settings = self.settings
        values: dict[str, object] = {"input_topic": self.topic}
        if settings is not None:
            values.update(input_mode=settings.mode, input_transport=settings.transport,
                          input_reliability=f"{settings.reliability}: {self.reliability or 'stopped'}",
                          input_depth=settings.depth)
        subscription = self._subscription
        if subscription is not None:
            values.update(input_publishers=subscription.publishers,
                          input_publishers_matched=subscription.matched_publishers,
                          frames_lost_sequence_gaps=subscription.gaps.missing,
                          frames_lost_middleware=subscription.middleware_lost)
        info = self.camera_info
        values["camera_info"] = (f"{self.camera_info_topic} {info.width}x{info.height}" if info is not None
                                 else f"{self.camera_info_topic} (none received)")
        if self.buffer is not None:
            values["buffer_high_water"] = self.buffer.high_water
        return values

    # --- callbacks (the input's callback group) ------------------------------------------------------------
    def _on_frame(self, msg: Image | CompressedImage) -> None:
        self.stats.received()
        buffer, settings = self.buffer, self.settings
        if buffer is None:  # stopping: the frame was received but cannot be processed any more
            self.stats.dropped()
            return
        try:
            refused = check_frame(msg, settings.max_pixels)
        except Exception as exc:  # an exception here would reach the executor: count it instead
            refused = ("data", f"unreadable frame header: {type(exc).__name__}: {exc}")
        if refused is not None:
            self.refuse(*refused)
            return
        self._arrivals += 1
        dropped = buffer.put(Frame(msg, time.monotonic(), self._arrivals))
        if dropped:
            self.stats.dropped(dropped)

    def refuse(self, reason: str, message: str) -> None:
        """Count a bad frame (`diagnostics.BAD_REASONS`) and log it, rate-limited."""
        self.stats.bad(reason)
        self._warn(reason, f"frame dropped ({reason}): {message}")

    def _on_lost(self, count: int) -> None:
        self.stats.lost(count)
        subscription = self._subscription
        total = self.stats.snapshot().lost
        if subscription is not None and subscription.reliability == "best_effort":
            advice = ("best-effort delivery loses whole frames when one fragment is lost (images above about "
                      "64 kB are fragmented): use a reliable publisher (input.reliability auto then follows it), "
                      "a smaller or compressed stream (input.transport compressed), or start the publisher with "
                      f"FASTDDS_DEFAULT_PROFILES_FILE={LARGE_DATA_PROFILE} (shared memory large enough for "
                      "the frames)")
        else:
            advice = ("the node took frames too late and DDS overwrote them: raise input.depth, or give the node "
                      "more CPU (a MultiThreadedExecutor, its own process)")
        self._warn("lost_in_transport", f"{count} frame(s) on {self.topic} lost before reaching the node "
                                        f"({total} in all): {advice}")
