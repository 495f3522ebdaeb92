"""3D keypoints from an aligned depth image: camera model, depth units, the robust read, the lifting.

Scenes are synthetic with a known 3D truth (`depth_scene.py`): pixels come from OpenCV's forward
projection, depth images are rendered from the same surfaces; nothing here uses ROS.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from depth_scene import (
    CAMERA_K,
    DISTORTION,
    Scene,
    camera_fields,
    keypoint_rows,
    naive_centre_read,
    person_points,
    person_scene,
    project,
    to_16uc1,
    to_32fc1,
)

from strongpose_ros.depth import (
    CameraModel,
    CameraModelError,
    DepthImage,
    DepthImageError,
    LiftingConfig,
    PeoplePositions,
    depth_to_metres,
    lift_people,
)
from strongpose_ros.estimator import HeatmapTransform

# Holes and empty windows must not make NumPy warn: a node would log it every frame.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

REPO = Path(__file__).resolve().parents[1]
COLOR = (480, 640)
CM = 0.01


def _lift(kp, depth_m, camera, encoding="16UC1", **options) -> PeoplePositions:
    raw = to_16uc1(depth_m) if encoding == "16UC1" else to_32fc1(depth_m)
    return lift_people(np.asarray(kp)[None] if np.ndim(kp) == 2 else kp, DepthImage.from_array(raw, encoding),
                       camera, COLOR, **options)  # fmt: skip


# --- the camera -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["none", "plumb_bob", "rational_polynomial", "equidistant"])
def test_pixels_undistort_to_the_rays_opencv_projected_them_from(model):
    """The inverse of OpenCV's forward model, to far below a pixel, over the whole image."""
    rng = np.random.default_rng(1)
    z = rng.uniform(1.0, 4.0, 300)
    points = np.stack([rng.uniform(-0.62, 0.62, 300) * z, rng.uniform(-0.47, 0.47, 300) * z, z], 1)
    uv = project(points, model)
    # The points cover the image, nearly to its corners.
    assert (uv.max(0) - uv.min(0) > [0.85 * 640, 0.85 * 480]).all()
    camera = CameraModel.from_fields(**camera_fields(model))
    rays = camera.normalized(uv)
    np.testing.assert_allclose(rays, points[:, :2] / points[:, 2:], atol=2e-5)  # 0.01 px at fx 522
    np.testing.assert_allclose(camera.back_project(uv, points[:, 2]), points, atol=1e-4)


def test_a_camera_info_message_is_read_field_by_field():
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    CameraInfo = store.types["sensor_msgs/msg/CameraInfo"]
    Roi = store.types["sensor_msgs/msg/RegionOfInterest"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    fields = camera_fields("rational_polynomial")
    msg = CameraInfo(
        header=Header(stamp=Time(sec=1, nanosec=0), frame_id="cam"), height=480, width=640,
        distortion_model="rational_polynomial", d=np.array(fields["d"]), k=np.array(fields["k"]),
        r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=0, binning_y=0,
        roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )  # fmt: skip
    camera = CameraModel.from_camera_info(msg)
    assert camera.size == (480, 640) and camera.distortion_model == "rational_polynomial"
    np.testing.assert_array_equal(camera.K, CAMERA_K)
    np.testing.assert_array_equal(camera.D, DISTORTION["rational_polynomial"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(k=[0.0] * 9), r"CameraInfo\.k: focal length fx must be positive, got 0.0 \(all zero: the camera is "
                            r"not calibrated\)"),
        (dict(k=[612.0, 0, 318.5, 0, 0.0, 243.25, 0, 0, 1]), r"CameraInfo\.k: focal length fy must be positive"),
        (dict(k=[float("nan"), 0, 318.5, 0, 608, 243.25, 0, 0, 1]), r"CameraInfo\.k has a non-finite value"),
        (dict(k=[612.0, 0, 318.5, 0, 608, 243.25, 0, 0]), r"CameraInfo\.k must have 9 values, got 8"),
        (dict(distortion_model="kannala_brandt"), r"CameraInfo\.distortion_model 'kannala_brandt' is not supported"),
        (dict(d=[0.1, 0.2, 0.0]), r"CameraInfo\.d: plumb_bob needs 4 or 5 coefficients, got 3"),
        (dict(width=0), r"CameraInfo\.width must be a positive integer, got 0"),
        (dict(distortion_model="", d=[0.1, 0, 0, 0, 0]), r"distortion_model is '' but d is"),
    ],
)
def test_unusable_calibrations_are_refused_naming_the_field(change, message):
    with pytest.raises(CameraModelError, match=message):
        CameraModel.from_fields(**{**camera_fields("plumb_bob"), **change})


