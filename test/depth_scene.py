"""Synthetic RGB-D scenes with a known truth, for the depth-lifting tests.

The truth is 3D: people's keypoints in the camera's optical frame (metres). Their pixels come from
OpenCV's forward model (`cv2.projectPoints`, or `cv2.fisheye.projectPoints`), independent of the lifting's
inverse (`undistortPoints`). Depth images are rendered in the colour image's pixels (aligned), at any
resolution with the same field of view: depth pixel centres map to colour pixels as
u = (u_depth + 0.5) * W / W_depth - 0.5. Surfaces are fronto-parallel discs and bars (constant depth),
drawn nearest-first (a z-buffer), on a background wall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# A person facing the camera, COCO-17 order: x right, y down, z away from the camera (metres), relative
# to the point between the hips. Parts that are close in the image share a depth (a face is flat at
# this scale), so a window that sees a neighbour's disc still reads the right depth.
PERSON_M = np.array([
    [0.00, -0.62, -0.08], [0.03, -0.65, -0.08], [-0.03, -0.65, -0.08], [0.08, -0.63, -0.08], [-0.08, -0.63, -0.08],
    [0.19, -0.45, 0.00], [-0.19, -0.45, 0.00], [0.30, -0.18, -0.12], [-0.30, -0.18, 0.06],
    [0.36, 0.05, -0.30], [-0.33, 0.08, 0.10], [0.11, 0.00, 0.02], [-0.11, 0.00, 0.02],
    [0.13, 0.45, -0.05], [-0.12, 0.45, 0.03], [0.14, 0.88, 0.00], [-0.13, 0.88, 0.04],
])  # fmt: skip

CAMERA_K = np.array([[522.0, 0.0, 318.5], [0.0, 518.0, 243.25], [0.0, 0.0, 1.0]])
DISTORTION = {
    "none": np.zeros(0),
    "plumb_bob": np.array([0.11, -0.24, 0.0012, -0.0009, 0.09]),
    "rational_polynomial": np.array([0.42, -0.11, 0.0011, -0.0013, 0.012, 0.78, -0.02, 0.041]),
    "equidistant": np.array([0.05, -0.012, 0.004, -0.001]),
}


def camera_fields(model: str = "plumb_bob", width: int = 640, height: int = 480) -> dict:
    """A CameraInfo's fields (as CameraModel.from_fields takes them) for the test camera."""
    return dict(width=width, height=height, k=CAMERA_K.reshape(-1).tolist(), d=DISTORTION[model].tolist(),
                distortion_model="" if model == "none" else model)  # fmt: skip


def project(points: np.ndarray, model: str = "plumb_bob", K: np.ndarray = CAMERA_K) -> np.ndarray:
    """(N, 2) pixels of (N, 3) optical-frame points, by OpenCV's forward model."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 1, 3)
    rvec = tvec = np.zeros(3)
    if model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(points, rvec, tvec, K, DISTORTION[model])
    else:
        uv, _ = cv2.projectPoints(points, rvec, tvec, K, DISTORTION[model] if model != "none" else None)
    return uv.reshape(-1, 2)


def person_points(hips: tuple[float, float, float]) -> np.ndarray:
    """(17, 3) keypoints of the test person with the point between its hips at `hips`."""
    return PERSON_M + np.asarray(hips, dtype=np.float64)


@dataclass
class Scene:
    """Surfaces in colour-image pixels, rendered into depth images of any aligned size."""

    color_size: tuple[int, int] = (480, 640)  # (height, width)
    background_m: float = 6.0
    discs: list[tuple[float, float, float, float]] = field(default_factory=list)  # u, v, radius px, z
    boxes: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # x0, y0, x1, y1, z

    def add_disc(self, uv, radius: float, z: float) -> None:
        self.discs.append((float(uv[0]), float(uv[1]), float(radius), float(z)))

    def add_box(self, x0: float, y0: float, x1: float, y1: float, z: float) -> None:
        """All colour pixels with x0 <= u <= x1 and y0 <= v <= y1 at depth z."""
        self.boxes.append((x0, y0, x1, y1, z))

    def render(self, depth_size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W) float64 metres of the depth image of `depth_size` (default: the colour size)."""
        height, width = depth_size or self.color_size
        ch, cw = self.color_size
        u = (np.arange(width) + 0.5) * cw / width - 0.5
        v = (np.arange(height) + 0.5) * ch / height - 0.5
        uu, vv = np.meshgrid(u, v)
        depth = np.full((height, width), self.background_m)
        for x0, y0, x1, y1, z in self.boxes:
            inside = (uu >= x0) & (uu <= x1) & (vv >= y0) & (vv <= y1)
            depth = np.where(inside & ~(depth <= z), z, depth)  # nearest wins; NaN is no surface
        for cu, cv, radius, z in self.discs:
            inside = (uu - cu) ** 2 + (vv - cv) ** 2 <= radius**2
            depth = np.where(inside & ~(depth <= z), z, depth)  # nearest wins; NaN is no surface
        return depth


