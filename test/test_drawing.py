"""Overlay drawing: skeletons coloured by track id, keypoints above threshold, heat-map colouring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from strongpose_ros.decode import PersonPose
from strongpose_ros.drawing import DrawingConfig, blend_heatmap, color_for_id, colorize_heatmap, draw_poses
from strongpose_ros.estimator import HeatmapTransform
from strongpose_ros.schema import COCO17


def _person(offset: float, score: float = 0.9) -> PersonPose:
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = 40 + offset + 4 * np.arange(17)
    kp[:, 1] = 30 + 5 * np.arange(17)
    kp[:, 2] = score
    return PersonPose(kp, score, (kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()))


def test_colours_are_deterministic_distinct_and_bright():
    colours = [color_for_id(i) for i in range(1, 21)]
    assert colours == [color_for_id(i) for i in range(1, 21)]
    assert len(set(colours)) == 20
    assert all(max(c) == 255 for c in colours)


def test_keypoints_drawn_in_the_colour_of_their_id():
    image = np.zeros((160, 200, 3), np.uint8)
    people = [_person(0), _person(90)]
    out = draw_poses(image, people, COCO17, ids=[3, 8], config=DrawingConfig(draw_ids=False))
    assert not image.any(), "the input must be left unchanged (copy=True)"
    for person, track_id in zip(people, (3, 8), strict=True):
        x, y = (round(float(v)) for v in person.keypoints[0, :2])
        assert tuple(int(v) for v in out[y, x]) == color_for_id(track_id)


def test_weak_keypoints_and_their_links_are_not_drawn():
    image = np.zeros((160, 200, 3), np.uint8)
    weak = _person(0, score=0.05)
    out = draw_poses(image, [weak], COCO17, ids=[1], config=DrawingConfig(keypoint_threshold=0.1))
    assert not out.any()
    strong = _person(0)
    strong.keypoints[5:, 2] = 0.0  # only the head is confident
    out = draw_poses(image, [strong], COCO17, ids=[1], config=DrawingConfig(draw_ids=False))
    drawn_rows = np.flatnonzero(out.any(axis=(1, 2)))
    assert drawn_rows.max() < strong.keypoints[5, 1]  # nothing below the head


def test_untracked_people_get_rank_colours_and_in_place_drawing():
    image = np.zeros((160, 200, 3), np.uint8)
    out = draw_poses(image, [_person(0), _person(90)], COCO17, ids=[0, 0], copy=False)
    assert out is image and image.any()
    a = image[int(_person(0).keypoints[0, 1]), int(_person(0).keypoints[0, 0])]
    b = image[int(_person(90).keypoints[0, 1]), int(_person(90).keypoints[0, 0])]
    assert tuple(a) != tuple(b)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        draw_poses(np.zeros((10, 10), np.uint8), [], COCO17)
    with pytest.raises(ValueError, match="ids"):
        draw_poses(np.zeros((10, 10, 3), np.uint8), [_person(0)], COCO17, ids=[1, 2])
    with pytest.raises(ValueError, match="keypoints"):
        draw_poses(np.zeros((10, 10, 3), np.uint8), [PersonPose(np.zeros((5, 3)), 1, (0, 0, 1, 1))], COCO17)
    with pytest.raises(ValueError, match="heatmap_alpha"):
        DrawingConfig(heatmap_alpha=2.0)
    with pytest.raises(ValueError, match="value_range"):
        colorize_heatmap(np.zeros((3, 3)), value_range=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        colorize_heatmap(np.zeros((3, 3, 3)))


def test_colorize_heatmap_follows_the_colormap_and_tolerates_nan():
    ramp = np.linspace(0, 1, 256, dtype=np.float32).reshape(1, -1)
    ramp[0, 0] = np.nan
    out = colorize_heatmap(ramp)
    assert out.shape == (1, 256, 3) and out.dtype == np.uint8
    expected = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, -1), cv2.COLORMAP_JET)
    assert np.array_equal(out[0, 1:], expected[0, 1:])
    assert np.array_equal(out[0, 0], expected[0, 0])  # NaN shows as the low end


def test_blend_heatmap_puts_the_hot_cell_where_the_transform_says():
    heat = np.zeros((7, 9), np.float32)
    heat[3, 6] = 1.0
    transform = HeatmapTransform(scale_x=16.0, scale_y=16.0, offset_x=0.0, offset_y=0.0)
    image = np.zeros((112, 144, 3), np.uint8)
    out = blend_heatmap(image, heat, transform, DrawingConfig(heatmap_alpha=1.0))
    hot = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET)[0, 0]
    assert np.array_equal(out[3 * 16, 6 * 16], hot)
    cold = cv2.applyColorMap(np.array([[0]], np.uint8), cv2.COLORMAP_JET)[0, 0]
    assert np.array_equal(out[0, 0], cold)
