"""This package's message types for the pure-Python `rosbags` library (rosbag2 files without ROS).

rosbags ships the standard ROS 2 types; ours are registered from the msg/ text, so a bag written here
reads in `ros2 bag` and the other way round (the CDR layout comes from the same definitions).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "strongpose_ros"
MESSAGES = ("Keypoint", "Person", "PersonArray", "BodyHeatmap", "PoseSchema")
# The ROS distribution whose standard types (std_msgs, sensor_msgs, ...) bags are written with.
DEFAULT_STORE = Stores.ROS2_KILTED


def _msg_directories() -> list[Path]:
    """Where the .msg files may be: the source checkout, then every ament prefix's share/."""
    candidates = [Path(__file__).resolve().parents[2] / "msg"]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / PACKAGE / "msg")
    return candidates


def find_msg_directory() -> Path:
    for directory in _msg_directories():
        if all((directory / f"{name}.msg").is_file() for name in MESSAGES):
            return directory
    searched = ", ".join(str(d) for d in _msg_directories())
    raise FileNotFoundError(f"the {PACKAGE} .msg files were not found (searched: {searched})")


def message_definitions() -> dict[str, str]:
    """{'strongpose_ros/msg/Keypoint': msg text, ...} for every message of the package."""
    directory = find_msg_directory()
    return {f"{PACKAGE}/msg/{name}": (directory / f"{name}.msg").read_text() for name in MESSAGES}


@lru_cache(maxsize=4)
def typestore(store: Stores = DEFAULT_STORE) -> Typestore:
    """A rosbags typestore holding the standard types of `store` and this package's messages."""
    types = get_typestore(store)
    definitions = {}
    for typename, text in message_definitions().items():
        definitions.update(get_types_from_msg(text, typename))
    types.register(definitions)
    return types
