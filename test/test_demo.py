"""`strongpose demo` end to end: source_node + pose_node in one process write an annotated video, a bag whose
outputs carry the input frames' stamps, a summary and a plot; without bundled weights or clip it falls back
(with a message) and still runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
import torch
from conftest import ROS_DOMAIN_ID
from pose_node_support import finish_camera_publisher, start_camera_publisher
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from strongpose_ros import checkpoint
from strongpose_ros.cli import demo as demo_cli
from strongpose_ros.data.synth import generate_clip
from strongpose_ros.model import build_model
from strongpose_ros.msg import BodyHeatmap, PersonArray
from strongpose_ros.ros import demo
from strongpose_ros.ros.demo import DemoConfig, DemoError, DemoOptions, run_demo

CLIP_SECONDS, FPS, SIZE = 2.0, 15, (160, 120)
FRAMES = round(CLIP_SECONDS * FPS)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    video, _ = generate_clip(tmp_path_factory.mktemp("clip"), CLIP_SECONDS, seed=3, fps=FPS, size=SIZE)
    return Path(video)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return checkpoint.save(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors",
                           build_model(backbone="resnet18", input_size=(97, 97)))


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="strongpose")
    demo_cli.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["demo", *argv])
    return args.func(args)


def _bag(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    messages: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((timestamp, raw))
    return messages


def _stamps(raws: list[tuple[int, bytes]], cls: type) -> list[tuple[int, int]]:
    headers = [deserialize_message(raw, cls).header for _, raw in raws]
    return [(h.stamp.sec, h.stamp.nanosec) for h in headers]


def test_demo_on_a_video_writes_every_output(tmp_path, clip, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(ROS_DOMAIN_ID))
    out = tmp_path / "demo_output"
    figures = tmp_path / "figures.json"
    code = run_cli(["--video", str(clip), "--every-frame", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                    "--out", str(out), "--json", str(figures)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for name in ("annotated.mp4", "bag", "summary.json", "summary.png", "preview.jpg"):
        assert str(out / name) in printed  # it says where everything is

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["frames_processed"] == FRAMES
    assert summary["frames_dropped"] == 0 and summary["weights"] == "given" and summary["mode"] == "every_frame"
    assert len(summary["people_per_frame"]) == len(summary["latency_ms_per_frame"]) == FRAMES
    assert 0 < summary["latency_ms_p50"] <= summary["latency_ms_p95"]
    assert json.loads(figures.read_text())["frames_processed"] == FRAMES

    # The bag: the input and every output, one per frame, outputs stamped as their input frame.
    bag = _bag(out / "bag")
    assert {t: len(m) for t, m in bag.items() if t != "/diagnostics"} == {
        "/image": FRAMES, "/pose_node/persons": FRAMES, "/pose_node/body_heatmap": FRAMES,
        "/pose_node/overlay": FRAMES, "/pose_node/schema": 1}
    assert len(bag["/diagnostics"]) >= 1
    image_stamps = _stamps(bag["/image"], Image)
    assert len(set(image_stamps)) == FRAMES and image_stamps == sorted(image_stamps)
    assert _stamps(bag["/pose_node/persons"], PersonArray) == image_stamps
    assert _stamps(bag["/pose_node/body_heatmap"], BodyHeatmap) == image_stamps
    assert _stamps(bag["/pose_node/overlay"], Image) == image_stamps
    stamps_ns = [sec * 1_000_000_000 + nsec for sec, nsec in image_stamps]
    assert summary["stamps_ns"] == stamps_ns
    bag_times = [t for t, _ in bag["/pose_node/persons"]]
    assert bag_times == sorted(bag_times)
    first = deserialize_message(bag["/image"][0][1], Image)
    assert (first.width, first.height) == SIZE

    # The annotated video: one frame per processed frame, at the clip's size and rate.
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == FRAMES
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == SIZE
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    video.release()
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preview = cv2.imread(str(out / "preview.jpg"))
    assert preview.shape == (SIZE[1], 2 * SIZE[0], 3)  # the overlay next to the heat map over the frame


def test_demo_without_bundled_weights_or_clip_falls_back(tmp_path, monkeypatch, capsys):
    """A fresh machine before the weights and clip exist: an untrained stand-in, a generated clip, a message."""
    monkeypatch.setattr(demo, "WEIGHTS_DIR", tmp_path / "no_weights")
    monkeypatch.setattr(demo, "ASSETS_DIR", tmp_path / "no_assets")
    config = DemoConfig(clip_seconds=1.0, clip_size=SIZE, fallback_input_size=65)
    out = tmp_path / "out"
    result = run_demo(DemoOptions(output=out, device="cpu", domain_id=ROS_DOMAIN_ID), config)
    captured = capsys.readouterr()
    assert "no bundled demo weights" in captured.err and "UNTRAINED" in captured.err
    assert "generating one" in captured.out
    summary = result.summary
    assert summary["weights"] == "untrained" and summary["mode"] == "every_frame"
    assert summary["frames"] == summary["frames_processed"] == FPS
    assert len(summary["true_people_per_frame"]) == FPS  # the generated clip's own count, for the plot
    assert (out / "untrained_resnet18.safetensors").is_file()
    assert result.files["video"].is_file() and (out / "bag" / "metadata.yaml").is_file()

    # A second run replaces the first run's outputs.
    again = run_demo(DemoOptions(output=out, device="cpu", domain_id=ROS_DOMAIN_ID, quiet=True), config)
    assert again.summary["frames_processed"] == FPS
    assert len(_bag(out / "bag")["/pose_node/persons"]) == FPS


def test_demo_on_a_live_topic_takes_every_frame_of_a_reliable_camera(tmp_path, tiny_checkpoint):
    """issue 15: `demo --topic` on a live 640x480 topic processed 0 of 150 frames (best-effort input QoS)."""
    publisher = start_camera_publisher(width=640, height=480, rate=15, frames=30, reliability="reliable",
                                       topic="/cam/image_raw", settle=2.0)
    try:
        result = run_demo(DemoOptions(output=tmp_path / "out", topic="/cam/image_raw", checkpoint=tiny_checkpoint,
                                      device="cpu", seconds=12.0, domain_id=ROS_DOMAIN_ID, quiet=True))
    finally:
        report = finish_camera_publisher(publisher)
    assert report["published"] == 30
    summary = result.summary
    # Every frame reached the pose node (it followed the reliable publisher); those it had no time for were dropped.
    assert summary["frames"] == 30 and summary["frames_lost_in_transport"] == 0
    assert summary["frames_processed"] >= 1 and summary["mode"] == "newest"
    assert len(_bag(tmp_path / "out" / "bag")["/cam/image_raw"]) == 30  # the recorder followed it too


def test_bad_sources_are_refused(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(ROS_DOMAIN_ID))
    with pytest.raises(DemoError, match="choose one source"):
        run_demo(DemoOptions(output=tmp_path / "o", video=tmp_path / "a.mp4", camera="0"))
    code = run_cli(["--video", str(tmp_path / "missing.mp4"), "--checkpoint", str(tiny_checkpoint),
                    "--device", "cpu", "--out", str(tmp_path / "o2"), "--quiet"])
    assert code == 1
    assert "missing.mp4 does not exist" in capsys.readouterr().err
    code = run_cli(["--camera", "/dev/video97", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o3")])
    assert code == 1
    assert "/dev/video97 does not exist" in capsys.readouterr().err
    assert run_cli(["--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "o4")]) == 1
    assert "none.safetensors does not exist" in capsys.readouterr().err


def test_bundled_clip_is_small_and_playable():
    clip = demo.bundled_clip()
    if clip is None:
        pytest.skip("no bundled clip (the demo generates one)")
    assert clip.stat().st_size < 3 * 1024 * 1024
    truth = json.loads(clip.with_name(demo.CLIP_TRUTH_NAME).read_text())
    video = cv2.VideoCapture(str(clip))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == len(truth["people_per_frame"]) > 0
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(truth["fps"])


def test_bundled_clip_is_what_the_demo_config_makes(tmp_path):
    """The asset, its true counts and DemoConfig agree (regenerate both with make_clip after a change)."""
    clip = demo.bundled_clip()
    if clip is None:
        pytest.skip("no bundled clip (the demo generates one)")
    config = DemoConfig()
    video, truth = demo.make_clip(tmp_path, config)
    assert json.loads(clip.with_name(demo.CLIP_TRUTH_NAME).read_text())["people_per_frame"] == truth
    assert video.stat().st_size == pytest.approx(clip.stat().st_size, rel=0.05)
