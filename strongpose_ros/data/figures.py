"""Articulated synthetic people: a 3D stick skeleton posed by joint angles, projected and drawn.

A figure is built in a body frame (units: fractions of the standing stature; X = the person's left,
Y = down, Z = the person's front, pelvis at the origin), rotated by its facing (yaw) and a small in-plane
roll into the camera frame (x = image right, y = image down, z = towards the camera), projected
orthographically and drawn as depth-sorted primitives: tapered capsules for the limbs, a box for the
torso, a shaded sphere for the head. Because the geometry is 3D, COCO's mirror convention comes out of
it: a person facing the camera has their left side on the image's right.

Cues that make LEFT/RIGHT and FRONT/BACK learnable (the synthetic set's documented convention):
- the face: eyes, nose, mouth and ears are drawn on the front hemisphere of the head; the back of the
  head is hair (plus long hair hanging behind for some figures), so a back-facing figure shows hair only;
- the feet point forward (towards the person's front);
- clothing of the LEFT arm and LEFT leg is drawn darker (`FigureConfig.left_clothing_shade`) than the
  right. This is a deliberately asymmetric marker: horizontal-flip augmentation makes it inconsistent,
  so a model trained with flips has to rely on the face/hair/feet geometry instead;
- limbs on the far side of the body are slightly darker (simple depth shading).

Keypoints follow the COCO annotation convention: a keypoint (x, y) lies in pixel (floor(x + 0.5),
floor(y + 0.5)), pixel centres at integer coordinates (also cv2's drawing convention). Every keypoint is
covered by its own figure's drawing (joints are capsule ends, face points lie inside the head disc; a
final pass paints any pixel rounding left uncovered), so a keypoint pixel belongs to its figure unless a
figure drawn later covers it.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from strongpose_ros.schema import COCO17

__all__ = [
    "POSE_KINDS",
    "Appearance",
    "Figure",
    "FigureConfig",
    "Pose",
    "PoseRanges",
    "build_figure",
    "draw_figure",
    "quantize",
    "sample_appearance",
    "sample_pose",
    "walk_pose",
]

_K = {name: i for i, name in enumerate(COCO17.keypoints)}
_SIDES = ("left", "right")
_SIDE_SIGN = (1.0, -1.0)  # body X points to the person's left

# Fixed-point drawing: cv2 takes coordinates with 4 fractional bits; keypoints are quantised to the same grid
# so the JSON floats are exact and the drawn joint and its labelled position coincide.
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class PoseRanges:
    """Uniform ranges, in degrees, for one kind of pose; left and right values are drawn independently."""

    arm_flex: tuple[float, float] = (-15.0, 25.0)  # 0 = hanging, + = raised forwards
    arm_abd: tuple[float, float] = (3.0, 20.0)  # + = raised sideways (outwards)
    elbow: tuple[float, float] = (0.0, 30.0)
    hip_flex: tuple[float, float] = (-8.0, 10.0)
    hip_abd: tuple[float, float] = (0.0, 8.0)
    knee: tuple[float, float] = (0.0, 10.0)
    pitch: tuple[float, float] = (-5.0, 8.0)  # forward bend of the torso
    lean: tuple[float, float] = (-5.0, 5.0)  # sideways bend, + towards the person's left
    head_turn: tuple[float, float] = (-30.0, 30.0)
    head_nod: tuple[float, float] = (-15.0, 20.0)  # + = chin down


POSE_KINDS = ("standing", "walking", "arms_raised", "bending", "sitting", "action")


def _default_pose_ranges() -> dict[str, PoseRanges]:
    return {
        "standing": PoseRanges(),
        "arms_raised": PoseRanges(arm_flex=(60.0, 185.0), arm_abd=(0.0, 100.0), elbow=(0.0, 70.0)),
        "bending": PoseRanges(arm_flex=(-10.0, 40.0), arm_abd=(0.0, 20.0), knee=(0.0, 25.0), pitch=(30.0, 95.0)),
        "sitting": PoseRanges(
            arm_flex=(10.0, 60.0), elbow=(20.0, 90.0), hip_flex=(65.0, 100.0), hip_abd=(0.0, 15.0),
            knee=(65.0, 110.0), pitch=(-10.0, 15.0),
        ),
        "action": PoseRanges(
            arm_flex=(-40.0, 180.0), arm_abd=(0.0, 160.0), elbow=(0.0, 140.0), hip_flex=(-25.0, 95.0),
            hip_abd=(0.0, 40.0), knee=(0.0, 120.0), pitch=(-10.0, 30.0), lean=(-15.0, 15.0),
        ),
    }


@dataclass(frozen=True)
class FigureConfig:
    """Body proportions (fractions of the standing stature), pose distributions and drawing constants."""

    # --- proportions ---
    head_radius: float = 0.062
    neck_length: float = 0.035
    spine_length: float = 0.29  # pelvis centre to the shoulder line
    shoulder_half_width: float = 0.115
    shoulder_drop: float = 0.02
    hip_half_width: float = 0.055
    upper_arm: float = 0.17
    forearm: float = 0.15
    hand: float = 0.07
    thigh: float = 0.245
    shin: float = 0.235
    foot: float = 0.08
    torso_half_depth: float = 0.065
    waist_half_width: float = 0.09
    pelvis_half_width: float = 0.1  # torso bottom; wider than the hip joints so they are inside it
    neck_radius: float = 0.03
    upper_arm_radius: tuple[float, float] = (0.034, 0.027)  # proximal, distal
    forearm_radius: tuple[float, float] = (0.026, 0.02)
    hand_radius: float = 0.02
    thigh_radius: tuple[float, float] = (0.058, 0.04)
    shin_radius: tuple[float, float] = (0.04, 0.028)
    foot_radius: float = 0.024
    # --- variation of proportions between people (multipliers, uniform) ---
    girth_range: tuple[float, float] = (0.8, 1.25)
    shoulder_range: tuple[float, float] = (0.9, 1.12)
    leg_range: tuple[float, float] = (0.93, 1.07)
    # --- face (fractions of the head radius; directions before normalisation are in the head frame) ---
    face_point_depth: float = 0.9  # face keypoints sit at this fraction of the radius: inside the head disc
    hair_front_limit: float = 0.1  # sphere points whose front component is below this are hair
    hair_top_limit: float = 0.5  # ... and those whose up component is above this (the hairline)
    face_features_min_radius_px: float = 2.5  # smaller heads get no eyes/nose/ears drawn (still labelled)
    # --- pose distribution ---
    pose_weights: tuple[tuple[str, float], ...] = (
        ("standing", 0.22), ("walking", 0.24), ("arms_raised", 0.16), ("bending", 0.1), ("sitting", 0.12),
        ("action", 0.16),
    )
    pose_ranges: dict[str, PoseRanges] = field(default_factory=_default_pose_ranges)
    arm_at_rest_probability: float = 0.25  # arms_raised/action: an arm keeps the standing range
    leg_at_rest_probability: float = 0.5  # action: a leg keeps the standing range (nobody floats)
    elbow_in_abduction_plane_probability: float = 0.3  # forearm bends sideways (waving) not forwards
    walk_hip_amplitude: tuple[float, float] = (15.0, 30.0)  # degrees
    walk_knee_amplitude: tuple[float, float] = (35.0, 60.0)
    walk_arm_amplitude: tuple[float, float] = (10.0, 30.0)
    frontal_probability: float = 0.5  # facing near the camera
    back_probability: float = 0.2  # facing near away from the camera; the rest uniform over all yaws
    facing_jitter_deg: float = 35.0
    roll_sigma_deg: float = 5.0
    roll_limit_deg: float = 15.0
    # --- appearance ---
    long_sleeves_probability: float = 0.5
    long_pants_probability: float = 0.7
    long_hair_probability: float = 0.35
    left_clothing_shade: float = 0.72  # the left/right marker (module docstring)
    far_side_shade: float = 0.88
    head_shading: float = 0.28  # head colour *= (1 - head_shading) + head_shading * n_z
    # Draw-order tie-breakers added to a part's camera depth: the neck after the torso, the head after the
    # neck, limbs after the torso when level with it, hands/feet after their limb.
    depth_bias: dict[str, float] = field(default_factory=lambda: {
        "torso": 0.0, "neck": 0.01, "head": 0.03, "hair": -0.02, "arm": 0.02, "hand": 0.025, "leg": 0.015,
        "foot": 0.02,
    })
    min_radius_px: float = 0.8  # thinnest drawn limb


_SKIN_TONES_BGR = (
    (196, 222, 250), (170, 205, 240), (140, 180, 225), (112, 150, 205), (85, 120, 175), (62, 92, 140),
    (45, 65, 105),
)
_HAIR_BGR = (
    (20, 20, 25), (25, 35, 55), (35, 55, 90), (50, 90, 140), (110, 170, 215), (40, 70, 160), (150, 150, 155),
)


@dataclass(frozen=True)
class Pose:
    """Joint angles in radians; per-side tuples are (left, right)."""

    yaw: float = 0.0  # 0 = facing the camera, +pi/2 = facing image right
    roll: float = 0.0  # in-plane tilt, + = clockwise on screen
    pitch: float = 0.0
    lean: float = 0.0
    head_turn: float = 0.0
    head_nod: float = 0.0
    arm_flex: tuple[float, float] = (0.0, 0.0)
    arm_abd: tuple[float, float] = (0.1, 0.1)
    elbow: tuple[float, float] = (0.0, 0.0)
    elbow_sideways: tuple[bool, bool] = (False, False)
    hip_flex: tuple[float, float] = (0.0, 0.0)
    hip_abd: tuple[float, float] = (0.05, 0.05)
    knee: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Appearance:
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool = True
    long_pants: bool = True
    long_hair: bool = False
    girth: float = 1.0
    shoulders: float = 1.0
    legs: float = 1.0


@dataclass
class _Part:
    kind: str  # "capsule", "poly", "head"
    depth: float
    colour: tuple[int, int, int]
    points: np.ndarray  # (N, 2) image coordinates relative to the figure's origin
    radii: tuple[float, ...] = ()
    head: dict | None = None  # head frame and face feature data


@dataclass
class Figure:
    """A posed, projected figure in pixel units relative to its origin (the pelvis); place it with an offset."""

    keypoints: np.ndarray  # (K, 2)
    keypoint_colours: np.ndarray  # (K, 3) colour of the part each keypoint belongs to (coverage pass)
    parts: list[_Part]  # back to front
    extent: tuple[float, float, float, float]  # x0, y0, x1, y1 of everything drawn, relative to the origin
    ground: float  # y of the lowest foot point, relative to the origin (to stand figures on a floor line)


# --- sampling ---------------------------------------------------------------------------------------------------


def _uniform_deg(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return math.radians(float(rng.uniform(bounds[0], bounds[1])))


def _sample_facing(rng: np.random.Generator, cfg: FigureConfig) -> tuple[float, float]:
    u = rng.random()
    jitter = math.radians(cfg.facing_jitter_deg)
    if u < cfg.frontal_probability:
        yaw = float(rng.uniform(-jitter, jitter))
    elif u < cfg.frontal_probability + cfg.back_probability:
        yaw = math.pi + float(rng.uniform(-jitter, jitter))
    else:
        yaw = float(rng.uniform(-math.pi, math.pi))
    limit = cfg.roll_limit_deg
    roll = math.radians(float(np.clip(rng.normal(0.0, cfg.roll_sigma_deg), -limit, limit)))
    return yaw, roll


def walk_pose(
    phase: float,
    yaw: float,
    *,
    hip_amplitude: float = math.radians(25.0),
    knee_amplitude: float = math.radians(50.0),
    arm_amplitude: float = math.radians(20.0),
    roll: float = 0.0,
    head_turn: float = 0.0,
) -> Pose:
    """One instant of a walk cycle (phase in radians; one cycle = two steps)."""
    legs, arms, knees, elbows = [], [], [], []
    for side in range(2):
        p = phase + math.pi * side
        legs.append(hip_amplitude * math.sin(p))
        # The knee bends most while the leg swings forwards (hip flexion increasing).
        knees.append(math.radians(5.0) + knee_amplitude * max(0.0, math.cos(p)) ** 1.5)
        arms.append(-arm_amplitude * math.sin(p))  # arms swing against the leg of their side
        elbows.append(math.radians(12.0) + 0.8 * arm_amplitude * max(0.0, -math.sin(p)))
    return Pose(
        yaw=yaw, roll=roll, pitch=math.radians(4.0), head_turn=head_turn, arm_flex=tuple(arms),
        arm_abd=(math.radians(8.0), math.radians(8.0)), elbow=tuple(elbows), hip_flex=tuple(legs),
        hip_abd=(math.radians(2.0), math.radians(2.0)), knee=tuple(knees),
    )


def sample_pose(rng: np.random.Generator, cfg: FigureConfig | None = None, kind: str | None = None) -> Pose:
    """Draw a plausible pose of the given kind (one of POSE_KINDS; random by `cfg.pose_weights` if None)."""
    cfg = cfg or FigureConfig()
    if kind is None:
        names = [k for k, _ in cfg.pose_weights]
        weights = np.asarray([w for _, w in cfg.pose_weights], dtype=np.float64)
        kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if kind not in POSE_KINDS:
        raise ValueError(f"unknown pose kind {kind!r}; known: {POSE_KINDS}")
    yaw, roll = _sample_facing(rng, cfg)
    if kind == "walking":
        return walk_pose(
            float(rng.uniform(0.0, 2.0 * math.pi)), yaw, roll=roll,
            hip_amplitude=_uniform_deg(rng, cfg.walk_hip_amplitude),
            knee_amplitude=_uniform_deg(rng, cfg.walk_knee_amplitude),
            arm_amplitude=_uniform_deg(rng, cfg.walk_arm_amplitude),
            head_turn=_uniform_deg(rng, cfg.pose_ranges["standing"].head_turn),
        )
    ranges = cfg.pose_ranges[kind]
    rest = cfg.pose_ranges["standing"]
    arms: dict[str, list] = {"flex": [], "abd": [], "elbow": [], "sideways": []}
    legs: dict[str, list] = {"flex": [], "abd": [], "knee": []}
    for _side in range(2):
        r = rest if kind in ("arms_raised", "action") and rng.random() < cfg.arm_at_rest_probability else ranges
        arms["flex"].append(_uniform_deg(rng, r.arm_flex))
        arms["abd"].append(_uniform_deg(rng, r.arm_abd))
        arms["elbow"].append(_uniform_deg(rng, r.elbow))
        arms["sideways"].append(bool(rng.random() < cfg.elbow_in_abduction_plane_probability))
    legs_at_rest = [False, False]
    if kind == "action" and rng.random() < cfg.leg_at_rest_probability:
        legs_at_rest[int(rng.integers(2))] = True
    for side in range(2):
        r = rest if legs_at_rest[side] else ranges
        legs["flex"].append(_uniform_deg(rng, r.hip_flex))
        legs["abd"].append(_uniform_deg(rng, r.hip_abd))
        legs["knee"].append(_uniform_deg(rng, r.knee))
    if kind == "sitting":  # both thighs forward together, as on a seat
        legs["flex"][1] = legs["flex"][0] + _uniform_deg(rng, (-8.0, 8.0))
    return Pose(
        yaw=yaw, roll=roll, pitch=_uniform_deg(rng, ranges.pitch), lean=_uniform_deg(rng, ranges.lean),
        head_turn=_uniform_deg(rng, ranges.head_turn), head_nod=_uniform_deg(rng, ranges.head_nod),
        arm_flex=tuple(arms["flex"]), arm_abd=tuple(arms["abd"]), elbow=tuple(arms["elbow"]),
        elbow_sideways=tuple(arms["sideways"]), hip_flex=tuple(legs["flex"]), hip_abd=tuple(legs["abd"]),
        knee=tuple(legs["knee"]),
    )


def _hsv_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (round(b * 255), round(g * 255), round(r * 255))


def _jitter_colour(rng: np.random.Generator, colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    out = np.clip(np.asarray(colour, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(round(c) for c in out)


def sample_appearance(rng: np.random.Generator, cfg: FigureConfig | None = None) -> Appearance:
    """Skin, hair and clothing colours, clothing lengths and body build."""
    cfg = cfg or FigureConfig()
    skin = _jitter_colour(rng, _SKIN_TONES_BGR[int(rng.integers(len(_SKIN_TONES_BGR)))], 12.0)
    hair = _jitter_colour(rng, _HAIR_BGR[int(rng.integers(len(_HAIR_BGR)))], 10.0)

    def clothing() -> tuple[int, int, int]:
        return _hsv_bgr(float(rng.random()), float(rng.uniform(0.05, 0.9)), float(rng.uniform(0.15, 0.95)))

    return Appearance(
        skin=skin, hair=hair, shirt=clothing(), pants=clothing(),
        shoes=_hsv_bgr(float(rng.random()), float(rng.uniform(0.0, 0.5)), float(rng.uniform(0.05, 0.4))),
        long_sleeves=bool(rng.random() < cfg.long_sleeves_probability),
        long_pants=bool(rng.random() < cfg.long_pants_probability),
        long_hair=bool(rng.random() < cfg.long_hair_probability),
        girth=float(rng.uniform(*cfg.girth_range)), shoulders=float(rng.uniform(*cfg.shoulder_range)),
        legs=float(rng.uniform(*cfg.leg_range)),
    )


# --- geometry ---------------------------------------------------------------------------------------------------


def _limb_direction(flex: float, abd: float, side_sign: float) -> np.ndarray:
    """Unit vector of a limb hanging down (0, 1, 0), raised forwards by `flex` and outwards by `abd`."""
    ca = math.cos(abd)
    return np.array([side_sign * math.sin(abd), ca * math.cos(flex), ca * math.sin(flex)])


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(round(min(255.0, c * factor)) for c in colour)


def _body_to_camera(yaw: float, roll: float) -> np.ndarray:
    cy, sy, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return r_roll @ r_yaw


def build_figure(pose: Pose, appearance: Appearance, stature_px: float, cfg: FigureConfig | None = None) -> Figure:
    """Pose, project and scale a figure whose standing height is `stature_px` pixels."""
    if not stature_px > 0:
        raise ValueError(f"stature_px must be positive, got {stature_px}")
    cfg = cfg or FigureConfig()
    a = appearance
    g = a.girth
    rot = _body_to_camera(pose.yaw, pose.roll)
    cam_z = rot[2]  # camera depth of a body-frame vector is cam_z @ v

    # Torso frame: up vector from the forward bend and sideways lean; X', Z' by Gram-Schmidt.
    cl = math.cos(pose.lean)
    up = np.array([math.sin(pose.lean), -cl * math.cos(pose.pitch), cl * math.sin(pose.pitch)])
    tx = _normalise(np.array([1.0, 0.0, 0.0]) - up[0] * up)
    tz = _normalise(np.array([0.0, 0.0, 1.0]) - up[2] * up - tx[2] * tx)

    pelvis = np.zeros(3)
    shoulder_line = pelvis + up * cfg.spine_length
    neck_top = shoulder_line + up * cfg.neck_length
    sw = cfg.shoulder_half_width * a.shoulders
    # Shoulder joints sit a little below the shoulder line so the arm's rounded end does not poke above it.
    shoulders = [shoulder_line - up * cfg.shoulder_drop + tx * (sw * s) for s in _SIDE_SIGN]
    hips = [pelvis + np.array([cfg.hip_half_width * s, 0.0, 0.0]) for s in _SIDE_SIGN]

    # Head frame: turn about the torso's up axis, then nod.
    ht, hn = pose.head_turn, pose.head_nod
    hz0 = tz * math.cos(ht) + tx * math.sin(ht)
    hx = tx * math.cos(ht) - tz * math.sin(ht)
    hy0 = -up
    hz = hz0 * math.cos(hn) + hy0 * math.sin(hn)
    hy = hy0 * math.cos(hn) - hz0 * math.sin(hn)
    hr = cfg.head_radius
    head_centre = neck_top - hy * (hr * 0.85)

    def head_point(dx: float, dy: float, dz: float, depth: float) -> np.ndarray:
        return head_centre + _normalise(hx * dx + hy * dy + hz * dz) * (hr * depth)

    fd = cfg.face_point_depth
    face = {
        "nose": head_point(0.0, 0.12, 1.0, fd),
        "left_eye": head_point(0.4, -0.12, 0.9, fd),
        "right_eye": head_point(-0.4, -0.12, 0.9, fd),
        "left_ear": head_point(1.0, 0.0, -0.12, fd),
        "right_ear": head_point(-1.0, 0.0, -0.12, fd),
    }
    mouth = head_point(0.0, 0.45, 0.9, fd)

    # Limbs hang in the gravity-aligned body frame, so a bent-over figure's arms still hang down.
    elbows, wrists, hand_ends, knees, ankles, toes = [], [], [], [], [], []
    legs_scale = a.legs
    for i, s in enumerate(_SIDE_SIGN):
        flex, abd, e = pose.arm_flex[i], pose.arm_abd[i], pose.elbow[i]
        upper = _limb_direction(flex, abd, s)
        lower = _limb_direction(flex, abd + e, s) if pose.elbow_sideways[i] else _limb_direction(flex + e, abd, s)
        elbows.append(shoulders[i] + upper * cfg.upper_arm)
        wrists.append(elbows[i] + lower * cfg.forearm)
        hand_ends.append(wrists[i] + lower * cfg.hand)
        thigh = _limb_direction(pose.hip_flex[i], pose.hip_abd[i], s)
        shin = _limb_direction(pose.hip_flex[i] - pose.knee[i], pose.hip_abd[i], s)
        knees.append(hips[i] + thigh * cfg.thigh * legs_scale)
        ankles.append(knees[i] + shin * cfg.shin * legs_scale)
        toes.append(ankles[i] + _normalise(np.array([0.25 * s, 0.3, 1.0])) * cfg.foot)

    # Every 3D point projected in one go.
    names = list(COCO17.keypoints)
    named = {
        **face,
        "left_shoulder": shoulders[0], "right_shoulder": shoulders[1],
        "left_elbow": elbows[0], "right_elbow": elbows[1],
        "left_wrist": wrists[0], "right_wrist": wrists[1],
        "left_hip": hips[0], "right_hip": hips[1],
        "left_knee": knees[0], "right_knee": knees[1],
        "left_ankle": ankles[0], "right_ankle": ankles[1],
    }
    kp3 = np.stack([named[n] for n in names])
    kp_cam = kp3 @ rot.T
    keypoints = kp_cam[:, :2] * stature_px
    kp_depth = kp_cam[:, 2]

    def project(p: np.ndarray) -> np.ndarray:
        return (rot @ p)[:2] * stature_px

    def depth(p: np.ndarray) -> float:
        return float(cam_z @ p)

    bias = cfg.depth_bias
    min_r = cfg.min_radius_px
    parts: list[_Part] = []
    kp_colours = np.zeros((len(names), 3), dtype=np.int64)

    def px_radius(r: float) -> float:
        return max(min_r, r * stature_px)

    def capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, colour, kind: str,
                k0: int | None = None, k1: int | None = None) -> None:
        # Joint ends reuse the projected keypoint values bit for bit, so the drawn joint is the labelled one.
        e0 = keypoints[k0] if k0 is not None else project(p0)
        e1 = keypoints[k1] if k1 is not None else project(p1)
        parts.append(_Part("capsule", depth((p0 + p1) * 0.5) + bias[kind], colour, np.stack([e0, e1]),
                           (px_radius(r0 * g), px_radius(r1 * g))))
        for k in (k0, k1):
            if k is not None:
                kp_colours[k] = colour

    # Torso: a shirt box from the shoulders to the waist and a trouser box from the waist to below the hips.
    td = cfg.torso_half_depth * g
    waist = pelvis + up * (cfg.spine_length * 0.3)

    def box(top: np.ndarray, top_half: float, bottom: np.ndarray, bottom_half: float, colour) -> None:
        corners = [c + tx * (w * sx) + tz * (td * sz)
                   for c, w in ((top, top_half), (bottom, bottom_half)) for sx in (-1, 1) for sz in (-1, 1)]
        pts = np.stack([project(c) for c in corners])
        parts.append(_Part("poly", depth((top + bottom) * 0.5) + bias["torso"], colour, pts))

    box(shoulder_line + up * 0.015, sw + 0.025 * g, waist, cfg.waist_half_width * g, a.shirt)
    box(waist, cfg.waist_half_width * g, pelvis - up * 0.05, cfg.pelvis_half_width * g, a.pants)
    capsule(shoulder_line, head_centre, cfg.neck_radius, cfg.neck_radius, a.skin, "neck")
    for k in ("left_shoulder", "right_shoulder"):
        kp_colours[_K[k]] = a.shirt
    for k in ("left_hip", "right_hip"):
        kp_colours[_K[k]] = a.pants

    torso_depth = depth(shoulder_line * 0.5)
    for i, side in enumerate(_SIDES):
        left = 1.0 if i == 0 else 0.0
        cloth_shade = cfg.left_clothing_shade * left + (1.0 - left)
        far = cfg.far_side_shade if depth(shoulders[i]) < torso_depth - 1e-6 else 1.0
        sleeve = _shade(a.shirt, cloth_shade * far)
        skin = _shade(a.skin, far)
        trouser = _shade(a.pants, cloth_shade * far)
        capsule(shoulders[i], elbows[i], *cfg.upper_arm_radius, sleeve, "arm",
                _K[f"{side}_shoulder"], _K[f"{side}_elbow"])
        capsule(elbows[i], wrists[i], *cfg.forearm_radius, sleeve if a.long_sleeves else skin, "arm",
                _K[f"{side}_elbow"], _K[f"{side}_wrist"])
        kp_colours[_K[f"{side}_elbow"]] = sleeve
        capsule(wrists[i], hand_ends[i], cfg.hand_radius, cfg.hand_radius * 0.9, skin, "hand",
                _K[f"{side}_wrist"], None)
        capsule(hips[i], knees[i], *cfg.thigh_radius, trouser, "leg", _K[f"{side}_hip"], _K[f"{side}_knee"])
        capsule(knees[i], ankles[i], *cfg.shin_radius, trouser if a.long_pants else skin, "leg",
                _K[f"{side}_knee"], _K[f"{side}_ankle"])
        kp_colours[_K[f"{side}_knee"]] = trouser
        capsule(ankles[i], toes[i], cfg.foot_radius, cfg.foot_radius, _shade(a.shoes, far), "foot",
                _K[f"{side}_ankle"], None)
        kp_colours[_K[f"{side}_hip"]] = a.pants

    # Head: the camera-frame head axes drive per-pixel hair/skin and which face features face the camera.
    head_c2 = project(head_centre)
    head_r = hr * stature_px
    hx_c, hy_c, hz_c = rot @ hx, rot @ hy, rot @ hz
    face_idx = [_K[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    parts.append(_Part("head", depth(head_centre) + bias["head"], a.skin, np.stack([head_c2, project(mouth)]),
                       (head_r,), head={
                           "axes": (hx_c, hy_c, hz_c), "hair": a.hair,
                           "facing": {n: float(kp_depth[_K[n]] - (rot @ head_centre)[2]) / hr for n in face},
                           "mouth_facing": float((rot @ (mouth - head_centre))[2]) / hr,
                       }))
    for k in face_idx:
        kp_colours[k] = a.skin
    if a.long_hair:
        hang = head_centre + hy * (hr * 1.6) - hz * (hr * 0.55)
        parts.append(_Part("capsule", depth(head_centre - hz * hr) + bias["hair"], a.hair,
                           np.stack([project(head_centre - hz * (hr * 0.2)), project(hang)]),
                           (head_r * 0.95, max(min_r, head_r * 0.8))))

    parts.sort(key=lambda p: p.depth)
    extent = _extent(parts)
    ground = float(max(project(t)[1] for t in toes) + cfg.foot_radius * g * stature_px)
    ground = max(ground, float(keypoints[[_K["left_ankle"], _K["right_ankle"]], 1].max()))
    return Figure(keypoints=keypoints, keypoint_colours=kp_colours, parts=parts, extent=extent, ground=ground)


def _extent(parts: list[_Part]) -> tuple[float, float, float, float]:
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for p in parts:
        pts = p.points[:1] if p.kind == "head" else p.points
        r = max(p.radii) if p.radii else 0.0
        lo = np.minimum(lo, pts.min(axis=0) - r)
        hi = np.maximum(hi, pts.max(axis=0) + r)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


# --- drawing ----------------------------------------------------------------------------------------------------


def quantize(points: np.ndarray) -> np.ndarray:
    """Snap coordinates to the 1/16-pixel grid the drawing uses (exact in binary, so exact in JSON)."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE) / _ONE


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _circle(image: np.ndarray, ids: np.ndarray | None, label: int, colour, centre: np.ndarray, radius: float) -> None:
    c = _fixed(centre)
    c = (int(c[0]), int(c[1]))
    r = round(radius * _ONE)
    cv2.circle(image, c, r, colour, -1, cv2.LINE_8, _SHIFT)
    if ids is not None:
        cv2.circle(ids, c, r, label, -1, cv2.LINE_8, _SHIFT)


