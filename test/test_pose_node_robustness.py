"""pose_node under bad input over real DDS: every kind of broken frame is counted in /diagnostics, produces
no output, and the node answers the next good frame; NaN outputs; a publisher faster than the node."""

from __future__ import annotations

import array
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
import cv2  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from pose_node_support import (  # noqa: E402
    FIND_PEOPLE,
    Harness,
    diagnostics_values,
    frame,
    header,
    make_checkpoint,
)
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from strongpose_ros.msg import PersonArray  # noqa: E402
from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image  # noqa: E402
from strongpose_ros.ros.intake import FrameBuffer, check_frame, frame_size  # noqa: E402

# every_frame + reliable: each bad frame reaches the worker and is counted (none is superseded).
ORDERED = {"input.mode": "every_frame", "input.reliability": "reliable", "input.depth": 20, **FIND_PEOPLE}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("robustness") / "resnet18_129.safetensors")


@pytest.fixture
def harness_factory(ros_context, model_path):
    made = []

    def make(path=None, **params) -> Harness:
        harness = Harness(ros_context, path or model_path, **params)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def _raw(height: int, width: int, encoding: str, step: int, data: bytes, sec: int) -> Image:
    payload = array.array("B")
    payload.frombytes(data)
    return Image(header=header(sec), height=height, width=width, encoding=encoding, is_bigendian=0, step=step,
                 data=payload)


def _wait_for_counts(h: Harness, published: int) -> None:
    assert h.spin_until(lambda: h.node.stats.snapshot().received >= published), "frames did not arrive"
    assert h.spin_until(lambda: h.node.wait_idle(0.0)), "the node did not finish"
    h.spin_for(0.2)


def _latest_diagnostics(h: Harness, processed: int) -> dict[str, str]:
    """The values of a /diagnostics message that reports at least `processed` processed frames."""
    def ready():
        msgs = h.received["diagnostics"]
        return msgs and int(diagnostics_values(msgs[-1])["frames_processed"]) >= processed

    assert h.spin_until(ready, timeout=10), "no /diagnostics message with the expected counts"
    return diagnostics_values(h.received["diagnostics"][-1])


