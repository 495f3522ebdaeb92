"""`pip install .` gives the ROS-free core: the wheel holds the package and its data, and the core never
imports rclpy or the generated messages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = ("strongpose_ros.estimator", "strongpose_ros.model", "strongpose_ros.decode", "strongpose_ros.checkpoint",
        "strongpose_ros.evaluation", "strongpose_ros.train", "strongpose_ros.data.synth", "strongpose_ros.data.coco",
        "strongpose_ros.export", "strongpose_ros.tracking", "strongpose_ros.drawing", "strongpose_ros.cli",
        "strongpose_ros.depth")


def test_core_imports_without_ros():
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {CORE!r}]; "
            "from strongpose_ros import Estimator; "
            "print(sorted(m for m in sys.modules if m.startswith(('rclpy', 'strongpose_ros.msg', 'sensor_msgs'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"the core pulled in ROS modules: {out.stdout}"


def test_wheel_holds_the_package_its_data_and_the_command(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to setup.py.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".ws", ".git", "__pycache__", "*.egg-info",
                                                                 "build", "demo_output", ".*_cache", ".hypothesis"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("strongpose_ros-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for module in ("schema", "estimator", "checkpoint", "model/network", "decode/decoder", "train/trainer",
                   "data/synth", "cli/__init__", "ros/image_conversion", "depth/lifting"):
        assert f"strongpose_ros/{module}.py" in names, module
    assert "strongpose_ros/assets/demo_clip.mp4" in names
    assert "strongpose = strongpose_ros.cli:main" in entry_points
    assert not any(n.startswith(("test/", "bench/")) for n in names)
