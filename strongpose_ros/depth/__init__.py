"""People in 3D from an aligned depth image and the camera's intrinsics. NumPy and OpenCV only, no ROS.

    camera = CameraModel.from_camera_info(camera_info_msg)              # validated; errors name the field
    depth = DepthImage.from_array(image_to_numpy(depth_msg), depth_msg.encoding)   # 16UC1 mm or 32FC1 m
    positions = lift_people(result.people, depth, camera, result.image_size,
                            body_heatmap=result.body_heatmap, heatmap_transform=result.heatmap_transform)
    positions[i].keypoints, positions[i].keypoint_valid, positions[i].position, ...

Modules: `config` (every constant, with the reasons), `camera` (CameraInfo -> `CameraModel`: validation,
resolution changes, undistortion), `depth_image` (16UC1 / 32FC1 -> metres), `sampling` (the robust
depth read around each keypoint), `lifting` (pixels + depth -> 3D keypoints and person centres), `sync`
(pairs colour and depth frames by stamp), `types` (`PeoplePositions`, `Person3D`, `DepthStatus`).
"""

from strongpose_ros.depth.camera import CameraModel, CameraModelError, scale_between
from strongpose_ros.depth.config import LiftingConfig, SyncConfig
from strongpose_ros.depth.depth_image import DepthImage, DepthImageError, depth_to_metres
from strongpose_ros.depth.lifting import lift_people
from strongpose_ros.depth.sampling import DepthReads, read_keypoint_depths
from strongpose_ros.depth.sync import StampSynchronizer, SyncedFrame, SyncStats, stamp_to_ns
from strongpose_ros.depth.types import DepthStatus, PeoplePositions, Person3D

__all__ = [
    "CameraModel",
    "CameraModelError",
    "DepthImage",
    "DepthImageError",
    "DepthReads",
    "DepthStatus",
    "LiftingConfig",
    "PeoplePositions",
    "Person3D",
    "StampSynchronizer",
    "SyncConfig",
    "SyncStats",
    "SyncedFrame",
    "depth_to_metres",
    "lift_people",
    "read_keypoint_depths",
    "scale_between",
    "stamp_to_ns",
]