def test_no_distortion_coefficients_is_a_pinhole_whatever_the_model():
    for d in ([], [0.0] * 5):
        camera = CameraModel.from_fields(**{**camera_fields("plumb_bob"), "d": d})
        assert not camera.has_distortion and camera.distortion_model == "none"


def test_binning_and_roi_map_the_calibration_to_the_delivered_image():
    """A binned camera's pixel i covers full-resolution pixels 2i and 2i+1: centre (i + 0.5) * 2 - 0.5."""
    rng = np.random.default_rng(2)
    points = np.stack([rng.uniform(-0.5, 0.5, 50), rng.uniform(-0.4, 0.4, 50), rng.uniform(1.0, 3.0, 50)], 1)
    full = project(points, "plumb_bob")
    binned = CameraModel.from_fields(**camera_fields("plumb_bob"), binning_x=2, binning_y=2)
    assert binned.size == (240, 320)
    uv_binned = project(points, "plumb_bob", binned.K)
    np.testing.assert_allclose(uv_binned, (full + 0.5) / 2 - 0.5, atol=1e-9)
    cropped = CameraModel.from_fields(**camera_fields("plumb_bob"), roi_x_offset=100, roi_y_offset=40,
                                      roi_width=320, roi_height=240)  # fmt: skip
    assert cropped.size == (240, 320)
    np.testing.assert_allclose(project(points, "plumb_bob", cropped.K), full - [100, 40], atol=1e-9)
    np.testing.assert_allclose(cropped.back_project(full - [100, 40], points[:, 2]), points, atol=1e-4)


def test_a_rectified_image_uses_p_and_no_distortion():
    P = [600.0, 0, 320, 0, 0, 600, 240, 0, 0, 0, 1, 0]
    camera = CameraModel.from_fields(**camera_fields("plumb_bob"), p=P, rectified=True)
    assert not camera.has_distortion and camera.fx == 600 and camera.cx == 320
    np.testing.assert_allclose(camera.back_project([[320 + 60, 240 - 30]], [2.0]), [[0.2, -0.1, 2.0]])
    with pytest.raises(CameraModelError, match=r"CameraInfo\.p: focal length fx"):
        CameraModel.from_fields(**camera_fields("plumb_bob"), p=[0.0] * 12, rectified=True)


def test_scaling_keeps_the_field_of_view_and_refuses_another_aspect_ratio():
    camera = CameraModel.from_fields(**camera_fields("plumb_bob"))
    double = camera.scaled(1280, 960)
    assert (double.fx, double.fy) == (2 * camera.fx, 2 * camera.fy)
    # The optical axis stays on the same spot of the sensor: its distance from the left edge, in pixel
    # widths, is cx + 0.5 (pixel centres at integers).
    assert double.cx + 0.5 == pytest.approx(2 * (camera.cx + 0.5))
    np.testing.assert_allclose(double.scaled(640, 480).K, camera.K)
    assert camera.scaled(640, 480) is camera
    with pytest.raises(CameraModelError, match=r"640x480 images.*same field of view"):
        camera.scaled(640, 360)


# --- depth units ----------------------------------------------------------------------------------


