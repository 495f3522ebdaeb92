"""A subscription whose reliability follows the topic's publishers, and that counts what never reached it.

Reliability (`RELIABILITIES`):
- "auto": rosbag2's adaptive rule: reliable when every publisher of the topic offers reliable, best effort
  otherwise (a reliable reader would not match a best-effort publisher at all); reliable while there is no
  publisher (what most camera drivers offer; a best-effort one that comes later is matched at the next
  check). The choice is checked again every `check_period_s`, so it follows publishers that come and go;
  a change subscribes anew, keeping the old subscription until the new one is matched (duplicates are
  recognised by their sequence numbers and dropped), and is logged with the reason.
- "reliable", "best_effort": as asked. An incompatible publisher (best effort to a reliable request) is
  reported with both sides named.

Why reliable whenever possible: measured here, a best-effort reader of a reliable 1280x720 publisher got 0
of 90 frames over Fast DDS, a reliable one all of them (README, "Camera input"). A reliable KEEP_LAST reader
never blocks a KEEP_LAST publisher: when it falls behind, DDS overwrites its history, which the sequence
numbers reveal. The history `depth` is what lets a busy executor take frames late without losing them.

Every message's publisher and sequence number go through `loss.SequenceGaps`; the middleware's message-lost
events are added up per subscription; `frames_lost` combines them (`loss.lost_in_transport`) and `on_lost`
hears every increase.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind

from strongpose_ros.ros.loss import SequenceGaps, lost_in_transport

__all__ = ["RELIABILITIES", "AdaptiveQosConfig", "AdaptiveSubscription", "adapted_reliability", "describe_qos"]

RELIABILITIES = ("auto", "reliable", "best_effort")
_POLICIES = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


@dataclass(frozen=True)
class AdaptiveQosConfig:
    """- `check_period_s`: how often "auto" looks at the publishers again (a graph query, cheap);
    - `handover_timeout_s`: after a change, the old subscription is kept until the new one is matched, or
      this long;
    - `max_publishers`: publishers whose sequence numbers are remembered."""

    check_period_s: float = 0.5
    handover_timeout_s: float = 2.0
    max_publishers: int = 64


def adapted_reliability(offered: Sequence[Any]) -> str | None:
    """'reliable' when every offered reliability is RELIABLE, 'best_effort' when any is not, None for none."""
    if not offered:
        return None
    return "reliable" if all(policy == ReliabilityPolicy.RELIABLE for policy in offered) else "best_effort"


def _policy_name(policy: Any) -> str:
    return {ReliabilityPolicy.RELIABLE: "reliable", ReliabilityPolicy.BEST_EFFORT: "best effort"}.get(
        policy, str(getattr(policy, "name", policy)).lower())


def describe_qos(profile: QoSProfile) -> str:
    """'reliable, keep last 10, volatile': what a log line needs to compare two sides."""
    history = f"keep last {profile.depth}" if profile.history == HistoryPolicy.KEEP_LAST else "keep all"
    durability = str(getattr(profile.durability, "name", profile.durability)).lower()
    return f"{_policy_name(profile.reliability)}, {history}, {durability}"


def _endpoint_name(info: Any) -> str:
    if not info.node_name or info.node_name.startswith("_NODE_NAME_UNKNOWN"):  # discovered, name not yet known
        return "a publisher"
    namespace = info.node_namespace.rstrip("/")
    return f"{namespace}/{info.node_name}"


def _offer(info: Any) -> str:
    """What a discovered publisher offers that matters for matching (DDS does not announce its history)."""
    profile = info.qos_profile
    durability = str(getattr(profile.durability, "name", profile.durability)).lower()
    return f"{_policy_name(profile.reliability)}, {durability}"


class _Reader:
    """One rclpy subscription of an AdaptiveSubscription, with the middleware's lost count while it counts."""

    def __init__(self, reliability: str) -> None:
        self.reliability = reliability
        self.subscription: Any = None
        self.lost = 0  # the message-lost event's total while `counting`
        self.counting = True
        self.since = 0.0