def test_broken_raw_frames_are_counted_and_the_node_answers_the_next_good_one(harness_factory):
    h = harness_factory(**ORDERED)
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    h.subscribe("diagnostics", DiagnosticArray, "/diagnostics")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    good = np.ascontiguousarray(frame(1)).tobytes()  # 96 x 128 bgr8
    bad = [
        _raw(96, 128, "xyz8", 384, good, 1),  # unknown encoding
        _raw(96, 128, "16SC1", 256, bytes(96 * 256), 2),  # known, but no picture (signed)
        _raw(96, 128, "bgr8", 384, good[: len(good) // 2], 3),  # truncated
        _raw(96, 128, "bgr8", 100, good, 4),  # step shorter than a row
        _raw(0, 0, "bgr8", 0, b"", 5),  # 0 x 0
        _raw(6000, 8000, "mono8", 8000, bytes(8000 * 6000), 6),  # 8000 x 6000: more than input.max_pixels
    ]
    for msg in bad:
        pub.publish(msg)
    pub.publish(numpy_to_image(frame(1), "bgr8", header(7)))
    _wait_for_counts(h, len(bad) + 1)

    assert h.spin_until(lambda: h.received["persons"])
    assert [m.header.stamp.sec for m in h.received["persons"]] == [7], "only the good frame has an output"
    assert len(h.received["persons"][0].persons) == 3
    values = _latest_diagnostics(h, 1)
    assert values["frames_received"] == "7" and values["frames_processed"] == "1"
    assert values["bad_encoding"] == "2" and values["bad_data"] == "2"
    assert values["bad_empty"] == "1" and values["bad_too_large"] == "1" and values["frames_bad"] == "6"
    assert any(m.status[0].level == DiagnosticStatus.WARN for m in h.received["diagnostics"])


def test_broken_compressed_frames_are_counted_and_the_node_answers_the_next_good_one(harness_factory):
    h = harness_factory(**{"input.transport": "compressed", **ORDERED})
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    h.subscribe("diagnostics", DiagnosticArray, "/diagnostics")
    pub = h.publisher(CompressedImage, "/image/compressed")
    h.connect(pub, "persons")
    jpeg = bytes(numpy_to_compressed(frame(2), "jpeg").data)
    corrupt = bytearray(jpeg)
    corrupt[2:40] = b"\x00" * 38  # the header segments are gone: undecodable, though it ends with EOI
    encoded, huge = cv2.imencode(".jpg", np.zeros((6000, 8000), np.uint8))  # small file, 48 Mpixel picture
    assert encoded

    def compressed(data: bytes, fmt: str, sec: int) -> CompressedImage:
        payload = array.array("B")
        payload.frombytes(data)
        return CompressedImage(header=header(sec), format=fmt, data=payload)

    bad = [
        compressed(jpeg[: len(jpeg) // 2], "jpeg", 1),  # truncated JPEG
        compressed(bytes(corrupt), "jpeg", 2),  # corrupt JPEG
        compressed(b"\x12\x34" * 500, "jpeg", 3),  # not JPEG at all
        compressed(jpeg, "webp", 4),  # unknown format
        compressed(b"", "png", 5),  # no data
        compressed(huge.tobytes(), "jpeg", 6),  # 8000 x 6000: refused from the JPEG header, not decoded
    ]
    for msg in bad:
        pub.publish(msg)
    pub.publish(compressed(jpeg, "jpeg", 7))
    _wait_for_counts(h, len(bad) + 1)

    assert h.spin_until(lambda: h.received["persons"])
    assert [m.header.stamp.sec for m in h.received["persons"]] == [7]
    values = _latest_diagnostics(h, 1)
    assert values["bad_compressed"] == "5" and values["bad_too_large"] == "1"
    assert values["frames_processed"] == "1"


@pytest.mark.parametrize("head", ["heatmap", "body"])
def test_nan_outputs_are_counted_never_published_and_a_good_checkpoint_recovers(harness_factory, tmp_path,
                                                                                model_path, head):
    poisoned = make_checkpoint(tmp_path / f"nan_{head}.safetensors", nan_head=head)
    h = harness_factory(path=poisoned, warmup=False, **ORDERED)
    assert h.node.lifecycle_state == "active", h.node.startup_error
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    h.subscribe("diagnostics", DiagnosticArray, "/diagnostics")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    for sec in (1, 2, 3):
        pub.publish(numpy_to_image(frame(sec), "bgr8", header(sec)))
    _wait_for_counts(h, 3)
    assert h.received["persons"] == [], "NaN outputs must not be published as people"
    snapshot = h.node.stats.snapshot()
    assert snapshot.bad["nonfinite_output"] == 3 and snapshot.processed == 0
    assert h.spin_until(lambda: any(diagnostics_values(m)["bad_nonfinite_output"] == "3"
                                    for m in h.received["diagnostics"]), timeout=10)

    # The node is alive: swap in a good checkpoint (applies at the next configure) and go again.
    node = h.node
    assert node.set_parameters([Parameter("checkpoint", value=str(model_path))])[0].successful
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert node.start(), node.startup_error
    h.connect(pub, "persons")
    pub.publish(numpy_to_image(frame(4), "bgr8", header(4)))
    assert h.spin_until(lambda: h.received["persons"])
    assert h.received["persons"][0].header.stamp.sec == 4


def test_a_publisher_faster_than_the_node_leaves_one_waiting_frame_and_counts_drops(harness_factory):
    h = harness_factory(**FIND_PEOPLE)  # defaults: newest frame wins, best effort depth 1
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    pub.publish(numpy_to_image(frame(0), "bgr8", header(1)))
    started = time.monotonic()
    assert h.spin_until(lambda: h.received["persons"])
    interval = (time.monotonic() - started) / 5  # five times faster than the node processes
    count = 25
    for i in range(count):
        pub.publish(numpy_to_image(frame(i % 3), "bgr8", header(100 + i)))
        h.spin_for(interval)
    # DDS (best effort, depth 1) may itself skip frames; what the node saw is accounted for exactly.
    assert h.spin_until(lambda: h.node.wait_idle(0.0))
    h.spin_for(0.3)
    stats = h.node.stats.snapshot()
    assert stats.received == stats.processed + stats.dropped + stats.bad_total
    assert stats.dropped > 0, "frames arriving faster than processing must be dropped and counted"
    assert h.node._buffer.high_water == 1, "more than one frame was held waiting"
    stamps = [m.header.stamp.sec for m in h.received["persons"]]
    assert stamps == sorted(stamps) and stamps[-1] == 100 + count - 1, "the newest frame must win"
    assert len(stamps) == stats.processed


# --- the hand-over between subscription and worker, and the cheap size checks (no DDS) ---------------


def test_newest_buffer_keeps_only_the_newest_frame():
    buffer = FrameBuffer("newest", capacity=30)  # capacity is 1 whatever is asked for
    assert buffer.put("a") == 0
    assert buffer.put("b") == 1  # "a" is superseded
    assert buffer.put("c") == 1
    assert buffer.get(0.1) == "c" and buffer.get(0.01) is None
    assert buffer.high_water == 1


def test_every_frame_buffer_keeps_order_and_makes_the_producer_wait():
    buffer = FrameBuffer("every_frame", capacity=2)
    assert buffer.put(1) == 0 and buffer.put(2) == 0
    waiting = threading.Thread(target=lambda: results.append(buffer.put(3)))
    results: list[int] = []
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive(), "a full every_frame buffer must hold the producer back"
    assert buffer.get(1.0) == 1
    waiting.join(5)
    assert results == [0]
    taken = [buffer.get(1.0), buffer.get(1.0)]
    assert taken == [2, 3]
    assert not buffer.wait_idle(0.05)  # three frames taken, none marked done
    for _ in range(3):
        buffer.done()
    assert buffer.wait_idle(1.0)


def test_closing_the_buffer_wakes_a_waiting_producer_and_consumer():
    buffer = FrameBuffer("every_frame", capacity=1)
    buffer.put("x")
    results: list[int] = []
    producer = threading.Thread(target=lambda: results.append(buffer.put("y")))
    producer.start()
    producer.join(0.1)
    assert buffer.close() == 1  # "x" discarded
    producer.join(5)
    assert results == [1] and buffer.get(5) is None and buffer.put("z") == 1
    with pytest.raises(ValueError, match="policy"):
        FrameBuffer("oldest")


@pytest.mark.parametrize("codec", ["jpeg", "progressive_jpeg", "png"])
def test_compressed_frame_size_is_read_from_the_header(codec):
    image = np.zeros((37, 53, 3), np.uint8)
    ext, params = {"jpeg": (".jpg", []), "progressive_jpeg": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                   "png": (".png", [])}[codec]
    encoded, data = cv2.imencode(ext, image, params)
    assert encoded
    msg = CompressedImage(format=codec, data=array.array("B", data.tobytes()))
    assert frame_size(msg) == (37, 53)
    assert check_frame(msg, max_pixels=37 * 53) is None
    reason, message = check_frame(msg, max_pixels=37 * 53 - 1)
    assert reason == "too_large" and "53x37" in message
    assert frame_size(CompressedImage(format="jpeg", data=array.array("B", b"\xff\xd8\x00\x01"))) is None
    assert check_frame(Image(height=0, width=5), max_pixels=10)[0] == "empty"


def test_every_camera_encoding_gives_people(harness_factory):
    h = harness_factory(**ORDERED)
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    bgr = frame(3)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    pictures = {
        "rgb8": bgr[..., ::-1], "bgr8": bgr, "rgba8": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
        "bgra8": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), "mono8": gray, "mono16": gray.astype(np.uint16) * 257,
        "bayer_rggb8": gray, "32FC1": gray.astype(np.float32) / 255.0, "16UC1": gray.astype(np.uint16) * 257,
        "yuyv": cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2),
    }  # fmt: skip
    for sec, (encoding, picture) in enumerate(pictures.items(), start=1):
        pub.publish(numpy_to_image(np.ascontiguousarray(picture), encoding, header(sec, frame_id=encoding)))
    assert h.spin_until(lambda: len(h.received["persons"]) >= len(pictures))
    assert [m.header.frame_id for m in h.received["persons"]] == list(pictures)
    assert all(len(m.persons) == 3 and (m.image_width, m.image_height) == (128, 96) for m in h.received["persons"])
    assert h.node.stats.snapshot().bad_total == 0
