"""The pose node's building blocks without DDS: message builders, diagnostics, parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from depth_scene import lifted_people
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from strongpose_ros.decode import DecoderConfig, PersonPose
from strongpose_ros.depth import DepthStatus
from strongpose_ros.drawing import color_for_id
from strongpose_ros.estimator import HeatmapTransform
from strongpose_ros.ros.camera_info import PinholeIntrinsics
from strongpose_ros.ros.diagnostics import FrameStats, RateLimitedLog, diagnostic_status
from strongpose_ros.ros.messages import (
    MarkerConfig,
    body_heatmap_msg,
    marker_array_msg,
    people_from_msg,
    person_array_msg,
    pose_schema_msg,
    positions_from_msg,
)
from strongpose_ros.ros.parameters import (
    NODE_DECODER_DEFAULTS,
    PARAMETERS,
    ParameterError,
    default_values,
    settings_from_values,
)
from strongpose_ros.schema import COCO17, CROWDPOSE14


def _person(score: float, shift: float = 0.0) -> PersonPose:
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = 100 + shift + np.arange(17)
    kp[:, 1] = 50 + 2 * np.arange(17)
    kp[:, 2] = 0.5
    kp[3, 2] = 0.05  # one weak keypoint (left ear)
    return PersonPose(kp, score, (100 + shift, 50, 116 + shift, 82))


HEADER = Header(frame_id="cam")
HEADER.stamp.sec, HEADER.stamp.nanosec = 12, 34


def test_person_array_is_sorted_by_score_with_ids_and_round_trips():
    people = [_person(0.4), _person(0.9, 50), _person(0.6, 100)]
    msg = person_array_msg(HEADER, people, (480, 640), "coco17", ids=[5, 6, 7])
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "cam" and msg.header is not HEADER
    assert (msg.image_width, msg.image_height, msg.schema_name) == (640, 480, "coco17")
    assert [p.id for p in msg.persons] == [6, 7, 5]
    assert [round(p.score, 3) for p in msg.persons] == [0.9, 0.6, 0.4]
    assert all(len(p.keypoints) == 17 for p in msg.persons)
    back, ids = people_from_msg(msg)
    assert ids == [6, 7, 5]
    np.testing.assert_allclose(back[0].keypoints, people[1].keypoints)
    assert back[0].box == pytest.approx(people[1].box)
    with pytest.raises(ValueError, match="ids"):
        person_array_msg(HEADER, people, (480, 640), "coco17", ids=[1])


def test_without_depth_every_position_is_absent_and_nan():
    msg = person_array_msg(HEADER, [_person(0.4), _person(0.9, 50)], (480, 640), "coco17")
    assert msg.depth_status == msg.DEPTH_OFF
    for person in msg.persons:
        assert not person.has_position and person.position_confidence == 0.0
        assert np.isnan([person.position.x, person.position.y, person.position.z]).all()
        for k in person.keypoints:
            assert not k.has_position and k.position_confidence == 0.0
            assert np.isnan([k.position.x, k.position.y, k.position.z]).all()
    assert not positions_from_msg(msg).keypoint_valid.any()
    late = person_array_msg(HEADER, [_person(0.4)], (480, 640), "coco17", depth_status=DepthStatus.LATE)
    assert late.depth_status == late.DEPTH_LATE and not late.persons[0].keypoints[0].has_position


def test_3d_positions_follow_their_people_into_the_message():
    people, positions, _ = lifted_people()
    people = people[::-1]  # the builder sorts by score: the 3D must move with its person
    reordered = positions_from_msg(person_array_msg(HEADER, people[::-1], (480, 640), "coco17", positions=positions))
    msg = person_array_msg(HEADER, people, (480, 640), "coco17", ids=[8, 9],
                           positions=type(positions).stack([positions[1], positions[0]]))  # fmt: skip
    assert msg.depth_status == msg.DEPTH_OK and [p.id for p in msg.persons] == [9, 8]
    back = positions_from_msg(msg)
    for got in (back, reordered):
        np.testing.assert_array_equal(got.keypoint_valid, positions.keypoint_valid)
        np.testing.assert_allclose(got.keypoints, positions.keypoints, rtol=1e-6)  # NaN where absent, both
        np.testing.assert_allclose(got.keypoint_confidence, positions.keypoint_confidence, rtol=1e-6)
        np.testing.assert_allclose(got.positions, positions.positions, rtol=1e-6)
        np.testing.assert_array_equal(got.position_valid, positions.position_valid)
    absent = msg.persons[1].keypoints[0]  # the weak nose of the second person
    assert not absent.has_position and np.isnan(absent.position.z)
    with pytest.raises(ValueError, match="depth_status LATE"):
        person_array_msg(HEADER, people, (480, 640), "coco17", positions=positions, depth_status=DepthStatus.LATE)
    with pytest.raises(ValueError, match="3D of 2 people for 1"):
        person_array_msg(HEADER, people[:1], (480, 640), "coco17", positions=positions)


def test_depth_status_values_are_the_message_constants():
    from strongpose_ros.msg import PersonArray

    for status in DepthStatus:
        assert getattr(PersonArray, f"DEPTH_{status.name}") == status.value


def test_markers_lie_in_the_image_plane_in_the_track_colour():
    config = MarkerConfig(pixel_size=0.01, distance=2.0, keypoint_threshold=0.1)
    msg = marker_array_msg(HEADER, [_person(0.9)], COCO17, (200, 300), ids=[4], config=config)
    delete_all, joints, links = msg.markers
    assert delete_all.action == Marker.DELETEALL
    assert joints.type == Marker.POINTS and links.type == Marker.LINE_LIST
    assert joints.header.frame_id == "cam" and joints.header.stamp.sec == 12
    assert len(joints.points) == 16  # the weak left ear is left out
    first = joints.points[0]  # the nose at pixel (100, 50) of a 300 x 200 image
    assert (first.x, first.y, first.z) == pytest.approx(((100 - 150) * 0.01, (50 - 100) * 0.01, 2.0))
    links_without_ear = [link for link in COCO17.skeleton if 3 not in link]
    assert len(links.points) == 2 * len(links_without_ear)
    b, g, r = color_for_id(4)
    assert (joints.color.r, joints.color.g, joints.color.b) == pytest.approx((r / 255, g / 255, b / 255))
    with pytest.raises(ValueError, match="pixel_size"):
        MarkerConfig(pixel_size=0.0)


def test_markers_follow_the_camera_intrinsics_when_given():
    config = MarkerConfig(pixel_size=0.01, distance=2.0, keypoint_threshold=0.1)
    camera = PinholeIntrinsics(fx=250.0, fy=200.0, cx=140.0, cy=110.0)
    msg = marker_array_msg(HEADER, [_person(0.9)], COCO17, (200, 300), ids=[4], config=config, camera=camera)
    nose = msg.markers[1].points[0]  # pixel (100, 50) on its viewing ray, 2 m along the optical axis
    assert (nose.x, nose.y, nose.z) == pytest.approx(((100 - 140) / 250 * 2.0, (50 - 110) / 200 * 2.0, 2.0))


def test_body_heatmap_carries_the_map_and_its_mapping():
    body = np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7)
    keypoints = np.random.default_rng(0).random((17, 5, 7), dtype=np.float32)
    msg = body_heatmap_msg(HEADER, body, HeatmapTransform(8.0, 8.5, -3.5, 4.0), keypoints)
    assert (msg.body.encoding, msg.body.height, msg.body.width, msg.body.step) == ("32FC1", 5, 7, 28)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.body.data), np.float32).reshape(5, 7), body)
    assert (msg.scale_x, msg.scale_y, msg.offset_x, msg.offset_y) == (8.0, 8.5, -3.5, 4.0)
    assert len(msg.keypoints) == 17 and msg.keypoints[0].header.frame_id == "cam"
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.keypoints[16].data), np.float32).reshape(5, 7),
                                  keypoints[16])


def test_schema_message_for_another_schema():
    msg = pose_schema_msg(CROWDPOSE14)
    assert msg.name == CROWDPOSE14.name and len(msg.keypoint_names) == 14
    assert list(zip(msg.edge_start, msg.edge_end, strict=True)) == [tuple(e) for e in CROWDPOSE14.skeleton]
    assert list(msg.flip_partner) == list(CROWDPOSE14.flip_permutation)


def test_frame_stats_and_diagnostic_levels():
    now = [0.0]
    stats = FrameStats(clock=lambda: now[0])
    for i in range(1, 101):
        stats.received()
        now[0] += 0.1
        stats.processed(float(i), {"network": 2.0 * i})
    stats.received()
    stats.dropped()
    stats.bad("encoding")
    snap = stats.snapshot()
    assert (snap.received, snap.processed, snap.dropped, snap.bad_total) == (101, 100, 1, 1)
    assert snap.latency_ms_p50 == pytest.approx(50.5) and snap.latency_ms_max == 100.0
    assert snap.latency_ms_p95 == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert snap.fps == pytest.approx(10.0)
    assert snap.stage_ms_median["network"] == pytest.approx(101.0)
    with pytest.raises(ValueError, match="unknown reason"):
        stats.bad("gremlins")

    warn = diagnostic_status(snap, name="n", hardware_id="cpu", state="active")
    values = {kv.key: kv.value for kv in warn.values}
    assert warn.level == DiagnosticStatus.WARN and "encoding" in warn.message
    assert values["bad_encoding"] == "1" and values["frames_dropped"] == "1" and values["latency_ms_p50"] == "50.50"
    ok = diagnostic_status(snap, name="n", hardware_id="cpu", state="active", previous=snap)
    assert ok.level == DiagnosticStatus.OK
    error = diagnostic_status(snap, name="n", hardware_id="cpu", state="unconfigured", error="no model")
    assert error.level == DiagnosticStatus.ERROR and error.message == "no model"
    assert not [key for key in values if key.startswith("bad_bad")]  # issue 15: 'bad_bad_compressed'
    assert {"bad_data", "bad_compressed"} <= set(values)

    # Frames lost before the callback are counted and make the status WARN until the next report.
    stats.lost(3)
    lost = stats.snapshot()
    status = diagnostic_status(lost, name="n", hardware_id="cpu", state="active", previous=snap)
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN and "3 frame(s) lost in transport" in status.message
    assert values["frames_lost_in_transport"] == "3"
    assert diagnostic_status(lost, name="n", hardware_id="cpu", state="active", previous=lost).level == \
        DiagnosticStatus.OK


def test_rate_limited_log_says_how_many_it_held_back():
    now = [0.0]
    lines: list[str] = []
    log = RateLimitedLog(lines.append, period_s=5.0, clock=lambda: now[0])
    assert log("encoding", "bad encoding")
    assert not log("encoding", "bad encoding") and not log("encoding", "bad encoding")
    assert log("bad_data", "truncated")  # another key is independent
    now[0] = 5.0
    assert log("encoding", "bad encoding")
    assert lines == ["bad encoding", "truncated", "bad encoding (2 more like this since the last report)"]


def test_parameter_defaults_are_valid_and_bad_values_are_refused_with_the_name():
    settings = settings_from_values(default_values())
    # The decoder's defaults, except that the node drops faint leftovers that COCO evaluation keeps.
    assert settings.decoder == DecoderConfig(nonfinite="raise", **NODE_DECODER_DEFAULTS)
    assert settings.decoder.min_instance_score > DecoderConfig().min_instance_score
    assert settings.input.mode == "newest" and settings.tracking_enabled
    # Adaptive input QoS and a history deep enough for a busy executor (issue 15).
    assert settings.input.reliability == "auto" and settings.input.depth == 10
    assert settings.markers.keypoint_threshold == settings.decoder.keypoint_threshold
    assert settings_from_values({"decoder.nms_radius": 12}).decoder.nms_radius == 12.0  # YAML ints for floats
    refusals = {
        "decoder.peak_threshold": -0.5, "decoder.max_people": 0, "decoder.peak_window": 4,
        "tracking.min_similarity": 2.0, "input.mode": "sometimes", "input.depth": 0, "device": "tpu",
        "output_stride": 12, "input_size": 5, "markers.distance": float("nan"), "half": "yes",
        "diagnostics.period": 0.0, "input.reliability": "sometimes",
        "decoder.min_instance_score": 1.5,  # scores lie in 0..1: nobody would be left
    }  # fmt: skip
    for name, value in refusals.items():
        with pytest.raises(ParameterError, match=name.replace(".", r"\.")):
            settings_from_values({name: value})
    with pytest.raises(ParameterError, match="unknown"):
        settings_from_values({"decoder.nonfinite": "zero"})  # the node's NaN policy is not a parameter
    assert len({spec.name for spec in PARAMETERS}) == len(PARAMETERS)
