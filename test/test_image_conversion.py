"""Tests of strongpose_ros.ros.image_conversion with real sensor_msgs messages and rosbags dataclasses."""

from __future__ import annotations

import array
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from strongpose_ros.ros import image_conversion as ic
from strongpose_ros.ros.image_conversion import (
    ImageConversionConfig,
    ImageConversionError,
    compressed_to_numpy,
    decode_compressed,
    encoding_info,
    image_to_numpy,
    numpy_to_compressed,
    numpy_to_image,
    to_bgr8,
)

REPO = Path(__file__).resolve().parents[1]


def _latest_ros2_store() -> Stores:
    if hasattr(Stores, "ROS2_KILTED"):  # the distribution of the ROS wheels in the venv
        return Stores.ROS2_KILTED
    return [s for s in Stores if s.name.startswith("ROS2_")][-1]


TYPESTORE = get_typestore(_latest_ros2_store())
RbImage = TYPESTORE.types["sensor_msgs/msg/Image"]
RbCompressed = TYPESTORE.types["sensor_msgs/msg/CompressedImage"]
RbHeader = TYPESTORE.types["std_msgs/msg/Header"]
RbTime = TYPESTORE.types["builtin_interfaces/msg/Time"]

FLAVOURS = ("rclpy", "rosbags")
IMAGE_CLS = {"rclpy": Image, "rosbags": RbImage}
COMPRESSED_CLS = {"rclpy": CompressedImage, "rosbags": RbCompressed}
HOST_BIG = sys.byteorder == "big"
NO_BRIDGE = ImageConversionConfig(use_cv_bridge=False)

NAMED = [
    "mono8", "mono16", "rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16",
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
    "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16",
    "yuv422", "uyvy", "yuyv", "yuv422_yuy2",
]  # fmt: skip
GENERIC = [f"{d}C{c}" for d in ("8U", "8S", "16U", "16S", "32S", "32F", "64F") for c in (1, 2, 3, 4)]
ALL_ENCODINGS = NAMED + GENERIC


def _no_picture(encoding: str) -> bool:
    """Generic types to_bgr8 rejects: signed integers and 2-channel data."""
    info = encoding_info(encoding)
    return info.family is None and (info.dtype.kind == "i" or info.channels == 2)


def random_pixels(encoding: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    info = encoding_info(encoding)
    shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    if info.dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(info.dtype)
    limits = np.iinfo(info.dtype)
    return rng.integers(limits.min, limits.max, size=shape, endpoint=True, dtype=info.dtype)


def pack_rows(pixels: np.ndarray, step: int, big: bool) -> bytes:
    """Raw message bytes: rows in the given byte order, each padded with 0xAB filler up to `step`."""
    height = pixels.shape[0]
    ordered = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<"))
    rows = np.ascontiguousarray(ordered).reshape(height, -1).view(np.uint8)
    out = np.full((height, step), 0xAB, np.uint8)
    out[:, : rows.shape[1]] = rows
    return out.tobytes()


def make_image(flavour: str, payload: bytes, height: int, width: int, encoding: str, step: int, big: bool = HOST_BIG):
    """A message built by hand (not by the code under test)."""
    if flavour == "rclpy":
        msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big), step=step)
        msg.data = array.array("B", payload)
        return msg
    header = RbHeader(stamp=RbTime(sec=0, nanosec=0), frame_id="")
    return RbImage(
        header=header, height=height, width=width, encoding=encoding, is_bigendian=int(big), step=step,
        data=np.frombuffer(payload, np.uint8).copy(),
    )  # fmt: skip


def make_compressed(flavour: str, fmt: str, payload: bytes):
    if flavour == "rclpy":
        msg = CompressedImage(format=fmt)
        msg.data = array.array("B", payload)
        return msg
    return RbCompressed(header=RbHeader(stamp=RbTime(sec=0, nanosec=0), frame_id=""), format=fmt,
                        data=np.frombuffer(payload, np.uint8).copy())  # fmt: skip


def message_buffer(msg) -> np.ndarray:
    return msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, np.uint8)


