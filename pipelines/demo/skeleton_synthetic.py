"""Synthetic COCO-17 keypoint sequences of everyday actions, for the demo skeleton model.

A stick figure with human proportions (a 3-D articulated body: pelvis, torso, head, upper
arms, forearms, thighs, shanks) performs one of :data:`CLASSES`; its joint angles follow
per-class rules with random amplitude, frequency, phase and speed, and it is projected into
a random frame as a pose estimator (BlazePose mapped to COCO-17, RTMPose, ...) would report
it: ``(T, 17, 2)`` pixel coordinates and ``(T, 17)`` scores.

Why these six classes (:data:`CLASSES`): they are what people in front of a street camera
(``vtest.avi``) or a webcam do most, and each is visible in 2-D keypoints alone, through a
different cue, so a small model can tell them apart from any viewpoint:

* ``standing``: the body stays put; small sway, idle arm poses (at the sides, on the hips,
  crossed, a hand at the ear, hands in front), occasional small gestures below the shoulders;
* ``walking``: the hips translate (or, walking towards / away from the camera, the person
  grows / shrinks and moves vertically) while the legs swing in antiphase;
* ``waving``: one or both hands above the shoulder, the forearm (or whole arm) swinging
  side to side at 1.2-3 Hz;
* ``arms_up``: both wrists above the head, held still or raised once and held;
* ``squatting``: hips and head go down and up (repeated squats, going down and staying,
  or a held squat), including bending down at the waist with straight legs;
* ``jumping``: the whole body leaves the ground (hops in place, jumping jacks, one jump),
  with the knees bending on each landing.

Nuisance, drawn per sequence: person height 40-400 px (log-uniform, never taller than 90 %
of the frame), frame size, position, facing direction (any yaw: front, side, 3/4, back),
camera tilt 0-35° and perspective (a person walking away shrinks), body proportions ±8 %,
frame rate (:data:`FPS_RANGE`), keypoint jitter (white and slowly drifting, proportional to
the person's size, plus a pixel floor), outliers, confidence scores that drop for joints on
the far side of the body and for the face seen from behind, missing joints and frames
(coordinates 0 and score 0, as pose models report them), and partial occlusions (lower
body, one side, one arm) during part of the window. Every keypoint stays inside the frame.

Everything is deterministic given the ``numpy.random.Generator`` passed in.

Public API:

* :func:`make_sequence` makes one :class:`SkeletonSequence` of a class;
* :func:`make_dataset` makes a balanced, seeded list of them;
* :func:`to_pose_results` turns one (or several people's) sequence into MMAction2's
  ``PoseDataset`` sample dict, what its skeleton test pipeline takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

CLASSES: tuple[str, ...] = ("standing", "walking", "waving", "arms_up", "squatting", "jumping")

#: COCO-17 keypoint names, in order.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16
NUM_KEYPOINTS = 17

#: Frame sizes (width, height) a sequence is placed in: webcam, vtest.avi (768x576), HD.
FRAME_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (768, 576), (640, 360), (1280, 720), (1920, 1080))
FPS_RANGE = (10.0, 30.0)
HEIGHT_RANGE = (40.0, 400.0)  # person height in pixels, log-uniform
MAX_HEIGHT_FRACTION = 0.9  # of the frame height
ANKLE_HEIGHT = 0.04  # ankle keypoint above the ground, in body heights


@dataclass(frozen=True)
class Nuisance:
    """What varies besides the action; the defaults are the training distribution.

    Attributes:
        height_range: Person height in pixels (log-uniform), before it is capped to fit.
        frame_sizes: ``(width, height)`` of the frames to choose from.
        missing_rate: Upper bound of the per-sequence rate of missing joints (score 0,
            coordinates 0), drawn uniformly in ``[0, missing_rate]`` for 70 % of the sequences.
        missing_rate_fixed: If set, every sequence has exactly this missing-joint rate.
        occlusion_prob: Probability that part of the body is occluded during part of the window.
        missing_frame_prob: Probability of a run of 1-5 frames with no keypoints at all.
        jitter: Range of the white keypoint noise, as a fraction of the person height.
        drift: Range of the slowly varying keypoint error, as a fraction of the person height.
        outlier_rate: Upper bound of the rate of keypoints thrown 10-30 % of the height away.
    """

    height_range: tuple[float, float] = HEIGHT_RANGE
    frame_sizes: tuple[tuple[int, int], ...] = FRAME_SIZES
    missing_rate: float = 0.12
    missing_rate_fixed: float | None = None
    occlusion_prob: float = 0.25
    missing_frame_prob: float = 0.1
    jitter: tuple[float, float] = (0.003, 0.02)
    drift: tuple[float, float] = (0.0, 0.015)
    outlier_rate: float = 0.01

    def __post_init__(self) -> None:
        lo, hi = self.height_range
        if not 0 < lo <= hi:
            raise ValueError(f"height_range: expected 0 < low <= high, got {self.height_range!r}")
        if not self.frame_sizes or any(w <= 0 or h <= 0 for w, h in self.frame_sizes):
            raise ValueError(f"frame_sizes: expected positive (width, height) pairs, got {self.frame_sizes!r}")
        for name in ("missing_rate", "occlusion_prob", "missing_frame_prob", "outlier_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        if self.missing_rate_fixed is not None and not 0 <= self.missing_rate_fixed <= 1:
            raise ValueError(
                f"missing_rate_fixed: expected None or a number in [0, 1], got {self.missing_rate_fixed!r}"
            )


#: No nuisance beyond the pose itself: no jitter, no missing joints, no occlusion.
CLEAN = Nuisance(
    missing_rate=0.0, occlusion_prob=0.0, missing_frame_prob=0.0, jitter=(0.0, 0.0), drift=(0.0, 0.0), outlier_rate=0.0
)


@dataclass(frozen=True)
class SkeletonSequence:
    """One person's keypoints over a window, as a pose estimator reports them.

    Attributes:
        keypoints: ``(T, 17, 2)`` float32 pixel ``[x, y]`` (COCO-17 order); a missing joint is ``[0, 0]``.
        scores: ``(T, 17)`` float32 in ``[0, 1]``; a missing joint scores 0.
        label: Index into :data:`CLASSES`.
        img_shape: ``(height, width)`` of the frame.
        fps: Frame rate the motion was sampled at.
        person_height: The person's standing height in pixels at the first frame.
        info: What was drawn (variant, facing, ...), for debugging and robustness tables.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    label: int
    img_shape: tuple[int, int]
    fps: float
    person_height: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """The class name."""
        return CLASSES[self.label]

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.keypoints.shape[0])


