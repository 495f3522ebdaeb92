"""The ROS-free tracker: stable ids by greedy OKS / box association, short memory, id rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongpose_ros.decode import PersonPose
from strongpose_ros.schema import COCO17
from strongpose_ros.tracking import MAX_TRACK_ID, Tracker, TrackerConfig, box_iou, oks

# A standing person, keypoints relative to the hip centre, in units of body height (COCO-17 order).
_TEMPLATE = np.array([
    [0.0, -0.85], [-0.03, -0.88], [0.03, -0.88], [-0.06, -0.86], [0.06, -0.86],
    [-0.15, -0.65], [0.15, -0.65], [-0.2, -0.4], [0.2, -0.4], [-0.22, -0.15], [0.22, -0.15],
    [-0.1, 0.0], [0.1, 0.0], [-0.11, 0.3], [0.11, 0.3], [-0.12, 0.6], [0.12, 0.6],
])  # fmt: skip


def person(cx: float, cy: float, height: float = 200.0, score: float = 0.9, visible: int = 17) -> PersonPose:
    kp = np.zeros((17, 3), np.float32)
    kp[:, :2] = _TEMPLATE * height + (cx, cy)
    kp[:visible, 2] = score
    kp[visible:, 2] = 0.01
    shown = kp[kp[:, 2] >= 0.1] if visible else kp
    box = (shown[:, 0].min(), shown[:, 1].min(), shown[:, 0].max(), shown[:, 1].max())
    return PersonPose(kp, score, box)


def test_ids_follow_people_that_move_and_swap_order():
    tracker = Tracker(COCO17)
    first = tracker.update([person(100, 300), person(400, 300)], stamp=0.0)
    assert first == [1, 2]
    # Both walk 8 px to the right; the detector lists them in the other order this time.
    second = tracker.update([person(408, 302), person(108, 298)], stamp=0.1)
    assert second == [2, 1]
    third = tracker.update([person(116, 300), person(416, 300), person(700, 300)], stamp=0.2)
    assert third == [1, 2, 3]


def test_short_absence_keeps_the_id_long_absence_gets_a_new_one():
    tracker = Tracker(COCO17, TrackerConfig(max_age=3, max_gap_s=0.0))
    assert tracker.update([person(100, 300)]) == [1]
    for _ in range(3):  # unseen for max_age frames: still remembered
        assert tracker.update([]) == []
    assert tracker.update([person(102, 300)]) == [1]
    for _ in range(4):  # unseen for more than max_age frames: forgotten
        tracker.update([])
    assert tracker.update([person(102, 300)]) == [2]  # ids are not re-used


def test_time_gap_expires_tracks():
    tracker = Tracker(COCO17, TrackerConfig(max_age=100, max_gap_s=0.5))
    assert tracker.update([person(100, 300)], stamp=10.0) == [1]
    tracker.update([], stamp=10.2)
    assert tracker.update([person(100, 300)], stamp=10.4) == [1]
    tracker.update([], stamp=10.5)
    assert tracker.update([person(100, 300)], stamp=11.0) == [2]


def test_stamps_going_backwards_restart_numbering_so_replays_match():
    tracker = Tracker(COCO17)
    sequence = [[person(100 + 5 * i, 300), person(400 - 5 * i, 300)] for i in range(5)]
    first = [tracker.update(people, stamp=float(i)) for i, people in enumerate(sequence)]
    second = [tracker.update(people, stamp=float(i)) for i, people in enumerate(sequence)]
    assert first == second
    assert first[0] == [1, 2]


def test_distant_detection_is_a_new_person():
    tracker = Tracker(COCO17)
    tracker.update([person(100, 300)])
    assert tracker.update([person(600, 300)]) == [2]


def test_box_overlap_is_used_when_few_keypoints_are_shared():
    config = TrackerConfig(min_common_keypoints=3)
    tracker = Tracker(COCO17, config)
    a = person(100, 300, visible=2)  # only nose and an eye: OKS is not meaningful
    b = person(103, 300, visible=2)
    track = tracker.tracks  # empty before the first update
    assert track == []
    tracker.update([a])
    similarity = tracker.similarity(tracker.tracks[0], b)
    assert similarity == pytest.approx(box_iou(a.box, b.box))
    assert tracker.update([b]) == [1]


def test_oks_matches_coco_formula():
    sigmas = COCO17.sigmas_array
    a = person(100, 300).keypoints
    b = a.copy()
    b[:, 0] += 3.0
    area = 5000.0
    expected = np.mean(np.exp(-9.0 / (2 * area * (2 * sigmas) ** 2)))
    assert oks(a, b, sigmas, area) == pytest.approx(expected)
    assert oks(a, a, sigmas, area) == pytest.approx(1.0)
    assert oks(a, b, sigmas, area, np.zeros(17, bool)) == 0.0


def test_greedy_gives_each_track_to_its_best_match():
    tracker = Tracker(COCO17)
    tracker.update([person(100, 300)])
    # Two candidates near the track: the closer one continues it even though it is listed second.
    ids = tracker.update([person(130, 300), person(101, 300)])
    assert ids == [2, 1]


def test_id_numbering_wraps_and_skips_live_ids():
    tracker = Tracker(COCO17)
    tracker.update([person(100, 300)])  # id 1 stays alive
    tracker._next_id = MAX_TRACK_ID
    ids = tracker.update([person(101, 300), person(500, 300), person(900, 300)])
    assert ids == [1, MAX_TRACK_ID, 2]  # after the largest id comes 1, which is live, so 2
    assert 0 not in ids


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 1000)), max_size=6), min_size=1, max_size=8))
def test_ids_are_unique_nonzero_within_a_frame(frames):
    tracker = Tracker(COCO17)
    for frame in frames:
        ids = tracker.update([person(x, y) for x, y in frame])
        assert len(ids) == len(frame)
        assert len(set(ids)) == len(ids)
        assert all(i > 0 for i in ids)


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ValueError, match="min_similarity"):
        TrackerConfig(min_similarity=1.5)
    with pytest.raises(ValueError, match="max_age"):
        TrackerConfig(max_age=-1)
    with pytest.raises(ValueError, match="no field"):
        TrackerConfig().replace(bogus=1)
    tracker = Tracker(COCO17)
    tracker.update([person(100, 300)])
    with pytest.raises(ValueError, match="keypoints"):
        tracker.update([PersonPose(np.zeros((5, 3), np.float32), 0.5, (0, 0, 1, 1))])
    with pytest.raises(ValueError, match="finite"):
        tracker.update([], stamp=float("nan"))


def test_forget_keeps_the_numbering_and_first_id_continues_it():
    tracker = Tracker(COCO17)
    assert tracker.update([person(100, 300), person(400, 300)]) == [1, 2]
    tracker.forget()  # tracking switched off and on: old tracks are gone, their ids are not given again
    assert tracker.tracks == [] and tracker.update([person(100, 300)]) == [3]
    again = Tracker(COCO17, first_id=tracker.next_id)  # a node configured again
    assert again.update([person(100, 300)]) == [4]
    with pytest.raises(ValueError, match="first_id"):
        Tracker(COCO17, first_id=0)