class AdaptiveSubscription:
    """Subscribes `topic` (fully qualified) with `callback(msg)`; see the module docstring.

    `reliability`: one of RELIABILITIES; `setting`: the parameter that chose it (named in log lines);
    `log(message)`: informational lines (the QoS choice); `warn(key, message)`: problems (a rate-limited
    logger); `on_lost(count)`: frames newly known to be lost before the callback. All callbacks run in
    `callback_group` (give it a MutuallyExclusiveCallbackGroup of its own). Not thread-safe otherwise.
    """

    def __init__(self, node: Node, msg_type: type, topic: str, callback: Callable[[Any], None], *,
                 reliability: str = "auto", depth: int = 10, callback_group: CallbackGroup | None = None,
                 raw: bool = False, setting: str = "reliability", on_lost: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None, warn: Callable[[str, str], None] | None = None,
                 config: AdaptiveQosConfig | None = None) -> None:
        if reliability not in RELIABILITIES:
            raise ValueError(f"{setting} must be one of {list(RELIABILITIES)}, got {reliability!r}")
        if depth < 1:
            raise ValueError(f"AdaptiveSubscription: depth must be >= 1, got {depth}")
        self.config = config or AdaptiveQosConfig()
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.mode, self.depth, self.setting, self.raw = reliability, int(depth), setting, raw
        self.callback_group = callback_group
        self._on_lost = on_lost
        self._log = log or node.get_logger().info
        self._warn = warn or (lambda key, message: node.get_logger().warning(message))
        self._clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.gaps = SequenceGaps(self.config.max_publishers)
        self.received = 0  # messages handed to `callback` (duplicates are not)
        self.publishers = 0  # publishers of the topic in the graph at the last check
        self._lost_closed = 0  # middleware losses of subscriptions replaced
        self._reported = 0
        self._reader: _Reader | None = None
        self._retiring: list[_Reader] = []
        self._timer = None
        infos = self._publishers()
        if reliability == "auto":
            chosen = adapted_reliability([i.qos_profile.reliability for i in infos])
            self._subscribe(chosen or "reliable", self._reason(infos, chosen))
            self._timer = node.create_timer(self.config.check_period_s, self.recheck, callback_group=callback_group,
                                            clock=self._clock)
        else:
            self._subscribe(reliability, f"{setting}: {reliability}")

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def reliability(self) -> str:
        """The reliability subscribed with now ('reliable' or 'best_effort')."""
        return self._reader.reliability if self._reader is not None else ""

    @property
    def qos(self) -> QoSProfile:
        return QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST, reliability=_POLICIES[self.reliability])

    @property
    def middleware_lost(self) -> int:
        """Messages the middleware reported lost (message-lost events), over every subscription made."""
        current = self._reader.lost if self._reader is not None else 0
        return self._lost_closed + current

    @property
    def frames_lost(self) -> int:
        """Messages lost before the callback (`loss.lost_in_transport` of sequence gaps and the middleware's)."""
        return lost_in_transport(self.gaps.missing, self.middleware_lost)

    @property
    def matched_publishers(self) -> int:
        reader = self._reader
        return reader.subscription.get_publisher_count() if reader is not None and reader.subscription else 0

    # --- subscriptions -------------------------------------------------------------------------------------
    def _publishers(self) -> list:
        try:
            return list(self.node.get_publishers_info_by_topic(self.topic))
        except Exception:  # the node is going away
            return []

    def _reason(self, infos: list, chosen: str | None) -> str:
        if chosen is None:
            return f"{self.setting}: auto; no publisher, so reliable until one appears"
        names = ", ".join(f"{_endpoint_name(i)} ({_policy_name(i.qos_profile.reliability)})" for i in infos)
        rule = "every publisher offers reliable" if chosen == "reliable" else "not every publisher offers reliable"
        return f"{self.setting}: auto; {rule}: {names}"

    def _subscribe(self, reliability: str, why: str) -> None:
        reader = _Reader(reliability)
        reader.since = self._now()
        events = SubscriptionEventCallbacks(
            message_lost=lambda event, r=reader: self._on_message_lost(r, event),
            incompatible_qos=lambda event, r=reader: self._on_incompatible(r, event),
        )  # fmt: skip
        qos = QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST, reliability=_POLICIES[reliability])
        reader.subscription = self.node.create_subscription(
            self.msg_type, self.topic, self._on_message, qos, callback_group=self.callback_group,
            event_callbacks=events, raw=self.raw)  # fmt: skip
        old, self._reader = self._reader, reader
        if old is not None:
            # The old reader's later losses may be frames the new one delivers: stop counting them; sequence
            # gaps see any frame that neither delivered.
            old.counting = False
            self._lost_closed += old.lost
            self._retiring.append(old)
        self._log(f"{self.topic}: subscribed {describe_qos(qos)} ({why})")

    def _now(self) -> float:
        return self._clock.now().nanoseconds * 1e-9

    def _retire(self, force: bool = False) -> None:
        reader = self._reader
        matched = reader is not None and reader.subscription.get_publisher_count() > 0
        keep = []
        for old in self._retiring:
            if force or matched or self._now() - old.since > self.config.handover_timeout_s:
                self.node.destroy_subscription(old.subscription)
            else:
                keep.append(old)
        self._retiring = keep

    def recheck(self) -> bool:
        """Look at the publishers again (the timer does this in "auto"); True when the subscription changed."""
        infos = self._publishers()
        self.publishers = len(infos)
        changed = False
        if self.mode == "auto" and self._reader is not None:
            chosen = adapted_reliability([i.qos_profile.reliability for i in infos])
            if (chosen or "reliable") != self._reader.reliability:
                self._subscribe(chosen or "reliable", self._reason(infos, chosen))
                changed = True
        if self._retiring:
            self._retire()
        return changed

    def close(self) -> None:
        """Destroy the subscriptions and the timer (idempotent)."""
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        if self._reader is not None:
            self._lost_closed += self._reader.lost
            self._retiring.append(self._reader)
            self._reader = None
        self._retire(force=True)

    # --- callbacks -----------------------------------------------------------------------------------------
    def _on_message(self, msg: Any, info: Any) -> None:
        observation = self.gaps.observe(info)
        if observation.duplicate:
            return
        self.received += 1
        if observation.missing:
            self._account()
        self.callback(msg)

    def _on_message_lost(self, reader: _Reader, event: Any) -> None:
        if reader.counting:
            reader.lost = int(event.total_count)
            self._account()

    def _account(self) -> None:
        total = self.frames_lost
        if total > self._reported:
            new, self._reported = total - self._reported, total
            if self._on_lost is not None:
                self._on_lost(new)

    def _on_incompatible(self, reader: _Reader, event: Any) -> None:
        if not reader.counting:
            return
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        offers = "; ".join(f"{_endpoint_name(i)} offers {_offer(i)}" for i in self._publishers())
        requested = QoSProfile(depth=self.depth, history=HistoryPolicy.KEEP_LAST,
                               reliability=_POLICIES[reader.reliability])
        advice = (f"switching at the next check ({self.setting}: auto)" if self.mode == "auto" else
                  f"no frames from it; set {self.setting}: auto to follow the publishers")
        self._warn("incompatible_qos",
                   f"{self.topic}: a publisher's QoS is incompatible with this subscription ({policy}): "
                   f"{offers or 'the publisher left'}; this node requests {describe_qos(requested)} "
                   f"({self.setting}: {self.mode}); {advice}")
