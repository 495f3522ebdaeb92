"""sensor_msgs/Image and sensor_msgs/CompressedImage to and from NumPy, with cv_bridge's semantics.

Why this module exists: ROS 2's `cv_bridge` is not available as a wheel (see FACTS.md), and the `cv-bridge`
on the package index is an unrelated, broken port. When the real ROS 2 cv_bridge is importable (detected by
its compiled `cv_bridge.boost` module), `image_to_numpy` and `numpy_to_image` delegate to it after our own
validation; everywhere else the implementation below is used. Both give the same arrays.

Messages are duck-typed: only the fields are read (`height, width, encoding, is_bigendian, step, data` for
Image; `format, data` for CompressedImage), so rclpy's generated messages (`data` is `array.array('B')`) and
the `rosbags` library's dataclasses (`data` is a NumPy uint8 array) both work, as do `bytes`/`bytearray`.
Building a message uses `msg_cls` when given, else imports `sensor_msgs.msg` inside the function, so this
module imports without ROS.

Shapes and dtypes follow cv_bridge: HxW for one channel, HxWxC otherwise, dtype from the encoding
(mono16 -> uint16, 32FC1 -> float32, ...), always in the host's byte order. Packed YUV 4:2:2 is HxWx2 uint8.

Encodings (names as in sensor_msgs/image_encodings.hpp of ROS 2 Kilted):
- rgb8, bgr8, rgba8, bgra8, mono8, rgb16, bgr16, rgba16, bgra16, mono16;
- the generic OpenCV types `(8U|8S|16U|16S|32S|32F|64F)C<n>` (`8UC` alone means one channel);
- bayer_{rggb,bggr,gbrg,grbg}{8,16};
- packed YUV 4:2:2: "uyvy" and its deprecated alias "yuv422" are UYVY byte order (U0 Y0 V0 Y1): that is
  what image_encodings.hpp documents ("fourcc: UYVY") and what cv_bridge converts it with
  (COLOR_YUV2*_UYVY). "yuyv" and its deprecated alias "yuv422_yuy2" are YUYV byte order (Y0 U0 Y1 V0).
  Both need an even width. The planar nv12/nv21/nv24 are not supported (a clear error says so).

Memory: reading never copies the message buffer to build an intermediate `bytes` object; rows are viewed
in place with `np.frombuffer` and strides (padding skipped, byte order fixed in the one copy that makes the
result). By default every returned array owns its memory (C-contiguous, writable), so neither later edits
of the message nor edits of the array can affect the other. `image_to_numpy(..., copy=False)` returns a
READ-ONLY view of the message buffer when no copy is needed (passthrough, no row padding, host byte
order); it is valid only while the message's data is left unchanged.

Colour conversions (`desired_encoding`) follow cv_bridge's rules: a colour/mono/bayer/yuv encoding converts
to another one by cvtColor, then by a depth change (8 <-> 16 bits scaled by 65535/255); a generic type
(8UC3, 32FC1, ...) converts only to a generic type with the same channel count (a plain cast), and a colour
encoding to a generic one only with the same channel count.

`to_bgr8` is this project's own rule for feeding the network (HxWx3 uint8): mono expands; 16-bit scales
linearly over the full range (v * 255 / 65535, rounded: cv_bridge's 16 -> 8 rule; chosen over a per-frame
min-max so that brightness does not flicker from frame to frame); float is assumed in 0..1 (configurable),
clipped, NaN -> 0; bayer demosaics (bilinear); yuv converts (OpenCV's BT.601); alpha is dropped; generic
types are read by channel count (1: gray, 3: BGR, 4: BGRA, as OpenCV stores them). Signed integer types
and 2-channel generic types have no sensible picture and are rejected.

All bad input raises `ImageConversionError` (a ValueError) whose message names the problem.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import importlib
import re
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "DEFAULT_CONFIG",
    "EncodingInfo",
    "ImageConversionConfig",
    "ImageConversionError",
    "compressed_to_numpy",
    "decode_compressed",
    "encoding_info",
    "image_to_numpy",
    "numpy_to_compressed",
    "numpy_to_image",
    "to_bgr8",
]


class ImageConversionError(ValueError):
    """A message or array that cannot be converted; the message says what is wrong."""


@dataclass(frozen=True)
class ImageConversionConfig:
    """Tunable constants of the conversions (defaults: ROS 2 compressed_image_transport's, where it has one)."""

    jpeg_quality: int = 95  # compressed_image_transport's `jpeg_quality` default
    png_level: int = 3  # compressed_image_transport's `png_level` default (zlib level 0..9)
    float_min: float = 0.0  # to_bgr8: float value shown as black
    float_max: float = 1.0  # to_bgr8: float value shown as white
    # Zero bytes tolerated after a JPEG's EOI / PNG's IEND (some drivers pad buffers to a multiple of 4/16).
    max_trailing_padding: int = 64
    use_cv_bridge: bool = True  # delegate to the real ROS 2 cv_bridge when it is importable

    def __post_init__(self) -> None:
        if not 0 <= self.jpeg_quality <= 100:
            raise ImageConversionError(f"jpeg_quality must be in 0..100, got {self.jpeg_quality}")
        if not 0 <= self.png_level <= 9:
            raise ImageConversionError(f"png_level must be in 0..9, got {self.png_level}")
        if not self.float_max > self.float_min:
            raise ImageConversionError(f"float_max ({self.float_max}) must exceed float_min ({self.float_min})")
        if self.max_trailing_padding < 0:
            raise ImageConversionError(f"max_trailing_padding must be >= 0, got {self.max_trailing_padding}")


DEFAULT_CONFIG = ImageConversionConfig()

PASSTHROUGH = "passthrough"


@dataclass(frozen=True)
class EncodingInfo:
    """What an encoding string means for the NumPy array that holds it."""

    name: str
    dtype: np.dtype  # element type, host byte order
    channels: int  # last-axis length of the array (1 -> HxW); packed YUV 4:2:2 is 2
    family: str | None  # colour meaning (GRAY, RGB, BGR, RGBA, BGRA, UYVY, YUYV, BAYER_*); None: generic
    bit_depth: int  # cv_bridge's bitDepth(): 8 or 16 for named encodings, the type's bits for generic ones

    @property
    def pixel_bytes(self) -> int:
        return self.channels * self.dtype.itemsize

    @property
    def is_color(self) -> bool:
        """cv_bridge's notion: colour, mono, bayer or yuv (has a colour meaning, can be cvtColor-ed)."""
        return self.family is not None


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_BAYER = {"rggb": "BAYER_RGGB", "bggr": "BAYER_BGGR", "gbrg": "BAYER_GBRG", "grbg": "BAYER_GRBG"}


def _named_encodings() -> dict[str, EncodingInfo]:
    table: dict[str, EncodingInfo] = {}
    for bits, dt in ((8, _U8), (16, _U16)):
        for fam, ch in (("mono", 1), ("rgb", 3), ("bgr", 3), ("rgba", 4), ("bgra", 4)):
            name = f"{fam}{bits}"
            family = "GRAY" if fam == "mono" else fam.upper()
            table[name] = EncodingInfo(name, dt, ch, family, bits)
        for pattern, family in _BAYER.items():
            name = f"bayer_{pattern}{bits}"
            table[name] = EncodingInfo(name, dt, 1, family, bits)
    for name, family in (("uyvy", "UYVY"), ("yuv422", "UYVY"), ("yuyv", "YUYV"), ("yuv422_yuy2", "YUYV")):
        table[name] = EncodingInfo(name, _U8, 2, family, 8)
    return table


_NAMED = _named_encodings()
_GENERIC_RE = re.compile(r"(8|16|32|64)(U|S|F)C(\d*)")
_GENERIC_DTYPES = {
    "8U": _U8, "8S": np.dtype(np.int8), "16U": _U16, "16S": np.dtype(np.int16),
    "32S": np.dtype(np.int32), "32F": np.dtype(np.float32), "64F": np.dtype(np.float64),
}  # fmt: skip
_CV_MAX_CHANNELS = 512  # OpenCV's CV_CN_MAX
_UNSUPPORTED = ("nv12", "nv21", "nv24")


def encoding_info(encoding: str) -> EncodingInfo:
    """Describe `encoding`; raises ImageConversionError for an unknown or unsupported one."""
    if not isinstance(encoding, str):
        raise ImageConversionError(f"encoding must be a string, got {type(encoding).__name__}")
    info = _NAMED.get(encoding)
    if info is not None:
        return info
    m = _GENERIC_RE.fullmatch(encoding)
    if m is not None:
        dtype = _GENERIC_DTYPES.get(m.group(1) + m.group(2))
        channels = int(m.group(3)) if m.group(3) else 1
        if dtype is not None and 1 <= channels <= _CV_MAX_CHANNELS:
            return EncodingInfo(encoding, dtype, channels, None, int(m.group(1)))
    if encoding in _UNSUPPORTED:
        raise ImageConversionError(f"encoding {encoding!r} (planar YUV) is not supported")
    raise ImageConversionError(f"unknown image encoding {encoding!r}")


def _generic_name(dtype: np.dtype, channels: int) -> str:
    for prefix, dt in _GENERIC_DTYPES.items():
        if dt == dtype:
            return f"{prefix}C{channels}"
    raise ImageConversionError(f"array dtype {dtype} has no image encoding (use uint8/16, int8/16/32, float32/64)")


# --------------------------------------------------------------------------------------------- colour rules
_SAME = -1  # cv_bridge's SAME_FORMAT: no cvtColor, only a depth change


def _conversion_table() -> dict[tuple[str, str], list[int]]:
    """cv_bridge's table of (source family, destination family) -> cvtColor codes."""
    plain = ("GRAY", "RGB", "BGR", "RGBA", "BGRA")
    table: dict[tuple[str, str], list[int]] = {}
    for src in plain:
        for dst in plain:
            table[(src, dst)] = [_SAME] if src == dst else [getattr(cv2, f"COLOR_{src}2{dst}")]
    for fam, suffix in (("UYVY", "UYVY"), ("YUYV", "YUY2")):
        table[(fam, fam)] = [_SAME]
        for dst in plain:
            table[(fam, dst)] = [getattr(cv2, f"COLOR_YUV2{dst}_{suffix}")]
    for fam in _BAYER.values():
        table[(fam, fam)] = [_SAME]
        pattern = fam.split("_")[1]
        for dst in ("GRAY", "RGB", "BGR"):
            table[(fam, dst)] = [getattr(cv2, f"COLOR_Bayer{pattern}2{dst}")]
    return table


_CONVERSIONS = _conversion_table()


def _conversion_codes(src: EncodingInfo, dst: EncodingInfo) -> list[int]:
    """cv_bridge's getConversionCode(): the steps from `src` to `dst`, or an error that says why not."""
    if not src.is_color:
        if dst.is_color:
            raise ImageConversionError(
                f"[{src.name}] is not a color format but [{dst.name}] is: the conversion does not make sense"
            )
        if src.channels != dst.channels:
            raise ImageConversionError(f"[{src.name}] and [{dst.name}] do not have the same number of channels")
        return [_SAME]
    if not dst.is_color:
        if src.channels != dst.channels:
            raise ImageConversionError(
                f"[{src.name}] is a color format but [{dst.name}] is not, so they must have the same number of channels"
            )
        return [_SAME]
    codes = _CONVERSIONS.get((src.family, dst.family))
    if codes is None:
        raise ImageConversionError(f"unsupported conversion from [{src.name}] to [{dst.name}]")
    if src.bit_depth != dst.bit_depth and src.family != dst.family:
        codes = [*codes, _SAME]
    return codes


def _change_depth(arr: np.ndarray, src_bits: int, dst: EncodingInfo) -> np.ndarray:
    """OpenCV convertTo() as cv_bridge calls it: 8 <-> 16 bits rescale, else a saturating, rounding cast."""
    scale = 1.0
    if src_bits == 8 and dst.bit_depth == 16:
        scale = 65535.0 / 255.0
    elif src_bits == 16 and dst.bit_depth == 8:
        scale = 255.0 / 65535.0
    if arr.dtype == dst.dtype and scale == 1.0:
        return arr
    if dst.dtype.kind == "f":
        return (arr * scale if scale != 1.0 else arr).astype(dst.dtype)
    work = arr.astype(np.float64)
    if arr.dtype.kind == "f":
        np.nan_to_num(work, copy=False, nan=0.0)  # saturate_cast of NaN gives 0 in OpenCV
    if scale != 1.0:
        work *= scale
    limits = np.iinfo(dst.dtype)
    np.rint(work, out=work)
    np.clip(work, limits.min, limits.max, out=work)
    return work.astype(dst.dtype)


def _convert(arr: np.ndarray, src: EncodingInfo, dst: EncodingInfo) -> np.ndarray:
    if dst.name == src.name:
        return arr
    if src.family in ("UYVY", "YUYV") and arr.shape[1] % 2:
        raise ImageConversionError(f"{src.name} needs an even width, got {arr.shape[1]}")
    current_bits = src.bit_depth
    for code in _conversion_codes(src, dst):
        if code == _SAME:
            arr = _change_depth(arr, current_bits, dst)
            current_bits = dst.bit_depth
        else:
            arr = cv2.cvtColor(arr, code)
    return arr


# ------------------------------------------------------------------------------------------- reading buffers
def _as_uint8(data: Any, what: str = "data") -> np.ndarray:
    """A flat uint8 view of a message's data field, without copying where the buffer allows it."""
    if isinstance(data, np.ndarray):
        if data.dtype.itemsize != 1:
            raise ImageConversionError(f"{what} must hold bytes, got an array of {data.dtype}")
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, str):
        raise ImageConversionError(f"{what} must be bytes, got str")
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        try:
            return np.frombuffer(data, dtype=np.uint8)
        except (ValueError, TypeError) as exc:
            raise ImageConversionError(f"{what} is not a byte buffer: {exc}") from exc
    try:  # lists / tuples of ints (rclpy accepts them when building a message)
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ImageConversionError(f"{what} is not a sequence of bytes: {exc}") from exc


