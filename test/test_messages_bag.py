"""Every message of the package written to and read back from rosbag2 files (sqlite3 and MCAP).

The bags are written with the pure-Python `rosbags` library, our types registered from the msg/ text.
Each message goes in twice: serialised by rclpy's real type support, and serialised by rosbags. Reading
back, both are decoded by both, so a bag from `ros2 bag record` reads here and a bag written here
plays in ROS 2.
"""

from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from depth_scene import lifted_people  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402

from message_samples import MESSAGE_TYPES, SAMPLES, assert_same_message  # noqa: E402
from strongpose_ros.ros.bag_types import typestore  # noqa: E402
from strongpose_ros.ros.messages import person_array_msg, positions_from_msg  # noqa: E402

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_every_message_round_trips_through_a_bag(tmp_path, storage):
    store = typestore()
    path = tmp_path / f"bag_{storage}"
    written = {}
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        for i, typename in enumerate(sorted(MESSAGE_TYPES)):
            sample = SAMPLES[typename]()
            rclpy_bytes = serialize_message(sample)
            # The same message as a rosbags object, re-encoded by rosbags (padding bytes may differ from
            # rclpy's, so the two encodings are compared by decoding, not byte by byte).
            rosbags_bytes = bytes(store.serialize_cdr(store.deserialize_cdr(rclpy_bytes, typename), typename))
            name = typename.rsplit("/", 1)[-1].lower()
            for source, raw in (("rclpy", rclpy_bytes), ("rosbags", rosbags_bytes)):
                topic = f"/{source}/{name}"
                stamp = 1_000_000 * (i + 1) + len(source)
                writer.write(writer.add_connection(topic, typename, typestore=store), stamp, raw)
                written[topic] = (typename, sample, stamp)

    with Reader(path) as reader:
        assert reader.message_count == 2 * len(MESSAGE_TYPES)
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {topic: typename for topic, (typename, _, _) in written.items()}
        seen = set()
        for connection, timestamp, raw in reader.messages():
            typename, sample, stamp = written[connection.topic]
            assert timestamp == stamp
            assert_same_message(sample, deserialize_message(raw, MESSAGE_TYPES[typename]))
            assert_same_message(sample, store.deserialize_cdr(raw, typename))
            seen.add(connection.topic)
        assert seen == set(written)


def test_bag_message_definitions_come_from_msg_files(tmp_path):
    """The bag carries our msg text, so other tools (ros2 bag, Foxglove) can decode it without our package."""
    store = typestore()
    path = tmp_path / "bag_mcap"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/persons", "strongpose_ros/msg/PersonArray", typestore=store)
    with Reader(path) as reader:
        (connection,) = reader.connections
        assert "Person[] persons" in connection.msgdef.data
        assert "uint32 image_width" in connection.msgdef.data
        # The 3D fields and their dependency travel with it.
        assert "uint8 depth_status" in connection.msgdef.data and "uint8 DEPTH_OK=1" in connection.msgdef.data
        assert "bool has_position" in connection.msgdef.data
        assert "MSG: geometry_msgs/Point" in connection.msgdef.data


@pytest.mark.parametrize("storage", sorted(STORAGES))
def test_lifted_people_round_trip_through_a_bag(tmp_path, storage):
    """3D keypoints recorded from ~/persons read back the same, by rclpy and by rosbags (absent ones NaN)."""
    people, positions, _ = lifted_people()
    header = SAMPLES["strongpose_ros/msg/PersonArray"]().header
    msg = person_array_msg(header, people, (480, 640), "coco17", positions=positions)
    store = typestore()
    path = tmp_path / f"bag_{storage}"
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        connection = writer.add_connection("/pose_node/persons", "strongpose_ros/msg/PersonArray", typestore=store)
        writer.write(connection, 42, serialize_message(msg))
    with Reader(path) as reader:
        ((_, _, raw),) = list(reader.messages())
    for decoded in (deserialize_message(raw, MESSAGE_TYPES["strongpose_ros/msg/PersonArray"]),
                    store.deserialize_cdr(raw, "strongpose_ros/msg/PersonArray")):  # fmt: skip
        assert decoded.depth_status == 1
        back = positions_from_msg(decoded)
        np.testing.assert_array_equal(back.keypoint_valid, positions.keypoint_valid)
        np.testing.assert_allclose(back.keypoints, positions.keypoints, rtol=1e-6)
        np.testing.assert_allclose(back.keypoint_confidence, positions.keypoint_confidence, rtol=1e-6)
        np.testing.assert_allclose(back.positions, positions.positions, rtol=1e-6)
        assert np.isnan(decoded.persons[1].keypoints[0].position.y)  # absent stays NaN on disk
