"""strongpose_ros: StrongPose bottom-up multi-person pose estimation, as a ROS 2 package.

The core (schema, model, decode, data, train, estimator) needs no ROS; `strongpose_ros.ros` holds the
nodes and message conversions. Heavy modules are imported on first use so that `import strongpose_ros`
stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {"Estimator": "strongpose_ros.estimator"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'strongpose_ros' has no attribute {name!r}")

# The generated message modules (strongpose_ros.msg) are installed by colcon into install/, while the
# Python source may come first on the path (env.sh): extend the package path so both are found.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