def _capsule(image: np.ndarray, ids: np.ndarray, label: int, colour, p0: np.ndarray, p1: np.ndarray,
             r0: float, r1: float) -> None:
    d = p1 - p0
    length = math.hypot(d[0], d[1])
    if length > 1e-3:
        n = np.array([-d[1], d[0]]) / length
        quad = _fixed(np.stack([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0]))
        cv2.fillConvexPoly(image, quad, colour, cv2.LINE_8, _SHIFT)
        cv2.fillConvexPoly(ids, quad, label, cv2.LINE_8, _SHIFT)
    _circle(image, ids, label, colour, p0, r0)
    _circle(image, ids, label, colour, p1, r1)


def _head(image: np.ndarray, ids: np.ndarray, label: int, part: _Part, offset: np.ndarray, keypoints: np.ndarray,
          cfg: FigureConfig) -> None:
    centre = part.points[0] + offset
    r = part.radii[0]
    h, w = ids.shape
    x0, x1 = max(0, math.floor(centre[0] - r)), min(w, math.ceil(centre[0] + r) + 1)
    y0, y1 = max(0, math.floor(centre[1] - r)), min(h, math.ceil(centre[1] + r) + 1)
    info = part.head
    if x0 < x1 and y0 < y1:
        dx = (np.arange(x0, x1, dtype=np.float32) - centre[0]) / r
        dy = (np.arange(y0, y1, dtype=np.float32)[:, None] - centre[1]) / r
        d2 = dx * dx + dy * dy
        inside = d2 <= 1.0
        nz = np.sqrt(np.maximum(0.0, 1.0 - d2))
        _, hy, hz = info["axes"]
        front = dx * hz[0] + dy * hz[1] + nz * hz[2]
        upward = -(dx * hy[0] + dy * hy[1] + nz * hy[2])
        hair = (front < cfg.hair_front_limit) | (upward > cfg.hair_top_limit)
        shade = (1.0 - cfg.head_shading) + cfg.head_shading * nz
        hair_bgr = np.asarray(info["hair"], dtype=np.float32)
        skin_bgr = np.asarray(part.colour, dtype=np.float32)
        colour = np.where(hair[..., None], hair_bgr, skin_bgr) * shade[..., None]
        region = image[y0:y1, x0:x1]
        region[inside] = np.clip(colour[inside], 0, 255).astype(np.uint8)
        ids[y0:y1, x0:x1][inside] = label
    if r < cfg.face_features_min_radius_px:
        return
    facing = info["facing"]
    skin = part.colour
    dark = (30, 30, 40)
    for ear in ("left_ear", "right_ear"):
        if facing[ear] > -0.35:
            _circle(image, ids, label, _shade(skin, 0.85), keypoints[_K[ear]], max(0.8, 0.2 * r))
    for eye in ("left_eye", "right_eye"):
        if facing[eye] > 0.2:
            p = keypoints[_K[eye]]
            if r >= 7:
                _circle(image, None, label, (235, 235, 235), p, 0.17 * r)
            _circle(image, None, label, dark, p, max(0.6, 0.09 * r))
    if facing["nose"] > 0.2:
        _circle(image, None, label, _shade(skin, 0.75), keypoints[_K["nose"]], max(0.6, 0.1 * r))
    if info["mouth_facing"] > 0.2 and r >= 4:
        _circle(image, None, label, (60, 60, 150), part.points[1] + offset, max(0.6, 0.1 * r))


