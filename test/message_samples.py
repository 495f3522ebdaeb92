"""Fully populated instances of every message of the package, and a field-by-field comparison.

Shared by the DDS and rosbag2 tests. Every field gets a value different from its default, so a field
that is dropped or mangled anywhere shows up. Some keypoints have no 3D position: theirs is NaN, which must
arrive as NaN (a NaN compares equal to a NaN here, and to nothing else).
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from strongpose_ros.msg import BodyHeatmap, Keypoint, Person, PersonArray, PoseSchema
from strongpose_ros.schema import COCO17

MESSAGE_TYPES = {
    "strongpose_ros/msg/Keypoint": Keypoint,
    "strongpose_ros/msg/Person": Person,
    "strongpose_ros/msg/PersonArray": PersonArray,
    "strongpose_ros/msg/BodyHeatmap": BodyHeatmap,
    "strongpose_ros/msg/PoseSchema": PoseSchema,
}


def header(seq: int = 0) -> Header:
    return Header(stamp=Time(sec=1_700_000_000 + seq, nanosec=123_456_789), frame_id=f"camera_{seq}_optical")


NAN = float("nan")


def keypoint(i: int = 0) -> Keypoint:
    """Keypoint i; every third one has no 3D position (NaN, as the node sends it)."""
    if i % 3 == 2:
        return Keypoint(x=10.25 + i, y=-3.5 + 2 * i, score=0.125 + i / 64, has_position=False,
                        position=Point(x=NAN, y=NAN, z=NAN), position_confidence=0.0)  # fmt: skip
    return Keypoint(
        x=10.25 + i, y=-3.5 + 2 * i, score=0.125 + i / 64, has_position=True,
        position=Point(x=-0.4 + i / 32, y=0.1 * i, z=2.0 + i / 1024), position_confidence=0.5 + i / 64,
    )  # fmt: skip


def person(pid: int = 7) -> Person:
    return Person(
        id=pid, score=0.75, keypoints=[keypoint(i) for i in range(COCO17.num_keypoints)],
        x_min=1.5, y_min=2.5, x_max=300.25, y_max=401.0,
        has_position=True, position=Point(x=0.125, y=-0.25, z=2.5), position_confidence=0.625,
    )  # fmt: skip


def person_array() -> PersonArray:
    without = person(5)
    without.has_position, without.position, without.position_confidence = False, Point(x=NAN, y=NAN, z=NAN), 0.0
    return PersonArray(
        header=header(1), image_width=640, image_height=480, schema_name=COCO17.name,
        persons=[person(3), person(4), without], depth_status=PersonArray.DEPTH_OK,
    )


def float_image(height: int, width: int, seed: int) -> Image:
    data = np.random.default_rng(seed).random((height, width), dtype=np.float32)
    return Image(
        header=header(2), height=height, width=width, encoding="32FC1", is_bigendian=0, step=width * 4,
        data=array.array("B", data.tobytes()),
    )


def body_heatmap() -> BodyHeatmap:
    return BodyHeatmap(
        header=header(2), body=float_image(51, 41, 0), scale_x=8.0, scale_y=8.5, offset_x=-4.0, offset_y=3.0,
        keypoints=[float_image(51, 41, s) for s in (1, 2)],
    )


def pose_schema() -> PoseSchema:
    return PoseSchema(
        name=COCO17.name, keypoint_names=list(COCO17.keypoints),
        edge_start=[a for a, _ in COCO17.skeleton], edge_end=[b for _, b in COCO17.skeleton],
        oks_sigmas=[float(s) for s in COCO17.sigmas], flip_partner=[int(p) for p in COCO17.flip_permutation],
    )


SAMPLES = {
    "strongpose_ros/msg/Keypoint": keypoint,
    "strongpose_ros/msg/Person": person,
    "strongpose_ros/msg/PersonArray": person_array,
    "strongpose_ros/msg/BodyHeatmap": body_heatmap,
    "strongpose_ros/msg/PoseSchema": pose_schema,
}


def _fields(msg) -> list[str]:
    if hasattr(msg, "get_fields_and_field_types"):  # rclpy generated message
        return list(msg.get_fields_and_field_types())
    # rosbags message (a dataclass): its constants (DEPTH_OK, ...) are fields too; ROS names constants in
    # upper case and fields in lower case.
    return [name for name in msg.__dataclass_fields__ if not name.isupper()]


def assert_same_message(expected, actual, path: str = "msg") -> None:
    """Compare two messages (rclpy or rosbags flavour) field by field, naming the first difference."""
    if hasattr(expected, "get_fields_and_field_types") or hasattr(expected, "__dataclass_fields__"):
        expected_fields = [f for f in _fields(expected) if not f.startswith("__")]
        actual_fields = [f for f in _fields(actual) if not f.startswith("__")]
        assert expected_fields == actual_fields, f"{path}: fields {expected_fields} != {actual_fields}"
        for name in expected_fields:
            assert_same_message(getattr(expected, name), getattr(actual, name), f"{path}.{name}")
        return
    if isinstance(expected, (list, tuple, array.array, np.ndarray, bytes)):
        expected_list, actual_list = list(expected), list(actual)
        assert len(expected_list) == len(actual_list), f"{path}: length {len(expected_list)} != {len(actual_list)}"
        if expected_list and not hasattr(expected_list[0], "__dataclass_fields__") and not hasattr(
            expected_list[0], "get_fields_and_field_types"
        ):
            equal_nan = np.asarray(expected_list).dtype.kind == "f"
            assert np.array_equal(np.asarray(expected_list), np.asarray(actual_list), equal_nan=equal_nan), (
                f"{path}: values differ"
            )
            return
        for i, (e, a) in enumerate(zip(expected_list, actual_list, strict=True)):
            assert_same_message(e, a, f"{path}[{i}]")
        return
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(float(actual)), f"{path}: NaN became {actual}"
            return
        # float32 fields: values chosen to be exact in float32.
        assert math.isclose(expected, float(actual), rel_tol=0, abs_tol=0), f"{path}: {expected} != {actual}"
        return
    assert expected == actual, f"{path}: {expected!r} != {actual!r}"
