"""pose_node over real DDS (rclpy, Fast DDS): outputs, stamps, compressed input, every_frame determinism,
late schema subscribers, heavy outputs on demand, run-time parameters, lifecycle, start-up failures."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run the tests under `. ./env.sh`")
import cv2  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from pose_node_support import (  # noqa: E402
    FIND_PEOPLE,
    FIND_PEOPLE_DECODER,
    RELIABLE,
    TIMEOUT_S,
    TRANSIENT,
    Harness,
    frame,
    header,
    make_checkpoint,
    node_env,
)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from message_samples import assert_same_message  # noqa: E402
from strongpose_ros import checkpoint  # noqa: E402
from strongpose_ros.decode import DecoderConfig  # noqa: E402
from strongpose_ros.estimator import Estimator  # noqa: E402
from strongpose_ros.model import build_model  # noqa: E402
from strongpose_ros.msg import BodyHeatmap, PersonArray, PoseSchema  # noqa: E402
from strongpose_ros.ros.image_conversion import numpy_to_compressed, numpy_to_image  # noqa: E402
from strongpose_ros.ros.messages import person_array_msg, pose_schema_msg  # noqa: E402
from strongpose_ros.ros.parameters import PARAMETERS, settings_from_values  # noqa: E402
from strongpose_ros.ros.pose_node import PoseNode, run_nodes  # noqa: E402
from strongpose_ros.ros.startup import warn_undeclared_parameters  # noqa: E402
from strongpose_ros.schema import COCO17  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "strongpose.yaml"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("pose_node") / "resnet18_129.safetensors")


@pytest.fixture
def harness_factory(ros_context, model_path):
    made = []

    def make(**params) -> Harness:
        harness = Harness(ros_context, model_path, **params)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def _expected(model_path: Path, image: np.ndarray, hdr, ids) -> PersonArray:
    """What the node must publish for `image`: the estimator run directly (the one inference path)."""
    estimator = Estimator.from_checkpoint(model_path, device="cpu", decoder=DecoderConfig(**FIND_PEOPLE_DECODER))
    result = estimator.estimate(image)
    msg = person_array_msg(hdr, result.people, result.image_size, COCO17.name, ids)
    # Through serialisation, as the node's message went: float32 fields are rounded there.
    return deserialize_message(serialize_message(msg), PersonArray)


def test_persons_carry_the_input_stamp_frame_and_the_estimator_result(harness_factory, model_path):
    h = harness_factory(use_sim_time=True, **FIND_PEOPLE)  # no /clock: output stamps still equal input stamps
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    image = frame(1)
    for i, sec in enumerate((1_700_000_000, 1_700_000_001)):
        hdr = header(sec, 250_000_000, frame_id="head_camera_optical")
        pub.publish(numpy_to_image(image, "bgr8", hdr))
        assert h.spin_until(lambda n=i + 1: len(h.received["persons"]) >= n), "no PersonArray"
    first, second = h.received["persons"]
    assert first.header.stamp.sec == 1_700_000_000 and second.header.stamp.sec == 1_700_000_001
    assert first.header.stamp.nanosec == 250_000_000 and first.header.frame_id == "head_camera_optical"
    assert (first.image_width, first.image_height, first.schema_name) == (128, 96, "coco17")
    assert len(first.persons) == 3
    scores = [p.score for p in first.persons]
    assert scores == sorted(scores, reverse=True)
    # Tracking is on: the same people in the same image keep their ids.
    assert [p.id for p in first.persons] == [p.id for p in second.persons] == [1, 2, 3]
    assert_same_message(_expected(model_path, image, first.header, [1, 2, 3]), first)


def test_a_mobilenet_checkpoint_runs_unchanged(ros_context, tmp_path):
    # PoseNet's form (folded biases, [-1, 1] input): the node needs nothing but the checkpoint.
    torch.manual_seed(0)
    model = build_model(backbone="mobilenet_v1", input_size=(129, 129), input_mean=(0.5, 0.5, 0.5),
                        input_std=(0.5, 0.5, 0.5), backbone_options={
                            "channels": [8, 16, 16, 24, 24], "strides": [2, 2, 2, 2, 1], "batch_norm": False})
    path = checkpoint.save(tmp_path / "mobilenet.safetensors", model)
    h = Harness(ros_context, path, **FIND_PEOPLE)
    try:
        h.subscribe("persons", PersonArray, "/pose_node/persons")
        pub = h.publisher(Image, "/image")
        h.connect(pub, "persons")
        image = frame(3)
        pub.publish(numpy_to_image(image, "bgr8", header(7)))
        assert h.spin_until(lambda: h.received["persons"]), "no PersonArray from a mobilenet_v1 checkpoint"
        out = h.received["persons"][0]
        assert len(out.persons) == 3
        assert_same_message(_expected(path, image, out.header, [1, 2, 3]), out)
    finally:
        h.close()


def test_compressed_input(harness_factory, model_path):
    h = harness_factory(**{"input.transport": "compressed", **FIND_PEOPLE})
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    # A best-effort publisher (as many camera drivers are) reaches the default best-effort input.
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub = h.publisher(CompressedImage, "/image/compressed", best_effort)
    h.connect(pub, "persons")
    msg = numpy_to_compressed(frame(2), "jpeg", header(5, frame_id="cam"))
    pub.publish(msg)
    assert h.spin_until(lambda: h.received["persons"]), "no PersonArray from a CompressedImage"
    out = h.received["persons"][0]
    assert out.header.stamp.sec == 5 and out.header.frame_id == "cam"
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    assert_same_message(_expected(model_path, decoded, out.header, [1, 2, 3]), out)


def test_every_frame_mode_processes_each_message_in_order_and_deterministically(harness_factory):
    h = harness_factory(**{"input.mode": "every_frame", "input.reliability": "reliable", "input.depth": 10,
                           **FIND_PEOPLE})
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    sequence = [numpy_to_image(frame(10 + i), "bgr8", header(100 + i)) for i in range(4)]

    runs = []
    for _ in range(2):  # the same input twice (stamps restart, as when a bag is played again)
        h.received["persons"].clear()
        for msg in sequence:
            pub.publish(msg)  # back to back: faster than the node processes
        assert h.spin_until(lambda: len(h.received["persons"]) >= len(sequence)), "every_frame lost frames"
        runs.append(list(h.received["persons"]))
    first, second = runs
    assert [m.header.stamp.sec for m in first] == [100, 101, 102, 103]
    for a, b in zip(first, second, strict=True):
        assert_same_message(a, b)
    assert h.node.stats.snapshot().dropped == 0


def test_schema_reaches_a_late_subscriber(harness_factory):
    h = harness_factory()
    h.spin_for(0.3)  # the schema was published at configure, before anyone listened
    h.subscribe("schema", PoseSchema, "/pose_node/schema", TRANSIENT)
    assert h.spin_until(lambda: h.received["schema"]), "late subscriber did not get the schema"
    assert_same_message(pose_schema_msg(COCO17), h.received["schema"][0])


def test_heavy_outputs_are_built_only_while_someone_subscribes(harness_factory):
    h = harness_factory(**{"outputs.keypoint_heatmaps": True, **FIND_PEOPLE})
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    pub.publish(numpy_to_image(frame(3), "bgr8", header(1)))
    assert h.spin_until(lambda: h.received["persons"])
    counts = h.node.output_counts
    assert counts["body_heatmap"] == counts["body_heatmap_image"] == counts["overlay"] == counts["markers"] == 0

    h.subscribe("heatmap", BodyHeatmap, "/pose_node/body_heatmap")
    h.subscribe("heatmap_image", Image, "/pose_node/body_heatmap_image")
    h.subscribe("overlay", Image, "/pose_node/overlay")
    h.subscribe("markers", MarkerArray, "/pose_node/markers")
    h.connect(pub, "body_heatmap", "body_heatmap_image", "overlay", "markers")
    pub.publish(numpy_to_image(frame(3), "bgr8", header(2, frame_id="cam")))
    wanted = ("heatmap", "heatmap_image", "overlay", "markers")
    assert h.spin_until(lambda: all(h.received[name] for name in wanted))
    heatmap, heatmap_image, overlay, markers = (h.received[name][0] for name in wanted)
    for msg in (heatmap, heatmap_image, overlay, *markers.markers):
        assert msg.header.stamp.sec == 2 and msg.header.frame_id == "cam"
    # 128x96 resized to 129x97 (factor 129/128), stride 16: cells (0..8, 0..6), one cell = 16 * 128/129 px.
    assert (heatmap.body.encoding, heatmap.body.width, heatmap.body.height) == ("32FC1", 9, 7)
    assert heatmap.scale_x == pytest.approx(16 * 128 / 129, rel=1e-6)
    body = np.frombuffer(bytes(heatmap.body.data), np.float32)
    assert np.all((body >= 0) & (body <= 1))
    assert len(heatmap.keypoints) == 17
    assert (overlay.encoding, overlay.width, overlay.height) == ("bgr8", 128, 96)
    assert (heatmap_image.encoding, heatmap_image.width, heatmap_image.height) == ("bgr8", 128, 96)
    assert markers.markers[0].action == Marker.DELETEALL
    assert [m.type for m in markers.markers[1:]] == [Marker.POINTS, Marker.LINE_LIST] * 3

    # Forced on: built without subscribers.
    before = dict(h.node.output_counts)
    h.probe.destroy_node()
    h.probe = rclpy.create_node("pose_node_probe2", context=h.context)
    h.executor.add_node(h.probe)
    h._publishers.clear()
    assert h.node.set_parameters([Parameter("outputs.always", value=True)])[0].successful
    pub = h.publisher(Image, "/image")
    h.connect(pub)
    h.spin_until(lambda: h.node._pubs["overlay"].get_subscription_count() == 0)
    pub.publish(numpy_to_image(frame(3), "bgr8", header(3)))
    assert h.spin_until(lambda: h.node.output_counts["overlay"] > before["overlay"])
    assert h.node.output_counts["body_heatmap"] > before["body_heatmap"]


def test_decoder_and_tracking_parameters_change_at_run_time(harness_factory):
    h = harness_factory(**FIND_PEOPLE)
    node = h.node
    assert node.set_parameters([Parameter("decoder.peak_threshold", value=0.5)])[0].successful
    assert node.estimator.decoder_config.peak_threshold == 0.5

    refused = node.set_parameters([Parameter("decoder.peak_threshold", value=-1.0)])[0]
    assert not refused.successful and "decoder.peak_threshold" in refused.reason and ">= 0" in refused.reason
    assert node.get_parameter("decoder.peak_threshold").value == 0.5  # unchanged
    refused = node.set_parameters([Parameter("decoder.max_people", value=0)])[0]
    assert not refused.successful and "decoder.max_people" in refused.reason
    refused = node.set_parameters([Parameter("decoder.nms_radius", value="wide")])[0]
    assert not refused.successful and "decoder.nms_radius" in refused.reason
    refused = node.set_parameters([Parameter("autostart", value=False)])[0]
    assert not refused.successful  # read-only

    # Through the parameter service, as `ros2 param set` does it.
    client = AsyncParameterClient(h.probe, "pose_node")
    assert h.spin_until(lambda: client.services_are_ready())
    future = client.set_parameters([Parameter("decoder.keypoint_threshold", value=2.0 ** -3),
                                    Parameter("decoder.peak_threshold", value=0.0)])
    assert h.spin_until(future.done)
    assert [r.successful for r in future.result().results] == [True, True]
    assert node.estimator.decoder_config.keypoint_threshold == 0.125
    future = client.set_parameters([Parameter("input.max_pixels", value=0)])
    assert h.spin_until(future.done)
    result = future.result().results[0]
    assert not result.successful and "input.max_pixels" in result.reason

    # Tracking off: ids are 0.
    assert node.set_parameters([Parameter("tracking.enabled", value=False)])[0].successful
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")
    pub.publish(numpy_to_image(frame(4), "bgr8", header(9)))
    assert h.spin_until(lambda: h.received["persons"])
    persons = h.received["persons"][0].persons
    assert persons and all(p.id == 0 for p in persons)


def test_track_ids_are_never_given_twice_in_a_nodes_life(harness_factory):
    h = harness_factory(**FIND_PEOPLE)
    node = h.node
    h.subscribe("persons", PersonArray, "/pose_node/persons")
    pub = h.publisher(Image, "/image")
    h.connect(pub, "persons")

    def ids(sec: int) -> list[int]:
        count = len(h.received["persons"])
        pub.publish(numpy_to_image(frame(4), "bgr8", header(sec)))
        assert h.spin_until(lambda: len(h.received["persons"]) > count)
        return [p.id for p in h.received["persons"][-1].persons]

    assert ids(1) == [1, 2, 3]
    assert node.set_parameters([Parameter("tracking.enabled", value=False)])[0].successful
    assert ids(2) == [0, 0, 0]
    # issue 15: switched on again, the numbering restarted at 1 and gave old ids to new people.
    assert node.set_parameters([Parameter("tracking.enabled", value=True)])[0].successful
    assert ids(3) == [4, 5, 6]
    # Configured again (cleanup, configure, activate): still new ids.
    for transition in (node.trigger_deactivate, node.trigger_cleanup, node.trigger_configure, node.trigger_activate):
        assert transition() == TransitionCallbackReturn.SUCCESS
    h.connect(pub, "persons")
    assert ids(4) == [7, 8, 9]


def test_refused_at_run_time_with_the_reason(harness_factory, tmp_path):
    node = harness_factory().node
    missing = tmp_path / "gone.safetensors"
    result = node.set_parameters([Parameter("checkpoint", value=str(missing))])[0]
    assert not result.successful and str(missing) in result.reason and "no such checkpoint file" in result.reason
    result = node.set_parameters([Parameter("decoder.min_instance_score", value=1.5)])[0]
    assert not result.successful and "decoder.min_instance_score" in result.reason and "below 1" in result.reason
    assert node.get_parameter("decoder.min_instance_score").value == 0.15


def test_misspelt_parameters_are_named_with_the_nearest_one(ros_context, model_path):
    node = PoseNode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(model_path)), Parameter("input.reliabilty", value="reliable")])
    try:
        lines = warn_undeclared_parameters(node, {spec.name for spec in PARAMETERS})
        assert lines == ["parameter 'input.reliabilty' is not a parameter of pose_node and is ignored; did you mean "
                         "'input.reliability'?"]
    finally:
        node.close()
        node.destroy_node()


def _call(h: Harness, client, request):
    assert h.spin_until(lambda: client.service_is_ready()), f"service {client.srv_name} not available"
    future = client.call_async(request)
    assert h.spin_until(future.done)
    return future.result()


def test_lifecycle_transitions(harness_factory):
    h = harness_factory(autostart=False, **FIND_PEOPLE)
    node = h.node
    assert node.lifecycle_state == "unconfigured" and node.estimator is None
    get_state = h.probe.create_client(GetState, "/pose_node/get_state")
    change_state = h.probe.create_client(ChangeState, "/pose_node/change_state")
    assert _call(h, get_state, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED

    # configure through the lifecycle service, as a lifecycle manager does
    response = _call(h, change_state, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    assert response.success and node.lifecycle_state == "inactive" and node.estimator is not None
    assert _call(h, get_state, GetState.Request()).current_state.id == State.PRIMARY_STATE_INACTIVE
    h.subscribe("schema", PoseSchema, "/pose_node/schema", TRANSIENT)
    assert h.spin_until(lambda: h.received["schema"])
    pub = h.publisher(Image, "/image")
    h.spin_for(0.3)
    assert pub.get_subscription_count() == 0, "an inactive node must not subscribe"

    h.subscribe("persons", PersonArray, "/pose_node/persons")
    for round_ in range(2):  # activate, process, deactivate; twice (the model comes back after release)
        response = _call(h, change_state, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)))
        assert response.success and node.lifecycle_state == "active"
        h.connect(pub, "persons")
        pub.publish(numpy_to_image(frame(5), "bgr8", header(20 + round_)))
        assert h.spin_until(lambda n=round_ + 1: len(h.received["persons"]) >= n)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == "inactive" and node.estimator.device.type == "cpu"
        assert h.spin_until(lambda: pub.get_subscription_count() == 0)
    assert [m.header.stamp.sec for m in h.received["persons"]] == [20, 21]

    response = _call(h, change_state, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CLEANUP)))
    assert response.success and node.lifecycle_state == "unconfigured" and node.estimator is None
    assert _call(h, get_state, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED


def test_mismatched_or_missing_checkpoint_is_refused_with_the_file_named(ros_context, tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(b"\x10\x00")
    broken = make_checkpoint(tmp_path / "nan.safetensors", nan_head="heatmap")  # loads, but outputs NaN
    for path, problem in ((foreign, "not a strongpose_ros checkpoint"), (truncated, "truncated"),
                          (tmp_path / "absent.safetensors", "no such checkpoint"),
                          (broken, "fails on a blank warm-up frame")):
        node = PoseNode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(path))])
        try:
            assert node.lifecycle_state == "unconfigured"
            assert str(path) in node.startup_error and problem in node.startup_error
            status = node.publish_diagnostics().status[0]
            assert status.level == status.ERROR and str(path) in status.message
        finally:
            node.close()
            node.destroy_node()
    directory = tmp_path / "models"
    directory.mkdir()
    node = PoseNode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(directory))])
    try:
        assert "a directory, not a checkpoint file" in node.startup_error and str(directory) in node.startup_error
    finally:
        node.destroy_node()


def test_no_parameters_at_all_loads_the_bundled_default_model(ros_context):
    node = PoseNode(context=ros_context)
    try:
        assert node.startup_error is None and node.lifecycle_state == "active"
        assert node.estimator is not None
    finally:
        node.close()
        node.destroy_node()


def test_main_exits_non_zero_naming_a_missing_checkpoint(tmp_path):
    missing = tmp_path / "no_such_model.safetensors"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pose_node"), "--ros-args", "-p", f"checkpoint:={missing}"],
        capture_output=True, text=True, timeout=120, env=node_env(),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert str(missing) in done.stderr and "no such checkpoint file" in done.stderr
    assert done.stderr.count("no such checkpoint file") == 1  # said once (issue 15: errors were printed twice)


@pytest.mark.parametrize("script", ["pose_node", "source_node"])
def test_main_names_a_missing_parameter_file_without_a_traceback(tmp_path, script):
    missing = tmp_path / "params.yaml"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--ros-args", "--params-file", str(missing)],
                          capture_output=True, text=True, timeout=120, env=node_env())
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # rcl logs "Failed to parse global arguments" itself; then one line of ours says which file and why.
    last = done.stderr.splitlines()[-1]
    assert last == f"{script}: cannot read the parameter file {missing}: Error opening YAML file"


def test_main_runs_until_ctrl_c_and_exits_cleanly(model_path):
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from strongpose_ros.ros.pose_node import main; sys.exit(main())",
         "--ros-args", "-p", f"checkpoint:={model_path}", "-r", "__node:=pose_node_main_test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=node_env(),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("active:" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert any("active:" in line for line in lines), "".join(lines)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(5)
    assert "Traceback" not in "".join(lines)


def test_run_nodes_composes_the_node_with_others_in_one_executor(ros_context, model_path):
    node = PoseNode(context=ros_context, parameter_overrides=[Parameter("checkpoint", value=str(model_path))])
    camera = rclpy.create_node("fake_camera", context=ros_context)
    listener = rclpy.create_node("listener", context=ros_context)
    received = []
    listener.create_subscription(PersonArray, "/pose_node/persons", received.append, RELIABLE)
    pub = camera.create_publisher(Image, "/image", RELIABLE)
    camera.create_timer(0.1, lambda: pub.publish(numpy_to_image(frame(6), "bgr8", header(7))))
    executor = SingleThreadedExecutor(context=ros_context)
    spinner = threading.Thread(target=run_nodes, args=([node, camera, listener],), kwargs={"executor": executor})
    spinner.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received and received[0].header.stamp.sec == 7
    finally:
        ros_context.try_shutdown()  # what Ctrl-C does: run_nodes returns and destroys the nodes
        spinner.join(30)
    assert not spinner.is_alive()
    assert node.estimator is None


def test_config_file_matches_the_declared_parameters(ros_context, model_path):
    document = yaml.safe_load(CONFIG.read_text())
    values = document["/**/pose_node"]["ros__parameters"]

    def flatten(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    in_file = dict(flatten(values))
    declared = {spec.name: spec.default for spec in PARAMETERS}
    assert sorted(set(in_file) - set(declared)) == [], "parameters in the YAML that the node does not declare"
    assert sorted(set(declared) - set(in_file)) == [], "declared parameters the YAML does not document"
    for name, value in in_file.items():
        assert value == declared[name], f"{name}: YAML says {value!r}, the node's default is {declared[name]!r}"
    settings_from_values(in_file)

    # The file loads into a node (the checkpoint given on top, as a user would).
    node = PoseNode(context=ros_context, cli_args=["--ros-args", "--params-file", str(CONFIG)],
                    parameter_overrides=[Parameter("checkpoint", value=str(model_path))])
    try:
        assert node.lifecycle_state == "active", node.startup_error
    finally:
        node.close()
        node.destroy_node()