def smooth_bgr(height: int, width: int) -> np.ndarray:
    """A smooth colour picture (JPEG-friendly)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width * 200 + 20, y / height * 200 + 20, (x + y) / (width + height) * 150 + 50], axis=-1)
    return img.astype(np.uint8)


@pytest.fixture(autouse=True)
def _forget_bridge_detection():
    ic._real_cv_bridge.cache_clear()
    yield
    ic._real_cv_bridge.cache_clear()


# ------------------------------------------------------------------------------------------ encoding table
def test_encoding_info_table():
    assert encoding_info("mono16").dtype == np.uint16 and encoding_info("mono16").channels == 1
    assert encoding_info("8UC").channels == 1  # cv_bridge's regex: no count means one channel
    assert encoding_info("32FC4").dtype == np.float32 and encoding_info("32FC4").channels == 4
    assert encoding_info("yuv422").family == "UYVY" == encoding_info("uyvy").family
    assert encoding_info("yuv422_yuy2").family == "YUYV" == encoding_info("yuyv").family
    assert encoding_info("bayer_gbrg16").dtype == np.uint16
    for bad in ("32UC1", "8FC1", "rgb9", "", "8UC0", "MONO8"):
        with pytest.raises(ImageConversionError, match="unknown image encoding"):
            encoding_info(bad)
    with pytest.raises(ImageConversionError, match="not supported"):
        encoding_info("nv21")


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_round_trip_every_encoding(encoding, flavour):
    rng = np.random.default_rng(abs(hash(encoding)) % 2**32)
    pixels = random_pixels(encoding, 5, 6, rng)
    info = encoding_info(encoding)
    msg = numpy_to_image(pixels, encoding, msg_cls=IMAGE_CLS[flavour])
    assert isinstance(msg, IMAGE_CLS[flavour])
    assert (msg.height, msg.width, msg.encoding) == (5, 6, encoding)
    assert msg.step == 6 * info.channels * info.dtype.itemsize
    assert bool(msg.is_bigendian) == HOST_BIG
    assert len(msg.data) == msg.step * msg.height
    back = image_to_numpy(msg)
    assert back.dtype == info.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)
    # passthrough encoding names the generic type
    generic = numpy_to_image(pixels, msg_cls=IMAGE_CLS[flavour])
    assert encoding_info(generic.encoding).family is None
    np.testing.assert_array_equal(image_to_numpy(generic), pixels)


def test_numpy_to_image_default_class_and_headers():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = numpy_to_image(pixels, "mono8", header=Header(frame_id="cam"))
    assert isinstance(msg, Image) and msg.header.frame_id == "cam"
    rb_header = RbHeader(stamp=RbTime(sec=3, nanosec=4), frame_id="cam")
    rb = numpy_to_image(pixels, "mono8", header=rb_header, msg_cls=RbImage)
    assert rb.header.stamp.sec == 3 and rb.data.dtype == np.uint8
    rb_default = numpy_to_image(pixels, "mono8", msg_cls=RbImage)
    assert rb_default.header.frame_id == "" and rb_default.header.stamp.nanosec == 0
    # the message holds a copy: editing the array afterwards does not change it
    pixels[0, 0] = 99
    assert msg.data[0] == 0 and rb.data[0] == 0


def test_big_endian_array_input_is_stored_in_host_order():
    pixels = np.array([[1, 258]], dtype=">u2")
    msg = numpy_to_image(pixels, "mono16")
    assert bool(msg.is_bigendian) == HOST_BIG
    np.testing.assert_array_equal(image_to_numpy(msg), [[1, 258]])


MULTIBYTE = ["mono16", "16UC1", "16SC3", "rgb16", "bgra16", "bayer_rggb16", "32FC1", "32FC3", "32SC2", "64FC1"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    encoding=st.sampled_from(MULTIBYTE),
    height=st.integers(1, 7),
    width=st.integers(1, 9),
    padding=st.integers(0, 9),
    big=st.booleans(),
    flavour=st.sampled_from(FLAVOURS),
    seed=st.integers(0, 2**32 - 1),
)
def test_padded_steps_and_byte_orders(encoding, height, width, padding, big, flavour, seed):
    pixels = random_pixels(encoding, height, width, np.random.default_rng(seed))
    info = encoding_info(encoding)
    step = width * info.pixel_bytes + padding  # padding need not be a multiple of the element size
    msg = make_image(flavour, pack_rows(pixels, step, big), height, width, encoding, step, big)
    back = image_to_numpy(msg)
    assert back.dtype == info.dtype and back.dtype.isnative and back.flags.c_contiguous
    np.testing.assert_array_equal(back, pixels)
    assert not np.shares_memory(back, message_buffer(msg))
    if not _no_picture(encoding):
        bgr = to_bgr8(msg)
        assert bgr.shape == (height, width, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous


EIGHT_BIT_REFERENCE = {
    "rgb8": lambda a: a[..., ::-1],
    "bgr8": lambda a: a,
    "8UC3": lambda a: a,
    "rgba8": lambda a: a[..., 2::-1],
    "bgra8": lambda a: a[..., :3],
    "8UC4": lambda a: a[..., :3],
    "mono8": lambda a: np.repeat(a[..., None], 3, axis=2),
    "8UC1": lambda a: np.repeat(a[..., None], 3, axis=2),
}


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(sorted(EIGHT_BIT_REFERENCE)),
    height=st.integers(1, 6),
    width=st.integers(1, 11),
    padding=st.integers(0, 7),
    flavour=st.sampled_from(FLAVOURS),
    seed=st.integers(0, 2**32 - 1),
)
def test_to_bgr8_of_8bit_encodings_matches_channel_reference(encoding, height, width, padding, flavour, seed):
    pixels = random_pixels(encoding, height, width, np.random.default_rng(seed))
    step = width * encoding_info(encoding).pixel_bytes + padding
    msg = make_image(flavour, pack_rows(pixels, step, big=False), height, width, encoding, step, big=False)
    np.testing.assert_array_equal(to_bgr8(msg), EIGHT_BIT_REFERENCE[encoding](pixels))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_known_big_and_little_endian_values(flavour):
    msg = make_image(flavour, b"\x01\x02", 1, 1, "16UC1", 2, big=True)
    assert image_to_numpy(msg)[0, 0] == 0x0102
    msg = make_image(flavour, b"\x01\x02", 1, 1, "16UC1", 2, big=False)
    assert image_to_numpy(msg)[0, 0] == 0x0201
    msg = make_image(flavour, b"\x3f\x80\x00\x00", 1, 1, "32FC1", 4, big=True)
    assert image_to_numpy(msg)[0, 0] == np.float32(1.0)
    msg = make_image(flavour, b"\xff\x00", 1, 2, "mono8", 2, big=True)  # 8-bit ignores is_bigendian
    np.testing.assert_array_equal(image_to_numpy(msg), [[255, 0]])


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_messages_read_in_metres(flavour, big, encoding):
    """What the pose node does with a depth frame: image_to_numpy, then strongpose_ros.depth's units."""
    from strongpose_ros.depth import DepthImage

    metres = np.array([[1.5, np.nan, 0.25], [4.0, 2.0, np.nan]])
    pixels = (np.where(np.isnan(metres), 0, np.round(metres * 1000)).astype(np.uint16) if encoding == "16UC1"
              else metres.astype(np.float32))  # fmt: skip
    step = 3 * pixels.itemsize + 6  # padded rows, as some drivers send them
    msg = make_image(flavour, pack_rows(pixels, step, big), 2, 3, encoding, step, big)
    depth = DepthImage.from_array(image_to_numpy(msg), msg.encoding)
    np.testing.assert_allclose(depth.metres(), metres, rtol=1e-6)  # NaN where there is no data