def check_action(action: str) -> int:
    """Index of ``action`` in :data:`CLASSES`.

    Raises:
        ValueError: If ``action`` is not one of :data:`CLASSES`.
    """
    try:
        return CLASSES.index(action)
    except ValueError:
        raise ValueError(f"action: expected one of {', '.join(CLASSES)}, got {action!r}") from None


# --------------------------------------------------------------------------- body model


@dataclass(frozen=True)
class Body:
    """Segment lengths in body heights (standing height 1, ankles at :data:`ANKLE_HEIGHT`)."""

    shoulder_half: float = 0.12
    hip_half: float = 0.08
    torso: float = 0.29  # pelvis centre to shoulder line
    head: float = 0.395  # pelvis centre to head centre
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.245
    shank: float = 0.245

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Body:
        """Average proportions, each scaled by a random factor in ``[0.92, 1.08]``."""
        base = cls()
        return cls(**{name: value * float(rng.uniform(0.92, 1.08)) for name, value in vars(base).items()})


def _rad(deg: np.ndarray | float) -> np.ndarray:
    return np.radians(np.asarray(deg, dtype=np.float64))


def _direction(elevation: np.ndarray, azimuth: np.ndarray, side: float) -> np.ndarray:
    """Unit vectors ``(T, 3)`` of a limb segment in the torso frame (x: the person's left, y: up, z: forward).

    ``elevation`` 0 points down, 90 horizontal, 180 up; ``azimuth`` 0 points outwards (to
    the person's left for ``side=+1``, right for ``side=-1``), 90 forwards. Elevations
    beyond 180 or below 0 swing the segment inwards, across the body's midline.
    """
    e, a = _rad(elevation), _rad(azimuth)
    return np.stack([side * np.sin(e) * np.cos(a), -np.cos(e), np.sin(e) * np.sin(a)], axis=-1)


def _leg_direction(flexion: np.ndarray, abduction: np.ndarray, side: float) -> np.ndarray:
    """Unit vectors ``(T, 3)`` of a thigh or shank pitched ``flexion`` degrees forward and ``abduction`` outwards."""
    f, b = _rad(flexion), _rad(abduction)
    return np.stack([side * np.sin(b), -np.cos(f) * np.cos(b), np.sin(f) * np.cos(b)], axis=-1)


