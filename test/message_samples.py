"""Fully populated instances of every message of the package, and a field-by-field comparison.

Shared by the DDS and rosbag2 tests. Every field gets a value different from its default, so a field
that is dropped or mangled anywhere shows up.
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
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


def keypoint(i: int = 0) -> Keypoint:
    return Keypoint(x=10.25 + i, y=-3.5 + 2 * i, score=0.125 + i / 64)


def person(pid: int = 7) -> Person:
    return Person(
        id=pid, score=0.75, keypoints=[keypoint(i) for i in range(COCO17.num_keypoints)],
        x_min=1.5, y_min=2.5, x_max=300.25, y_max=401.0,
    )


def person_array() -> PersonArray:
    return PersonArray(
        header=header(1), image_width=640, image_height=480, schema_name=COCO17.name,
        persons=[person(3), person(4)],
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
    return list(msg.__dataclass_fields__)  # rosbags message (a dataclass); excludes __msgtype__


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
            assert np.array_equal(np.asarray(expected_list), np.asarray(actual_list)), f"{path}: values differ"
            return
        for i, (e, a) in enumerate(zip(expected_list, actual_list, strict=True)):
            assert_same_message(e, a, f"{path}[{i}]")
        return
    if isinstance(expected, float):
        # float32 fields: values chosen to be exact in float32.
        assert math.isclose(expected, float(actual), rel_tol=0, abs_tol=0), f"{path}: {expected} != {actual}"
        return
    assert expected == actual, f"{path}: {expected!r} != {actual!r}"
