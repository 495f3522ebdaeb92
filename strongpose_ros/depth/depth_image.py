"""Depth images as they arrive (16UC1 millimetres, 32FC1 metres), and their values in metres.

ROS depth images (REP 118) hold the z coordinate of each pixel in the camera's optical frame:
- `16UC1` (and `mono16`, which some drivers use for the same data): unsigned millimetres, 0 = no data;
- `32FC1`: metres, NaN = no data; 0, negative and infinite values are no data too (drivers differ).

`DepthImage` keeps the array as received (no whole-frame conversion: the lifting reads a few windows,
and converting a 1280x720 frame to float would cost more than the lifting itself) with its unit;
`DepthImage.metres()` and `depth_to_metres` convert a whole frame to float32 metres with NaN for no data.
The arrays come from `strongpose_ros.ros.image_conversion.image_to_numpy` (step padding and byte order
already handled there); arrays in the other byte order are accepted here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEPTH_ENCODINGS", "DepthImage", "DepthImageError", "depth_to_metres"]

# Encoding -> (element type, metres per unit).
DEPTH_ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    "16UC1": (np.dtype(np.uint16), 0.001),
    "mono16": (np.dtype(np.uint16), 0.001),
    "32FC1": (np.dtype(np.float32), 1.0),
}


class DepthImageError(ValueError):
    """A depth array that cannot be read as depth; the message says why."""


@dataclass(frozen=True, eq=False)
class DepthImage:
    """A depth frame as received: `values` (H, W) uint16 or float32 in host byte order, and `unit_m`, the
    metres per value (0.001 for 16UC1). Build it with `DepthImage.from_array`."""

    values: np.ndarray
    unit_m: float

    @classmethod
    def from_array(cls, array: np.ndarray, encoding: str, *, unit_m: float | None = None) -> DepthImage:
        """Wrap an (H, W) depth array of `encoding` ("16UC1", "mono16" or "32FC1"); no copy when it is in
        host byte order. `unit_m` overrides the encoding's unit (a sensor that stores 16UC1 in 0.1 mm)."""
        if encoding not in DEPTH_ENCODINGS:
            raise DepthImageError(f"depth encoding {encoding!r} is not supported (expected one of "
                                  f"{', '.join(DEPTH_ENCODINGS)})")  # fmt: skip
        dtype, default_unit = DEPTH_ENCODINGS[encoding]
        if not isinstance(array, np.ndarray):
            raise DepthImageError(f"depth must be a numpy array, got {type(array).__name__}")
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise DepthImageError(f"depth must be a non-empty (H, W) array, got shape {array.shape}")
        if array.dtype.newbyteorder("=") != dtype:
            raise DepthImageError(f"{encoding} depth must be {dtype}, got {array.dtype}")
        if not array.dtype.isnative:
            array = array.astype(dtype)
        unit = default_unit if unit_m is None else float(unit_m)
        if not 0 < unit < float("inf"):
            raise DepthImageError(f"depth unit must be a positive number of metres, got {unit_m!r}")
        return cls(array, unit)

    @property
    def height(self) -> int:
        return int(self.values.shape[0])

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def to_metres(self, raw: np.ndarray) -> np.ndarray:
        """float32 metres of raw values of this image (any shape), NaN where there is no data."""
        out = raw.astype(np.float32) * np.float32(self.unit_m)
        out[~(out > 0) | ~np.isfinite(out)] = np.nan
        return out

    def metres(self) -> np.ndarray:
        """The whole frame as (H, W) float32 metres, NaN where there is no data."""
        return self.to_metres(self.values)


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) float32 metres, NaN = no data, of a 16UC1 (mm, 0 = none) or 32FC1 (m) depth array."""
    return DepthImage.from_array(array, encoding).metres()
