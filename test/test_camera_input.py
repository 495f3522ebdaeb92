"""pose_node's camera input over real DDS, with the camera publisher in another process (as a camera driver is).

Every frame published ends in one counter: lost in transport (before the node's callback), bad, dropped by
newest-wins, or processed. The rates and sizes are a robot's (1280x720 at 15 Hz); the assertions are about
accounting and losses, never about speed, so a slow or busy machine passes as long as nothing goes missing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from pose_node_support import (  # noqa: E402
    FIND_PEOPLE,
    Harness,
    diagnostics_values,
    finish_camera_publisher,
    frame,
    header,
    make_checkpoint,
    start_camera_publisher,
)
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from strongpose_ros.ros.image_conversion import numpy_to_image  # noqa: E402
from strongpose_ros.ros.pose_node import PoseNode  # noqa: E402

# Fast DDS reports a best-effort reader's lost frame when a later frame's fragments arrive; measured here, the
# last two frames of a stream of lost 1280x720 frames are never reported (88 of 90, 58 of 60 in a row).
BEST_EFFORT_UNREPORTED_TAIL = 2


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("camera_input") / "resnet18_129.safetensors")


def _settled(node: PoseNode, frames: int, timeout: float = 60.0):
    """The node's counters once every frame that reached it is processed or dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = node.stats.snapshot()
        if node.wait_idle(0.5) and snap.received + snap.lost >= frames:
            break
    time.sleep(0.3)  # a frame between the check and now would show in the next snapshot
    node.wait_idle(timeout)
    return node.stats.snapshot()


def _accounted(snap) -> int:
    return snap.lost + snap.processed + snap.dropped + snap.bad_total


def test_reliable_1280x720_at_15_hz_loses_no_frame_before_the_callback(ros_context):
    node = PoseNode(context=ros_context)  # no parameters: the bundled model, input.reliability auto
    try:
        assert node.lifecycle_state == "active", node.startup_error
        report = finish_camera_publisher(start_camera_publisher(width=1280, height=720, rate=15, frames=45,
                                                                reliability="reliable"))
        assert report["published"] == 45 and report["frame_bytes"] == 1280 * 720 * 3
        snap = _settled(node, 45)
        assert node.camera.reliability == "reliable"
        assert snap.received == 45 and snap.lost == 0, "a frame was lost before the node's callback"
        # Not processed means dropped by newest-wins, deliberately and counted.
        assert snap.processed >= 1 and snap.bad_total == 0 and snap.processed + snap.dropped == 45
        values = diagnostics_values(node.publish_diagnostics())
        assert values["frames_received"] == "45" and values["frames_lost_in_transport"] == "0"
        assert values["input_reliability"] == "auto: reliable" and values["input_topic"] == "/image"
    finally:
        node.close()
        node.destroy_node()


def test_qos_follows_publishers_that_come_and_go_and_every_frame_is_counted(ros_context, model_path):
    node = PoseNode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(model_path))])
    try:
        assert node.camera.reliability == "reliable"  # no publisher yet: what most camera drivers offer

        # A best-effort publisher of large frames appears (a sensor-data driver): the node follows it, and its
        # frames that DDS loses are counted, not silent.
        report = finish_camera_publisher(start_camera_publisher(width=1280, height=720, rate=15, frames=30,
                                                                reliability="best_effort"))
        assert report["published"] == 30  # it was matched: a reliable reader would not have been
        assert node.camera.reliability == "best_effort"
        snap = _settled(node, 30 - BEST_EFFORT_UNREPORTED_TAIL)
        assert snap.received == snap.processed + snap.dropped + snap.bad_total
        assert 30 - BEST_EFFORT_UNREPORTED_TAIL <= _accounted(snap) <= 30, snap
        assert diagnostics_values(node.publish_diagnostics())["frames_lost_in_transport"] == str(snap.lost)
        first = _accounted(snap)

        # It leaves: with no publisher the node goes back to reliable.
        deadline = time.monotonic() + 10
        while node.camera.reliability != "reliable" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.camera.reliability == "reliable"
        # Two reliable publishers appear at once: their interleaved sequence numbers (each publisher counts
        # from 1) are not taken for losses.
        publishers = [start_camera_publisher(width=64, height=48, rate=30, frames=20, reliability="reliable")
                      for _ in range(2)]
        reports = [finish_camera_publisher(p) for p in publishers]
        assert [r["published"] for r in reports] == [20, 20]
        snap = _settled(node, first + 40)
        assert node.camera.reliability == "reliable"
        assert _accounted(snap) - first == 40
        assert snap.received == snap.processed + snap.dropped + snap.bad_total
        assert node.camera._subscription.gaps.publishers >= 2
    finally:
        node.close()
        node.destroy_node()


def test_camera_info_beside_a_remapped_image_topic_places_the_markers(ros_context, model_path):
    # An untrained network's keypoints score low: show every one (the marker threshold is the decoder's).
    h = Harness(ros_context, model_path, cli_args=["--ros-args", "-r", "image:=/camera/image_raw"],
                **{**FIND_PEOPLE, "decoder.keypoint_threshold": 0.0})
    try:
        assert h.node.camera.topic == "/camera/image_raw"
        assert h.node.camera.camera_info_topic == "/camera/camera_info"
        h.subscribe("markers", MarkerArray, "/pose_node/markers")
        info_pub = h.publisher(CameraInfo, "/camera/camera_info")
        pub = h.publisher(Image, "/camera/image_raw")
        h.connect(pub, "markers")
        assert h.spin_until(lambda: info_pub.get_subscription_count() > 0)
        info = CameraInfo(header=header(1), width=128, height=96,
                          k=[100.0, 0.0, 60.0, 0.0, 120.0, 50.0, 0.0, 0.0, 1.0])
        info_pub.publish(info)
        assert h.spin_until(lambda: h.node.camera.camera_info is not None), "no CameraInfo reached the node"
        pub.publish(numpy_to_image(frame(7), "bgr8", header(2)))
        assert h.spin_until(lambda: h.received["markers"]), "no markers"
        joints = h.received["markers"][0].markers[1]
        distance = h.node.settings.markers.distance
        # Each keypoint on its viewing ray: x / z = (u - cx) / fx, y / z = (v - cy) / fy, z = markers.distance.
        points = np.array([(p.x, p.y, p.z) for p in joints.points])
        assert points.size and np.allclose(points[:, 2], distance)
        u = points[:, 0] / distance * 100.0 + 60.0
        v = points[:, 1] / distance * 120.0 + 50.0
        assert np.all((u > -1) & (u < 129) & (v > -1) & (v < 97))  # back on the 128x96 image
        values = diagnostics_values(h.node.publish_diagnostics())
        assert values["camera_info"] == "/camera/camera_info 128x96"
    finally:
        h.close()
