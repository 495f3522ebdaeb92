"""Every message of the package published and received between two nodes over real DDS (rclpy, Fast DDS)."""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from depth_scene import lifted_people  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from message_samples import MESSAGE_TYPES, SAMPLES, assert_same_message  # noqa: E402
from strongpose_ros.ros.messages import person_array_msg, positions_from_msg  # noqa: E402

TIMEOUT_S = 20.0


def _spin_until(executor: SingleThreadedExecutor, done, timeout: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        executor.spin_once(timeout_sec=0.05)
    return done()


@pytest.mark.parametrize("typename", sorted(MESSAGE_TYPES))
def test_message_crosses_dds_field_by_field(ros_context, typename):
    msg_type = MESSAGE_TYPES[typename]
    sample = SAMPLES[typename]()
    talker = rclpy.create_node("strongpose_test_talker", context=ros_context)
    listener = rclpy.create_node("strongpose_test_listener", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        topic = "/strongpose_test/" + typename.rsplit("/", 1)[-1].lower()
        received = []
        listener.create_subscription(msg_type, topic, received.append, qos)
        publisher = talker.create_publisher(msg_type, topic, qos)
        assert _spin_until(executor, lambda: publisher.get_subscription_count() > 0), "no DDS discovery"
        publisher.publish(sample)
        assert _spin_until(executor, lambda: len(received) > 0), f"{typename} not received"
        assert type(received[0]) is msg_type
        assert_same_message(sample, received[0])
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()


def test_schema_reaches_a_late_subscriber_with_transient_local(ros_context):
    """PoseSchema is published once on a transient-local topic: a subscriber that joins later still gets it."""
    msg_type = MESSAGE_TYPES["strongpose_ros/msg/PoseSchema"]
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    talker = rclpy.create_node("strongpose_test_schema_talker", context=ros_context)
    listener = rclpy.create_node("strongpose_test_schema_listener", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        sample = SAMPLES["strongpose_ros/msg/PoseSchema"]()
        talker.create_publisher(msg_type, "/strongpose_test/schema", qos).publish(sample)
        received = []
        listener.create_subscription(msg_type, "/strongpose_test/schema", received.append, qos)
        assert _spin_until(executor, lambda: len(received) > 0), "late subscriber did not get the schema"
        assert_same_message(sample, received[0])
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()


def test_lifted_people_cross_dds_with_absent_positions_still_absent(ros_context):
    """A consumer of ~/persons alone gets the 3D keypoints, and NaN plus has_position=false where there are none."""
    people, positions, truths = lifted_people()
    header = SAMPLES["strongpose_ros/msg/PersonArray"]().header
    sample = person_array_msg(header, people, (480, 640), "coco17", positions=positions)
    msg_type = MESSAGE_TYPES["strongpose_ros/msg/PersonArray"]
    talker = rclpy.create_node("strongpose_test_3d_talker", context=ros_context)
    listener = rclpy.create_node("strongpose_test_3d_listener", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        received = []
        listener.create_subscription(msg_type, "/strongpose_test/persons_3d", received.append, qos)
        publisher = talker.create_publisher(msg_type, "/strongpose_test/persons_3d", qos)
        assert _spin_until(executor, lambda: publisher.get_subscription_count() > 0), "no DDS discovery"
        publisher.publish(sample)
        assert _spin_until(executor, lambda: len(received) > 0), "PersonArray not received"
        got = received[0]
        assert got.depth_status == got.DEPTH_OK
        back = positions_from_msg(got)
        assert back.keypoint_valid.tolist() == positions.keypoint_valid.tolist()
        assert not got.persons[1].keypoints[9].has_position and np.isnan(got.persons[1].keypoints[9].position.x)
        valid = positions.keypoint_valid
        np.testing.assert_allclose(back.keypoints[valid], np.stack(truths)[valid], atol=0.01)
        assert np.isnan(back.keypoints[~valid]).all()
        np.testing.assert_allclose(back.positions, positions.positions, rtol=1e-6)
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