def person_scene(points: np.ndarray, uv: np.ndarray, radius: float = 7.0, background_m: float = 6.0,
                 color_size: tuple[int, int] = (480, 640)) -> Scene:
    """A disc of the keypoint's own depth around each keypoint pixel, on a background wall."""
    scene = Scene(color_size=color_size, background_m=background_m)
    for (u, v), z in zip(uv, points[:, 2], strict=True):
        scene.add_disc((u, v), radius, z)
    return scene


def to_16uc1(metres: np.ndarray) -> np.ndarray:
    """Millimetres, 0 where there is no data (NaN)."""
    return np.where(np.isfinite(metres), np.round(metres * 1000.0), 0).astype(np.uint16)


def to_32fc1(metres: np.ndarray) -> np.ndarray:
    return metres.astype(np.float32)


def keypoint_rows(uv: np.ndarray, scores: float | np.ndarray = 0.9) -> np.ndarray:
    """(K, 3) [x, y, score] rows."""
    out = np.empty((len(uv), 3), dtype=np.float32)
    out[:, :2] = uv
    out[:, 2] = scores
    return out


def naive_centre_read(depth_m: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """What a node that reads the single depth pixel under each keypoint gets (NaN for no data)."""
    cols = np.clip(np.rint(uv[:, 0]).astype(int), 0, depth_m.shape[1] - 1)
    rows = np.clip(np.rint(uv[:, 1]).astype(int), 0, depth_m.shape[0] - 1)
    values = depth_m[rows, cols].astype(np.float64)
    return np.where((values > 0) & np.isfinite(values), values, np.nan)


def lifted_people():
    """Two people lifted from a rendered scene, the second with its wrists over a hole and a weak nose:
    (list of PersonPose, PeoplePositions, the 3D truth). For message tests."""
    from strongpose_ros.decode import PersonPose
    from strongpose_ros.depth import CameraModel, DepthImage, lift_people

    truths = [person_points((-0.5, -0.1, 2.5)), person_points((0.5, -0.1, 3.0))]
    scene = Scene()
    people = []
    for n, truth in enumerate(truths):
        uv = project(truth)
        for (u, v), z in zip(uv, truth[:, 2], strict=True):
            scene.add_disc((u, v), 6, z)
        rows = keypoint_rows(uv)
        if n == 1:
            rows[0, 2] = 0.05
        people.append(PersonPose(rows, 0.9 - 0.3 * n, (*uv.min(0), *uv.max(0))))
    depth = scene.render()
    for k in (9, 10):
        u, v = np.rint(project(truths[1][k])[0]).astype(int)
        depth[v - 12 : v + 13, u - 12 : u + 13] = np.nan
    camera = CameraModel.from_fields(**camera_fields())
    positions = lift_people(people, DepthImage.from_array(to_16uc1(depth), "16UC1"), camera, (480, 640))
    return people, positions, truths
