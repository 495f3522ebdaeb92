"""Every message of the package published and received between two nodes over real DDS (rclpy, Fast DDS)."""

from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from message_samples import MESSAGE_TYPES, SAMPLES, assert_same_message  # noqa: E402

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
