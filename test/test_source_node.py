"""source_node: frames from a video, a folder and a bag reach a subscriber, with the right stamps, order and
camera info; missing or unreadable inputs give clear errors; `loop: false` ends with ~/done."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Bool, Header, String  # noqa: E402

from strongpose_ros.msg import PersonArray  # noqa: E402
from strongpose_ros.ros.bag_types import typestore  # noqa: E402
from strongpose_ros.ros.calibration import load_camera_info  # noqa: E402
from strongpose_ros.ros.frame_sources import CameraSource, SourceError, open_source  # noqa: E402
from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image, to_bgr8  # noqa: E402
from strongpose_ros.ros.source_node import DEFAULT_FRAME_ID, SourceNode, _Pacer, settings_from_values  # noqa: E402

SIZE = (48, 64)  # height, width
RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
CALIBRATION = """\
image_width: 64
image_height: 48
camera_name: test
camera_matrix: {rows: 3, cols: 3, data: [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.01, 0.0, 0.0, 0.0]}
"""


def _frame(i: int) -> np.ndarray:
    """A frame whose brightness says its index (survives JPEG/MPEG compression)."""
    return np.full((*SIZE, 3), 20 + 30 * i, dtype=np.uint8)


def _index(image: np.ndarray) -> int:
    return round((float(image.mean()) - 20) / 30)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for i in range(6):
        writer.write(_frame(i))
    writer.release()
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("folder")
    for i, name in enumerate(["frame1.png", "frame2.jpg", "frame10.png"]):  # natural order: 1, 2, 10
        cv2.imwrite(str(path / name), _frame(i))
    (path / "frame3.png").write_bytes(b"not an image")  # skipped, counted
    (path / "notes.txt").write_text("ignored: not an image extension")
    return path


def _stamp(i: int) -> tuple[int, int]:
    return 1000 + i, 123_000 * (i + 1)


def write_bag(path: Path, storage: StoragePlugin, compressed: bool = False, corrupt_at: int | None = None) -> Path:
    """5 frames on /cam/image_raw (or .../compressed) with header stamps unlike their bag times, a CameraInfo
    topic, an unrelated topic, and optionally one corrupt frame."""
    store = typestore()
    with Writer(path, version=9, storage_plugin=storage) as writer:
        msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        topic = "/cam/image_raw/compressed" if compressed else "/cam/image_raw"
        image = writer.add_connection(topic, msgtype, typestore=store)
        info = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        writer.write(other, 1_000, serialize_message(String(data="hello")))
        for i in range(5):
            sec, nanosec = _stamp(i)
            header = Header(frame_id="cam_optical")
            header.stamp.sec, header.stamp.nanosec = sec, nanosec
            t = 5_000_000_000 + i * 20_000_000
            cam_info = CameraInfo(header=header, width=SIZE[1], height=SIZE[0], distortion_model="plumb_bob")
            writer.write(info, t + 1, serialize_message(cam_info))  # recorded just after its image
            if i == corrupt_at:
                writer.write(image, t, b"\x00\x01\x00\x00 definitely not an image")
                continue
            msg = numpy_to_compressed(_frame(i), "jpeg", header) if compressed else \
                numpy_to_image(_frame(i), "bgr8", header)
            writer.write(image, t, serialize_message(msg))
    return path


class Collector(Node):
    def __init__(self, context, namespace: str = "") -> None:
        super().__init__("collector", context=context, namespace=namespace)
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.compressed: list[CompressedImage] = []
        self.clock: list[Clock] = []
        self.done: list[bool] = []
        self.create_subscription(Image, "image", self.images.append, RELIABLE)
        self.create_subscription(CameraInfo, "camera_info", self.infos.append, RELIABLE)
        self.create_subscription(CompressedImage, "image/compressed", self.compressed.append, RELIABLE)
        self.create_subscription(Clock, "/clock", self.clock.append, RELIABLE)
        self.create_subscription(Bool, "source_node/done", lambda m: self.done.append(m.data), LATCHED)


def run_source(context, params: dict, *, extra_nodes=(), until=None, timeout: float = 20.0):
    """Start a SourceNode (not autostarted) next to a Collector, start it once they see each other, spin
    until the source is done (and the collector has its last messages) or `until()` is true."""
    overrides = [Parameter(k, value=v) for k, v in {"autostart": False, **params}.items()]
    node = SourceNode(context=context, parameter_overrides=overrides)
    assert node.startup_error is None, node.startup_error
    collector = Collector(context)
    executor = SingleThreadedExecutor(context=context)
    for n in (node, collector, *extra_nodes):
        executor.add_node(n)
    deadline = time.monotonic() + timeout
    # Volatile QoS: whatever is published before a subscription is matched is lost, so wait for all of them.
    publishers = [p for p in (node._image_pub, node._info_pub, node._compressed_pub, node._clock_pub) if p]
    while any(p.get_subscription_count() < 1 for p in publishers) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    node.start()
    try:
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if until is not None and until(node, collector):
                break
            if until is None and node.done.is_set() and len(collector.images) >= node.frames_published \
                    and collector.done[-1:] == [True] \
                    and (node._compressed_pub is None or len(collector.compressed) >= node.frames_published):
                break
        else:
            pytest.fail("the source did not finish in time")
    finally:
        node.stop()
        executor.shutdown()
    return node, collector


def test_video_once_with_calibration(ros_context, video, tmp_path):
    calibration = tmp_path / "calibration.yaml"
    calibration.write_text(CALIBRATION)
    node, got = run_source(ros_context, {"source": "video", "path": str(video), "rate": 200.0,
                                         "camera_info_file": str(calibration)})
    assert node.frames_published == 6 and node.error is None
    assert [_index(to_bgr8(m)) for m in got.images] == list(range(6))
    first = got.images[0]
    # An optical frame by default (REP-103), as the pose node's image-plane markers assume.
    assert DEFAULT_FRAME_ID == "camera_optical_frame"
    assert (first.height, first.width, first.encoding, first.header.frame_id) == (*SIZE, "bgr8", DEFAULT_FRAME_ID)
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got.images]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6  # the node's clock, one stamp per frame
    assert len(got.infos) == 6 and [i.header for i in got.infos] == [m.header for m in got.images]
    assert list(got.infos[0].k) == [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    assert list(got.infos[0].p)[:4] == [50.0, 0.0, 32.0, 0.0] and len(got.infos[0].d) == 5
    assert got.done[-1] is True and node.done.is_set()


def test_folder_in_natural_order_skipping_unreadable(ros_context, folder):
    node, got = run_source(ros_context, {"source": "folder", "path": str(folder), "rate": 200.0,
                                         "frame_id": "front", "publish_compressed": True})
    assert [_index(to_bgr8(m)) for m in got.images] == [0, 1, 2]  # frame1, frame2, frame10; frame3 skipped
    assert node.frames_skipped == 1
    assert {m.header.frame_id for m in got.images} == {"front"}
    assert [_index(to_bgr8(m)) for m in got.compressed] == [0, 1, 2]
    assert not got.infos  # no calibration: no camera_info


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_bag_keeps_original_stamps_and_camera_info(ros_context, tmp_path, storage):
    bag = write_bag(tmp_path / "bag", storage, corrupt_at=2)
    node, got = run_source(ros_context, {"source": "bag", "path": str(bag), "publish_clock": True})
    frames = [0, 1, 3, 4]  # frame 2 is corrupt: reported, skipped
    assert node.frames_skipped == 1 and node.frames_published == 4
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got.images] == [_stamp(i) for i in frames]
    assert [_index(to_bgr8(m)) for m in got.images] == frames
    assert {m.header.frame_id for m in got.images} == {"cam_optical"}
    assert [i.header for i in got.infos] == [m.header for m in got.images]
    # /clock carries the bag's recorded times, not the header stamps.
    assert [(c.clock.sec, c.clock.nanosec) for c in got.clock] == [(5, i * 20_000_000) for i in frames]


def test_bag_compressed_topic(ros_context, tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, compressed=True)
    _, got = run_source(ros_context, {"source": "bag", "path": str(bag), "rate": 500.0, "frame_id": "x"})
    assert [_index(to_bgr8(m)) for m in got.images] == list(range(5))
    assert {m.encoding for m in got.images} == {"bgr8"}
    assert [m.format for m in got.compressed] == ["bgr8; jpeg compressed bgr8"] * 5  # as recorded
    assert [m.header for m in got.compressed] == [m.header for m in got.images]
    assert {m.header.frame_id for m in got.images} == {"x"}


def test_the_first_frame_waits_for_a_subscriber(ros_context, folder):
    """issue 15: a standalone source_node published before anyone was matched and lost its first frame."""
    node = SourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="folder"), Parameter("path", value=str(folder)), Parameter("rate", value=200.0)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # started (autostart), nobody listening yet
            executor.spin_once(timeout_sec=0.05)
        assert node.frames_published == 0 and not node.done.is_set()
        collector = Collector(ros_context)
        executor.add_node(collector)
        deadline = time.monotonic() + 20
        while not (node.done.is_set() and len(collector.images) >= 3) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert [_index(to_bgr8(m)) for m in collector.images] == [0, 1, 2]
    finally:
        node.stop()
        executor.shutdown()
        node.destroy_node()


def test_loop_replays_until_stopped(ros_context, folder):
    _, got = run_source(ros_context, {"source": "folder", "path": str(folder), "rate": 300.0, "loop": True},
                           until=lambda node, got: len(got.images) >= 8)
    assert [_index(to_bgr8(m)) for m in got.images[:8]] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert not got.done or got.done[-1] is False


class Acker(Node):
    """Plays a slow pose node: answers each image with a PersonArray of the same stamp after a delay."""

    def __init__(self, context, delay: float) -> None:
        super().__init__("acker", context=context)
        self.delay = delay
        self.pub = self.create_publisher(PersonArray, "persons", RELIABLE)
        self.create_subscription(Image, "image", self._on_image, RELIABLE)

    def _on_image(self, msg: Image) -> None:
        def answer():
            time.sleep(self.delay)
            self.pub.publish(PersonArray(header=msg.header))

        threading.Thread(target=answer, daemon=True).start()


def test_lockstep_waits_for_each_result(ros_context, folder):
    acker = Acker(ros_context, delay=0.15)
    node, got = run_source(ros_context, {"source": "folder", "path": str(folder), "rate": 1000.0,
                                         "lockstep_topic": "persons", "lockstep_timeout": 5.0},
                           extra_nodes=[acker])
    assert node.frames_published == 3 and node.lockstep_timeouts == 0
    # Each frame waited for the previous one's answer: the publication stamps are at least the delay apart.
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got.images]
    assert min(np.diff(stamps)) >= 0.15


def test_lockstep_times_out_and_goes_on(ros_context, folder):
    # Nobody publishes the answers: without wait_for_subscriber the source does not wait for such a publisher.
    node, _ = run_source(ros_context, {"source": "folder", "path": str(folder), "rate": 1000.0,
                                       "lockstep_topic": "nobody_answers", "lockstep_timeout": 0.1,
                                       "wait_for_subscriber": False})
    assert node.frames_published == 3 and node.lockstep_timeouts == 3


def test_pacer_never_bursts_to_catch_up():
    pacer = _Pacer(0.1, timed=False)
    assert pacer.due(None, now=10.0) == 10.0
    assert pacer.due(None, now=10.0) == pytest.approx(10.1)
    assert pacer.due(None, now=11.0) == 11.0  # late: published now...
    assert pacer.due(None, now=11.0) == pytest.approx(11.1)  # ...and the next one a period later, not at once
    timed = _Pacer(0.0, timed=True)
    assert timed.due(5_000_000_000, now=1.0) == 1.0
    assert timed.due(5_250_000_000, now=1.0) == pytest.approx(1.25)


# --- errors ------------------------------------------------------------------------------------------------
def test_missing_camera_is_a_clear_error():
    with pytest.raises(SourceError, match=r"/dev/video97 does not exist"):
        CameraSource("/dev/video97")
    with pytest.raises(SourceError, match=r"camera 97: /dev/video97 does not exist \((devices present|no /dev/video)"):
        open_source("camera", "97")


def test_missing_and_unreadable_files(tmp_path, video):
    with pytest.raises(SourceError, match=r"video file .*nope.mp4 does not exist"):
        open_source("video", str(tmp_path / "nope.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match=r"bad.mp4 (could not be opened as a video|: no frame could be decoded)"):
        open_source("video", str(bad))
    with pytest.raises(SourceError, match=r"image folder .* does not exist"):
        open_source("folder", str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source("folder", str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="is not a folder"):
        open_source("folder", str(video))
    with pytest.raises(SourceError, match="needs a path"):
        open_source("video", "")
    with pytest.raises(SourceError, match=r"bag .* does not exist"):
        open_source("bag", str(tmp_path / "nobag"))
    with pytest.raises(SourceError, match="could not be read as a rosbag2"):
        open_source("bag", str(tmp_path / "empty"))


def test_bag_without_the_topic_lists_its_topics(tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3)
    with pytest.raises(SourceError) as err:
        open_source("bag", str(bag), topic="/front/image")
    message = str(err.value)
    assert "has no topic '/front/image'" in message
    for topic in ("/cam/image_raw (sensor_msgs/msg/Image, 5 messages)", "/cam/camera_info", "/chatter"):
        assert topic in message
    with pytest.raises(SourceError, match="'/chatter' holds std_msgs/msg/String"):
        open_source("bag", str(bag), topic="/chatter")
    source = open_source("bag", str(bag))  # the only image topic is found without being named
    assert source.topic == "/cam/image_raw" and source.info_connection.topic == "/cam/camera_info"
    source.close()


def test_node_reports_startup_errors(ros_context, tmp_path):
    node = SourceNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="bag"), Parameter("path", value=str(tmp_path / "missing_bag"))])
    try:
        assert node.startup_error is not None and "missing_bag does not exist" in node.startup_error
        with pytest.raises(SourceError):
            node.start()
    finally:
        node.destroy_node()


def test_main_exits_non_zero_for_a_missing_video(tmp_path, capfd):
    from strongpose_ros.ros.source_node import main

    code = main(["source_node", "--ros-args", "-p", "source:=video", "-p", f"path:={tmp_path / 'gone.mp4'}"])
    assert code == 1
    err = capfd.readouterr().err  # the node's logger writes to the process's stderr
    assert err.count("gone.mp4 does not exist") == 1  # said once, not twice


def test_parameters_are_checked_and_coerced():
    settings = settings_from_values({"source": "camera", "path": 0, "rate": 15, "loop": "true"})
    assert (settings.path, settings.rate, settings.loop) == ("0", 15.0, True)
    with pytest.raises(SourceError, match="'source' must be one of"):
        settings_from_values({"source": "webcam"})
    with pytest.raises(SourceError, match="'rate' must be >= 0"):
        settings_from_values({"rate": -1.0})
    with pytest.raises(SourceError, match="unknown parameter"):
        settings_from_values({"fps": 3})


def test_calibration_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CALIBRATION.replace("data: [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]", "data: [1, 2]"))
    with pytest.raises(SourceError, match="'camera_matrix' must hold 3x3"):
        load_camera_info(bad)
    with pytest.raises(SourceError, match="does not exist"):
        load_camera_info(tmp_path / "none.yaml")