def _host_is_big() -> bool:
    return sys.byteorder == "big"


def _image_view(msg: Any) -> tuple[np.ndarray, EncodingInfo, np.ndarray]:
    """Validate an Image message and view its pixels in place.

    Returns (array, encoding info, flat buffer); the array may be a strided, read-only, non-native-order
    view of the buffer: callers copy or convert it.
    """
    try:
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        encoding, data, big = msg.encoding, msg.data, bool(msg.is_bigendian)
    except AttributeError as exc:
        raise ImageConversionError(f"not an Image message: {exc}") from exc
    info = encoding_info(encoding)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero width or height ({width}x{height})")
    if info.family in ("UYVY", "YUYV") and width % 2:
        raise ImageConversionError(f"{encoding} packs two pixels per U/V pair and needs an even width, got {width}")
    row_bytes = width * info.pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than a row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    buf = _as_uint8(data)
    if buf.size < step * height:
        raise ImageConversionError(
            f"data has {buf.size} bytes but step*height = {step}*{height} = {step * height}: truncated image"
        )
    if buf.size != step * height:
        raise ImageConversionError(
            f"data has {buf.size} bytes but step*height = {step}*{height} = {step * height}: data does not "
            "match the header"
        )
    rows = buf.reshape(height, step)[:, :row_bytes]
    dtype = info.dtype
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if big else "<")
    arr = rows.view(dtype).reshape(height, width, info.channels)
    if info.channels == 1:
        arr = arr[:, :, 0]
    return arr, info, buf


