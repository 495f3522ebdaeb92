"""launch/strongpose.launch.py and config/strongpose.rviz, checked without ROS 2's launch (not installed here).

Static checks (ast): the module parses and imports only launch, launch_ros and the standard library; every
declared argument is used and every used one declared; every parameter set on a node is one that node
declares; every file it names exists in the package and is installed; the executables exist.
Evaluated checks: `generate_launch_description()` runs against small stand-ins of the launch API, and the
parameters it produces, with launch_ros's YAML reading of substituted strings, are accepted by the nodes'
own validation for several argument combinations. The RViz file is YAML naming topics the node publishes.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import stat
import sys
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "strongpose.launch.py"
RVIZ = REPO / "config" / "strongpose.rviz"
PACKAGE = "strongpose_ros"


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _pose_parameters() -> set[str]:
    # The pose node's declarations (parameters.py imports rclpy interfaces: read the table by ast if absent).
    try:
        from strongpose_ros.ros.parameters import PARAMETERS
    except ImportError:
        pytest.skip("the pose node's parameter table needs rcl_interfaces (run under . ./env.sh)")
    return {spec.name for spec in PARAMETERS}


def _source_parameters() -> set[str]:
    pytest.importorskip("rclpy", reason="run under . ./env.sh")
    from strongpose_ros.ros.source_node import PARAMETERS

    return set(PARAMETERS)


# --- static ---------------------------------------------------------------------------------------------
def test_parses_and_imports_only_the_launch_api():
    tree = _tree()
    allowed = {"launch", "launch_ros", "importlib", "pathlib", "os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in allowed, node.module
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in allowed for a in node.names)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_every_declared_argument_is_used_and_every_used_one_declared():
    tree = _tree()
    declared = [c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")]
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    # Helpers taking an argument name (e.g. _is_true("rviz")) count as uses.
    helpers = {f.name for f in tree.body if isinstance(f, ast.FunctionDef) and any(
        getattr(c.func, "id", None) == "LaunchConfiguration" and isinstance(c.args[0], ast.Name)
        for c in _calls(f, "LaunchConfiguration"))}
    for helper in helpers:
        used |= {c.args[0].value for c in _calls(tree, helper) if isinstance(c.args[0], ast.Constant)}
    assert len(declared) == len(set(declared)), "an argument is declared twice"
    assert set(declared) == used
    # What the issue asks for.
    for name in ("image_topic", "compressed", "checkpoint", "device", "use_sim_time", "namespace", "source",
                 "source_path", "rviz"):
        assert name in declared


def _parameter_keys(call: ast.Call) -> set[str]:
    params = _keyword(call, "parameters")
    assert isinstance(params, ast.List)
    keys = set()
    for item in params.elts:
        if isinstance(item, ast.Dict):
            keys |= {k.value for k in item.keys}
    return keys


def _nodes(tree: ast.AST) -> dict[str, ast.Call]:
    return {_keyword(c, "executable").value: c for c in _calls(tree, "Node")}


def test_every_parameter_set_is_declared_by_the_node():
    nodes = _nodes(_tree())
    assert set(nodes) == {"pose_node", "source_node", "rviz2"}
    pose_keys = _parameter_keys(nodes["pose_node"]) - {"use_sim_time"}
    assert pose_keys and pose_keys <= _pose_parameters(), pose_keys - _pose_parameters()
    source_keys = _parameter_keys(nodes["source_node"]) - {"use_sim_time"}
    assert source_keys and source_keys <= _source_parameters(), source_keys - _source_parameters()
    for executable in ("pose_node", "source_node"):
        assert _keyword(nodes[executable], "package").id == "PACKAGE"


def test_executables_and_named_files_exist_and_are_installed():
    tree = _tree()
    for executable in ("pose_node", "source_node"):
        script = REPO / "scripts" / executable
        assert script.is_file() and script.stat().st_mode & stat.S_IXUSR, script
        assert f"{executable} = strongpose_ros.ros.{executable}:main" in (REPO / "setup.py").read_text()
    named = []
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = call.args[0].elts
        assert isinstance(parts[0], ast.Name) and parts[0].id == "share"
        named.append(Path(*(p.value for p in parts[1:])))
    assert {str(p) for p in named} == {"config/strongpose.yaml", "config/strongpose.rviz",
                                       "config/fastdds_large_images.xml"}
    # CMakeLists.txt installs the folders into share/<package>/, where FindPackageShare finds them.
    cmake = (REPO / "CMakeLists.txt").read_text()
    installed = set()
    for folders in re.findall(r"install\(DIRECTORY ([^)]*?) DESTINATION share/\$\{PROJECT_NAME\}", cmake):
        installed |= set(folders.split())
    if "${dir}" in installed:  # foreach(dir launch config msg) ... install(DIRECTORY ${dir} ...)
        for loop in re.findall(r"foreach\(dir ([^)]*)\)", cmake):
            installed |= set(loop.split())
    for path in named:
        assert (REPO / path).is_file(), path
        assert path.parts[0] in installed
    assert "launch" in installed
    package_xml = (REPO / "package.xml").read_text()
    for dependency in ("launch", "launch_ros"):
        assert f"<exec_depend>{dependency}</exec_depend>" in package_xml


def test_source_choices_match_the_source_node():
    pytest.importorskip("rclpy", reason="run under . ./env.sh")
    from strongpose_ros.ros.frame_sources import SOURCES

    for call in _calls(_tree(), "DeclareLaunchArgument"):
        if call.args[0].value == "source":
            choices = [e.value for e in _keyword(call, "choices").elts]
            assert choices == ["none", *SOURCES]


# --- evaluated against stand-ins of the launch API -------------------------------------------------------
class _Sub:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(_Sub):
    pass


class PathJoinSubstitution(_Sub):
    pass


class PythonExpression(_Sub):
    pass


class FindPackageShare(_Sub):
    pass


class IfCondition(_Sub):
    pass


class Node(_Sub):
    pass


class DeclareLaunchArgument(_Sub):
    pass


class LaunchDescription(_Sub):
    pass


class SetEnvironmentVariable(_Sub):
    pass


def _evaluate(value, config: dict[str, str]):
    """A substitution to its string, as launch would perform it (the installed share is the checkout)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(_evaluate(v, config) for v in value)
    if isinstance(value, LaunchConfiguration):
        return config[value.args[0]]
    if isinstance(value, FindPackageShare):
        assert value.args[0] == PACKAGE
        return str(REPO)
    if isinstance(value, PathJoinSubstitution):
        return os.path.join(*(_evaluate(v, config) for v in value.args[0]))
    if isinstance(value, PythonExpression):
        return str(eval(_evaluate(value.args[0], config)))  # launch's PythonExpression does the same
    raise TypeError(f"unexpected substitution {value!r}")


