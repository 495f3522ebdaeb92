"""Point the ROS wheels' CMake export files at this interpreter's include directories.

The ros-kilted-* wheels were built in a manylinux container and their `*Export.cmake` files name that
machine's Python and NumPy include directories; CMake then stops with "Imported target ... includes
non-existent path" (FACTS.md, trap 1). This rewrites those two paths in place. Idempotent: a second run
finds nothing to change.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The build machine's paths as they appear in the wheels: /opt/python/<tag>/include/python3.X and
# /opt/python/<tag>/lib/python3.X/site-packages/numpy/_core/include.
PYTHON_INCLUDE = re.compile(r"/opt/python/[^/;\"]+/include/python3\.\d+")
NUMPY_INCLUDE = re.compile(r"/opt/python/[^/;\"]+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def fix(prefix: Path) -> int:
    """Rewrite the export files under `prefix`/share; returns how many files changed."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in sorted((prefix / "share").glob("*/cmake/*Export*.cmake")):
        text = path.read_text()
        new = NUMPY_INCLUDE.sub(numpy_include, text)
        new = PYTHON_INCLUDE.sub(python_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    print(f"fix_ros_wheel_cmake: {fix(root)} export file(s) updated under {root}/share")
