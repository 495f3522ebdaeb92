"""Augmentation: one affine matrix, applied alike to pixels, keypoints and masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from strongpose_ros.data.augment import (
    AugmentConfig,
    AugmentParams,
    affine_matrix,
    decode_segmentation,
    sample_params,
    transform_annotations,
    transform_keypoints,
    warp_image,
    warp_mask,
)
from strongpose_ros.schema import COCO17


def _inverse(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_map_like_warpaffine_maps_pixels(flip: bool) -> None:
    # An image whose pixels hold their own (x, y): after warpAffine, crop pixel d holds the source position
    # it was sampled from. Our matrix must say the same: source = M^-1 d, and a keypoint at p lands at M p.
    h, w, crop = 90, 140, (65, 81)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    coordinates = np.dstack([xs, ys, np.zeros_like(xs)])
    params = AugmentParams(scale=1.7, rotation_deg=23.0, center=(61.3, 40.2), flip=flip)
    matrix = affine_matrix(params, (h, w), crop)
    warped = cv2.warpAffine(coordinates, matrix, (crop[1], crop[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(-1, -1, -1))
    dy, dx = np.mgrid[0:crop[0], 0:crop[1]]
    source = np.stack([dx, dy], -1) @ _inverse(matrix)[:, :2].T + _inverse(matrix)[:, 2]
    inside = (source[..., 0] > 1) & (source[..., 0] < w - 2) & (source[..., 1] > 1) & (source[..., 1] < h - 2)
    assert inside.sum() > 1000
    # warpAffine's fixed-point interpolation is accurate to 1/32 pixel.
    np.testing.assert_allclose(warped[..., :2][inside], source[inside], atol=0.05)
    # Keypoints go through the same matrix (forward): each lands where its pixel lands.
    keypoints = np.array([[[30.0, 20.0, 2], [70.5, 44.25, 1], [100.0, 60.0, 2]] + [[0, 0, 0]] * 14])
    moved = transform_keypoints(keypoints, matrix, crop)
    for (x, y, v), (qx, qy, qv) in zip(keypoints[0, :3], moved[0, :3], strict=True):
        if qv > 0:
            back = _inverse(matrix) @ np.array([qx, qy, 1.0])
            np.testing.assert_allclose(back, [x, y], atol=1e-9)
            assert qv == v


def test_identity_matrix_when_nothing_changes() -> None:
    matrix = affine_matrix(AugmentParams(), (64, 48), (64, 48))
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_flip_mirrors_and_swaps_left_right() -> None:
    crop = (33, 41)
    plain = affine_matrix(AugmentParams(scale=1.0, rotation_deg=10.0), (50, 60), crop)
    mirrored = affine_matrix(AugmentParams(scale=1.0, rotation_deg=10.0, flip=True), (50, 60), crop)
    keypoints = np.zeros((17, 3))
    keypoints[1] = [20.0, 25.0, 2]  # left eye
    keypoints[2] = [35.0, 26.0, 1]  # right eye
    a = transform_keypoints(keypoints, plain, crop)
    b = transform_keypoints(keypoints, mirrored, crop, COCO17.flip_permutation)
    # The left eye of the mirror image is the original right eye, at the mirrored x.
    np.testing.assert_allclose(b[1, :2], [crop[1] - 1 - a[2, 0], a[2, 1]])
    np.testing.assert_allclose(b[2, :2], [crop[1] - 1 - a[1, 0], a[1, 1]])
    assert (b[1, 2], b[2, 2]) == (1, 2)


def test_keypoints_leaving_the_crop_become_unlabelled() -> None:
    matrix = affine_matrix(AugmentParams(scale=2.0, center=(10.0, 10.0)), (100, 100), (51, 51))
    keypoints = np.zeros((17, 3))
    keypoints[0] = [10.0, 10.0, 2]  # the crop centre
    keypoints[5] = [90.0, 90.0, 2]  # far outside
    moved = transform_keypoints(keypoints, matrix, (51, 51))
    assert moved[0, 2] == 2 and np.allclose(moved[0, :2], [25.0, 25.0])
    assert moved[5].tolist() == [0.0, 0.0, 0.0]
    assert (moved[6:] == 0).all()


def test_sample_params_stay_in_the_configured_ranges() -> None:
    rng = np.random.default_rng(0)
    config = AugmentConfig()
    draws = [sample_params(rng, (480, 640), (401, 401), config) for _ in range(300)]
    assert all(0.8 <= d.scale <= 2.0 for d in draws)
    assert all(-30.0 <= d.rotation_deg <= 30.0 for d in draws)
    flips = sum(d.flip for d in draws)
    assert 100 < flips < 200
    assert max(d.rotation_deg for d in draws) > 25 and min(d.rotation_deg for d in draws) < -25


def test_masks_decode_from_polygons_and_rle_and_warp_nearest() -> None:
    h, w = 40, 50
    polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 25.0, 10.0, 25.0]]
    from_polygon = decode_segmentation(polygon, h, w)
    assert from_polygon.dtype == bool and from_polygon.shape == (h, w) and from_polygon.sum() > 250
    rle = mask_utils.encode(np.asfortranarray(from_polygon.astype(np.uint8)))
    compressed = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    np.testing.assert_array_equal(decode_segmentation(compressed, h, w), from_polygon)
    # COCO's crowd regions use uncompressed RLE (a list of run lengths, column-major).
    flat = from_polygon.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    np.testing.assert_array_equal(decode_segmentation({"size": [h, w], "counts": counts}, h, w), from_polygon)
    assert decode_segmentation([[1.0, 2.0, 3.0, 4.0]], h, w) is None  # degenerate polygon
    matrix = affine_matrix(AugmentParams(scale=1.3, rotation_deg=15.0), (h, w), (41, 41))
    warped = warp_mask(from_polygon, matrix, (41, 41))
    assert warped.dtype == bool and warped.any()
    # Each warped mask pixel is the source pixel nearest to where it came from.
    ys, xs = np.nonzero(warped)
    source = np.stack([xs, ys, np.ones_like(xs)], -1) @ _inverse(matrix).T
    nearest = np.floor(source + 0.5).astype(int)
    assert from_polygon[nearest[:, 1].clip(0, h - 1), nearest[:, 0].clip(0, w - 1)].mean() > 0.97
    with pytest.raises(ValueError, match="RLE of size"):
        decode_segmentation({"size": [10, 10], "counts": counts}, h, w)


def test_transform_annotations_keeps_fields_encode_targets_needs() -> None:
    keypoints = [0.0] * 51
    keypoints[0:3] = [20.0, 15.0, 2]
    annotations = [
        {"id": 7, "keypoints": keypoints, "iscrowd": 0, "bbox": [10, 10, 20, 20],
         "segmentation": [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]},
        {"id": 8, "iscrowd": 1, "bbox": [0, 0, 5, 5], "segmentation": None},
    ]
    matrix = affine_matrix(AugmentParams(), (40, 40), (40, 40))
    out = transform_annotations(annotations, matrix, (40, 40), (40, 40), COCO17, flipped=False)
    assert out[0]["keypoints"].shape == (17, 3) and out[0]["segmentation"].shape == (40, 40)
    assert out[1]["iscrowd"] == 1 and out[1]["keypoints"] is None and out[1]["segmentation"] is None
    assert out[1]["bbox"] == [0.0, 0.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="keypoint values"):
        transform_annotations([{"keypoints": [1, 2, 2]}], matrix, (40, 40), (40, 40), COCO17, flipped=False)


def test_warp_image_border_is_the_given_colour_and_antialias_keeps_geometry() -> None:
    image = np.full((200, 300, 3), 255, np.uint8)
    image[100, 150] = 0
    # Fitting 300x200 into 101x101 shrinks by 0.34: area averaging first, then the warp.
    matrix = affine_matrix(AugmentParams(scale=1.0, center=(149.5, 99.5)), (200, 300), (101, 101))
    crop = warp_image(image, matrix, (101, 101), (252, 251, 250), antialias_below=0.75)
    assert tuple(crop[0, 0]) == (252, 251, 250)  # outside the image: the border colour
    # The dark pixel (shrunk by area averaging) is still centred where the matrix puts it.
    target = matrix @ np.array([150.0, 100.0, 1.0])
    darkest = np.unravel_index(np.argmin(crop[..., 0].astype(int)), crop.shape[:2])
    assert abs(darkest[1] - target[0]) <= 1 and abs(darkest[0] - target[1]) <= 1


@pytest.mark.parametrize("field,value", [("scale", (2.0, 1.0)), ("rotation_deg", -1.0), ("flip_probability", 1.5),
                                         ("translation", -0.1), ("antialias_below", 0.0)])
def test_bad_config_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})
