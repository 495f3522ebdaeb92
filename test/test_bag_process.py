"""`strongpose bag process`: outputs with the input's stamps, the estimator's results, corrupt messages skipped
and counted, the input bag untouched, OUT refused unless --overwrite."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
import torch
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from strongpose_ros import checkpoint
from strongpose_ros.cli import bag as bag_cli
from strongpose_ros.estimator import Estimator
from strongpose_ros.model import build_model
from strongpose_ros.msg import BodyHeatmap, PersonArray, PoseSchema
from strongpose_ros.ros.bag_process import BagProcessConfig, BagProcessError, process_bag
from strongpose_ros.ros.bag_types import typestore
from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image
from strongpose_ros.ros.messages import people_from_msg

SIZE = (60, 80)  # height, width of the frames
FRAMES = 5


def _frame(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    image = cv2.GaussianBlur(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8), (7, 7), 0)
    cv2.circle(image, (20 + 8 * i, 30), 10, (255, 255, 255), -1)
    return image


def _header(i: int) -> Header:
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 200 + i, 7_000 * i
    return header


def _bag_time(i: int) -> int:
    return 9_000_000_000 + 33_000_000 * i


def write_bag(path: Path, storage: StoragePlugin, compressed: bool, corrupt_at: int) -> Path:
    store = typestore()
    with Writer(path, version=9, storage_plugin=storage) as writer:
        if compressed:
            images = writer.add_connection("/cam/image/compressed", "sensor_msgs/msg/CompressedImage", typestore=store)
        else:
            images = writer.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=store)
        info = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for i in range(FRAMES):
            writer.write(info, _bag_time(i), serialize_message(CameraInfo(header=_header(i))))
            if compressed:
                msg = numpy_to_compressed(_frame(i), "jpeg", _header(i))
                raw = serialize_message(msg)
                if i == corrupt_at:  # a JPEG cut in half: valid CDR, undecodable picture
                    msg.data = msg.data[: len(msg.data) // 2]
                    raw = serialize_message(msg)
            else:
                raw = serialize_message(numpy_to_image(_frame(i), "bgr8", _header(i)))
                if i == corrupt_at:  # CDR cut short: not even a message
                    raw = raw[:40]
            writer.write(images, _bag_time(i), raw)
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _messages(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, raw))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", input_size=(65, 65))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    checkpoint.save(path, model)
    return path


def run_cli(argv: list[str]) -> int:
    """`strongpose bag ...` with only this verb registered (independent of the other verbs' modules)."""
    parser = argparse.ArgumentParser(prog="strongpose")
    bag_cli.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["bag", *argv])
    return args.func(args)


