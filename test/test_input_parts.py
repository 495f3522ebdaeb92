"""The camera input's parts without DDS traffic: per-publisher sequence gaps, the adaptive QoS rule, image_transport
topic names, CameraInfo intrinsics, misspelt-parameter hints."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402

from strongpose_ros.ros.adaptive_qos import adapted_reliability  # noqa: E402
from strongpose_ros.ros.camera_info import intrinsics  # noqa: E402
from strongpose_ros.ros.image_topics import camera_info_topic, camera_topics, compressed_topic  # noqa: E402
from strongpose_ros.ros.loss import SequenceGaps, lost_in_transport  # noqa: E402
from strongpose_ros.ros.startup import undeclared_parameters  # noqa: E402


def _info(gid: bytes, number: int) -> dict:
    """What rclpy's MessageInfo holds (Kilted, rmw_fastrtps: a 16-byte GID and the writer's own numbering)."""
    return {"source_timestamp": 0, "received_timestamp": 0, "publication_sequence_number": number,
            "reception_sequence_number": None,
            "publisher_gid": {"implementation_identifier": "rmw_fastrtps_cpp", "data": gid}}


def test_sequence_gaps_are_counted_per_publisher():
    a, b = b"A" * 16, b"B" * 16
    gaps = SequenceGaps()
    # Two publishers interleaved, each numbering from 1: no gap, although the numbers jump between them.
    for number in (1, 2, 3):
        assert gaps.observe(_info(a, number)) == (0, False)
        assert gaps.observe(_info(b, number)) == (0, False)
    assert gaps.missing == 0 and gaps.publishers == 2
    assert gaps.observe(_info(a, 7)) == (3, False)  # 4, 5, 6 of publisher a never arrived
    assert gaps.observe(_info(a, 7)) == (0, True)  # the same message again (through a second subscription)
    assert gaps.observe(_info(a, 5)) == (0, True)  # an old one: not new, not a gap
    assert gaps.observe(_info(b, 4)) == (0, False)
    # A publisher first heard mid-stream: its earlier messages were not ours to count.
    assert gaps.observe(_info(b"C" * 16, 5000)) == (0, False)
    assert (gaps.missing, gaps.duplicates) == (3, 2)
    assert gaps.observe(None) == (0, False) and gaps.observe(_info(a, 0)) == (0, False)  # no numbering given
    assert gaps.unnumbered == 2 and gaps.missing == 3


def test_sequence_gaps_forget_the_least_recent_publisher():
    gaps = SequenceGaps(max_publishers=2)
    gaps.observe(_info(b"1" * 16, 1))
    gaps.observe(_info(b"2" * 16, 1))
    gaps.observe(_info(b"3" * 16, 1))
    assert gaps.publishers == 2
    assert gaps.observe(_info(b"1" * 16, 10)) == (0, False)  # forgotten: a new baseline, not a gap of 8
    with pytest.raises(ValueError):
        SequenceGaps(max_publishers=0)


def test_lost_in_transport_takes_the_larger_witness():
    # Reliable publisher, history overwritten: only the sequence numbers see it (the event says 0).
    assert lost_in_transport(60, 0) == 60
    # Best effort, whole frames lost: the middleware counts frames no later message has shown yet.
    assert lost_in_transport(26, 50) == 50


def test_adapted_reliability_is_rosbag2s_rule():
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert adapted_reliability([]) is None
    assert adapted_reliability([reliable, reliable]) == "reliable"
    assert adapted_reliability([reliable, best_effort]) == "best_effort"
    assert adapted_reliability([best_effort]) == "best_effort"


def test_image_transport_names():
    assert compressed_topic("/camera/image_raw") == "/camera/image_raw/compressed"
    assert camera_info_topic("/camera/image_raw") == "/camera/camera_info"
    assert camera_info_topic("/camera/image_raw/compressed") == "/camera/camera_info"
    assert camera_info_topic("/image") == "/camera_info"


def test_camera_topics_follow_the_remapped_image_topic(ros_context):
    def node(*rules: str, namespace: str = ""):
        args = ["--ros-args", *(x for rule in rules for x in ("-r", rule))] if rules else None
        return rclpy.create_node("naming", context=ros_context, namespace=namespace, cli_args=args)

    made = [node("image:=/camera/image_raw"), node(), node(namespace="/robot"),
            node("image:=/camera/image_raw", "image/compressed:=/other/jpeg/compressed", "camera_info:=/calib")]
    try:
        remapped, plain, namespaced, explicit = made
        assert camera_topics(remapped, "raw") == ("/camera/image_raw", "/camera/camera_info")
        # issue 15: 'compressed' used to subscribe /image/compressed even with image remapped.
        assert camera_topics(remapped, "compressed") == ("/camera/image_raw/compressed", "/camera/camera_info")
        assert camera_topics(plain, "compressed") == ("/image/compressed", "/camera_info")
        assert camera_topics(namespaced, "raw") == ("/robot/image", "/robot/camera_info")
        # Explicit rules for the compressed topic and camera_info still win.
        assert camera_topics(explicit, "compressed") == ("/other/jpeg/compressed", "/calib")
        with pytest.raises(ValueError, match="transport"):
            camera_topics(plain, "theora")
    finally:
        for n in made:
            n.destroy_node()


def test_intrinsics_from_camera_info():
    info = CameraInfo(width=640, height=480, k=[500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0])
    camera = intrinsics(info, (480, 640))
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (500.0, 510.0, 320.0, 240.0)
    assert camera.point(820.0, 240.0, 2.0) == pytest.approx((2.0, 0.0, 2.0))
    half = intrinsics(info, (240, 320))  # a stream resized to half: K scales with it
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 255.0, 160.0, 120.0)
    assert intrinsics(CameraInfo(), (480, 640)) is None  # an uncalibrated camera publishes K = 0
    assert intrinsics(None, (480, 640)) is None


def test_undeclared_parameters_are_named_with_the_nearest_known_one():
    known = ["input.reliability", "input.depth", "checkpoint"]
    given = ["input.reliabilty", "checkpoint", "use_sim_time", "qos_overrides./image.subscription.depth",
             "completely_unrelated"]
    assert undeclared_parameters(given, known) == [("completely_unrelated", None),
                                                   ("input.reliabilty", "input.reliability")]
