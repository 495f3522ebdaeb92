"""The synthetic people generator: COCO format, exact labels, determinism, crowd regions, clip, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from strongpose_ros.cli import main as cli_main
from strongpose_ros.data import figures
from strongpose_ros.data.synth import (
    CROWD_LABEL_BASE,
    DESCRIPTION,
    clip_video_path,
    compose_scene,
    generate_clip,
    generate_dataset,
    parse_size,
    render_scene,
)
from strongpose_ros.schema import COCO17

K = COCO17.num_keypoints
SMALL = ((120, 96), (176, 144))  # small images keep the suite fast


def _pixel(x: float, y: float) -> tuple[int, int]:
    return math.floor(x + 0.5), math.floor(y + 0.5)


def _scenes(count: int, width: int = 200, height: int = 160, crowd: bool | None = None):
    for seed in range(count):
        yield compose_scene(np.random.default_rng(seed), width, height, crowd=crowd)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    return generate_dataset(out, 8, seed=7, size=SMALL, crowd_fraction=0.5)


# --- format -----------------------------------------------------------------------------------------------------


def test_pycocotools_loads_the_data_set(dataset: Path) -> None:
    coco = COCO(str(dataset))
    assert len(coco.getImgIds()) == 8
    cat = coco.loadCats(coco.getCatIds())[0]
    assert cat["name"] == "person"
    assert cat["keypoints"] == list(COCO17.keypoints)
    # COCO's own 1-based skeleton list, in COCO's order.
    assert cat["skeleton"][:3] == [[16, 14], [14, 12], [17, 15]]
    assert [tuple(e) for e in cat["skeleton"]] == [(a + 1, b + 1) for a, b in COCO17.skeleton]
    data = json.loads(dataset.read_text())
    assert data["info"]["description"] == DESCRIPTION and "not a substitute for COCO" in DESCRIPTION
    for img in coco.loadImgs(coco.getImgIds()):
        assert SMALL[0][0] <= img["width"] <= SMALL[1][0] and SMALL[0][1] <= img["height"] <= SMALL[1][1]
        pixels = cv2.imread(str(dataset.parent / "images" / img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len({a["id"] for a in anns}) == len(anns)
    people = [a for a in anns if not a["iscrowd"]]
    assert len(people) >= 8  # at least one person per image
    for a in anns:
        assert a["category_id"] == 1
        assert isinstance(a["segmentation"]["counts"], str)
        kps = np.asarray(a["keypoints"], dtype=np.float64).reshape(K, 3)
        v = kps[:, 2]
        assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
        assert a["num_keypoints"] == int((v > 0).sum())
        assert np.all(kps[v == 0, :2] == 0.0)
        img = coco.imgs[a["image_id"]]
        x, y = kps[v > 0, 0], kps[v > 0, 1]
        assert np.all((x >= -0.5) & (x < img["width"] - 0.5) & (y >= -0.5) & (y < img["height"] - 0.5))
        assert np.all(kps[:, :2] * 16 == np.round(kps[:, :2] * 16))  # on the drawing's 1/16-pixel grid


def test_bbox_and_area_match_the_mask(dataset: Path) -> None:
    coco = COCO(str(dataset))
    for a in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(a)
        assert a["area"] == float(m.sum()) > 0
        ys, xs = np.nonzero(m)
        assert a["bbox"] == [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                             float(ys.max() - ys.min() + 1)]


def test_visible_keypoints_lie_in_their_own_mask_and_occluded_ones_on_another(dataset: Path) -> None:
    coco = COCO(str(dataset))
    checked = {1: 0, 2: 0}
    for image_id in coco.getImgIds():
        people = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id)) if not a["iscrowd"]]
        masks = [coco.annToMask(a).astype(bool) for a in people]
        for a, m in zip(people, masks, strict=True):
            for x, y, v in np.asarray(a["keypoints"]).reshape(K, 3):
                if v == 0:
                    continue
                px, py = _pixel(x, y)
                if v == 2:
                    assert m[py, px]
                else:
                    assert not m[py, px] and any(o[py, px] for o in masks if o is not m)
                checked[int(v)] += 1
    assert checked[2] > 50


# --- labels against the renderer's instance-id buffer ------------------------------------------------------------


def test_v1_exactly_where_a_later_figure_covers_the_keypoint() -> None:
    occluded = visible = outside = 0
    for scene in _scenes(40):
        ids = scene.instance_ids
        h, w = ids.shape
        person_labels = {lab for lab in scene.labels if lab < CROWD_LABEL_BASE}
        for ann, label, xy in zip(scene.annotations, scene.labels, scene.positions, strict=True):
            if ann["iscrowd"]:
                assert xy is None
                continue
            np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), ids == label)
            for (x, y, v), (tx, ty) in zip(np.asarray(ann["keypoints"]).reshape(K, 3), xy, strict=True):
                px, py = _pixel(tx, ty)
                if not (0 <= px < w and 0 <= py < h):
                    assert v == 0 and x == 0 and y == 0
                    outside += 1
                    continue
                assert (x, y) == (tx, ty)
                owner = int(ids[py, px])
                if owner == label:
                    assert v == 2
                    visible += 1
                else:  # covered: by a person drawn later, never by background or a crowd
                    assert v == 1 and owner in person_labels and owner > label
                    occluded += 1
    assert occluded > 0 and visible > 0 and outside > 0


def test_crowd_regions_when_asked() -> None:
    for scene in _scenes(4, crowd=True):
        crowds = [(a, lab) for a, lab in zip(scene.annotations, scene.labels, strict=True) if a["iscrowd"]]
        assert len(crowds) == 1
        ann, label = crowds[0]
        assert label == CROWD_LABEL_BASE
        assert ann["num_keypoints"] == 0 and not any(ann["keypoints"]) and ann["area"] > 0
        region = mask_utils.decode(ann["segmentation"]).astype(bool)
        assert (region & (scene.instance_ids == CROWD_LABEL_BASE)).sum() > 0
        people = (scene.instance_ids > 0) & (scene.instance_ids < CROWD_LABEL_BASE)
        assert not (region & people).any()
    for scene in _scenes(4, crowd=False):
        assert not any(a["iscrowd"] for a in scene.annotations)


def test_render_scene_in_memory() -> None:
    image, anns = render_scene(np.random.default_rng(3), 130, 90)
    assert image.shape == (90, 130, 3) and image.dtype == np.uint8
    assert anns and all("id" not in a for a in anns)


# --- determinism ------------------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 3, seed=11, size=SMALL)
    b = generate_dataset(tmp_path / "b", 3, seed=11, size=SMALL, workers=2)
    c = generate_dataset(tmp_path / "c", 3, seed=12, size=SMALL)
    assert _files(a.parent) == _files(b.parent)
    assert a.read_bytes() != c.read_bytes()
    assert (a.parent / "images" / "000000.jpg").read_bytes() != (c.parent / "images" / "000000.jpg").read_bytes()


def test_image_i_does_not_depend_on_the_number_requested(tmp_path: Path) -> None:
    few = json.loads(generate_dataset(tmp_path / "few", 2, seed=5, size=SMALL).read_text())
    more = json.loads(generate_dataset(tmp_path / "more", 4, seed=5, size=SMALL).read_text())
    assert more["images"][:2] == few["images"]
    assert [a for a in more["annotations"] if a["image_id"] <= 2] == few["annotations"]
    for i in range(2):
        name = f"images/{i:06d}.jpg"
        assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "more" / name).read_bytes()


# --- figures: the left/right and front/back cues ------------------------------------------------------------------


PAIRS = [(COCO17.keypoints[a], COCO17.keypoints[b]) for a, b in COCO17.flip_pairs]


def _draw_single(pose: figures.Pose, stature: float = 300.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    appearance = figures.Appearance(skin=(140, 180, 225), hair=(20, 20, 25), shirt=(200, 60, 60),
                                    pants=(60, 160, 60), shoes=(40, 40, 40))
    image = np.full((360, 260, 3), 128, np.uint8)
    ids = np.zeros(image.shape[:2], np.uint16)
    fig = figures.build_figure(pose, appearance, stature)
    keypoints = figures.draw_figure(image, ids, 1, fig, (130.0, 180.0))
    return image, ids, keypoints


def test_front_facing_left_keypoints_are_on_the_image_right_back_facing_on_the_left() -> None:
    _, _, front = _draw_single(figures.Pose(yaw=0.0))
    _, _, back = _draw_single(figures.Pose(yaw=math.pi))
    for left, right in PAIRS:
        i, j = COCO17.index(left), COCO17.index(right)
        assert front[i, 0] > front[j, 0], (left, right)  # COCO's mirror convention: facing the camera
        assert back[i, 0] < back[j, 0], (left, right)


def test_face_is_drawn_only_on_the_front_and_nose_points_where_the_figure_faces() -> None:
    pupil = np.array([30, 30, 40])
    front_img, _, front = _draw_single(figures.Pose(yaw=0.0))
    back_img, _, back = _draw_single(figures.Pose(yaw=math.pi))
    for eye in ("left_eye", "right_eye"):
        fx, fy = _pixel(*front[COCO17.index(eye)])
        bx, by = _pixel(*back[COCO17.index(eye)])
        assert np.array_equal(front_img[fy, fx], pupil)
        assert not np.array_equal(back_img[by, bx], pupil)
    _, _, right_facing = _draw_single(figures.Pose(yaw=math.pi / 2))
    ears = right_facing[[COCO17.index("left_ear"), COCO17.index("right_ear")], 0].mean()
    assert right_facing[COCO17.index("nose"), 0] > ears


def test_left_clothing_is_darker_than_right() -> None:
    image, _, kp = _draw_single(figures.Pose(yaw=0.0))

    def mid(a: str, b: str) -> np.ndarray:
        x, y = (kp[COCO17.index(a)] + kp[COCO17.index(b)]) / 2
        px, py = _pixel(x, y)
        return image[py, px].astype(int)
    assert mid("left_hip", "left_knee").sum() < mid("right_hip", "right_knee").sum()
    assert mid("left_shoulder", "left_elbow").sum() < mid("right_shoulder", "right_elbow").sum()


@pytest.mark.parametrize("kind", figures.POSE_KINDS)
def test_every_pose_kind_gives_a_drawable_figure_covering_its_keypoints(kind: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        fig = figures.build_figure(figures.sample_pose(rng, kind=kind), figures.sample_appearance(rng), 120.0)
        x0, y0, x1, y1 = fig.extent
        assert np.isfinite(fig.keypoints).all()
        assert (fig.keypoints[:, 0] >= x0).all() and (fig.keypoints[:, 0] <= x1).all()
        assert (fig.keypoints[:, 1] >= y0).all() and (fig.keypoints[:, 1] <= y1).all()
        image = np.zeros((200, 200, 3), np.uint8)
        ids = np.zeros((200, 200), np.uint16)
        kp = figures.draw_figure(image, ids, 5, fig, figures.quantize(np.array([100 - (x0 + x1) / 2,
                                                                                  100 - (y0 + y1) / 2])))
        for x, y in kp:
            px, py = _pixel(x, y)
            assert ids[py, px] == 5


# --- clip and CLI -------------------------------------------------------------------------------------------------


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_clip_frames_and_annotations(tmp_path: Path) -> None:
    video, ann_path = generate_clip(tmp_path, seconds=1.0, seed=3, fps=8, size=(200, 150))
    assert video == clip_video_path(ann_path) and video.exists()
    assert _count_frames(video) == 8
    coco = COCO(str(ann_path))
    images = sorted(coco.loadImgs(coco.getImgIds()), key=lambda im: im["frame_index"])
    assert [im["frame_index"] for im in images] == list(range(8))
    assert [im["timestamp"] for im in images] == pytest.approx([i / 8 for i in range(8)])
    tracks = set()
    for im in images:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=im["id"]))
        assert anns, f"frame {im['frame_index']} has nobody"
        tracks |= {a["track_id"] for a in anns}
    assert len(tracks) >= 2
    _, again_ann = generate_clip(tmp_path / "again", seconds=1.0, seed=3, fps=8, size=(200, 150))
    assert again_ann.read_bytes() == ann_path.read_bytes()


def test_cli_writes_data_set_and_clip(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    rc = cli_main(["synth", "--out", str(out), "--images", "2", "--seed", "4", "--size", "128x96",
                   "--clip", "0.5", "--fps", "6", "--clip-size", "160x120", "--crowd-fraction", "1", "--quiet"])
    assert rc == 0
    data = json.loads((out / "annotations.json").read_text())
    assert len(data["images"]) == 2 and all(im["width"] == 128 for im in data["images"])
    assert sum(a["iscrowd"] for a in data["annotations"]) == 2
    assert len(list((out / "images").glob("*.jpg"))) == 2
    clip = json.loads((out / "clip_annotations.json").read_text())
    assert len(clip["images"]) == 3 and clip["videos"][0]["width"] == 160
    assert (out / clip["videos"][0]["file_name"]).exists()


def test_bad_input_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WxH"):
        parse_size("400by400")
    with pytest.raises(ValueError, match="seed"):
        generate_dataset(tmp_path, 1, seed=-1)
    with pytest.raises(ValueError, match="fps"):
        generate_clip(tmp_path, 1.0, 0, fps=0)
    with pytest.raises(SystemExit, match="nothing to do"):
        cli_main(["synth", "--out", str(tmp_path), "--images", "0"])
    with pytest.raises(SystemExit):
        cli_main(["synth", "--out", str(tmp_path), "--size", "12x12"])
