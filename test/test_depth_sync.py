"""The colour/depth stamp synchroniser: pairs, missing and late depth, mismatched sizes, never blocking.

Time is a hand-stepped clock, so nothing here sleeps or depends on the machine's speed.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from strongpose_ros.depth import DepthStatus, StampSynchronizer, SyncConfig, stamp_to_ns

MS = 1_000_000  # nanoseconds
VGA = (480, 640)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sync(**config) -> tuple[StampSynchronizer, Clock]:
    clock = Clock()
    return StampSynchronizer(SyncConfig(**config), clock=clock), clock


def test_depth_after_its_colour_frame_pairs_when_it_arrives():
    sync, _ = _sync()
    assert sync.add_color(1000 * MS, "c0", VGA) == []  # waits: its depth may still come
    (frame,) = sync.add_depth(1000 * MS, "d0", VGA)
    assert (frame.color, frame.depth, frame.status, frame.stamp_ns, frame.depth_stamp_ns) == (
        "c0", "d0", DepthStatus.OK, 1000 * MS, 1000 * MS)
    assert frame.has_depth and sync.pending == 0


def test_depth_before_its_colour_frame_pairs_at_once():
    sync, _ = _sync()
    assert sync.add_depth(1000 * MS + 3 * MS, "d0") == []
    (frame,) = sync.add_color(1000 * MS, "c0")
    assert frame.depth == "d0" and frame.status == DepthStatus.OK


def test_the_nearest_depth_within_tolerance_wins():
    sync, _ = _sync(tolerance_s=0.02)
    sync.add_depth(985 * MS, "early")  # 15 ms before
    assert sync.add_color(1000 * MS, "c") == []  # a nearer one may come
    (frame,) = sync.add_depth(1005 * MS, "late")  # 5 ms after: nearer, and no later one can be nearer
    assert frame.depth == "late"


def test_no_depth_within_tolerance_is_reported_once_the_depth_stream_has_passed():
    sync, _ = _sync(tolerance_s=0.02)
    sync.add_depth(950 * MS, "d-50")
    assert sync.add_color(1000 * MS, "c") == []
    (frame,) = sync.add_depth(1050 * MS, "d+50")
    assert frame.depth is None and frame.status == DepthStatus.NO_MATCH
    assert sync.stats.no_match == 1


def test_missing_depth_goes_out_late_when_the_wait_runs_out_and_a_late_depth_is_counted():
    sync, clock = _sync(max_wait_s=0.1)
    assert sync.add_color(1000 * MS, "c") == []
    clock.now += 0.05
    assert sync.poll() == []
    clock.now += 0.06
    (frame,) = sync.poll()
    assert frame.color == "c" and frame.depth is None and frame.status == DepthStatus.LATE
    assert sync.add_depth(1000 * MS, "too late") == []  # its colour frame has gone: counted, not paired
    assert sync.stats.late == 1 and sync.stats.depth_late == 1
    assert sync.add_color(1033 * MS, "next") == []  # 33 ms on: the late depth frame is no partner
    clock.now += 0.2
    (frame,) = sync.poll()
    assert frame.color == "next" and frame.status == DepthStatus.LATE
    assert sync.stats.depth_unused == 1  # then it is dropped, counted


def test_a_silent_depth_stream_never_holds_colour_frames_back():
    """With no wait, every colour frame comes straight back; with a wait, the queue stays bounded."""
    sync, _ = _sync(max_wait_s=0.0)
    for i in range(5):
        (frame,) = sync.add_color(i * 33 * MS, f"c{i}")
        assert frame.status == DepthStatus.LATE and frame.color == f"c{i}"
    sync, _ = _sync(max_wait_s=10.0, queue_size=4)
    released = []
    for i in range(20):
        released += sync.add_color(i * 33 * MS, i)
        assert sync.pending <= 4
    assert [f.color for f in released] == list(range(16))  # in order, each once
    assert all(f.status == DepthStatus.LATE for f in released)
    assert [f.color for f in sync.flush()] == [16, 17, 18, 19] and sync.pending == 0


@pytest.mark.parametrize(("depth_size", "status"), [
    ((480, 640), DepthStatus.OK), ((960, 1280), DepthStatus.OK), ((240, 320), DepthStatus.OK),
    ((360, 640), DepthStatus.SIZE_MISMATCH), ((480, 848), DepthStatus.SIZE_MISMATCH),
])  # fmt: skip
def test_a_depth_frame_of_another_field_of_view_is_reported(depth_size, status):
    sync, _ = _sync()
    sync.add_depth(1000 * MS, "d", depth_size)
    (frame,) = sync.add_color(1000 * MS, "c", VGA)
    assert frame.status == status and frame.has_depth == (status == DepthStatus.OK)
    assert sync.stats.size_mismatch == (status == DepthStatus.SIZE_MISMATCH)


def test_one_depth_frame_serves_a_faster_colour_stream():
    sync, _ = _sync(tolerance_s=0.01, max_wait_s=0.0)
    sync.add_depth(1000 * MS, "d")
    first = sync.add_color(1000 * MS - 8 * MS, "c-8")
    second = sync.add_color(1000 * MS + 8 * MS, "c+8")
    assert [(f.color, f.depth) for f in first + second] == [("c-8", "d"), ("c+8", "d")]


def test_stamps_going_back_start_the_queues_over():
    sync, _ = _sync()
    sync.add_depth(50_000 * MS, "old-d")
    assert sync.add_color(60_000 * MS, "waiting") == []
    (frame,) = sync.add_color(1000 * MS, "after-loop")  # the bag looped: the waiting frame goes out
    assert frame.color == "waiting" and frame.status == DepthStatus.LATE
    assert sync.stats.resets == 1
    (paired,) = sync.add_depth(1000 * MS, "new-d")
    assert paired.color == "after-loop" and paired.depth == "new-d"


def test_frames_from_two_threads_each_come_out_once():
    sync, _ = _sync(max_wait_s=0.0, queue_size=8)
    out, lock = [], threading.Lock()

    def feed(add, name):
        for i in range(2000):
            released = add(i * 33 * MS, f"{name}{i}", VGA)
            with lock:
                out.extend(released)

    threads = [threading.Thread(target=feed, args=(sync.add_color, "c")),
               threading.Thread(target=feed, args=(sync.add_depth, "d"))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    out += sync.flush()
    assert sorted(f.color for f in out) == sorted(f"c{i}" for i in range(2000))
    stats = sync.stats
    assert stats.paired + stats.late + stats.no_match == 2000 == stats.color_in
    assert stats.depth_in == 2000
    for frame in out:
        if frame.has_depth:
            assert frame.depth == "d" + frame.color[1:]  # the same stamp, never a neighbour's


def test_stamps_and_config():
    assert stamp_to_ns(SimpleNamespace(sec=3, nanosec=250)) == 3_000_000_250
    assert stamp_to_ns(7) == 7
    sync, _ = _sync()
    sync.add_depth(SimpleNamespace(sec=5, nanosec=1000), "d")  # header stamps go in as they are
    (frame,) = sync.add_color(SimpleNamespace(sec=5, nanosec=0), "c")
    assert frame.depth == "d" and frame.stamp_ns == 5_000_000_000
    with pytest.raises(ValueError, match=r"SyncConfig\.queue_size must be an integer >= 1"):
        SyncConfig(queue_size=0)
    with pytest.raises(ValueError, match=r"SyncConfig\.tolerance_s must be >= 0"):
        SyncConfig(tolerance_s=-0.1)