def _rotation_x(deg: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations tipping +y towards +z (a forward lean) by ``deg``."""
    r = _rad(deg)
    c, s = np.cos(r), np.sin(r)
    z, o = np.zeros_like(r), np.ones_like(r)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rotation_z(deg: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations tipping +y towards +x (a lean to the person's left) by ``deg``."""
    r = _rad(deg)
    c, s = np.cos(r), np.sin(r)
    z, o = np.zeros_like(r), np.ones_like(r)
    return np.stack([np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _rotation_y(deg: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations about the vertical axis (a turn towards the person's left) by ``deg``."""
    r = _rad(deg)
    c, s = np.cos(r), np.sin(r)
    z, o = np.zeros_like(r), np.ones_like(r)
    return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)


@dataclass
class Angles:
    """Joint angles (degrees) and body motion per frame; every array is ``(T,)``.

    Arms use :func:`_direction` (elevation / azimuth of the upper arm and of the forearm,
    both in the torso frame), legs :func:`_leg_direction` (thigh flexion, knee bend:
    the shank is pitched ``hip_flex - knee``). ``lift`` raises the feet off the ground
    (body heights); ``travel`` moves the body along its facing direction (body heights).
    """

    n: int
    lean: np.ndarray = field(init=False)
    side_lean: np.ndarray = field(init=False)
    twist: np.ndarray = field(init=False)
    head_yaw: np.ndarray = field(init=False)
    head_pitch: np.ndarray = field(init=False)
    arm_e: list[np.ndarray] = field(init=False)  # [left, right]
    arm_a: list[np.ndarray] = field(init=False)
    fore_e: list[np.ndarray] = field(init=False)
    fore_a: list[np.ndarray] = field(init=False)
    hip_flex: list[np.ndarray] = field(init=False)
    hip_abd: list[np.ndarray] = field(init=False)
    knee: list[np.ndarray] = field(init=False)
    lift: np.ndarray = field(init=False)
    travel: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        def zeros() -> np.ndarray:
            return np.zeros(self.n)

        self.lean, self.side_lean, self.twist = zeros(), zeros(), zeros()
        self.head_yaw, self.head_pitch = zeros(), zeros()
        self.arm_e, self.arm_a = [zeros(), zeros()], [zeros(), zeros()]
        self.fore_e, self.fore_a = [zeros(), zeros()], [zeros(), zeros()]
        self.hip_flex, self.hip_abd, self.knee = [zeros(), zeros()], [zeros(), zeros()], [zeros(), zeros()]
        self.lift, self.travel = zeros(), zeros()

    def set_arm(self, i: int, e: Any, a: Any, fe: Any, fa: Any) -> None:
        """Set arm ``i`` (0 left, 1 right): upper-arm and forearm elevation / azimuth."""
        self.arm_e[i] = np.broadcast_to(np.asarray(e, np.float64), (self.n,)).copy()
        self.arm_a[i] = np.broadcast_to(np.asarray(a, np.float64), (self.n,)).copy()
        self.fore_e[i] = np.broadcast_to(np.asarray(fe, np.float64), (self.n,)).copy()
        self.fore_a[i] = np.broadcast_to(np.asarray(fa, np.float64), (self.n,)).copy()


def forward_kinematics(angles: Angles, body: Body, grounded: bool = True) -> np.ndarray:
    """Joint positions ``(T, 17, 3)`` in the body frame (x left, y up, z forward), in body heights.

    With ``grounded`` the body is shifted vertically so that the lower ankle is at
    :data:`ANKLE_HEIGHT` (plus ``angles.lift``) in every frame: a squat lowers the hips,
    a walking stride bobs them.
    """
    n = angles.n
    out = np.zeros((n, NUM_KEYPOINTS, 3))
    pelvis = np.zeros((n, 3))
    torso_rot = _rotation_y(angles.twist) @ _rotation_z(angles.side_lean) @ _rotation_x(angles.lean)
    head_rot = torso_rot @ _rotation_y(angles.head_yaw) @ _rotation_x(angles.head_pitch)

    def torso_point(x: float, y: float, z: float, rot: np.ndarray = torso_rot) -> np.ndarray:
        return np.einsum("tij,j->ti", rot, np.array([x, y, z]))

    head_centre = pelvis + torso_point(0.0, body.head, 0.0)
    out[:, NOSE] = head_centre + torso_point(0.0, 0.0, 0.055, head_rot)
    out[:, L_EYE] = head_centre + torso_point(0.03, 0.025, 0.045, head_rot)
    out[:, R_EYE] = head_centre + torso_point(-0.03, 0.025, 0.045, head_rot)
    out[:, L_EAR] = head_centre + torso_point(0.07, 0.01, -0.005, head_rot)
    out[:, R_EAR] = head_centre + torso_point(-0.07, 0.01, -0.005, head_rot)
    for i, side in enumerate((1.0, -1.0)):
        shoulder = pelvis + torso_point(side * body.shoulder_half, body.torso, 0.0)
        upper = np.einsum("tij,tj->ti", torso_rot, _direction(angles.arm_e[i], angles.arm_a[i], side))
        fore = np.einsum("tij,tj->ti", torso_rot, _direction(angles.fore_e[i], angles.fore_a[i], side))
        elbow = shoulder + body.upper_arm * upper
        out[:, (L_SHOULDER, R_SHOULDER)[i]] = shoulder
        out[:, (L_ELBOW, R_ELBOW)[i]] = elbow
        out[:, (L_WRIST, R_WRIST)[i]] = elbow + body.forearm * fore
        hip_rot = _rotation_y(angles.twist * 0.4)
        hip = pelvis + np.einsum("tij,j->ti", hip_rot, np.array([side * body.hip_half, 0.0, 0.0]))
        thigh = _leg_direction(angles.hip_flex[i], angles.hip_abd[i], side)
        shank = _leg_direction(angles.hip_flex[i] - angles.knee[i], angles.hip_abd[i], side)
        knee = hip + body.thigh * thigh
        out[:, (L_HIP, R_HIP)[i]] = hip
        out[:, (L_KNEE, R_KNEE)[i]] = knee
        out[:, (L_ANKLE, R_ANKLE)[i]] = knee + body.shank * shank
    if grounded:
        lowest = np.minimum(out[:, L_ANKLE, 1], out[:, R_ANKLE, 1])
        out[:, :, 1] += (ANKLE_HEIGHT - lowest + angles.lift)[:, None]
    return out


# --------------------------------------------------------------------------- actions


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _slow_noise(t: np.ndarray, rng: np.random.Generator, amplitude: float, freq: tuple[float, float]) -> np.ndarray:
    """A smooth random signal: two sines of random frequency and phase."""
    out = np.zeros_like(t)
    for _ in range(2):
        f = rng.uniform(*freq)
        out += amplitude / 2 * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi))
    return out


REST_POSES = ("sides", "sides", "sides", "hips", "crossed", "ear", "front", "pockets")


def _rest_arm(angles: Angles, i: int, t: np.ndarray, rng: np.random.Generator, pose: str | None = None) -> str:
    """An idle arm ``i``: hanging, on the hip, crossed, hand at the ear, holding something, in a pocket."""
    pose = pose or str(rng.choice(REST_POSES))
    sway = _slow_noise(t, rng, 6.0, (0.1, 0.5))
    if pose == "sides":
        e = rng.uniform(3, 15)
        angles.set_arm(i, e + sway, rng.uniform(0, 50), e + rng.uniform(5, 30) + sway, rng.uniform(40, 90))
    elif pose == "hips":
        angles.set_arm(
            i, rng.uniform(30, 45) + sway / 2, rng.uniform(-20, 10), rng.uniform(-60, -35), rng.uniform(-10, 20)
        )
    elif pose == "crossed":
        angles.set_arm(i, rng.uniform(15, 30), rng.uniform(60, 90), rng.uniform(80, 100), rng.uniform(150, 170))
    elif pose == "ear":
        angles.set_arm(i, rng.uniform(15, 35), rng.uniform(70, 100), rng.uniform(150, 175), rng.uniform(90, 130))
    elif pose == "front":
        angles.set_arm(i, rng.uniform(10, 30) + sway, rng.uniform(70, 100), rng.uniform(60, 100) + sway, 90.0)
    else:  # pockets
        angles.set_arm(i, rng.uniform(5, 15), rng.uniform(-30, 10), rng.uniform(-20, 5), rng.uniform(60, 120))
    return pose


def _stand_legs(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> None:
    """Both feet on the ground, a little apart, knees nearly straight, weight shifting slowly."""
    shift = _slow_noise(t, rng, rng.uniform(0, 4), (0.05, 0.3))
    for i, side in enumerate((1.0, -1.0)):
        angles.hip_abd[i] = np.full(angles.n, rng.uniform(0, 8)) + side * shift
        angles.hip_flex[i] = np.full(angles.n, rng.uniform(-3, 5)) + _slow_noise(t, rng, 2.0, (0.05, 0.3))
        angles.knee[i] = np.full(angles.n, rng.uniform(0, 8))
    angles.side_lean = -shift / 2 + _slow_noise(t, rng, 2.0, (0.05, 0.3))
    angles.lean = np.full(angles.n, rng.uniform(-3, 8)) + _slow_noise(t, rng, 2.0, (0.05, 0.3))


def _idle_head(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> None:
    angles.head_yaw = rng.uniform(-30, 30) + _slow_noise(t, rng, 20.0, (0.05, 0.4))
    angles.head_pitch = rng.uniform(-10, 15) + _slow_noise(t, rng, 8.0, (0.05, 0.4))
    angles.twist = _slow_noise(t, rng, 8.0, (0.05, 0.3))


def _standing(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    _stand_legs(angles, t, rng)
    poses = [_rest_arm(angles, i, t, rng) for i in range(2)]
    if rng.random() < 0.35:  # talking with one hand: small, slow, below the shoulder
        i = int(rng.integers(2))
        amp, f, ph = rng.uniform(8, 25), rng.uniform(0.3, 1.2), rng.uniform(0, 2 * math.pi)
        e, fe = rng.uniform(10, 35), rng.uniform(50, 100)
        angles.set_arm(i, e, rng.uniform(50, 100), fe + amp * np.sin(2 * math.pi * f * t + ph), rng.uniform(60, 120))
        poses[i] = "gesture"
    return {"arms": poses}


def _walking(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    freq = rng.uniform(0.7, 1.05)  # strides per second
    stride = rng.uniform(0.5, 0.9)  # body heights per stride
    phase = 2 * math.pi * freq * t + rng.uniform(0, 2 * math.pi)
    hip_amp = 14 + 22 * (stride - 0.5)
    knee_amp = rng.uniform(35, 60)
    for i, offset in enumerate((0.0, math.pi)):
        p = phase + offset
        angles.hip_flex[i] = hip_amp * np.sin(p) + 3
        angles.knee[i] = 5 + knee_amp * np.clip(np.cos(p - 0.4), 0, None) ** 2
        angles.hip_abd[i] = np.full(angles.n, rng.uniform(0, 4))
    angles.lean = np.full(angles.n, rng.uniform(0, 8)) + 2 * np.sin(2 * phase)
    angles.twist = rng.uniform(3, 8) * np.sin(phase)
    angles.side_lean = 2 * np.sin(phase)
    angles.travel = stride * freq * t
    swing = rng.uniform(8, 30)
    arms = []
    for i, sign in enumerate((-1.0, 1.0)):
        if rng.random() < 0.25:  # carrying, phoning, hands in pockets: that arm does not swing
            arms.append(_rest_arm(angles, i, t, rng, str(rng.choice(("front", "ear", "pockets", "crossed")))))
            continue
        e = sign * swing * np.sin(phase) + rng.uniform(3, 10)
        bend = rng.uniform(5, 30)
        # A forward swing is azimuth 90 (positive elevation); a backward swing mirrors it.
        angles.set_arm(i, np.abs(e), np.where(e >= 0, 80.0, -80.0), np.abs(e) + bend, np.where(e >= 0, 85.0, 60.0))
        arms.append("swing")
    angles.head_yaw = _slow_noise(t, rng, 15.0, (0.05, 0.3))
    angles.head_pitch = rng.uniform(-5, 15) + np.zeros(angles.n)
    return {"arms": arms, "speed": stride * freq, "stride_hz": freq}


def _waving(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    _stand_legs(angles, t, rng)
    _idle_head(angles, t, rng)
    which = str(rng.choice(("left", "right", "both"), p=(0.4, 0.4, 0.2)))
    arms = [0, 1] if which == "both" else [0 if which == "left" else 1]
    style = "big" if rng.random() < 0.2 else "forearm"
    freq = rng.uniform(1.2, 3.0)
    raise_at = t[0] + rng.uniform(0.0, 0.5) if rng.random() < 0.3 else -1e9
    for i in range(2):
        if i not in arms:
            _rest_arm(angles, i, t, rng)
            continue
        ph = rng.uniform(0, 2 * math.pi)
        swing = np.sin(2 * math.pi * freq * t + ph)
        if style == "forearm":
            e = rng.uniform(70, 150) + _slow_noise(t, rng, 6.0, (0.1, 0.5))
            fe = rng.uniform(160, 185) + rng.uniform(15, 40) * swing
            a, fa = rng.uniform(-10, 60), rng.uniform(0, 50)
        else:
            e = rng.uniform(135, 160) + rng.uniform(12, 25) * swing
            fe = e + rng.uniform(0, 20)
            a, fa = rng.uniform(-10, 40), rng.uniform(-10, 40)
        up = _smoothstep((t - raise_at) / 0.4)  # optionally the arm comes up first
        rest_e = rng.uniform(5, 15)
        angles.set_arm(i, rest_e + (e - rest_e) * up, a, rest_e + 10 + (fe - rest_e - 10) * up, fa)
    return {"arms": which, "style": style, "wave_hz": freq}


def _arms_up(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    _stand_legs(angles, t, rng)
    _idle_head(angles, t, rng)
    angles.head_pitch = angles.head_pitch - rng.uniform(0, 15)
    profile = "raise" if rng.random() < 0.4 else "hold"
    start = t[0] + rng.uniform(0.0, 0.35) * (t[-1] - t[0])
    up = _smoothstep((t - start) / rng.uniform(0.3, 0.8)) if profile == "raise" else np.ones(angles.n)
    for i in range(2):
        e = rng.uniform(150, 180) + _slow_noise(t, rng, 6.0, (0.1, 0.4))
        fe = e + rng.uniform(-10, 25)
        a, fa = rng.uniform(-20, 60), rng.uniform(-20, 60)
        rest_e = rng.uniform(3, 15)
        angles.set_arm(i, rest_e + (e - rest_e) * up, a, rest_e + 10 + (fe - rest_e - 10) * up, fa)
    return {"profile": profile}


def _squatting(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    _stand_legs(angles, t, rng)
    _idle_head(angles, t, rng)
    profile = str(rng.choice(("repeat", "down", "held"), p=(0.5, 0.25, 0.25)))
    style = "stoop" if rng.random() < 0.3 else "squat"
    depth = rng.uniform(0.7, 1.0)
    if profile == "repeat":
        f = rng.uniform(0.3, 0.8)
        bottom = rng.uniform(t[0], t[-1])  # a slow squat's bottom still falls inside the window
        s = depth * (0.5 + 0.5 * np.cos(2 * math.pi * f * (t - bottom)))
    elif profile == "down":
        start = t[0] + rng.uniform(0.0, 0.4) * (t[-1] - t[0])
        s = depth * _smoothstep((t - start) / rng.uniform(0.5, 1.2))
    else:
        s = depth * (0.9 + 0.1 * np.sin(2 * math.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3)))
    if style == "squat":
        abd = rng.uniform(5, 20)
        for i in range(2):
            angles.hip_flex[i] = 100 * s + rng.uniform(-5, 5)
            angles.knee[i] = 125 * s + rng.uniform(-5, 5)
            angles.hip_abd[i] = np.full(angles.n, abd)
        angles.lean = 35 * s + rng.uniform(-5, 10)
    else:
        for i in range(2):
            angles.hip_flex[i] = 10 * s
            angles.knee[i] = 15 * s
        angles.lean = rng.uniform(60, 95) * s
    arms_forward = style == "squat" and rng.random() < 0.5
    for i in range(2):
        if arms_forward:  # counterbalance: arms reach forward as the hips go down
            angles.set_arm(i, 10 + 70 * s, 90.0, 15 + 75 * s, 90.0)
        elif rng.random() < 0.7:  # arms hang under gravity
            hang = angles.lean * rng.uniform(0.7, 1.0)
            angles.set_arm(i, hang, 85.0, hang + rng.uniform(0, 20), 85.0)
        else:
            _rest_arm(angles, i, t, rng, str(rng.choice(("hips", "front", "crossed"))))
    return {"profile": profile, "style": style}


def _jumping(angles: Angles, t: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    _idle_head(angles, t, rng)
    style = str(rng.choice(("hop", "jacks", "single"), p=(0.6, 0.25, 0.15)))
    if style == "single":
        period = rng.uniform(0.5, 0.8)
        flight = rng.uniform(0.45, 0.65)
        start = t[0] + rng.uniform(0.1, 0.5) * max(t[-1] - t[0] - period, 0.0)
        tau = (t - start) / period
        active = (tau >= 0) & (tau < 1)
        tau = np.where(active, tau, 0.999)
        apex = rng.uniform(0.1, 0.3)
    else:
        freq = rng.uniform(1.2, 2.4) if style == "hop" else rng.uniform(0.8, 1.5)
        flight = rng.uniform(0.4, 0.65)
        tau = np.mod(freq * t + rng.uniform(0, 1), 1.0)
        apex = rng.uniform(0.05, 0.25) if style == "hop" else rng.uniform(0.03, 0.1)
        active = np.ones(angles.n, dtype=bool)
    air = tau < flight
    x = tau / flight
    lift = np.where(air, apex * 4 * x * (1 - x), 0.0)
    ground = np.where(air, 0.0, np.sin(math.pi * (tau - flight) / (1 - flight)))  # landing crouch 0..1..0
    crouch = rng.uniform(25, 70)
    knee = 8 + np.where(air, rng.uniform(5, 20), crouch * ground)
    knee = np.where(active, knee, rng.uniform(0, 8))
    spread = np.zeros(angles.n)
    if style == "jacks":
        spread = np.where(air, 0.5 - 0.5 * np.cos(math.pi * x), 1.0 - ground)  # open in the air, closed on landing
    for i in range(2):
        angles.knee[i] = knee
        angles.hip_flex[i] = 0.6 * (knee - 8) + rng.uniform(-3, 3)
        angles.hip_abd[i] = rng.uniform(0, 6) + 18 * spread
    angles.lean = 0.3 * (knee - 8) + rng.uniform(-3, 5)
    angles.lift = lift * active
    if style == "jacks":
        for i in range(2):
            e = 20 + 150 * spread
            angles.set_arm(i, e, rng.uniform(-10, 20), e + rng.uniform(0, 20), rng.uniform(-10, 20))
    else:
        arm_style = str(rng.choice(("swing", "rest", "hips")))
        for i in range(2):
            if arm_style == "swing":  # arms swing up on take-off, back on landing
                e = 15 + rng.uniform(20, 60) * np.where(air, 1 - x, ground)
                angles.set_arm(i, e, 80.0, e + rng.uniform(10, 40), 85.0)
            else:
                _rest_arm(angles, i, t, rng, "hips" if arm_style == "hips" else "sides")
    return {"style": style}


_ACTIONS = {
    "standing": _standing,
    "walking": _walking,
    "waving": _waving,
    "arms_up": _arms_up,
    "squatting": _squatting,
    "jumping": _jumping,
}


# --------------------------------------------------------------------------- camera and noise


def _project(
    points: np.ndarray, travel: np.ndarray, yaw: float, pitch: float, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame points ``(T, 17, 3)`` to image offsets ``(T, 17, 2)`` in body heights, and their depth.

    The person faces ``yaw`` degrees (0: the camera, 90: image right) and moves ``travel``
    body heights along it; the camera looks down ``pitch`` degrees from ``distance`` body
    heights (weak perspective: a person walking away shrinks and rises in the image).
    """
    c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    world_x = x * c + z * s + (travel * s)[:, None]
    world_z = x * s - z * c - (travel * c)[:, None]  # +z is away from the camera
    scale = distance / np.maximum(distance + (-travel * c)[:, None], 0.25 * distance)
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    u = world_x * scale
    v = -(y * cp + world_z * sp) * scale
    return np.stack([u, v], -1), world_z


def _visibility(points: np.ndarray, depth: np.ndarray, yaw: float) -> np.ndarray:
    """Score factors ``(T, 17)`` in ``(0, 1]``: joints behind the body and a face seen from behind score lower."""
    behind = depth - depth[:, (L_HIP, R_HIP, L_SHOULDER, R_SHOULDER)].mean(1, keepdims=True)
    factor = np.where(behind > 0.04, 0.55, 1.0)
    facing = math.cos(math.radians(yaw))  # 1: face to the camera, -1: back to it
    face = np.clip(0.65 + 0.45 * facing, 0.2, 1.0)
    factor[:, :5] *= face
    return factor


def _choose_height(nuisance: Nuisance, rng: np.random.Generator) -> float:
    lo, hi = nuisance.height_range
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def make_sequence(
    action: str,
    num_frames: int,
    rng: np.random.Generator,
    *,
    fps: float | None = None,
    nuisance: Nuisance = Nuisance(),
    yaw: float | None = None,
    pitch: float | None = None,
) -> SkeletonSequence:
    """One person performing ``action`` for ``num_frames`` frames.

    Args:
        action: One of :data:`CLASSES`.
        num_frames: Frames in the window (``T``).
        rng: Source of every random choice; the same generator state gives the same sequence.
        fps: Frame rate; drawn from :data:`FPS_RANGE` when None.
        nuisance: Camera, size and pose-estimator noise (:class:`Nuisance`).
        yaw: Facing direction in degrees (0: towards the camera, 90: towards image right);
            drawn uniformly when None.
        pitch: Camera tilt in degrees (0: level, 35: looking down steeply); drawn in
            ``[0, 35]`` when None.

    Returns:
        The sequence; its keypoints lie inside the frame (missing ones are ``[0, 0]``).

    Raises:
        ValueError: If ``action`` is unknown or ``num_frames`` < 1.
    """
    label = check_action(action)
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    fps = float(rng.uniform(*FPS_RANGE)) if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"fps: expected a positive number, got {fps}")
    t = (np.arange(num_frames) + rng.uniform(0, 100)) / fps
    t = t - t[0] + rng.uniform(0, 10)  # the window starts at a random moment of the action
    body = Body.sample(rng)
    angles = Angles(num_frames)
    info = _ACTIONS[action](angles, t, rng)
    points = forward_kinematics(angles, body)
    yaw = float(rng.uniform(0, 360)) if yaw is None else float(yaw)
    pitch = float(rng.uniform(0, 35)) if pitch is None else float(pitch)
    distance = float(rng.uniform(6, 30))
    offsets, depth = _project(points, angles.travel, yaw, pitch, distance)

    width, frame_h = nuisance.frame_sizes[int(rng.integers(len(nuisance.frame_sizes)))]
    height_px = min(_choose_height(nuisance, rng), MAX_HEIGHT_FRACTION * frame_h)
    extent = offsets.reshape(-1, 2).max(0) - offsets.reshape(-1, 2).min(0)
    margin = 0.03
    fit = min((width * (1 - 2 * margin)) / max(extent[0], 1e-6), (frame_h * (1 - 2 * margin)) / max(extent[1], 1e-6))
    height_px = min(height_px, fit)  # a long walk across the frame needs a smaller person
    pix = offsets * height_px
    lo, hi = pix.reshape(-1, 2).min(0), pix.reshape(-1, 2).max(0)
    x_lo, y_lo = margin * width - lo[0], margin * frame_h - lo[1]
    x0 = rng.uniform(x_lo, max(x_lo, (1 - margin) * width - hi[0]))
    y0 = rng.uniform(y_lo, max(y_lo, (1 - margin) * frame_h - hi[1]))
    clean = pix + np.array([x0, y0])
    keypoints, scores = _corrupt(clean, points, depth, yaw, height_px, nuisance, rng)
    keypoints[..., 0] = np.clip(keypoints[..., 0], 0, width - 1)
    keypoints[..., 1] = np.clip(keypoints[..., 1], 0, frame_h - 1)
    keypoints[scores <= 0] = 0.0
    info.update(yaw=yaw, pitch=pitch, variant=info.get("style", info.get("profile", "")))
    return SkeletonSequence(
        keypoints=keypoints.astype(np.float32),
        scores=scores.astype(np.float32),
        label=label,
        img_shape=(int(frame_h), int(width)),
        fps=fps,
        person_height=float(height_px),
        info=info,
    )


def _corrupt(
    clean: np.ndarray,
    points: np.ndarray,
    depth: np.ndarray,
    yaw: float,
    height_px: float,
    nuisance: Nuisance,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """What a pose estimator makes of ``clean`` pixel keypoints: noise, scores, gaps and occlusions."""
    n = clean.shape[0]
    shape = (n, NUM_KEYPOINTS)
    jitter = rng.uniform(*nuisance.jitter) * height_px + (rng.uniform(0.2, 1.0) if nuisance.jitter[1] > 0 else 0.0)
    drift_sigma = rng.uniform(*nuisance.drift) * height_px
    noisy = clean + rng.normal(0.0, 1.0, (*shape, 2)) * jitter
    if drift_sigma > 0:  # slowly varying error: a random walk, low-pass filtered and rescaled
        walk = np.cumsum(rng.normal(0.0, 1.0, (*shape, 2)), axis=0)
        walk -= walk.mean(0, keepdims=True)
        walk /= max(float(walk.std()), 1e-6)
        noisy += walk * drift_sigma
    base = rng.uniform(0.55, 0.98) - (0.15 if height_px < 80 else 0.0)
    scores = np.clip(base - np.abs(rng.normal(0.0, 0.08, shape)), 0.05, 1.0) * _visibility(points, depth, yaw)
    if nuisance.outlier_rate > 0:
        out = rng.random(shape) < rng.uniform(0, nuisance.outlier_rate)
        throw = rng.normal(0.0, 1.0, (*shape, 2)) * rng.uniform(0.1, 0.3) * height_px
        noisy[out] += throw[out]
        scores[out] *= rng.uniform(0.2, 0.7)
    if nuisance.occlusion_prob > 0 and rng.random() < nuisance.occlusion_prob:
        region = str(rng.choice(("lower", "legs", "left", "right", "arm")))
        joints = {
            "lower": [L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE],
            "legs": [L_KNEE, R_KNEE, L_ANKLE, R_ANKLE],
            "left": [L_EYE, L_EAR, L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE],
            "right": [R_EYE, R_EAR, R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE],
            "arm": [int(rng.choice([L_ELBOW, R_ELBOW]))],
        }[region]
        if region == "arm":
            joints.append(joints[0] + 2)  # the wrist below that elbow
        span = max(1, int(n * rng.uniform(0.3, 1.0)))
        start = int(rng.integers(0, n - span + 1))
        rows = slice(start, start + span)
        sub = noisy[rows][:, joints]
        sub += rng.normal(0.0, 0.05 * height_px, sub.shape)
        noisy[rows, joints] = sub
        scores[rows, joints] = rng.uniform(0.0, 0.3, (span, len(joints)))
        if rng.random() < 0.3:
            scores[rows, joints] = 0.0
    rate = nuisance.missing_rate_fixed
    if rate is None:
        rate = rng.uniform(0, nuisance.missing_rate) if rng.random() < 0.7 else 0.0
    if rate > 0:
        scores[rng.random(shape) < rate] = 0.0
    if nuisance.missing_frame_prob > 0 and rng.random() < nuisance.missing_frame_prob and n > 2:
        gap = int(rng.integers(1, min(5, n - 1) + 1))
        start = int(rng.integers(0, n - gap + 1))
        scores[start : start + gap] = 0.0
    return noisy, scores


# --------------------------------------------------------------------------- datasets


def make_dataset(
    count: int,
    seed: int | Sequence[int],
    num_frames: int | Sequence[int],
    *,
    nuisance: Nuisance = Nuisance(),
    classes: Sequence[str] = CLASSES,
) -> list[SkeletonSequence]:
    """``count`` sequences, class ``classes[i % len(classes)]`` for sequence ``i`` (balanced).

    Sequence ``i`` comes from ``numpy.random.default_rng([*seed, i])``, so any one of them
    can be remade alone, and two seeds give disjoint sets.

    Args:
        count: Number of sequences.
        seed: Seed (or seed words) of the set.
        num_frames: Frames per sequence, or one length per sequence.
        nuisance: Camera, size and pose-estimator noise.
        classes: Class names to cycle through.

    Raises:
        ValueError: If ``num_frames`` is a sequence whose length is not ``count``.
    """
    lengths = [int(num_frames)] * count if isinstance(num_frames, int) else [int(v) for v in num_frames]
    if len(lengths) != count:
        raise ValueError(f"num_frames: expected one length per sequence ({count}), got {len(lengths)}")
    words = [int(seed)] if isinstance(seed, int) else [int(s) for s in seed]
    out = []
    for i in range(count):
        rng = np.random.default_rng([*words, i])
        out.append(make_sequence(classes[i % len(classes)], lengths[i], rng, nuisance=nuisance))
    return out


def to_pose_results(people: SkeletonSequence | Sequence[SkeletonSequence]) -> dict[str, Any]:
    """MMAction2's ``PoseDataset`` sample of one window: what its skeleton pipelines take.

    Args:
        people: One person's sequence, or several of the same length and frame.

    Returns:
        ``{'keypoint': (M, T, 17, 2) float32, 'keypoint_score': (M, T, 17) float32,
        'total_frames': T, 'img_shape': (h, w), 'start_index': 0, 'label': int,
        'modality': 'Pose'}`` (a copy: the pipeline may modify it in place).

    Raises:
        ValueError: If ``people`` is empty or its sequences differ in length or frame size.
    """
    seqs = [people] if isinstance(people, SkeletonSequence) else list(people)
    if not seqs:
        raise ValueError("people: expected at least one sequence, got none")
    first = seqs[0]
    for seq in seqs[1:]:
        if seq.num_frames != first.num_frames or seq.img_shape != first.img_shape:
            raise ValueError(
                f"people: expected sequences of {first.num_frames} frames in a {first.img_shape} frame, "
                f"got {seq.num_frames} frames in {seq.img_shape}"
            )
    return {
        "keypoint": np.stack([s.keypoints for s in seqs]).astype(np.float32),
        "keypoint_score": np.stack([s.scores for s in seqs]).astype(np.float32),
        "total_frames": first.num_frames,
        "img_shape": first.img_shape,
        "start_index": 0,
        "label": first.label,
        "modality": "Pose",
    }


def with_nuisance(base: Nuisance = Nuisance(), **changes: Any) -> Nuisance:
    """``base`` with some fields changed (a convenience for robustness tables)."""
    return replace(base, **changes)