def _native(arr: np.ndarray) -> np.ndarray:
    """Host byte order and aligned elements (copies only when the view is not already so)."""
    if not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned:  # odd `step` with multi-byte pixels
        return arr.copy()
    return arr


def _owned(result: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """The result as a C-contiguous array that shares no memory with the message buffer."""
    if np.may_share_memory(result, buf):
        return np.array(result, order="C", copy=True)
    return np.ascontiguousarray(result)


# --------------------------------------------------------------------------------------- cv_bridge delegation
@functools.lru_cache(maxsize=1)
def _real_cv_bridge() -> Any | None:
    """A CvBridge of ROS 2's cv_bridge if importable; the unofficial PyPI port (no `boost`) does not count."""
    try:
        module = importlib.import_module("cv_bridge")
        importlib.import_module("cv_bridge.boost.cv_bridge_boost")
        return module.CvBridge()
    except Exception:  # any import failure means: use our implementation
        return None


def _bridge(config: ImageConversionConfig) -> Any | None:
    return _real_cv_bridge() if config.use_cv_bridge else None


# ------------------------------------------------------------------------------------------------ Image API
def image_to_numpy(
    msg: Any,
    desired_encoding: str = PASSTHROUGH,
    *,
    copy: bool = True,
    config: ImageConversionConfig = DEFAULT_CONFIG,
) -> np.ndarray:
    """Pixels of a sensor_msgs/Image as an array (cv_bridge's `imgmsg_to_cv2`).

    desired_encoding: "passthrough" (or "" or the message's own encoding) keeps the data as is; another
    encoding converts by cv_bridge's rules (see the module docstring). copy=False allows a read-only view
    of the message buffer in the passthrough case when no copy is needed.
    """
    arr, info, buf = _image_view(msg)
    target = info if desired_encoding in (PASSTHROUGH, "", info.name) else encoding_info(desired_encoding)
    if target is not info:
        _conversion_codes(info, target)  # reject impossible conversions before delegating
    bridge = _bridge(config)
    # cv_bridge's Python side assumes whole pixels per step and, with NumPy 2, breaks on foreign byte order
    # (ndarray.newbyteorder is gone): those messages stay with our implementation.
    host_order = info.dtype.itemsize == 1 or bool(msg.is_bigendian) == _host_is_big()
    if bridge is not None and int(msg.step) % info.pixel_bytes == 0 and host_order:
        try:
            result = bridge.imgmsg_to_cv2(msg, desired_encoding or PASSTHROUGH)
        except Exception as exc:  # CvBridgeError and OpenCV errors alike
            raise ImageConversionError(f"cv_bridge: {exc}") from exc
        return _owned(np.asarray(result), buf)
    arr = _native(arr)
    if target is info:
        if not copy and arr.flags.c_contiguous:
            view = arr.view()
            view.flags.writeable = False
            return view
        return _owned(arr, buf)
    return _owned(_convert(arr, info, target), buf)


def _check_array(array_: Any) -> np.ndarray:
    if not isinstance(array_, np.ndarray):
        raise ImageConversionError(f"expected a numpy array, got {type(array_).__name__}")
    if array_.ndim not in (2, 3):
        raise ImageConversionError(f"image array must be HxW or HxWxC, got shape {array_.shape}")
    if array_.shape[0] == 0 or array_.shape[1] == 0 or (array_.ndim == 3 and array_.shape[2] == 0):
        raise ImageConversionError(f"image array has zero width, height or channels: shape {array_.shape}")
    return array_


def _array_info(array_: np.ndarray, encoding: str) -> EncodingInfo:
    """The encoding of `array_`, checked against its dtype and shape ("passthrough": from the array)."""
    channels = 1 if array_.ndim == 2 else array_.shape[2]
    dtype = array_.dtype.newbyteorder("=")
    if encoding == PASSTHROUGH:
        return encoding_info(_generic_name(dtype, channels))
    info = encoding_info(encoding)
    if dtype != info.dtype or channels != info.channels:
        raise ImageConversionError(
            f"encoding {encoding!r} needs {info.dtype} with {info.channels} channel(s), got {array_.dtype} "
            f"with shape {array_.shape}"
        )
    if info.family in ("UYVY", "YUYV") and array_.shape[1] % 2:
        raise ImageConversionError(f"{encoding} needs an even width, got {array_.shape[1]}")
    return info


def _sensor_msgs_class(name: str) -> type:
    try:
        import sensor_msgs.msg as sensor_msgs_msg  # lazily: this module must import without ROS
    except ImportError as exc:
        raise ImageConversionError(
            f"sensor_msgs is not importable; pass msg_cls (e.g. a rosbags {name} type): {exc}"
        ) from exc
    return getattr(sensor_msgs_msg, name)


def _default_header(msg_cls: type) -> Any:
    """A zero header for dataclass messages (rosbags), which have no field defaults."""
    module = sys.modules.get(msg_cls.__module__)
    try:
        header_cls = getattr(module, msg_cls.__dataclass_fields__["header"].type)
        time_cls = getattr(module, header_cls.__dataclass_fields__["stamp"].type)
        return header_cls(stamp=time_cls(sec=0, nanosec=0), frame_id="")
    except (AttributeError, KeyError, TypeError) as exc:
        raise ImageConversionError(f"cannot make a default header for {msg_cls.__name__}; pass header=") from exc


def _build_message(msg_cls: type, header: Any, contiguous: np.ndarray, **fields: Any) -> Any:
    """Fill a message of either flavour; `contiguous` is a C-contiguous array whose bytes become `data`."""
    if dataclasses.is_dataclass(msg_cls):  # rosbags: all fields in the constructor, data is a uint8 ndarray
        data = np.array(contiguous, copy=True).reshape(-1).view(np.uint8)
        if header is None:
            header = _default_header(msg_cls)
        return msg_cls(header=header, data=data, **fields)
    msg = msg_cls()  # rclpy: assign fields; an array.array('B') skips the setter's per-byte checks
    if header is not None:
        msg.header = header
    for key, value in fields.items():
        setattr(msg, key, value)
    data = array.array("B")
    data.frombytes(memoryview(contiguous).cast("B"))
    msg.data = data
    return msg


def numpy_to_image(
    array_: np.ndarray,
    encoding: str = PASSTHROUGH,
    header: Any = None,
    msg_cls: type | None = None,
    *,
    config: ImageConversionConfig = DEFAULT_CONFIG,
) -> Any:
    """An Image message holding a copy of `array_` (cv_bridge's `cv2_to_imgmsg`).

    encoding must match the array's dtype and channel count ("passthrough": the generic type, e.g. 16UC1).
    The message has no row padding (step = width*channels*itemsize) and the host's byte order.
    msg_cls: the message class to build (e.g. a rosbags type); default sensor_msgs.msg.Image.
    """
    array_ = _check_array(array_)
    info = _array_info(array_, encoding)
    contiguous = np.ascontiguousarray(array_, dtype=info.dtype)  # host order, no padding
    height, width = contiguous.shape[:2]
    if msg_cls is None:
        bridge = _bridge(config)
        if bridge is not None:
            try:
                return bridge.cv2_to_imgmsg(contiguous, info.name, header)
            except Exception as exc:
                raise ImageConversionError(f"cv_bridge: {exc}") from exc
        msg_cls = _sensor_msgs_class("Image")
    return _build_message(
        msg_cls, header, contiguous,
        height=height, width=width, encoding=info.name, is_bigendian=int(_host_is_big()),
        step=width * info.pixel_bytes,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ compressed API
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_CODEC_NAMES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}


def _parse_format(fmt: str) -> tuple[str | None, str | None]:
    """(codec, decoded-pixel encoding) from a CompressedImage format.

    Accepts what drivers write: "jpeg", "jpg", "png", "" (sniffed from the data), and
    compressed_image_transport's "<orig>; jpeg compressed <target>" / "<orig>; png compressed <target>".
    """
    if not isinstance(fmt, str):
        raise ImageConversionError(f"CompressedImage.format must be a string, got {type(fmt).__name__}")
    parts = [p.strip() for p in fmt.split(";")]
    spec = parts[-1] if len(parts) > 1 else parts[0]
    words = spec.lower().split()
    if not words:
        return None, None
    if "compresseddepth" in words:
        raise ImageConversionError(f"compressed format {fmt!r} (compressedDepth) is not supported")
    codec = _CODEC_NAMES.get(words[0])
    if codec is None:
        raise ImageConversionError(f"unknown compressed format {fmt!r} (expected jpeg or png)")
    target = spec.split()[2] if len(words) >= 3 and words[1] == "compressed" else None
    return codec, target


def _sniff(buf: np.ndarray) -> str | None:
    head = buf[:8].tobytes()
    if head.startswith(_JPEG_SOI):
        return "jpeg"
    if head == _PNG_SIGNATURE:
        return "png"
    return None


def _check_complete(buf: np.ndarray, codec: str, config: ImageConversionConfig) -> None:
    """Reject truncated data: some OpenCV builds decode a cut JPEG partially (grey rows), with only a warning."""
    marker = _JPEG_EOI if codec == "jpeg" else _PNG_IEND
    tail = buf[-(len(marker) + config.max_trailing_padding) :]
    nonzero = np.flatnonzero(tail)
    end = int(nonzero[-1]) + 1 if nonzero.size else 0
    if end < len(marker) or tail[end - len(marker) : end].tobytes() != marker:
        what = "EOI marker 0xFFD9" if codec == "jpeg" else "IEND chunk"
        raise ImageConversionError(f"{codec.upper()} data is truncated or corrupt: it does not end with the {what}")


def _decoded_encoding(img: np.ndarray, target: str | None) -> str:
    channels = 1 if img.ndim == 2 else img.shape[2]
    bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(img.dtype)
    base = {1: "mono", 3: "bgr", 4: "bgra"}.get(channels)
    if bits is None or base is None:
        raise ImageConversionError(f"decoded image has unsupported type {img.dtype} x {channels} channels")
    name = f"{base}{bits}"
    # A producer that encoded RGB-ordered pixels says so in the target ("... compressed rgb8").
    if target and target.startswith(("rgb", "rgba")) and target in _NAMED:
        swapped = _NAMED[target]
        if swapped.channels == channels and swapped.bit_depth == bits:
            name = target
    return name


def decode_compressed(msg: Any, *, config: ImageConversionConfig = DEFAULT_CONFIG) -> tuple[np.ndarray, str]:
    """Decode a CompressedImage to (array, encoding of the array), e.g. (HxWx3 uint8, "bgr8")."""
    try:
        fmt, data = msg.format, msg.data
    except AttributeError as exc:
        raise ImageConversionError(f"not a CompressedImage message: {exc}") from exc
    codec, target = _parse_format(fmt)
    buf = _as_uint8(data)
    if buf.size == 0:
        raise ImageConversionError("CompressedImage has no data")
    sniffed = _sniff(buf)
    if codec is None:
        if sniffed is None:
            raise ImageConversionError("unknown compressed format: format is empty and data is neither JPEG nor PNG")
        codec = sniffed
    elif sniffed != codec:
        raise ImageConversionError(
            f"format {fmt!r} says {codec} but the data does not start with a {codec.upper()} signature: corrupt"
        )
    _check_complete(buf, codec, config)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageConversionError(f"{codec.upper()} data is corrupt: it could not be decoded")
    return img, _decoded_encoding(img, target)


def compressed_to_numpy(
    msg: Any, desired_encoding: str = PASSTHROUGH, *, config: ImageConversionConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Pixels of a CompressedImage (cv_bridge's `compressed_imgmsg_to_cv2`).

    "passthrough" returns what the decoder gives (BGR order for colour, HxW for grey, uint16 for 16-bit
    PNG), as cv_bridge does; another encoding converts from that by cv_bridge's rules.
    """
    img, enc = decode_compressed(msg, config=config)
    if desired_encoding in (PASSTHROUGH, "", enc):
        return img
    return np.ascontiguousarray(_convert(img, _NAMED[enc], encoding_info(desired_encoding)))


def _compressible(array_: np.ndarray, encoding: str | None) -> EncodingInfo:
    if encoding is None:
        channels = 1 if array_.ndim == 2 else array_.shape[2]
        bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(array_.dtype.newbyteorder("="))
        base = {1: "mono", 3: "bgr", 4: "bgra"}.get(channels)
        if bits is None or base is None:
            raise ImageConversionError(
                f"cannot compress {array_.dtype} with shape {array_.shape}: need uint8/uint16 with 1, 3 or 4 channels"
            )
        encoding = f"{base}{bits}"
    info = _array_info(array_, encoding)
    if info.dtype not in (_U8, _U16) or info.channels not in (1, 3, 4) or info.family not in (
        None, "GRAY", "RGB", "BGR", "RGBA", "BGRA",
    ):  # fmt: skip
        raise ImageConversionError(f"encoding {encoding!r} cannot be compressed (need mono/colour, 8 or 16 bits)")
    return info


def numpy_to_compressed(
    array_: np.ndarray,
    fmt: str = "jpeg",
    header: Any = None,
    msg_cls: type | None = None,
    *,
    encoding: str | None = None,
    quality: int | None = None,
    config: ImageConversionConfig = DEFAULT_CONFIG,
) -> Any:
    """A CompressedImage of `array_` in the layout of ROS 2's compressed_image_transport.

    fmt: "jpeg" (or "jpg") or "png". encoding: what the array holds; by default inferred as mono/bgr/bgra
    8 or 16 bits from dtype and channels. The pixels are stored as BGR (or grey; PNG keeps alpha and 16 bits,
    JPEG drops alpha and scales 16 bits to 8), and `format` reads "<encoding>; <codec> compressed <stored>".
    quality: JPEG quality 0..100 or PNG level 0..9 (default from config).
    """
    codec = _CODEC_NAMES.get(str(fmt).lower())
    if codec is None:
        raise ImageConversionError(f"unknown compressed format {fmt!r} (expected jpeg or png)")
    array_ = _check_array(array_)
    info = _compressible(array_, encoding)
    pixels = _native(array_)
    channels = info.channels
    gray = channels == 1
    keep_alpha = codec == "png" and channels == 4
    bits = 16 if codec == "png" and info.bit_depth == 16 else 8
    stored = _NAMED[("mono" if gray else "bgra" if keep_alpha else "bgr") + str(bits)]
    source = info if info.is_color else _NAMED[{1: "mono", 3: "bgr", 4: "bgra"}[channels] + str(info.bit_depth)]
    pixels = _convert(pixels, source, stored)
    if quality is not None:  # replace() re-runs the config's range checks
        config = dataclasses.replace(config, **{"jpeg_quality" if codec == "jpeg" else "png_level": int(quality)})
    if codec == "jpeg":
        params, ext = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality], ".jpg"
    else:
        params, ext = [cv2.IMWRITE_PNG_COMPRESSION, config.png_level], ".png"
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(pixels), params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {pixels.dtype} {pixels.shape} image as {codec}")
    if msg_cls is None:
        msg_cls = _sensor_msgs_class("CompressedImage")
    return _build_message(msg_cls, header, encoded, format=f"{info.name}; {codec} compressed {stored.name}")


# ------------------------------------------------------------------------------------------------- to_bgr8
_TO_BGR = {
    "GRAY": cv2.COLOR_GRAY2BGR, "RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGR, "BGRA": cv2.COLOR_BGRA2BGR,
    "UYVY": cv2.COLOR_YUV2BGR_UYVY, "YUYV": cv2.COLOR_YUV2BGR_YUY2,
    **{fam: getattr(cv2, f"COLOR_Bayer{fam.split('_')[1]}2BGR") for fam in _BAYER.values()},
}  # fmt: skip


def _array_to_bgr8(arr: np.ndarray, info: EncodingInfo, config: ImageConversionConfig) -> np.ndarray:
    family = info.family
    if family is None:
        if info.dtype.kind == "i":
            raise ImageConversionError(f"to_bgr8: signed encoding {info.name!r} has no sensible picture")
        family = {1: "GRAY", 3: "BGR", 4: "BGRA"}.get(info.channels)
        if family is None:
            raise ImageConversionError(f"to_bgr8: {info.channels}-channel encoding {info.name!r} is not a picture")
    if arr.dtype.kind == "f":
        span = config.float_max - config.float_min
        work = np.nan_to_num(arr.astype(np.float32), nan=config.float_min, posinf=config.float_max,
                             neginf=config.float_min)  # fmt: skip
        np.clip(work, config.float_min, config.float_max, out=work)
        arr = cv2.convertScaleAbs(work, alpha=255.0 / span, beta=-config.float_min * 255.0 / span)
    elif arr.dtype == _U16:
        arr = cv2.convertScaleAbs(arr, alpha=255.0 / 65535.0)  # rounds; non-negative input, so abs is a no-op
    if family == "BGR":
        return np.array(arr, order="C", copy=True)
    return cv2.cvtColor(arr, _TO_BGR[family])


def to_bgr8(msg: Any, *, config: ImageConversionConfig = DEFAULT_CONFIG) -> np.ndarray:
    """An HxWx3 uint8 BGR picture (C-contiguous, owning its memory) from an Image or CompressedImage.

    See the module docstring for the rules (16-bit: v*255/65535; float: config.float_min..float_max).
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        img, enc = decode_compressed(msg, config=config)
        if enc == "bgr8":  # the decoder's own array: nothing else holds it
            return np.ascontiguousarray(img)
        return np.ascontiguousarray(_array_to_bgr8(img, _NAMED[enc], config))
    arr, info, buf = _image_view(msg)
    return _owned(_array_to_bgr8(_native(arr), info, config), buf)
