"""Frames lost before a subscription callback: per-publisher sequence gaps and the middleware's own count.

Two witnesses, measured on these wheels (Fast DDS 3.2.3, rmw_fastrtps 9.3.3; README, "Camera input"):
- rclpy hands a two-argument callback a `MessageInfo` with the publisher's GID and its publication sequence
  number, which counts from 1 per publisher (per DDS writer, not per topic). A jump from n to n + k + 1 in one
  publisher's numbers means k of its messages never reached the callback: lost on the wire, or overwritten in
  the reader's history (KEEP_LAST) because the executor took them too late. Both are invisible otherwise.
  `SequenceGaps` counts these, per publisher, so several publishers on one topic never look like gaps.
- The subscription's message-lost event (`SubscriptionEventCallbacks(message_lost=...)`) is the middleware's
  count. For best-effort readers Fast DDS counts the samples it saw on the wire but could not complete (a
  fragment lost), including those after the last delivered message, which no sequence gap can show yet; it
  does not count history overwrites (0 for a reliable depth-1 reader that dropped 60 of 90 frames that way),
  and it reports a lost frame only once later frames arrive: the last two of a stream stay unreported
  (measured: 88 of 90 lost 1280x720 frames; with small frames after them, all but the last large one).

The two overlap: a wire loss followed by a delivered message is in both. `lost_in_transport` is the larger of
the two totals: exact for reliable publishers (overwrites only, and a later message always arrives), and
for best effort with a reader that keeps up short only of the frames the middleware has not reported yet;
with overwrites and wire losses at once, also short of at most the wire losses not yet followed by a
delivered message.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["Observation", "SequenceGaps", "lost_in_transport", "publisher_key"]


class Observation(NamedTuple):
    """What one message says: `missing` messages of its publisher came before it and never arrived;
    `duplicate`: its publisher's number is not new (the same message through a second subscription)."""

    missing: int
    duplicate: bool


def publisher_key(info: Mapping[str, Any] | None) -> tuple[bytes, int] | None:
    """(publisher GID, publication sequence number) from an rclpy MessageInfo; None when the middleware
    does not give both."""
    if not info:
        return None
    gid, number = info.get("publisher_gid"), info.get("publication_sequence_number")
    if not number or not isinstance(gid, Mapping) or gid.get("data") is None:
        return None
    return bytes(gid["data"]), int(number)


class SequenceGaps:
    """Per-publisher publication sequence numbers of the messages a callback received.

    A publisher's first message sets its baseline (what it published before we subscribed is not ours to
    count). At most `max_publishers` publishers are remembered; the one heard from least recently is
    forgotten first (publishers that restart get a new GID).
    """

    def __init__(self, max_publishers: int = 64) -> None:
        if max_publishers < 1:
            raise ValueError(f"SequenceGaps: max_publishers must be >= 1, got {max_publishers}")
        self.max_publishers = max_publishers
        self._last: OrderedDict[bytes, int] = OrderedDict()
        self.missing = 0
        self.duplicates = 0
        self.unnumbered = 0  # messages without a GID or sequence number (another middleware)

    def observe(self, info: Mapping[str, Any] | None) -> Observation:
        key = publisher_key(info)
        if key is None:
            self.unnumbered += 1
            return Observation(0, False)
        gid, number = key
        last = self._last.get(gid)
        if last is not None and number <= last:
            self.duplicates += 1
            return Observation(0, True)
        missing = 0 if last is None else number - last - 1
        self._last[gid] = number
        self._last.move_to_end(gid)
        while len(self._last) > self.max_publishers:
            self._last.popitem(last=False)
        self.missing += missing
        return Observation(missing, False)

    @property
    def publishers(self) -> int:
        """Publishers heard from (at most `max_publishers`)."""
        return len(self._last)


def lost_in_transport(sequence_gaps: int, middleware_lost: int) -> int:
    """Frames lost before the callback, from both witnesses (see the module docstring for why the larger)."""
    return max(int(sequence_gaps), int(middleware_lost))
