"""The pinhole camera of a `sensor_msgs/CameraInfo`: validated intrinsics, resolution changes, pixel rays.

A `CameraModel` holds the intrinsics of one image size: K (3x3), the distortion model and coefficients
D, and the width and height they apply to. It is built from a CameraInfo's fields passed as plain values
(`CameraModel.from_fields`), or from any object with those fields (`CameraModel.from_camera_info`: an
rclpy or a rosbags message; nothing here imports ROS). Bad calibrations are refused with a
`CameraModelError` (a ValueError) naming the field: a zero or non-finite focal length (an uncalibrated
camera publishes K = 0), a K or P of the wrong size, an unknown distortion model, a D of the wrong length.

Conventions (OpenCV's, which CameraInfo follows): pixel (u, v) has its centre at integer coordinates,
(0, 0) the centre of the top-left pixel; the optical frame is x right, y down, z forward.

- Distortion models: "plumb_bob" (k1 k2 p1 p2 k3; 4 or 5 values), "rational_polynomial" (k1 k2 p1 p2 k3
  k4 k5 k6; 8 values), "equidistant" (fisheye k1 k2 k3 k4; 4 values). An empty or all-zero D, or the
  model "" / "none", is a plain pinhole. Undistortion goes through OpenCV's iterative `undistortPoints`
  (`cv2.fisheye.undistortPoints` for equidistant), with more iterations than its default 5 so strong
  lenses are inverted to well below a pixel.
- Binning and ROI (CameraInfo's binning_x/y, roi): the model is for the image the camera delivers, so
  K is mapped from the full-resolution calibration to that image: u_image = (u_full - x_offset + 0.5) /
  binning_x - 0.5 (pixel centres).
- Rectified images (`rectified=True`): keypoints found in `image_rect` are already undistorted, and
  CameraInfo's P (its left 3x3) is their camera matrix; D is then not applied.
- Another resolution of the same field of view (`scaled`): the depth and colour images of an aligned
  pair may differ in size, and the CameraInfo may be the depth's. Pixel centres map as
  u' = (u + 0.5) * s - 0.5, so fx' = fx * s and cx' = (cx + 0.5) * s - 0.5 (exact for cv2.resize).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["DISTORTION_MODELS", "CameraModel", "CameraModelError", "scale_between"]

# Distortion model -> accepted numbers of coefficients.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8,),
    "equidistant": (4,),
}
_PINHOLE_NAMES = ("", "none")
# OpenCV's default is 5 iterations; 30 (or a change below 1e-12) inverts strong lenses to < 0.001 px.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-12)


class CameraModelError(ValueError):
    """A camera calibration that cannot be used; the message names the field."""


def _finite_array(name: str, values: Any, length: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CameraModelError(f"CameraInfo.{name} must hold numbers: {exc}") from exc
    if length is not None and array.size != length:
        raise CameraModelError(f"CameraInfo.{name} must have {length} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise CameraModelError(f"CameraInfo.{name} has a non-finite value: {array.tolist()}")
    return array


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise CameraModelError(f"CameraInfo.{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_matrix(name: str, K: np.ndarray) -> None:
    """K (or P's left 3x3): positive finite focal lengths, no skew, last row 0 0 1."""
    fx, fy = K[0, 0], K[1, 1]
    for label, value in (("fx", fx), ("fy", fy)):
        if not value > 0:
            hint = " (all zero: the camera is not calibrated)" if not np.any(K) else ""
            raise CameraModelError(f"CameraInfo.{name}: focal length {label} must be positive, got {value}{hint}")
    if K[0, 1] != 0 or K[1, 0] != 0:
        raise CameraModelError(f"CameraInfo.{name}: skew or a rotated matrix is not supported: {K.tolist()}")
    if K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise CameraModelError(f"CameraInfo.{name}: the last row must be 0 0 1, got {K[2].tolist()}")


def scale_between(source: tuple[int, int], target: tuple[int, int], tolerance: float = 0.02) -> tuple[float, float]:
    """(sx, sy) that map pixels of a `source` (height, width) image to a `target` one of the same view.

    Raises CameraModelError when the two sizes scale differently in x and y by more than `tolerance`
    (relative): then they do not show the same field of view (a depth image not aligned to colour).
    """
    (sh, sw), (th, tw) = source, target
    if min(sh, sw, th, tw) <= 0:
        raise CameraModelError(f"image sizes must be positive, got {sw}x{sh} and {tw}x{th}")
    sx, sy = tw / sw, th / sh
    if abs(sx / sy - 1.0) > tolerance:
        raise CameraModelError(
            f"a {sw}x{sh} and a {tw}x{th} image do not show the same field of view (aspect ratios "
            f"{sw / sh:.3f} and {tw / th:.3f}): not aligned"
        )
    return sx, sy


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics of one image size. Build with `from_fields` / `from_camera_info` (which validate).

    - `width`, `height`: the image size K applies to;
    - `K`: (3, 3) float64 camera matrix; `D`: distortion coefficients (empty for a pinhole);
    - `distortion_model`: "plumb_bob", "rational_polynomial", "equidistant" or "none".
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str

    def __post_init__(self) -> None:
        _positive_int("width", self.width)
        _positive_int("height", self.height)
        K = _finite_array("k", self.K, 9).reshape(3, 3)
        _check_matrix("k", K)
        D = _finite_array("d", self.D)
        model = self.distortion_model
        if model not in DISTORTION_MODELS and model != "none":
            raise CameraModelError(f"CameraModel.distortion_model {model!r} is not one of "
                                   f"{[*DISTORTION_MODELS, 'none']}")  # fmt: skip
        if model == "none" and D.size:
            raise CameraModelError("CameraModel: distortion_model 'none' with coefficients")
        if model != "none" and D.size not in DISTORTION_MODELS[model]:
            raise CameraModelError(f"CameraInfo.d: {model} needs {' or '.join(map(str, DISTORTION_MODELS[model]))} "
                                   f"coefficients, got {D.size}")  # fmt: skip
        K.setflags(write=False)
        D.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)

    # --- construction ------------------------------------------------------------------------------

    @classmethod
    def from_fields(
        cls,
        *,
        width: int,
        height: int,
        k: Sequence[float],
        d: Sequence[float] = (),
        distortion_model: str = "plumb_bob",
        p: Sequence[float] | None = None,
        binning_x: int = 0,
        binning_y: int = 0,
        roi_x_offset: int = 0,
        roi_y_offset: int = 0,
        roi_width: int = 0,
        roi_height: int = 0,
        rectified: bool = False,
    ) -> CameraModel:
        """The camera of a CameraInfo given as plain values (names as in sensor_msgs/CameraInfo).

        `rectified`: the keypoints are in the rectified image; P's left 3x3 is used and D is not.
        """
        width, height = _positive_int("width", width), _positive_int("height", height)
        if not isinstance(distortion_model, str):
            raise CameraModelError(f"CameraInfo.distortion_model must be a string, got {distortion_model!r}")
        if rectified:
            if p is None:
                raise CameraModelError("CameraInfo.p is needed for a rectified image")
            P = _finite_array("p", p, 12).reshape(3, 4)
            K = P[:, :3].copy()
            _check_matrix("p", K)
            model, D = "none", np.zeros(0)
        else:
            K = _finite_array("k", k, 9).reshape(3, 3)
            _check_matrix("k", K)
            D = _finite_array("d", d)
            model = distortion_model.strip().lower()
            if model in _PINHOLE_NAMES:
                if np.any(D):
                    raise CameraModelError(f"CameraInfo.distortion_model is {distortion_model!r} but d is "
                                           f"{D.tolist()}: name the model")  # fmt: skip
                model = "none"
            elif model not in DISTORTION_MODELS:
                raise CameraModelError(
                    f"CameraInfo.distortion_model {distortion_model!r} is not supported "
                    f"(supported: {', '.join(DISTORTION_MODELS)}; empty for none)"
                )
            if not np.any(D):  # an empty or all-zero D is a pinhole, whatever the model says
                model, D = "none", np.zeros(0)
        bx, by = _binning("binning_x", binning_x), _binning("binning_y", binning_y)
        for name, value in (("roi.x_offset", roi_x_offset), ("roi.y_offset", roi_y_offset),
                            ("roi.width", roi_width), ("roi.height", roi_height)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise CameraModelError(f"CameraInfo.{name} must be a non-negative integer, got {value!r}")
        full_w = roi_width or width - roi_x_offset
        full_h = roi_height or height - roi_y_offset
        if full_w <= 0 or full_h <= 0 or roi_x_offset + full_w > width or roi_y_offset + full_h > height:
            raise CameraModelError(f"CameraInfo.roi ({roi_x_offset}, {roi_y_offset}, {roi_width}x{roi_height}) "
                                   f"does not fit the {width}x{height} calibration")  # fmt: skip
        image_w, image_h = full_w // bx, full_h // by
        if image_w <= 0 or image_h <= 0:
            raise CameraModelError(f"CameraInfo.binning ({bx}, {by}) leaves no pixels of {full_w}x{full_h}")
        K = K.copy()
        K[0, 0], K[1, 1] = K[0, 0] / bx, K[1, 1] / by
        K[0, 2] = (K[0, 2] - roi_x_offset + 0.5) / bx - 0.5
        K[1, 2] = (K[1, 2] - roi_y_offset + 0.5) / by - 0.5
        return cls(image_w, image_h, K, D, model)

    @classmethod
    def from_camera_info(cls, msg: Any, *, rectified: bool = False) -> CameraModel:
        """The camera of a CameraInfo message (rclpy or rosbags flavour; only its fields are read)."""
        try:
            roi = msg.roi
            fields = dict(
                width=msg.width, height=msg.height, k=list(msg.k), d=list(msg.d),
                distortion_model=msg.distortion_model, p=list(msg.p), binning_x=msg.binning_x,
                binning_y=msg.binning_y, roi_x_offset=roi.x_offset, roi_y_offset=roi.y_offset,
                roi_width=roi.width, roi_height=roi.height,
            )  # fmt: skip
        except AttributeError as exc:
            raise CameraModelError(f"not a CameraInfo message: {exc}") from exc
        return cls.from_fields(**fields, rectified=rectified)

    # --- properties --------------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def has_distortion(self) -> bool:
        return self.distortion_model != "none"

    # --- resolution -------------------------------------------------------------------------------

    def scaled(self, width: int, height: int, tolerance: float = 0.02) -> CameraModel:
        """The same camera at another resolution of the same field of view (self when the size is equal).

        Raises CameraModelError when the aspect ratio differs by more than `tolerance` (relative).
        """
        width, height = _positive_int("width", width), _positive_int("height", height)
        if (width, height) == (self.width, self.height):
            return self
        try:
            sx, sy = scale_between(self.size, (height, width), tolerance)
        except CameraModelError as exc:
            raise CameraModelError(f"the CameraInfo is for {self.width}x{self.height} images: {exc}") from None
        K = self.K.copy()
        K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
        K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
        return CameraModel(width, height, K, self.D.copy(), self.distortion_model)

    # --- geometry ---------------------------------------------------------------------------------

    def normalized(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) undistorted normalised coordinates (x/z, y/z) of (N, 2) pixels of this camera's image.

        A pixel at depth z (the optical-axis coordinate, as depth images hold it) is the 3D point
        (x * z, y * z, z). Pixels the lens model cannot invert come back NaN.
        """
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if not self.has_distortion or uv.shape[0] == 0:
            out = np.empty_like(uv)
            out[:, 0] = (uv[:, 0] - self.K[0, 2]) / self.K[0, 0]
            out[:, 1] = (uv[:, 1] - self.K[1, 2]) / self.K[1, 1]
            return out
        finite = np.all(np.isfinite(uv), axis=1)
        out = np.full_like(uv, np.nan)
        points = np.ascontiguousarray(uv[finite]).reshape(-1, 1, 2)
        if points.shape[0]:
            if self.distortion_model == "equidistant":
                result = cv2.fisheye.undistortPoints(points, self.K, self.D, criteria=_UNDISTORT_CRITERIA)
            else:
                result = cv2.undistortPoints(points, self.K, self.D, criteria=_UNDISTORT_CRITERIA)
            out[finite] = result.reshape(-1, 2)
        out[~np.all(np.isfinite(out), axis=1)] = np.nan
        return out

    def back_project(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(N, 3) points in the optical frame of (N, 2) pixels at optical-axis depths z (N,), metres."""
        xy = self.normalized(uv)
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        return np.stack([xy[:, 0] * z, xy[:, 1] * z, z], axis=1)

    def __repr__(self) -> str:
        return (f"CameraModel({self.width}x{self.height}, fx={self.fx:.2f}, fy={self.fy:.2f}, cx={self.cx:.2f}, "
                f"cy={self.cy:.2f}, {self.distortion_model}{'' if not self.D.size else ' ' + str(self.D.tolist())})")


def _binning(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise CameraModelError(f"CameraInfo.{name} must be a non-negative integer, got {value!r}")
    return max(1, int(value))  # 0 and 1 both mean no binning