def _parameter_value(value, config):
    """launch_ros: a substituted string is read as YAML and kept as bool/int/float/str, else as the string."""
    text = _evaluate(value, config)
    parsed = yaml.safe_load(text) if text else None
    return parsed if type(parsed) in (bool, int, float, str) else text


@pytest.fixture
def launch_description(monkeypatch):
    stand_ins = {
        "launch": {},
        "launch.launch_description": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument,
                           "SetEnvironmentVariable": SetEnvironmentVariable},
        "launch.conditions": {"IfCondition": IfCondition},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution, "PythonExpression": PythonExpression},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
    }
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("strongpose_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    defaults = {}
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            defaults[entity.args[0]] = _evaluate(entity.kwargs["default_value"], {})
    nodes = {e.kwargs["executable"]: e for e in entities if isinstance(e, Node)}
    # Environment set before the nodes start (launch passes it to the processes started after it).
    nodes["environment"] = [e for e in entities if isinstance(e, SetEnvironmentVariable)]
    assert all(entities.index(e) < entities.index(nodes["pose_node"]) for e in nodes["environment"])
    return defaults, nodes, module


@pytest.mark.parametrize("overrides", [
    {},
    {"compressed": "true", "source": "camera", "source_path": "0", "namespace": "robot1"},
    {"source": "bag", "source_path": "/data/bag", "bag_topic": "/cam/image_raw", "use_sim_time": "true",
     "source_rate": "15", "source_loop": "false", "frame_id": "cam_optical", "rviz": "true",
     "fastdds_large_images": "true"},
    {"source": "video", "source_path": "clip.mp4", "device": "cpu", "checkpoint": "/models/m.safetensors"},
])
def test_the_nodes_accept_what_the_launch_file_sets(launch_description, overrides):
    pose_parameters = pytest.importorskip("strongpose_ros.ros.parameters")
    from strongpose_ros.ros.bag_process import read_parameter_file
    from strongpose_ros.ros.source_node import settings_from_values as source_settings

    defaults, nodes, _ = launch_description
    config = {**defaults, **overrides}
    pose = nodes["pose_node"]
    params_file, values = pose.kwargs["parameters"]
    path = Path(_evaluate(params_file, config))
    assert path == REPO / "config" / "strongpose.yaml" and path.is_file()
    evaluated = {k: _parameter_value(v, config) for k, v in values.items()}
    assert evaluated["use_sim_time"] is (config["use_sim_time"] == "true")
    pose_values = {**read_parameter_file(path), **{k: v for k, v in evaluated.items() if k != "use_sim_time"}}
    settings = pose_parameters.settings_from_values(pose_values)  # raises for anything the node refuses
    assert settings.input.transport == ("compressed" if config["compressed"] == "true" else "raw")
    assert _evaluate(pose.kwargs["namespace"], config) == config["namespace"]
    remaps = {_evaluate(a, config): _evaluate(b, config) for a, b in pose.kwargs["remappings"]}
    # One rule: the compressed topic and camera_info follow `image` (image_transport's names).
    assert remaps == {"image": config["image_topic"]}

    (environment,) = nodes["environment"]
    assert environment.args[0] == "FASTDDS_DEFAULT_PROFILES_FILE"
    assert Path(_evaluate(environment.args[1], config)) == REPO / "config" / "fastdds_large_images.xml"
    applied = _evaluate(environment.kwargs["condition"].args[0], config) == "True"
    assert applied == (config["fastdds_large_images"] == "true")

    source = nodes["source_node"]
    launched = _evaluate(source.kwargs["condition"].args[0], config) == "True"
    assert launched == (config["source"] != "none")
    if launched:
        (values,) = source.kwargs["parameters"]
        settings = source_settings({k: _parameter_value(v, config) for k, v in values.items()})
        assert settings.source == config["source"] and settings.path == config["source_path"]
        assert settings.publish_clock == (config["source"] == "bag" and config["use_sim_time"] == "true")
        assert settings.publish_compressed == (config["compressed"] == "true")
        assert {_evaluate(a, config): _evaluate(b, config) for a, b in source.kwargs["remappings"]} == remaps

    rviz = nodes["rviz2"]
    assert (_evaluate(rviz.kwargs["condition"].args[0], config) == "True") == (config["rviz"] == "true")
    assert Path(_evaluate(rviz.kwargs["arguments"], config)[2:]) == RVIZ


def test_default_checkpoint_is_empty_which_the_node_resolves_to_the_bundled_model(launch_description):
    defaults, _, _ = launch_description
    assert defaults["checkpoint"] == ""


# --- RViz ---------------------------------------------------------------------------------------------
def _published_topics() -> set[str]:
    """The pose node's topics, read from its create_publisher calls (~/x is /pose_node/x)."""
    tree = ast.parse((REPO / PACKAGE / "ros" / "pose_node.py").read_text())
    topics = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "create_publisher":
            name = call.args[1]
            if isinstance(name, ast.Constant):
                topics.add(name.value.replace("~/", "/pose_node/"))
    return topics


def _displays() -> list[dict]:
    data = yaml.safe_load(RVIZ.read_text())
    return data["Visualization Manager"]["Displays"]


def test_rviz_config_shows_what_the_node_publishes():
    displays = _displays()
    published = _published_topics()
    assert {"/pose_node/overlay", "/pose_node/markers", "/pose_node/persons"} <= published
    topics = {}
    for display in displays:
        assert display["Class"].startswith("rviz_default_plugins/"), display["Class"]
        if "Topic" in display:
            topics[display["Name"]] = (display["Topic"]["Value"], display["Enabled"], display["Class"])
    enabled = {topic for topic, on, _ in topics.values() if on}
    assert enabled <= published, enabled - published
    classes = {(topic, cls) for topic, _, cls in topics.values()}
    assert ("/pose_node/overlay", "rviz_default_plugins/Image") in classes
    assert ("/pose_node/markers", "rviz_default_plugins/MarkerArray") in classes
    # A display is off only while the node lacks its topic (the colourised heat map): switch it on then.
    for topic, on, _ in topics.values():
        assert on == (topic in published), topic


def test_rviz_topics_follow_the_launch_namespace(launch_description):
    _, nodes, module = launch_description
    rviz_topics = {d["Topic"]["Value"] for d in _displays() if "Topic" in d}
    remapped = {a for a, _ in nodes["rviz2"].kwargs["remappings"]}
    assert rviz_topics == remapped == {f"/pose_node/{t}" for t in module.RVIZ_TOPICS}


def test_rviz_fixed_frame_is_the_source_default():
    pytest.importorskip("rclpy", reason="run under . ./env.sh")
    from strongpose_ros.ros.source_node import DEFAULT_FRAME_ID

    data = yaml.safe_load(RVIZ.read_text())
    assert data["Visualization Manager"]["Global Options"]["Fixed Frame"] == DEFAULT_FRAME_ID


# --- Fast DDS profile ---------------------------------------------------------------------------------------
def test_fastdds_profile_gives_shared_memory_room_for_full_hd_frames():
    import xml.etree.ElementTree as ElementTree

    ns = {"dds": "http://www.eprosima.com"}
    root = ElementTree.parse(REPO / "config" / "fastdds_large_images.xml").getroot()
    participant = root.find("dds:profiles/dds:participant", ns)
    assert participant.get("is_default_profile") == "true"  # applies without RMW_FASTRTPS_USE_QOS_FROM_XML
    rtps = participant.find("dds:rtps", ns)
    assert rtps.find("dds:useBuiltinTransports", ns).text == "false"
    used = [t.text for t in rtps.findall("dds:userTransports/dds:transport_id", ns)]
    transports = {t.find("dds:transport_id", ns).text: t for t in root.findall(
        "dds:profiles/dds:transport_descriptors/dds:transport_descriptor", ns)}
    kinds = [transports[name].find("dds:type", ns).text for name in used]
    assert kinds == ["SHM", "UDPv4"]  # Fast DDS's own defaults, shared memory first
    segment = int(transports[used[0]].find("dds:segment_size", ns).text)
    assert segment >= 4 * 1920 * 1080 * 3  # several bgr8 Full HD frames in flight (the default is 512 kB)
