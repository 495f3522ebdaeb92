"""Shared fixtures: where the real COCO mini set lives, one torch thread, and a ROS availability check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (the same for developers and CI); STRONGPOSE_SHARED overrides it.
SHARED = Path(os.environ.get("STRONGPOSE_SHARED", REPO.parent / "shared"))
COCO_MINI = SHARED / "data" / "coco-mini-train"


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    # In CI the data must be there: a missing data set is a failure, not a silent skip.
    if os.environ.get("CI"):
        pytest.fail(f"{what} not found at {path}")
    pytest.skip(f"{what} not found at {path}")


@pytest.fixture(scope="session")
def coco_mini_annotations() -> Path:
    """The real 80-image COCO keypoint annotation file."""
    return _require(COCO_MINI / "annotations" / "person_keypoints_train2017.json", "COCO mini annotations")


@pytest.fixture(scope="session")
def coco_mini_images() -> Path:
    """The folder of the 80 real COCO images."""
    return _require(COCO_MINI / "train2017", "COCO mini images")


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`): the build
    machine's two cores are shared, and oversubscribed torch threads stall each other."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- ROS 2 -------------------------------------------------------------------------------------------
# Every test session talks on its own DDS domain, on this machine only, so that parallel runs and other
# ROS processes on the machine never see each other's topics.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
ROS_DOMAIN_ID = int(os.environ.get("STRONGPOSE_TEST_DOMAIN_ID", 20 + os.getpid() % 80))


@pytest.fixture
def ros_context():
    """An initialised rclpy context on this session's domain, shut down after the test."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=ROS_DOMAIN_ID)
    try:
        yield context
    finally:
        context.try_shutdown()