def draw_figure(image: np.ndarray, ids: np.ndarray, label: int, figure: Figure, offset: tuple[float, float],
                cfg: FigureConfig | None = None) -> np.ndarray:
    """Draw `figure` at `offset` into the BGR image and the instance-id buffer; return its placed keypoints.

    The offset should be on the 1/16-pixel grid (see `quantize`) so that the returned keypoints, which are
    snapped to it, are exactly the joint centres that were drawn.
    """
    cfg = cfg or FigureConfig()
    off = np.asarray(offset, dtype=np.float64)
    keypoints = quantize(figure.keypoints + off)
    for part in figure.parts:
        if part.kind == "capsule":
            _capsule(image, ids, label, part.colour, part.points[0] + off, part.points[1] + off, *part.radii)
        elif part.kind == "poly":
            hull = cv2.convexHull(_fixed(part.points + off))
            cv2.fillConvexPoly(image, hull, part.colour, cv2.LINE_8, _SHIFT)
            cv2.fillConvexPoly(ids, hull, label, cv2.LINE_8, _SHIFT)
        else:
            _head(image, ids, label, part, off, keypoints, cfg)
    # Coverage pass: a joint must be its own figure's pixel (pixel rounding can leave a tiny head's face
    # point or a sub-pixel limb end uncovered); paint such a pixel in the colour of its part.
    h, w = ids.shape
    px = np.floor(keypoints + 0.5).astype(np.int64)
    for k in range(len(px)):
        x, y = px[k]
        if 0 <= x < w and 0 <= y < h and ids[y, x] != label:
            ids[y, x] = label
            image[y, x] = figure.keypoint_colours[k]
    return keypoints