@pytest.mark.parametrize(("storage", "compressed", "out_storage"), [
    (StoragePlugin.SQLITE3, False, "mcap"),
    (StoragePlugin.MCAP, True, "sqlite3"),
], ids=["sqlite3-image", "mcap-compressed"])
def test_process_a_bag(tmp_path, tiny, storage, compressed, out_storage, capsys):
    bag = write_bag(tmp_path / "in", storage, compressed, corrupt_at=2)
    before = _digest(bag)
    out = tmp_path / "out"
    topic = "/cam/image"  # with --compressed, /cam/image/compressed is found from the base name
    figures = tmp_path / "summary.json"
    argv = ["process", str(bag), str(out), "--topic", topic, "--checkpoint", str(tiny), "--device", "cpu",
            "--storage", out_storage, "--quiet", "--json", str(figures), "--overlay", "--copy-input"]
    code = run_cli([*argv, "--compressed"] if compressed else argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err

    assert _digest(bag) == before  # the input is never modified (nor are files added to it)
    summary = json.loads(figures.read_text())
    assert summary["frames"] == FRAMES and summary["frames_processed"] == FRAMES - 1
    assert summary["frames_skipped"] == 1
    assert summary["skipped_decode" if compressed else "skipped_deserialize"] == 1
    assert "skipped the message at" in captured.out + captured.err
    assert "frames 5: processed 4, skipped 1" in captured.out

    written = _messages(out)
    expected = [i for i in range(FRAMES) if i != 2]
    in_topic = "/cam/image/compressed" if compressed else "/cam/image"
    assert set(written) == {"/pose_node/persons", "/pose_node/body_heatmap", "/pose_node/overlay",
                            "/pose_node/schema", in_topic}
    with Reader(out) as reader:
        assert reader.connections[0].msgdef.data  # definitions travel with the bag
    # Same bag timestamps and header stamps as the input frames.
    estimator = Estimator.from_checkpoint(tiny, device="cpu")
    for topic, cls in (("/pose_node/persons", PersonArray), ("/pose_node/body_heatmap", BodyHeatmap)):
        assert [t for t, _ in written[topic]] == [_bag_time(i) for i in expected]
        headers = [deserialize_message(raw, cls).header for _, raw in written[topic]]
        assert [(h.stamp.sec, h.stamp.nanosec, h.frame_id) for h in headers] == \
            [(200 + i, 7_000 * i, "cam") for i in expected]
    assert len(written["/pose_node/schema"]) == 1
    schema = deserialize_message(written["/pose_node/schema"][0][1], PoseSchema)
    assert schema.name == "coco17" and len(schema.keypoint_names) == 17
    assert len(written[in_topic]) == FRAMES  # --copy-input copies every message, the corrupt one included

    # The results are the estimator's on the same pixels (what the pose node would publish).
    for (_, raw), i in zip(written["/pose_node/persons"], expected, strict=True):
        msg = deserialize_message(raw, PersonArray)
        assert (msg.image_width, msg.image_height) == (SIZE[1], SIZE[0])
        image = _frame(i)
        if compressed:
            image = cv2.imdecode(np.frombuffer(numpy_to_compressed(image, "jpeg").data, np.uint8), cv2.IMREAD_COLOR)
        want = estimator.estimate(image).people
        got, _ = people_from_msg(msg)
        assert len(got) == len(want)
        for g, w in zip(got, sorted(want, key=lambda p: -p.score), strict=True):
            np.testing.assert_allclose(g.keypoints, w.keypoints, atol=1e-4)
    heatmap = deserialize_message(written["/pose_node/body_heatmap"][0][1], BodyHeatmap)
    assert heatmap.body.encoding == "32FC1" and heatmap.body.height > 0


def test_existing_output_needs_overwrite(tmp_path, tiny, capsys):
    bag = write_bag(tmp_path / "in", StoragePlugin.MCAP, False, corrupt_at=-1)
    out = tmp_path / "out"
    argv = ["process", str(bag), str(out), "--topic", "/cam/image", "--checkpoint", str(tiny), "--device", "cpu",
            "--quiet", "--no-heatmap"]
    assert run_cli(argv) == 0
    first = _digest(out)
    assert run_cli(argv) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert _digest(out) == first  # refused: left as it was
    assert run_cli([*argv, "--overwrite"]) == 0
    assert set(_messages(out)) == {"/pose_node/persons", "/pose_node/schema"}  # --no-heatmap
    # --overwrite replaces a bag, never some other folder.
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    assert run_cli(["process", str(bag), str(other), "--topic", "/cam/image", "--checkpoint", str(tiny),
                    "--overwrite", "--quiet"]) == 2
    assert "is not a rosbag2 folder" in capsys.readouterr().err
    assert (other / "thesis.tex").exists()
    assert not list(tmp_path.glob(".out.partial-*"))  # no temporary bag left behind


def test_bad_topics_and_arguments(tmp_path, tiny):
    bag = write_bag(tmp_path / "in", StoragePlugin.SQLITE3, False, corrupt_at=-1)
    estimator = Estimator.from_checkpoint(tiny, device="cpu")
    with pytest.raises(BagProcessError, match=r"no topic '/nope'; its topics: /cam/camera_info .*/cam/image"):
        process_bag(bag, tmp_path / "o1", "/nope", estimator=estimator, progress=False)
    with pytest.raises(BagProcessError, match="holds sensor_msgs/msg/CameraInfo"):
        process_bag(bag, tmp_path / "o2", "/cam/camera_info", estimator=estimator, progress=False)
    with pytest.raises(BagProcessError, match="--compressed expects"):
        process_bag(bag, tmp_path / "o3", "/cam/image", estimator=estimator, compressed=True, progress=False)
    with pytest.raises(BagProcessError, match="must not be the input bag"):
        process_bag(bag, bag / "inside", "/cam/image", estimator=estimator, progress=False)
    with pytest.raises(BagProcessError, match="does not exist"):
        process_bag(tmp_path / "missing", tmp_path / "o4", "/cam/image", estimator=estimator, progress=False)
    with pytest.raises(BagProcessError, match="storage must be one of"):
        BagProcessConfig(storage="zip")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4"))


def test_batches_give_the_same_results(tmp_path, tiny):
    bag = write_bag(tmp_path / "in", StoragePlugin.MCAP, False, corrupt_at=-1)
    estimator = Estimator.from_checkpoint(tiny, device="cpu")
    one = process_bag(bag, tmp_path / "one", "/cam/image", estimator=estimator, progress=False)
    three = process_bag(bag, tmp_path / "three", "/cam/image", estimator=estimator, progress=False,
                        config=BagProcessConfig(batch=3))
    assert one.processed == three.processed == FRAMES
    a, b = _messages(tmp_path / "one"), _messages(tmp_path / "three")
    for topic in ("/pose_node/persons", "/pose_node/body_heatmap"):
        assert len(a[topic]) == len(b[topic]) == FRAMES
        for (ta, ra), (tb, rb) in zip(a[topic], b[topic], strict=True):
            assert ta == tb
            ma, mb = deserialize_message(ra, PersonArray if "persons" in topic else BodyHeatmap), \
                deserialize_message(rb, PersonArray if "persons" in topic else BodyHeatmap)
            assert ma.header == mb.header
