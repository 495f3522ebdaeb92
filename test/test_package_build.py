"""The ROS 2 package builds with colcon from a clean tree and installs what users rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MESSAGES = ("Keypoint", "Person", "PersonArray", "BodyHeatmap", "PoseSchema")


def test_package_xml_is_a_valid_format3_ament_cmake_manifest():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg.parse_package(REPO / "package.xml")
    package.validate()
    assert package.package_format == 3
    assert package.name == "strongpose_ros"
    assert package.get_build_type() == "ament_cmake"
    depends = {d.name for d in package.build_depends + package.exec_depends + package.buildtool_depends}
    for name in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs", "diagnostic_msgs",
                 "rosidl_default_generators", "rosidl_default_runtime", "launch_ros"):
        assert name in depends, f"package.xml does not depend on {name}"
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]
    # The messages use geometry_msgs/Point, so it is needed to build them, not only to run.
    assert "geometry_msgs" in {d.name for d in package.build_depends}


@pytest.mark.skipif(shutil.which("colcon") is None, reason="colcon not on PATH: run the tests under `. ./env.sh`")
def test_colcon_build_from_a_clean_tree(tmp_path):
    """A fresh workspace (nothing reused from .ws/) builds, and the result imports and holds every file."""
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    # Link, as tools/setup.sh does: CMake must not see the checkout's .venv inside the package source.
    (workspace / "src" / "strongpose_ros").symlink_to(REPO)
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    result = subprocess.run(
        ["colcon", "build", "--base-paths", "src", "--event-handlers", "console_cohesion-", "status-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    prefix = workspace / "install" / "strongpose_ros"
    share = prefix / "share" / "strongpose_ros"
    for name in MESSAGES:
        assert (share / "msg" / f"{name}.msg").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "launch").is_dir() and (share / "config").is_dir()
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "strongpose_ros" / "schema.py").is_file(), "the Python sources were not installed"
    # The installed package's own __init__ wins over rosidl's generated one.
    assert "extend_path" in (site / "strongpose_ros" / "__init__.py").read_text()

    # The installed generated messages import and construct in a clean interpreter, from the install only.
    check = (
        "import strongpose_ros.msg as m; "
        "p = m.PersonArray(image_width=3, persons=[m.Person(keypoints=[m.Keypoint(x=1.0)])]); "
        "assert p.persons[0].keypoints[0].x == 1.0; "
        "assert not p.persons[0].keypoints[0].has_position and p.depth_status == m.PersonArray.DEPTH_OFF; "
        "import strongpose_ros.schema; print(strongpose_ros.__file__)"
    )
    run_env = dict(env, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", "").replace(str(REPO), ""))
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert str(site) in out.stdout


def test_setup_wrote_an_env_script_that_makes_everything_importable():
    """`make setup` (run before the tests by `make test`) leaves env.sh and a built workspace behind."""
    env_sh = REPO / "env.sh"
    if not env_sh.exists():
        pytest.skip("env.sh not written yet: run `make setup`")
    check = "import rclpy, sensor_msgs.msg, strongpose_ros.msg, strongpose_ros.schema, torch"
    out = subprocess.run(
        ["bash", "-c", f". {env_sh} && cd / && python -c '{check}'"], capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "VIRTUAL_ENV")},
    )
    assert out.returncode == 0, out.stderr[-3000:]
