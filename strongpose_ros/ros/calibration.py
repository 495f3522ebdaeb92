"""Camera calibration files: a CameraInfo from the YAML that `camera_calibration` writes
(camera_calibration_parsers' format: image_width, image_height, camera_matrix, distortion_model,
distortion_coefficients, rectification_matrix, projection_matrix). Errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from sensor_msgs.msg import CameraInfo

from strongpose_ros.ros.frame_sources import SourceError

__all__ = ["load_camera_info"]


def _matrix(data: dict, key: str, rows: int, cols: int, path: Path) -> list[float]:
    entry = data.get(key)
    values = entry.get("data") if isinstance(entry, dict) else entry
    if not isinstance(values, list) or len(values) != rows * cols:
        raise SourceError(f"calibration file {path}: '{key}' must hold {rows}x{cols} = {rows * cols} numbers")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise SourceError(f"calibration file {path}: '{key}' holds a value that is not a number") from None


def load_camera_info(path: str | Path) -> CameraInfo:
    """A CameraInfo from a camera_calibration_parsers YAML file (what `camera_calibration` writes)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"calibration file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SourceError(f"calibration file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceError(f"calibration file {path}: expected a mapping with camera_matrix, image_width, ...")
    info = CameraInfo()
    try:
        info.width, info.height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise SourceError(f"calibration file {path}: 'image_width' and 'image_height' must be integers") from None
    info.k = _matrix(data, "camera_matrix", 3, 3, path)
    info.distortion_model = str(data.get("distortion_model", "plumb_bob"))
    distortion = data.get("distortion_coefficients", {"data": []})
    values = distortion.get("data", []) if isinstance(distortion, dict) else distortion
    info.d = _matrix({"d": values}, "d", 1, len(values or []), path) if values else []
    info.r = _matrix(data, "rectification_matrix", 3, 3, path) if "rectification_matrix" in data else \
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    if "projection_matrix" in data:
        info.p = _matrix(data, "projection_matrix", 3, 4, path)
    else:  # a monocular camera: P = [K | 0]
        k = info.k
        info.p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return info