def test_duck_typed_messages_with_bytes_and_lists():
    msg = SimpleNamespace(height=1, width=2, encoding="rgb8", is_bigendian=0, step=6, data=bytes([255, 0, 0] * 2))
    np.testing.assert_array_equal(to_bgr8(msg), [[[0, 0, 255]] * 2])
    msg.data = [255, 0, 0, 255, 0, 0]
    np.testing.assert_array_equal(image_to_numpy(msg, "bgr8"), [[[0, 0, 255]] * 2])
    msg.data = bytearray(6)
    assert image_to_numpy(msg).shape == (1, 2, 3)


# ------------------------------------------------------------------------------------------- memory rules
def test_result_does_not_alias_the_message():
    pixels = np.arange(24, dtype=np.uint8).reshape(4, 6)
    msg = numpy_to_image(pixels, "mono8")
    out = image_to_numpy(msg)
    assert out.flags.writeable and out.flags.owndata
    out[0, 0] = 200
    assert msg.data[0] == 0
    msg.data[1] = 201
    assert out[0, 1] == 1
    view = image_to_numpy(msg, copy=False)  # zero-copy on request: read-only, valid while data is unchanged
    assert not view.flags.writeable and np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    with pytest.raises(ValueError):
        view[0, 0] = 1
    padded = make_image("rclpy", pack_rows(pixels, 8, False), 4, 6, "mono8", 8)
    copied = image_to_numpy(padded, copy=False)  # padding forces a copy
    assert not np.shares_memory(copied, np.frombuffer(padded.data, np.uint8))
    same_layout = image_to_numpy(numpy_to_image(np.zeros((2, 2, 3), np.uint8), "bgr8"), "8UC3")
    assert same_layout.flags.owndata  # a no-op conversion still returns a copy
    rb = numpy_to_image(pixels, "mono8", msg_cls=RbImage)
    assert not np.shares_memory(to_bgr8(rb), rb.data) and not np.shares_memory(image_to_numpy(rb), rb.data)


# --------------------------------------------------------------------------------------- known colour values
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pure_red_rgb8_is_bgr_0_0_255(flavour):
    red = np.zeros((3, 5, 3), np.uint8)
    red[..., 0] = 255
    msg = numpy_to_image(red, "rgb8", msg_cls=IMAGE_CLS[flavour])
    assert (to_bgr8(msg) == (0, 0, 255)).all()
    assert (image_to_numpy(msg, "bgr8") == (0, 0, 255)).all()
    assert (image_to_numpy(msg, "bgra8") == (0, 0, 255, 255)).all()
    rgba = numpy_to_image(np.dstack([red, np.full((3, 5), 7, np.uint8)]), "rgba8", msg_cls=IMAGE_CLS[flavour])
    assert (to_bgr8(rgba) == (0, 0, 255)).all()