def test_16uc1_and_32fc1_read_in_metres_with_nan_for_no_data():
    mm = np.array([[0, 1, 1500, 65535]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1"), [[np.nan, 0.001, 1.5, 65.535]], rtol=1e-6)
    np.testing.assert_allclose(depth_to_metres(mm, "mono16"), [[np.nan, 0.001, 1.5, 65.535]], rtol=1e-6)
    m = np.array([[np.nan, 0.0, -1.0, np.inf, 2.25]], np.float32)
    np.testing.assert_array_equal(depth_to_metres(m, "32FC1"), [[np.nan, np.nan, np.nan, np.nan, 2.25]])
    big = mm.astype(">u2")  # the other byte order is accepted and read right
    np.testing.assert_allclose(depth_to_metres(big, "16UC1"), depth_to_metres(mm, "16UC1"))
    for array, encoding, message in (
        (mm, "32FC1", "32FC1 depth must be float32, got uint16"),
        (m, "bgr8", "depth encoding 'bgr8' is not supported"),
        (mm[0], "16UC1", "non-empty \\(H, W\\) array"),
    ):
        with pytest.raises(DepthImageError, match=message):
            DepthImage.from_array(array, encoding)


# --- lifting: exact depth --------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial", "equidistant", "none"])
@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_exact_depth_recovers_the_3d_keypoints_within_a_centimetre_at_2m(model, encoding):
    truth = person_points((0.35, -0.1, 2.0))  # off-centre, where distortion matters
    uv = project(truth, model)
    assert ((uv >= 0) & (uv < [640, 480])).all()  # the whole person is in the picture
    camera = CameraModel.from_fields(**camera_fields(model))
    positions = _lift(keypoint_rows(uv), person_scene(truth, uv).render(), camera, encoding)
    assert positions.keypoint_valid.all()
    error = np.linalg.norm(positions.keypoints[0] - truth, axis=1)
    assert error.max() < 1 * CM, error
    # Without the lens model (the mistake this guards against) the same scene is off by more.
    if model in ("plumb_bob", "rational_polynomial"):
        pinhole = CameraModel.from_fields(**camera_fields("none"))
        wrong = _lift(keypoint_rows(uv), person_scene(truth, uv).render(), pinhole, encoding)
        assert np.linalg.norm(wrong.keypoints[0] - truth, axis=1).max() > 1 * CM
    person = positions[0]
    assert person.valid
    np.testing.assert_allclose(person.position, np.median(truth, axis=0), atol=1 * CM)
    assert positions.keypoint_confidence.min() > 0.8 and 0.8 < person.confidence <= 1.0


@pytest.mark.parametrize("distance", [1.5, 3.0, 4.0])
def test_exact_depth_at_other_distances(distance):
    truth = person_points((-0.2, 0.1 * distance, distance))
    uv = project(truth)
    visible = (uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 480)
    positions = _lift(keypoint_rows(uv[visible]), person_scene(truth[visible], uv[visible]).render(),
                      CameraModel.from_fields(**camera_fields("plumb_bob")))  # fmt: skip
    assert positions.keypoint_valid.all() and visible.sum() >= 11
    assert np.abs(positions.keypoints[0] - truth[visible]).max() < 1 * CM


@pytest.mark.parametrize("depth_size", [(960, 1280), (240, 320), (720, 960)])
def test_a_depth_image_of_another_resolution(depth_size):
    truth = person_points((0.1, 0.0, 2.5))
    uv = project(truth)
    scene = person_scene(truth, uv, radius=8.0)
    depth = DepthImage.from_array(to_16uc1(scene.render(depth_size)), "16UC1")
    camera = CameraModel.from_fields(**camera_fields("plumb_bob"))
    positions = lift_people(keypoint_rows(uv)[None], depth, camera, COLOR)
    assert positions.keypoint_valid.all()
    assert np.abs(positions.keypoints[0] - truth).max() < 1 * CM
    # The CameraInfo may be the aligned depth's (the colour intrinsics at the depth's resolution).
    depth_camera = camera.scaled(depth_size[1], depth_size[0])
    again = lift_people(keypoint_rows(uv)[None], depth, depth_camera, COLOR)
    np.testing.assert_allclose(again.keypoints, positions.keypoints, atol=1e-4)


def test_a_strided_view_of_a_depth_array_reads_the_same():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    mm = to_16uc1(person_scene(truth, uv).render())
    wide = np.zeros((480, 700), np.uint16)
    wide[:, :640] = mm
    camera = CameraModel.from_fields(**camera_fields())
    view = DepthImage.from_array(wide[:, :640], "16UC1")  # not contiguous: another gather path
    assert not view.values.flags.c_contiguous
    a = lift_people(keypoint_rows(uv)[None], view, camera, COLOR)
    b = lift_people(keypoint_rows(uv)[None], DepthImage.from_array(mm, "16UC1"), camera, COLOR)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_a_depth_image_that_is_not_aligned_is_refused():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = DepthImage.from_array(to_16uc1(person_scene(truth, uv).render((360, 640))), "16UC1")
    with pytest.raises(CameraModelError, match="same field of view"):
        lift_people(keypoint_rows(uv)[None], depth, CameraModel.from_fields(**camera_fields()), COLOR)


# --- lifting: what real depth does ---------------------------------------------------------------


def test_holes_do_not_lose_keypoints_where_the_centre_pixel_has_none():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = person_scene(truth, uv).render()
    rng = np.random.default_rng(3)
    depth[rng.random(depth.shape) < 0.5] = np.nan  # half of all pixels have no data...
    cols, rows = np.rint(uv).astype(int).T
    depth[rows, cols] = np.nan  # ...and none under any keypoint
    assert np.isnan(naive_centre_read(depth, uv)).all()
    positions = _lift(keypoint_rows(uv), depth, CameraModel.from_fields(**camera_fields()))
    assert positions.keypoint_valid.all()
    assert np.abs(positions.keypoints[0] - truth).max() < 1 * CM


def test_noise_and_flying_pixels_average_out():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = person_scene(truth, uv).render()
    rng = np.random.default_rng(4)
    depth += rng.normal(0.0, 0.02, depth.shape)  # 2 cm RMS, a stereo camera's noise at 2 m
    flying = rng.random(depth.shape) < 0.05  # mixed pixels anywhere between the camera and the wall
    depth[flying] = rng.uniform(0.3, 6.0, flying.sum())
    positions = _lift(keypoint_rows(uv), depth, CameraModel.from_fields(**camera_fields()), "32FC1")
    assert positions.keypoint_valid.all()
    assert np.abs(positions.keypoints[0][:, 2] - truth[:, 2]).max() < 1 * CM
    naive_error = np.abs(naive_centre_read(depth, uv) - truth[:, 2])
    assert np.nanmax(naive_error) > 5 * CM  # the centre pixel alone is off somewhere


@pytest.mark.parametrize("behind_m", [0.35, 2.0])
def test_background_behind_a_thin_limb(behind_m):
    """The left wrist's keypoint misses its forearm by 2 px; the centre pixel sees what is behind it.

    0.35 m behind: within the person gate (the torso, a chair), so the nearest-surface rule decides;
    2 m behind: a wall, which the person gate removes as well.
    """
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    wrist = 9
    scene = person_scene(np.delete(truth, wrist, 0), np.delete(uv, wrist, 0))
    cu, cv = np.rint(uv[wrist])
    scene.add_box(cu - 40, cv - 40, cu + 40, cv + 40, truth[wrist, 2] + behind_m)  # behind the forearm
    scene.add_box(cu + 1.5, cv - 60, cu + 7.5, cv + 4.5, truth[wrist, 2])  # a forearm 6 px wide, columns +2..+7
    depth = scene.render()
    assert naive_centre_read(depth, uv[[wrist]])[0] == pytest.approx(truth[wrist, 2] + behind_m)
    positions = _lift(keypoint_rows(uv), depth, CameraModel.from_fields(**camera_fields()))
    assert positions.keypoint_valid[0, wrist]
    assert np.linalg.norm(positions.keypoints[0, wrist] - truth[wrist]) < 1 * CM
    # The window's median would have read the background 0.35 m behind.
    if behind_m < 0.6:
        median = _lift(keypoint_rows(uv), depth, CameraModel.from_fields(**camera_fields()),
                       config=LiftingConfig(surface_percentile=0.5, surface_thickness_m=10.0))  # fmt: skip
        assert median.keypoints[0, wrist, 2] == pytest.approx(truth[wrist, 2] + behind_m, abs=1 * CM)


def test_a_nearer_part_at_the_window_edge_does_not_take_over():
    """Another person's arm, 0.5 m nearer, reaches two columns into the left hip's window: the hip still
    reads its own surface (the nearest pixels alone would read the arm)."""
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    hip = 11
    scene = person_scene(truth, uv, radius=12.0)
    cu, cv = np.rint(uv[hip])
    scene.add_box(cu + 2.5, cv - 80, cu + 12.5, cv + 80, truth[hip, 2] - 0.5)  # columns +3..+12
    depth = scene.render()
    camera = CameraModel.from_fields(**camera_fields())
    positions = _lift(keypoint_rows(uv), depth, camera)
    assert np.linalg.norm(positions.keypoints[0, hip] - truth[hip]) < 1 * CM
    nearest = _lift(keypoint_rows(uv), depth, camera, config=LiftingConfig(surface_percentile=0.0))
    assert nearest.keypoints[0, hip, 2] == pytest.approx(truth[hip, 2] - 0.5, abs=1 * CM)


def _body_heatmap(uv: np.ndarray, radius_px: float = 40.0, offset_y: float = 0.0
                  ) -> tuple[np.ndarray, HeatmapTransform]:
    """A stride-8 body map: 1 within radius_px of any keypoint, 0 elsewhere (as the network is trained)."""
    transform = HeatmapTransform(8.0, 8.0, 0.0, offset_y)
    rows, cols = (COLOR[0] - 1) // 8 + 1, (COLOR[1] - 1) // 8 + 1
    centres = transform.to_image(np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1))
    distance = np.linalg.norm(centres[:, :, None, :] - uv[None, None], axis=-1).min(-1)
    return (distance <= radius_px).astype(np.float32), transform


def test_the_body_heat_map_keeps_the_read_on_the_body():
    """A chair back 0.5 m in front of the person covers the lower third of the right hip's window: it is
    the nearest surface there, and inside the person gate. The body map (stride 8) says it is not the
    body: with it the hip reads right."""
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    hip = 12
    u, v = np.rint(uv[hip])
    # Heat-map rows are 8 px apart; place them so that a boundary between two rows lies 1.5 px below the hip.
    offset_y = (v + 1.5 - 4.0) % 8.0
    body, transform = _body_heatmap(uv, offset_y=offset_y)
    centres_y = np.arange(body.shape[0]) * 8.0 + offset_y
    cols_x = np.arange(body.shape[1]) * 8.0
    chair = (centres_y > v + 1.5)[:, None] & (np.abs(cols_x - u) <= 24)[None]
    body[chair] = 0.0  # the network sees the chair, not the body, below the boundary
    scene = person_scene(truth, uv, radius=12.0)
    scene.add_box(u - 20, v + 1.5, u + 20, v + 60, truth[hip, 2] - 0.5)  # the chair: rows +2 and below
    depth = scene.render()
    camera = CameraModel.from_fields(**camera_fields())
    without = _lift(keypoint_rows(uv), depth, camera)
    assert abs(without.keypoints[0, hip, 2] - (truth[hip, 2] - 0.5)) < 5 * CM  # it reads the chair
    with_map = _lift(keypoint_rows(uv), depth, camera, body_heatmap=body, heatmap_transform=transform)
    assert with_map.keypoint_valid[0].all()
    assert np.abs(with_map.keypoints[0] - truth).max() < 1 * CM


def test_a_body_map_that_misses_the_body_lowers_confidence_but_keeps_the_read():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = person_scene(truth, uv).render()
    body, transform = _body_heatmap(uv)
    camera = CameraModel.from_fields(**camera_fields())
    config = LiftingConfig()
    plain = _lift(keypoint_rows(uv), depth, camera, body_heatmap=body, heatmap_transform=transform)
    empty = _lift(keypoint_rows(uv), depth, camera, body_heatmap=np.zeros_like(body), heatmap_transform=transform)
    assert empty.keypoint_valid.all()
    np.testing.assert_allclose(empty.keypoints, plain.keypoints, atol=1e-6)
    np.testing.assert_allclose(empty.keypoint_confidence, plain.keypoint_confidence * config.off_body_factor,
                               rtol=1e-5)  # fmt: skip


# --- lifting: no depth, no position --------------------------------------------------------------


def test_no_valid_depth_means_no_position_never_a_zero():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = person_scene(truth, uv).render()
    scores = np.full(17, 0.9)
    scores[0] = 0.05  # the nose is too weak to lift
    for k in (9, 10):  # no data at all around the wrists
        cols, rows = np.rint(uv[k]).astype(int)
        depth[rows - 20 : rows + 21, cols - 20 : cols + 21] = np.nan
    positions = _lift(keypoint_rows(uv, scores), depth, CameraModel.from_fields(**camera_fields()))
    absent = [0, 9, 10]
    assert not positions.keypoint_valid[0, absent].any() and positions.keypoint_valid[0].sum() == 14
    assert np.isnan(positions.keypoints[0, absent]).all()
    assert (positions.keypoint_confidence[0, absent] == 0).all()
    assert np.abs(np.delete(positions.keypoints[0], absent, 0) - np.delete(truth, absent, 0)).max() < 1 * CM


def test_a_person_needs_two_lifted_keypoints_for_a_position():
    truth = person_points((0.0, -0.1, 2.0))
    uv = project(truth)
    depth = np.full(COLOR, np.nan)  # no data anywhere but one disc
    one = Scene(background_m=np.nan)
    one.add_disc(uv[5], 7, truth[5, 2])
    depth = one.render()
    positions = _lift(keypoint_rows(uv), depth, CameraModel.from_fields(**camera_fields()))
    assert positions.keypoint_valid[0].sum() == 1
    person = positions[0]
    assert not person.valid and np.isnan(person.position).all() and person.confidence == 0.0


def test_many_people_at_once_and_none():
    camera = CameraModel.from_fields(**camera_fields())
    people = [person_points((x, 0.0, z)) for x, z in ((-0.9, 3.0), (0.0, 2.0), (0.9, 3.5))]
    scene = Scene()
    rows = []
    for truth in people:
        uv = project(truth)
        for (u, v), z in zip(uv, truth[:, 2], strict=True):
            scene.add_disc((u, v), 6, z)
        rows.append(keypoint_rows(uv))
    positions = _lift(np.stack(rows), scene.render(), camera)
    assert len(positions) == 3 and positions.keypoint_valid.all()
    assert np.abs(positions.keypoints - np.stack(people)).max() < 1 * CM
    assert positions.reference_depth == pytest.approx([3.0, 2.0, 3.5], abs=0.1)
    empty = lift_people([], DepthImage.from_array(to_16uc1(scene.render()), "16UC1"), camera, COLOR, num_keypoints=17)
    assert len(empty) == 0 and empty.keypoints.shape == (0, 17, 3)


def test_lifting_config_is_validated():
    with pytest.raises(ValueError, match=r"LiftingConfig\.max_depth_m must be > 0\.1"):
        LiftingConfig(max_depth_m=0.1)
    with pytest.raises(ValueError, match=r"LiftingConfig\.min_pixels must be an integer >= 1"):
        LiftingConfig(min_pixels=0)
    assert LiftingConfig().window_radius(640) == 4 and LiftingConfig().window_radius(1280) == 8
    assert dataclasses.replace(LiftingConfig(), window_radius_px=1).window_radius(320) == 1


def test_the_depth_package_imports_without_ros_torch_or_numba():
    check = (
        "import sys; import strongpose_ros.depth; "
        "bad = [m for m in ('rclpy', 'torch', 'numba', 'sensor_msgs') if m in sys.modules]; "
        "assert not bad, bad"
    )
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
