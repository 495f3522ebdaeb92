"""StrongPose: pose_node on a camera topic, optionally with a source_node and RViz.

    # an existing camera driver publishes /camera/image_raw
    ros2 launch strongpose_ros strongpose.launch.py image_topic:=/camera/image_raw checkpoint:=/path/model.safetensors
    # a V4L2 camera through source_node, with RViz
    ros2 launch strongpose_ros strongpose.launch.py source:=camera source_path:=/dev/video0 rviz:=true
    # a recorded bag on simulated time (source_node publishes /clock)
    ros2 launch strongpose_ros strongpose.launch.py source:=bag source_path:=my_bag bag_topic:=/cam/image_raw \\
        use_sim_time:=true rviz:=true

The pose node subscribes `image_topic` (or image_transport's `<image_topic>/compressed`) with QoS that follows
the publishers (reliable when they all are), and the camera's `camera_info` beside it. For large frames from
best-effort (sensor-data) publishers, `fastdds_large_images:=true` starts the nodes with
FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_large_images.xml; it helps in the *publisher's* process, so
export the same variable for a camera driver started elsewhere (README, "Camera input").

`ros2 launch strongpose_ros strongpose.launch.py --show-args` lists every argument. The pose node reads
config/strongpose.yaml (params_file) first; the arguments below override it.
"""

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "strongpose_ros"
# Topics of pose_node that RViz shows (config/strongpose.rviz names them from the root namespace).
RVIZ_TOPICS = ("overlay", "markers", "body_heatmap_image")


def _is_true(name: str) -> PythonExpression:
    return PythonExpression(["'", LaunchConfiguration(name), "'.lower() in ('true', '1', 'yes')"])


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="camera image topic (sensor_msgs/Image; <topic>/compressed if compressed)"),
        DeclareLaunchArgument("compressed", default_value="false", choices=["true", "false"],
                              description="subscribe <image_topic>/compressed (sensor_msgs/CompressedImage)"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="StrongPose .safetensors checkpoint (empty: the bundled default model)"),
        DeclareLaunchArgument("device", default_value="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="use /clock (e.g. from a bag; source:=bag publishes it)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "strongpose.yaml"]),
                              description="pose_node parameter file"),
        DeclareLaunchArgument("source", default_value="none", choices=["none", "camera", "video", "folder", "bag"],
                              description="also start source_node publishing <image_topic> from this source"),
        DeclareLaunchArgument("source_path", default_value="",
                              description="camera index or /dev/videoN, or the video file, image folder or bag"),
        DeclareLaunchArgument("source_rate", default_value="0.0",
                              description="source frames per second (0: the source's own rate)"),
        DeclareLaunchArgument("source_loop", default_value="true", choices=["true", "false"],
                              description="video/folder/bag: start again at the end"),
        DeclareLaunchArgument("bag_topic", default_value="", description="source:=bag: the image topic in the bag"),
        DeclareLaunchArgument("frame_id", default_value="",
                              description="source frame_id ('': camera_optical_frame, an optical frame as REP-103 "
                                          "names it; a bag keeps its own)"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="start RViz with config/strongpose.rviz"),
        DeclareLaunchArgument("fastdds_large_images", default_value="false", choices=["true", "false"],
                              description="start the nodes with FASTDDS_DEFAULT_PROFILES_FILE="
                                          "config/fastdds_large_images.xml (shared memory for large frames)"),
    ]
    large_images = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([share, "config", "fastdds_large_images.xml"]),
        condition=IfCondition(_is_true("fastdds_large_images")))
    namespace = LaunchConfiguration("namespace")
    image_topic = LaunchConfiguration("image_topic")
    use_sim_time = LaunchConfiguration("use_sim_time")
    # `<image>/compressed` and `camera_info` follow `image` (image_transport's names): one remapping moves all.
    image_remaps = [("image", image_topic)]

    pose_node = Node(
        package=PACKAGE, executable="pose_node", name="pose_node", namespace=namespace, output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "input.transport": PythonExpression(
                    ["'compressed' if '", LaunchConfiguration("compressed"), "'.lower() == 'true' else 'raw'"]),
                "use_sim_time": use_sim_time,
            },
        ],
        remappings=image_remaps,
    )
    source_node = Node(
        package=PACKAGE, executable="source_node", name="source_node", namespace=namespace, output="screen",
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("source"), "' != 'none'"])),
        parameters=[{
            "source": LaunchConfiguration("source"),
            "path": LaunchConfiguration("source_path"),
            "rate": LaunchConfiguration("source_rate"),
            "loop": LaunchConfiguration("source_loop"),
            "topic": LaunchConfiguration("bag_topic"),
            "frame_id": LaunchConfiguration("frame_id"),
            "publish_compressed": LaunchConfiguration("compressed"),
            # The source is the clock when playing a bag on simulated time; it never listens to /clock itself.
            "publish_clock": PythonExpression(["'", LaunchConfiguration("source"), "' == 'bag' and '", use_sim_time,
                                               "'.lower() == 'true'"]),
        }],
        remappings=image_remaps,
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", namespace=namespace, output="log",
        condition=IfCondition(_is_true("rviz")),
        arguments=["-d", PathJoinSubstitution([share, "config", "strongpose.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        # The .rviz file names root-namespace topics; a relative target follows the namespace.
        remappings=[(f"/pose_node/{topic}", f"pose_node/{topic}") for topic in RVIZ_TOPICS],
    )
    return LaunchDescription([*arguments, large_images, pose_node, source_node, rviz])
