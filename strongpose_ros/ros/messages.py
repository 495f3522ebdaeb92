"""Estimator results to ROS messages: PersonArray, BodyHeatmap, PoseSchema, MarkerArray, overlay Image.

Builders take a `std_msgs/Header` (the input image's: stamp and frame_id are copied unchanged, so outputs
line up with the camera stream in a bag) and plain results (`PersonPose` lists, NumPy maps, and the 3D of
`strongpose_ros.depth` when depth is on). The inverses `people_from_msg` and `positions_from_msg` turn a
PersonArray back into `PersonPose`s and `PeoplePositions` for tools that read the node's output.

3D in messages: every Keypoint and Person has `has_position`, `position` and `position_confidence`. Without
3D (no `positions` given, or a person without one) `has_position` is false and `position` is NaN, NaN, NaN,
so that a reader who forgets the flag gets NaN, not a point at the camera's origin.
"""

from __future__ import annotations

import array
import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from strongpose_ros.decode import PersonPose
from strongpose_ros.depth import DepthStatus, PeoplePositions, Person3D
from strongpose_ros.drawing import color_for_id
from strongpose_ros.msg import BodyHeatmap, Keypoint, Person, PersonArray, PoseSchema
from strongpose_ros.ros.camera_info import PinholeIntrinsics
from strongpose_ros.schema import KeypointSchema

__all__ = [
    "MarkerConfig",
    "body_heatmap_msg",
    "float_image_msg",
    "marker_array_msg",
    "people_from_msg",
    "person_array_msg",
    "person_msg",
    "pose_schema_msg",
    "positions_from_msg",
]


