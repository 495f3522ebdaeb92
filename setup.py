"""pip installation of the ROS-free core (model, decoder, data, trainer, evaluator, estimator, CLI).

`pip install .` works without ROS: the `ros` subpackage is included but imports rclpy only when used.
The ROS 2 package (messages, nodes, launch files) is built with colcon from CMakeLists.txt.
"""

from setuptools import find_packages, setup

setup(
    name="strongpose_ros",
    version="0.1.0",
    description="StrongPose bottom-up multi-person pose estimation: network, fast greedy decoder, trainer, ROS 2 nodes",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["strongpose_ros", "strongpose_ros.*"]),
    package_data={"strongpose_ros": ["weights/*.safetensors", "weights/*.md", "assets/*"]},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pycocotools>=2.0.7",
        "safetensors>=0.4",
        "pyyaml>=6",
        "tqdm>=4.60",
        "numba>=0.58",
        "rosbags>=0.10",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
    ],
    extras_require={"export": ["onnx>=1.15", "onnxruntime>=1.17"], "test": ["pytest>=8", "hypothesis>=6.90"]},
    entry_points={"console_scripts": ["strongpose = strongpose_ros.cli:main",
                                      "pose_node = strongpose_ros.ros.pose_node:main",
                                      "source_node = strongpose_ros.ros.source_node:main"]},
)