def _bt601_limited(y: float, u: float, v: float) -> np.ndarray:
    """BGR of one YUV sample by the BT.601 limited-range formula."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    rgb = [c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d]
    return np.clip(np.rint(rgb[::-1]), 0, 255)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("encoding", ["yuyv", "yuv422_yuy2", "uyvy", "yuv422"])
def test_known_yuv422_pixel_pair(encoding, flavour):
    y0, u, y1, v = 81, 90, 145, 200
    yuyv_order = encoding in ("yuyv", "yuv422_yuy2")  # "yuv422" is UYVY order, as in image_encodings.hpp
    pair = [y0, u, y1, v] if yuyv_order else [u, y0, v, y1]
    msg = make_image(flavour, bytes(pair * 3), 1, 6, encoding, 12)
    bgr = to_bgr8(msg)
    assert bgr.shape == (1, 6, 3)
    for col, y in ((0, y0), (1, y1), (4, y0), (5, y1)):
        np.testing.assert_allclose(bgr[0, col], _bt601_limited(y, u, v), atol=2)
    np.testing.assert_array_equal(image_to_numpy(msg, "mono8"), [[y0, y1] * 3])
    np.testing.assert_array_equal(image_to_numpy(msg, "bgr8"), bgr)
    assert image_to_numpy(msg).shape == (1, 6, 2)


def _mosaic(pattern: str, bgr: tuple[int, int, int], height: int, width: int, dtype) -> np.ndarray:
    value = dict(zip("bgr", bgr, strict=True))
    out = np.zeros((height, width), dtype)
    for index, channel in enumerate(pattern):
        out[index // 2 :: 2, index % 2 :: 2] = value[channel]
    return out


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_flat_colour_demosaics_to_that_colour(pattern, bits, flavour):
    colour = (30, 140, 220)  # B, G, R: all different, so a wrong pattern shows
    scale = 257 if bits == 16 else 1
    dtype = np.uint16 if bits == 16 else np.uint8
    mosaic = _mosaic(pattern, tuple(c * scale for c in colour), 10, 12, dtype)
    msg = numpy_to_image(mosaic, f"bayer_{pattern}{bits}", msg_cls=IMAGE_CLS[flavour])
    interior = to_bgr8(msg)[2:-2, 2:-2]
    assert (np.abs(interior.astype(int) - colour) <= 1).all()
    full = image_to_numpy(msg, f"bgr{bits}")[2:-2, 2:-2]
    assert (np.abs(full.astype(int) - np.array(colour) * scale) <= scale).all()
    rgb = image_to_numpy(msg, "rgb8")[2:-2, 2:-2]
    assert (np.abs(rgb.astype(int) - colour[::-1]) <= 1).all()


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16bit_scales_linearly_over_full_range(encoding):
    values = np.array([[0, 257, 65535, 128, 32767, 300 * 257 // 2]], np.uint16)
    expected = [0, 1, 255, 0, 127, 150]
    bgr = to_bgr8(numpy_to_image(values, encoding))
    np.testing.assert_array_equal(bgr[..., 0], [expected])
    assert (bgr[..., 0] == bgr[..., 2]).all()
    if encoding == "mono16":  # cv_bridge's 16 -> 8 bit rule gives the same
        np.testing.assert_array_equal(image_to_numpy(numpy_to_image(values, encoding), "mono8"), [expected])


@pytest.mark.parametrize("encoding", ["32FC1", "64FC1"])
def test_float_assumed_zero_to_one_and_clipped(encoding):
    values = np.array([[0.0, 0.5, 1.0, -1.0, 2.0, np.nan, np.inf, 0.25]], encoding_info(encoding).dtype)
    bgr = to_bgr8(numpy_to_image(values, encoding))
    np.testing.assert_array_equal(bgr[..., 1], [[0, 128, 255, 0, 255, 0, 255, 64]])
    wide = to_bgr8(numpy_to_image(values, encoding), config=ImageConversionConfig(float_min=-1.0, float_max=1.0))
    assert wide[0, 0, 0] == 128 and wide[0, 3, 0] == 0


# ---------------------------------------------------------------------------------------- cv_bridge rules
def test_desired_encoding_conversions_follow_cv_bridge():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = numpy_to_image(bgr, "bgr8")
    np.testing.assert_array_equal(image_to_numpy(msg, "rgb8"), bgr[..., ::-1])
    np.testing.assert_array_equal(image_to_numpy(msg, "8UC3"), bgr)  # colour -> generic, same channels
    np.testing.assert_array_equal(image_to_numpy(msg, "bgr16"), bgr.astype(np.uint16) * 257)
    np.testing.assert_array_equal(image_to_numpy(msg, "mono8"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    gray = bgr[..., 0].copy()
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(gray, "mono8"), "bgr8"), np.dstack([gray] * 3))
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(gray, "mono8"), "mono16"), gray * np.uint16(257))
    rgb16 = rng.integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    expected = np.rint(cv2.cvtColor(rgb16, cv2.COLOR_RGB2GRAY) * (255 / 65535)).astype(np.uint8)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(rgb16, "rgb16"), "mono8"), expected)
    depth = np.array([[0, 1, 65535]], np.uint16)
    as_float = image_to_numpy(numpy_to_image(depth, "16UC1"), "32FC1")  # generic -> generic: plain cast
    assert as_float.dtype == np.float32 and as_float.tolist() == [[0.0, 1.0, 65535.0]]
    floats = np.array([[-5, 1.4, 1.6, 70000, np.nan]], np.float32)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(floats, "32FC1"), "16UC1"), [[0, 1, 2, 65535, 0]])


@pytest.mark.parametrize(
    ("source", "desired", "message"),
    [
        ("8UC3", "bgr8", "not a color format"),
        ("16UC1", "mono16", "not a color format"),
        ("mono8", "8UC3", "same number of channels"),
        ("32FC1", "32FC3", "same number of channels"),
        ("bgr8", "yuyv", "unsupported conversion"),
        ("bayer_rggb8", "rgba8", "unsupported conversion"),
        ("bgr8", "rgb9", "unknown image encoding"),
    ],
)
def test_impossible_conversions_are_refused(source, desired, message):
    pixels = random_pixels(source, 2, 4, np.random.default_rng(1))
    with pytest.raises(ImageConversionError, match=message):
        image_to_numpy(numpy_to_image(pixels, source), desired)


# ---------------------------------------------------------------------------------------------- bad input
def _good(flavour):
    return dict(flavour=flavour, payload=bytes(4 * 6 * 3), height=4, width=6, encoding="rgb8", step=18)


BAD_IMAGES = {
    "unknown encoding": (dict(encoding="rgb9"), "unknown image encoding 'rgb9'"),
    "planar yuv": (dict(encoding="nv12"), "not supported"),
    "data shorter than step*height": (dict(payload=bytes(4 * 18 - 1)), "truncated"),
    "data longer than step*height": (dict(payload=bytes(4 * 18 + 5)), "does not match"),
    "step larger than the data": (dict(step=20), "truncated"),
    "step smaller than a row": (dict(step=17, payload=bytes(17 * 4)), "smaller than a row"),
    "zero width": (dict(width=0, step=0, payload=b""), "zero width or height"),
    "zero height": (dict(height=0, payload=b""), "zero width or height"),
    "odd width yuyv": (dict(encoding="yuyv", width=5, step=10, payload=bytes(40)), "even width"),
    "odd width yuv422": (dict(encoding="yuv422", width=3, step=6, payload=bytes(24)), "even width"),
    "16-bit step too small": (dict(encoding="mono16", step=11, payload=bytes(44)), "smaller than a row"),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_messages_raise_one_clear_error(case, flavour):
    change, message = BAD_IMAGES[case]
    msg = make_image(**{**_good(flavour), **change})
    for convert in (image_to_numpy, to_bgr8, lambda m: image_to_numpy(m, "bgr8")):
        with pytest.raises(ImageConversionError, match=message) as caught:
            convert(msg)
        assert isinstance(caught.value, ValueError)


def test_bad_data_fields_and_objects():
    msg = SimpleNamespace(height=1, width=1, encoding="mono8", is_bigendian=0, step=1, data="x")
    with pytest.raises(ImageConversionError, match="must be bytes"):
        image_to_numpy(msg)
    msg.data = [300]
    with pytest.raises(ImageConversionError, match="not a sequence of bytes"):
        image_to_numpy(msg)
    msg.data = np.zeros(1, np.uint16)
    with pytest.raises(ImageConversionError, match="must hold bytes"):
        image_to_numpy(msg)
    with pytest.raises(ImageConversionError, match="not an Image message"):
        image_to_numpy(object())
    with pytest.raises(ImageConversionError, match="not a CompressedImage"):
        compressed_to_numpy(object())


@pytest.mark.parametrize(
    ("array_", "encoding", "message"),
    [
        (np.zeros((2, 2), np.uint16), "mono8", "needs uint8 with 1 channel"),
        (np.zeros((2, 2, 3), np.uint8), "rgba8", "needs uint8 with 4 channel"),
        (np.zeros((2, 3, 2), np.uint8), "yuyv", "even width"),
        (np.zeros(4, np.uint8), "mono8", "HxW or HxWxC"),
        (np.zeros((0, 3), np.uint8), "mono8", "zero width"),
        (np.zeros((2, 2), np.float16), "passthrough", "has no image encoding"),
        (np.zeros((2, 2), np.uint8), "nv21", "not supported"),
        ([[1, 2]], "mono8", "expected a numpy array"),
    ],
)
def test_numpy_to_image_rejects_mismatched_arrays(array_, encoding, message):
    with pytest.raises(ImageConversionError, match=message):
        numpy_to_image(array_, encoding)


# ------------------------------------------------------------------------------------------- compressed
PNG_CASES = {
    "mono8": (np.uint8, None, "mono8; png compressed mono8"),
    "bgr8": (np.uint8, 3, "bgr8; png compressed bgr8"),
    "bgra8": (np.uint8, 4, "bgra8; png compressed bgra8"),
    "rgb8": (np.uint8, 3, "rgb8; png compressed bgr8"),
    "mono16": (np.uint16, None, "mono16; png compressed mono16"),
    "16UC1": (np.uint16, None, "16UC1; png compressed mono16"),
    "bgr16": (np.uint16, 3, "bgr16; png compressed bgr16"),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("encoding", sorted(PNG_CASES))
def test_png_round_trip_is_exact(encoding, flavour):
    dtype, channels, fmt = PNG_CASES[encoding]
    shape = (7, 9) if channels is None else (7, 9, channels)
    pixels = np.random.default_rng(2).integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)
    msg = numpy_to_compressed(pixels, "png", msg_cls=COMPRESSED_CLS[flavour], encoding=encoding)
    assert isinstance(msg, COMPRESSED_CLS[flavour]) and msg.format == fmt
    np.testing.assert_array_equal(compressed_to_numpy(msg, encoding), pixels)
    bgr = to_bgr8(msg)
    assert bgr.shape == (7, 9, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    if encoding == "rgb8":  # passthrough gives the decoder's BGR order, as cv_bridge does
        np.testing.assert_array_equal(compressed_to_numpy(msg), pixels[..., ::-1])
        np.testing.assert_array_equal(bgr, pixels[..., ::-1])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_jpeg_round_trip_within_tolerance(flavour):
    bgr = smooth_bgr(32, 48)
    msg = numpy_to_compressed(bgr, "jpeg", header=None, msg_cls=COMPRESSED_CLS[flavour])
    assert msg.format == "bgr8; jpeg compressed bgr8"
    decoded = compressed_to_numpy(msg)
    assert decoded.shape == bgr.shape and decoded.dtype == np.uint8
    diff = np.abs(decoded.astype(int) - bgr)
    assert diff.mean() < 2.0 and diff.max() < 20
    np.testing.assert_array_equal(to_bgr8(msg), decoded)
    rgb_msg = numpy_to_compressed(bgr[..., ::-1], "jpg", encoding="rgb8", msg_cls=COMPRESSED_CLS[flavour])
    assert rgb_msg.format == "rgb8; jpeg compressed bgr8"
    assert np.abs(compressed_to_numpy(rgb_msg, "rgb8").astype(int) - bgr[..., ::-1]).mean() < 2.0
    gray_msg = numpy_to_compressed(bgr[..., 1].copy(), "jpeg", msg_cls=COMPRESSED_CLS[flavour])
    assert gray_msg.format == "mono8; jpeg compressed mono8" and compressed_to_numpy(gray_msg).shape == (32, 48)
    rgba = np.dstack([bgr[..., ::-1], np.full((32, 48), 9, np.uint8)])
    rgba_msg = numpy_to_compressed(rgba, "jpeg", encoding="rgba8", msg_cls=COMPRESSED_CLS[flavour])
    assert compressed_to_numpy(rgba_msg).shape == (32, 48, 3)  # JPEG drops alpha
    sixteen = numpy_to_compressed(bgr.astype(np.uint16) * 257, "jpeg")  # 16 bits scale to 8 for JPEG
    assert np.abs(compressed_to_numpy(sixteen).astype(int) - bgr).mean() < 2.0


def _encoded(ext: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("fmt", "ext"),
    [
        ("jpeg", ".jpg"), ("jpg", ".jpg"), ("JPEG", ".jpg"), ("png", ".png"), ("", ".jpg"), ("", ".png"),
        ("bgr8; jpeg compressed bgr8", ".jpg"), ("rgb8; jpeg compressed bgr8", ".jpg"),
        ("bgr8; png compressed bgr8", ".png"), ("mono8; jpeg compressed ", ".jpg"),
    ],
)  # fmt: skip
def test_format_strings_as_drivers_write_them(fmt, ext, flavour):
    image = smooth_bgr(16, 24)
    payload = _encoded(ext, image)
    msg = make_compressed(flavour, fmt, payload)
    decoded, encoding = decode_compressed(msg)
    assert encoding == "bgr8" and decoded.shape == (16, 24, 3)
    np.testing.assert_array_equal(to_bgr8(msg), decoded)


def test_rgb_target_in_format_means_rgb_ordered_pixels():
    rgb = smooth_bgr(8, 8)
    msg = make_compressed("rclpy", "rgb8; png compressed rgb8", _encoded(".png", rgb))
    assert decode_compressed(msg)[1] == "rgb8"
    np.testing.assert_array_equal(to_bgr8(msg), rgb[..., ::-1])


def test_trailing_zero_padding_after_eoi_is_accepted():
    payload = _encoded(".jpg", smooth_bgr(8, 8)) + bytes(13)
    assert to_bgr8(make_compressed("rclpy", "jpeg", payload)).shape == (8, 8, 3)


JPEG = _encoded(".jpg", smooth_bgr(24, 32))
PNG = _encoded(".png", smooth_bgr(24, 32))
BAD_COMPRESSED = {
    "junk labelled jpeg": ("jpeg", b"this is not an image at all", "does not start with a JPEG signature"),
    "junk with jpeg markers": ("jpeg", b"\xff\xd8" + bytes(range(200)) + b"\xff\xd9", "could not be decoded"),
    "truncated jpeg": ("jpeg", JPEG[: len(JPEG) // 2], "truncated"),
    "jpeg missing eoi": ("jpeg", JPEG[:-2], "EOI"),
    "truncated png": ("png", PNG[: len(PNG) // 2], "truncated"),
    "png missing iend": ("png", PNG[:-12], "IEND"),
    "corrupt png body": ("png", PNG[:40] + bytes(len(PNG) - 52) + PNG[-12:], "could not be decoded"),
    "png data labelled jpeg": ("jpeg", PNG, "says jpeg"),
    "unknown format": ("tiff", PNG, "unknown compressed format 'tiff'"),
    "unknown driver format": ("bgr8; h264 compressed bgr8", JPEG, "unknown compressed format"),
    "compressed depth": ("16UC1; compressedDepth png", PNG, "compressedDepth"),
    "empty format and junk": ("", b"junkjunkjunk", "unknown compressed format"),
    "empty data": ("jpeg", b"", "no data"),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", sorted(BAD_COMPRESSED))
def test_bad_compressed_images_raise(case, flavour):
    fmt, payload, message = BAD_COMPRESSED[case]
    msg = make_compressed(flavour, fmt, payload)
    for convert in (compressed_to_numpy, to_bgr8):
        with pytest.raises(ImageConversionError, match=message):
            convert(msg)


@pytest.mark.parametrize(
    ("array_", "fmt", "encoding", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), "bmp", None, "unknown compressed format 'bmp'"),
        (np.zeros((4, 4), np.float32), "png", None, "cannot compress"),
        (np.zeros((4, 4, 2), np.uint8), "png", None, "cannot compress"),
        (np.zeros((4, 4, 2), np.uint8), "png", "yuyv", "cannot be compressed"),
        (np.zeros((4, 4, 3), np.uint8), "png", "rgb16", "needs uint16"),
    ],
)
def test_numpy_to_compressed_rejects_bad_input(array_, fmt, encoding, message):
    with pytest.raises(ImageConversionError, match=message):
        numpy_to_compressed(array_, fmt, encoding=encoding)


def test_quality_settings_are_checked_and_used():
    image = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    small = numpy_to_compressed(image, "jpeg", quality=10)
    large = numpy_to_compressed(image, "jpeg", quality=100)
    assert len(small.data) < len(large.data)
    with pytest.raises(ImageConversionError, match="jpeg_quality"):
        numpy_to_compressed(image, "jpeg", quality=101)
    with pytest.raises(ImageConversionError, match="png_level"):
        numpy_to_compressed(image, "png", quality=10)
    with pytest.raises(ImageConversionError, match="float_max"):
        ImageConversionConfig(float_min=1.0, float_max=1.0)


# ------------------------------------------------------------------------------------ to_bgr8, everything
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
def test_to_bgr8_for_every_encoding(encoding, flavour):
    pixels = random_pixels(encoding, 6, 8, np.random.default_rng(3))
    msg = numpy_to_image(pixels, encoding, msg_cls=IMAGE_CLS[flavour])
    if _no_picture(encoding):
        with pytest.raises(ImageConversionError, match="to_bgr8"):
            to_bgr8(msg)
        return
    bgr = to_bgr8(msg)
    assert bgr.shape == (6, 8, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous and bgr.flags.writeable
    assert not np.shares_memory(bgr, message_buffer(msg))
    info = encoding_info(encoding)
    if info.dtype == np.uint16 and info.family in ("GRAY", "BGR", None):  # full-range linear scaling
        plane = pixels if pixels.ndim == 2 else pixels[..., 0]
        np.testing.assert_array_equal(bgr[..., 0], np.rint(plane / 257.0).astype(np.uint8))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_to_bgr8_of_compressed_messages(flavour):
    image = smooth_bgr(10, 14)
    png = numpy_to_compressed(image, "png", msg_cls=COMPRESSED_CLS[flavour])
    np.testing.assert_array_equal(to_bgr8(png), image)
    gray = numpy_to_compressed(image[..., 0].copy(), "png", msg_cls=COMPRESSED_CLS[flavour])
    np.testing.assert_array_equal(to_bgr8(gray), np.dstack([image[..., 0]] * 3))
    deep = numpy_to_compressed(image.astype(np.uint16) * 257, "png", msg_cls=COMPRESSED_CLS[flavour])
    np.testing.assert_array_equal(to_bgr8(deep), image)
    alpha = numpy_to_compressed(np.dstack([image, image[..., :1]]), "png", msg_cls=COMPRESSED_CLS[flavour])
    np.testing.assert_array_equal(to_bgr8(alpha), image)


# ------------------------------------------------------------------------------------ cv_bridge delegation
def _install_fake_cv_bridge(monkeypatch, with_boost: bool) -> list:
    calls: list = []

    class FakeBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
            calls.append(("imgmsg_to_cv2", desired_encoding))
            if msg.header.frame_id == "explode":
                raise RuntimeError("boom")
            return image_to_numpy(msg, desired_encoding, config=NO_BRIDGE)

        def cv2_to_imgmsg(self, cvim, encoding="passthrough", header=None):
            calls.append(("cv2_to_imgmsg", encoding))
            return numpy_to_image(cvim, encoding, header, config=NO_BRIDGE)

    package = types.ModuleType("cv_bridge")
    package.CvBridge = FakeBridge
    monkeypatch.setitem(sys.modules, "cv_bridge", package)
    if with_boost:
        boost = types.ModuleType("cv_bridge.boost")
        boost.__path__ = []
        monkeypatch.setitem(sys.modules, "cv_bridge.boost", boost)
        monkeypatch.setitem(sys.modules, "cv_bridge.boost.cv_bridge_boost", types.ModuleType("cv_bridge_boost"))
    else:  # the unofficial PyPI port has no compiled boost module
        monkeypatch.setitem(sys.modules, "cv_bridge.boost", None)
    return calls


def test_unofficial_cv_bridge_port_is_not_used(monkeypatch):
    calls = _install_fake_cv_bridge(monkeypatch, with_boost=False)
    msg = numpy_to_image(np.zeros((2, 2), np.uint8), "mono8")
    image_to_numpy(msg)
    assert calls == [] and ic._real_cv_bridge() is None


def test_real_cv_bridge_is_used_after_our_validation(monkeypatch):
    calls = _install_fake_cv_bridge(monkeypatch, with_boost=True)
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    msg = numpy_to_image(pixels, "rgb8")
    np.testing.assert_array_equal(image_to_numpy(msg, "bgr8"), pixels[..., ::-1])
    assert calls == [("cv2_to_imgmsg", "rgb8"), ("imgmsg_to_cv2", "bgr8")]
    out = image_to_numpy(msg)
    assert not np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    calls.clear()
    with pytest.raises(ImageConversionError, match="not a color format"):  # refused before cv_bridge runs
        image_to_numpy(numpy_to_image(np.zeros((2, 2, 3), np.uint8), "8UC3", msg_cls=Image), "bgr8")
    assert ("imgmsg_to_cv2", "bgr8") not in calls
    msg.step = 5  # bad step: our error, cv_bridge never sees it
    with pytest.raises(ImageConversionError, match="smaller than a row"):
        image_to_numpy(msg)
    msg.step = 6
    with pytest.raises(ImageConversionError, match="unknown image encoding"):
        image_to_numpy(msg, "no_such_encoding")
    calls.clear()
    swapped = make_image("rclpy", b"\x01\x02", 1, 1, "16UC1", 2, big=not HOST_BIG)
    assert image_to_numpy(swapped)[0, 0] == (0x0102 if not HOST_BIG else 0x0201)
    assert calls == []  # foreign byte order stays with our implementation
    rb = numpy_to_image(pixels, "rgb8", msg_cls=RbImage)  # an explicit msg_cls is built by us
    assert isinstance(rb, RbImage)
    assert image_to_numpy(msg, config=NO_BRIDGE).shape == (2, 2, 3)


def test_cv_bridge_errors_become_image_conversion_errors(monkeypatch):
    _install_fake_cv_bridge(monkeypatch, with_boost=True)
    msg = numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgb8", header=Header(frame_id="explode"))
    with pytest.raises(ImageConversionError, match="cv_bridge: boom"):
        image_to_numpy(msg)


def test_module_imports_and_works_without_ros():
    code = (
        "import sys\n"
        "for name in ('rclpy', 'sensor_msgs', 'sensor_msgs.msg', 'std_msgs', 'rosbags', 'cv_bridge'):\n"
        "    sys.modules[name] = None\n"
        "import numpy as np\n"
        "from strongpose_ros.ros import image_conversion as ic\n"
        "m = type('M', (), dict(height=1, width=2, encoding='mono8', is_bigendian=0, step=2, data=b'ab'))\n"
        "assert ic.to_bgr8(m).shape == (1, 2, 3)\n"
        "try:\n"
        "    ic.numpy_to_image(np.zeros((1, 1), np.uint8), 'mono8')\n"
        "except ic.ImageConversionError as e:\n"
        "    assert 'pass msg_cls' in str(e)\n"
        "else:\n"
        "    raise SystemExit('expected an error')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert result.returncode == 0, result.stderr