@dataclass(frozen=True)
class MarkerConfig:
    """How people become RViz markers when no depth is given: keypoints in a plane before the camera.

    The plane lies `distance` metres along the optical axis of the image's frame, an optical frame by ROS
    convention (REP-103: x right, y down, z forward), so the skeletons appear as a picture in front of the
    camera. With the camera's intrinsics (its CameraInfo), a pixel (u, v) becomes ((u - cx) / fx * distance,
    (v - cy) / fy * distance, distance): each keypoint lies on its own viewing ray, as a camera would see it.
    Without them, a pixel of a W x H image becomes ((u - W/2) * pixel_size, (v - H/2) * pixel_size, distance).
    - `pixel_size`: metres per image pixel in that plane (no CameraInfo); `distance`: metres along z;
    - `point_size`, `line_width`: marker sizes in metres;
    - `keypoint_threshold`: keypoints scoring below are not shown, nor links touching them;
    - `namespace`: the markers' `ns`.
    """

    pixel_size: float = 0.001
    distance: float = 1.0
    point_size: float = 0.01
    line_width: float = 0.004
    keypoint_threshold: float = 0.1
    namespace: str = "strongpose"

    def __post_init__(self) -> None:
        for name in ("pixel_size", "point_size", "line_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"MarkerConfig.{name} must be a positive finite number, got {value!r}")
        if not np.isfinite(self.distance):
            raise ValueError(f"MarkerConfig.distance must be finite, got {self.distance!r}")
        if not self.keypoint_threshold >= 0.0:
            raise ValueError(f"MarkerConfig.keypoint_threshold must be >= 0, got {self.keypoint_threshold!r}")


def _copy_header(header: Header) -> Header:
    return copy.copy(header) if header is not None else Header()


def pose_schema_msg(schema: KeypointSchema) -> PoseSchema:
    """The PoseSchema a node publishes once: names, drawing links, OKS sigmas, flip partners."""
    return PoseSchema(
        name=schema.name,
        keypoint_names=list(schema.keypoints),
        edge_start=[int(a) for a, _ in schema.skeleton],
        edge_end=[int(b) for _, b in schema.skeleton],
        oks_sigmas=[float(s) for s in schema.sigmas],
        flip_partner=[int(p) for p in schema.flip_permutation],
    )


_NAN = float("nan")


def _point(xyz, present: bool) -> Point:
    if not present:
        return Point(x=_NAN, y=_NAN, z=_NAN)
    x, y, z = (float(v) for v in xyz)
    return Point(x=x, y=y, z=z)


def person_msg(person: PersonPose, track_id: int = 0, position: Person3D | None = None) -> Person:
    """One Person: every keypoint in schema order, the instance score, the keypoint box, and the 3D of
    `position` (from `lift_people`) when given; without it every position is marked absent (NaN)."""
    kp = person.keypoints.astype(np.float64)
    x_min, y_min, x_max, y_max = person.box
    if position is None:
        position = Person3D.absent(len(kp))
    elif position.keypoints.shape[0] != len(kp):
        raise ValueError(f"person_msg: 3D of {position.keypoints.shape[0]} keypoints for {len(kp)}")
    xyz = position.keypoints.astype(np.float64).tolist()
    has = position.keypoint_valid.tolist()
    confidence = position.keypoint_confidence.astype(np.float64).tolist()
    keypoints = [
        Keypoint(x=x, y=y, score=s, has_position=bool(has[k]), position=_point(xyz[k], has[k]),
                 position_confidence=confidence[k] if has[k] else 0.0)
        for k, (x, y, s) in enumerate(kp.tolist())
    ]  # fmt: skip
    return Person(
        id=int(track_id),
        score=float(person.score),
        keypoints=keypoints,
        x_min=float(x_min), y_min=float(y_min), x_max=float(x_max), y_max=float(y_max),
        has_position=bool(position.valid),
        position=_point(position.position, position.valid),
        position_confidence=float(position.confidence) if position.valid else 0.0,
    )  # fmt: skip


def person_array_msg(header: Header, people: Sequence[PersonPose], image_size: tuple[int, int],
                     schema_name: str, ids: Sequence[int] | None = None, positions: PeoplePositions | None = None,
                     depth_status: DepthStatus | int | None = None) -> PersonArray:
    """A PersonArray with the input header; `image_size` is (height, width); people best first.

    `positions`: the 3D of `people` (same order), from `lift_people`; `depth_status`: why there is or is
    not 3D (`DepthStatus`; default OK with positions, OFF without). A status other than OK with
    positions is refused: the message would say "no depth" next to 3D points.
    """
    if ids is not None and len(ids) != len(people):
        raise ValueError(f"person_array_msg: {len(ids)} ids for {len(people)} people")
    if positions is not None and len(positions) != len(people):
        raise ValueError(f"person_array_msg: 3D of {len(positions)} people for {len(people)}")
    status = DepthStatus(depth_status if depth_status is not None else
                         DepthStatus.OK if positions is not None else DepthStatus.OFF)  # fmt: skip
    if positions is not None and status != DepthStatus.OK:
        raise ValueError(f"person_array_msg: 3D positions with depth_status {status.name}")
    order = sorted(range(len(people)), key=lambda i: -people[i].score)  # stable: equal scores keep their order
    persons = [
        person_msg(people[i], ids[i] if ids is not None else 0, positions[i] if positions is not None else None)
        for i in order
    ]
    return PersonArray(
        header=_copy_header(header),
        image_width=int(image_size[1]),
        image_height=int(image_size[0]),
        schema_name=schema_name,
        persons=persons,
        depth_status=int(status),
    )


def people_from_msg(msg: PersonArray) -> tuple[list[PersonPose], list[int]]:
    """The people of a PersonArray as `PersonPose`s (image pixels), and their track ids.

    Their 3D, in the same order: `positions_from_msg(msg)`.
    """
    people, ids = [], []
    for p in msg.persons:
        kp = np.array([[k.x, k.y, k.score] for k in p.keypoints], dtype=np.float32).reshape(-1, 3)
        people.append(PersonPose(kp, p.score, (p.x_min, p.y_min, p.x_max, p.y_max)))
        ids.append(int(p.id))
    return people, ids


def positions_from_msg(msg: PersonArray) -> PeoplePositions:
    """The 3D of a PersonArray's people, in message order (absent positions NaN and marked invalid,
    whatever the message's position fields hold where `has_position` is false)."""
    people = []
    for p in msg.persons:
        has = np.array([bool(k.has_position) for k in p.keypoints], dtype=bool)
        xyz = np.array([[k.position.x, k.position.y, k.position.z] for k in p.keypoints], dtype=np.float32)
        xyz = xyz.reshape(-1, 3)
        xyz[~has] = np.nan
        confidence = np.array([k.position_confidence for k in p.keypoints], dtype=np.float32)
        centre = np.array([p.position.x, p.position.y, p.position.z], dtype=np.float32)
        valid = bool(p.has_position)
        people.append(Person3D(xyz, has, np.where(has, confidence, 0.0).astype(np.float32),
                               centre if valid else np.full(3, np.nan, np.float32), valid,
                               float(p.position_confidence) if valid else 0.0))  # fmt: skip
    num_keypoints = len(msg.persons[0].keypoints) if msg.persons else 0
    return PeoplePositions.stack(people, num_keypoints)


def float_image_msg(header: Header, values: np.ndarray) -> Image:
    """A 32FC1 Image of an (H, W) float map (host byte order, no row padding)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"float_image_msg: expected a non-empty (H, W) map, got shape {values.shape}")
    data = array.array("B")
    data.frombytes(values.tobytes())
    return Image(
        header=_copy_header(header), height=int(values.shape[0]), width=int(values.shape[1]), encoding="32FC1",
        is_bigendian=int(sys.byteorder == "big"), step=int(values.shape[1]) * 4, data=data,
    )  # fmt: skip


def body_heatmap_msg(header: Header, body: np.ndarray, transform, keypoint_heatmaps: np.ndarray | None = None
                     ) -> BodyHeatmap:
    """A BodyHeatmap: the (H', W') body map, its mapping to image pixels, optional (K, H', W') SKHM maps.

    `transform` has scale_x, scale_y, offset_x, offset_y (image_x = heatmap_x * scale_x + offset_x).
    """
    keypoints = [] if keypoint_heatmaps is None else [float_image_msg(header, m) for m in keypoint_heatmaps]
    return BodyHeatmap(
        header=_copy_header(header),
        body=float_image_msg(header, body),
        scale_x=float(transform.scale_x), scale_y=float(transform.scale_y),
        offset_x=float(transform.offset_x), offset_y=float(transform.offset_y),
        keypoints=keypoints,
    )  # fmt: skip


def _color(track_id: int, rank: int) -> ColorRGBA:
    b, g, r = color_for_id(track_id if track_id else 1_000_003 + rank)  # as the overlay colours them
    return ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)


def marker_array_msg(header: Header, people: Sequence[PersonPose], schema: KeypointSchema,
                     image_size: tuple[int, int], ids: Sequence[int] | None = None,
                     config: MarkerConfig | None = None, camera: PinholeIntrinsics | None = None) -> MarkerArray:
    """RViz markers in the image's frame: a DELETEALL first (old people vanish), then per person a
    POINTS marker (keypoints above the threshold) and a LINE_LIST marker (drawing links between them).

    `image_size` is (height, width); `camera`: the intrinsics for this image (`camera_info.intrinsics`), or
    None; see `MarkerConfig` for where the picture plane lies.
    """
    config = config or MarkerConfig()
    if ids is not None and len(ids) != len(people):
        raise ValueError(f"marker_array_msg: {len(ids)} ids for {len(people)} people")
    height, width = image_size
    markers = [Marker(header=_copy_header(header), ns=config.namespace, action=Marker.DELETEALL)]
    forever = Duration(sec=0, nanosec=0)
    for rank, person in enumerate(people):
        track_id = int(ids[rank]) if ids is not None else 0
        kp = person.keypoints.astype(np.float64)
        visible = kp[:, 2] >= config.keypoint_threshold
        if camera is not None:
            xs = (kp[:, 0] - camera.cx) / camera.fx * config.distance
            ys = (kp[:, 1] - camera.cy) / camera.fy * config.distance
        else:
            xs = (kp[:, 0] - width / 2.0) * config.pixel_size
            ys = (kp[:, 1] - height / 2.0) * config.pixel_size
        points = [Point(x=float(xs[k]), y=float(ys[k]), z=float(config.distance)) if visible[k] else None
                  for k in range(len(kp))]
        color = _color(track_id, rank)
        joints = Marker(header=_copy_header(header), ns=config.namespace, id=2 * rank, type=Marker.POINTS,
                        action=Marker.ADD, color=color, lifetime=forever)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = float(config.point_size)
        joints.points = [p for p in points if p is not None]
        links = Marker(header=_copy_header(header), ns=config.namespace, id=2 * rank + 1, type=Marker.LINE_LIST,
                       action=Marker.ADD, color=color, lifetime=forever)
        links.pose.orientation.w = 1.0
        links.scale.x = float(config.line_width)
        links.points = [p for a, b in schema.skeleton if visible[a] and visible[b] for p in (points[a], points[b])]
        markers.extend((joints, links))
    return MarkerArray(markers=markers)
