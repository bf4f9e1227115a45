"""Synthetic action videos for the project's demo recognizer.

One main object performs one of :data:`ACTIONS` (move left/right/up/down, grow, shrink,
rotate clockwise/counter-clockwise) over a scene with nuisance: a random background
colour and texture, 1-3 distractor shapes that stand still or drift slowly, a random
object shape, colour, size, speed and start position, a little sensor noise and
sometimes a slight blur. Every rate is defined per *second* and relative to the frame
height, so a clip rendered at 20 fps and one at 30 fps show the same motion per second
and the same action looks the same at any resolution.

Everything is deterministic given the ``numpy.random.Generator`` (or seed) passed in.

Public API:

* :func:`render_clip` renders ``(T, H, W, 3)`` BGR ``uint8`` frames of one action;
* :func:`make_demo_video` writes a long H.264 MP4 in which one object performs
  consecutive actions in one continuous scene, plus a ground-truth JSON
  (:class:`GroundTruth`).

The preprocessing that turns these frames into model inputs is the runtime's own
(:mod:`engines.clip_spec`, :mod:`engines.transforms`); :mod:`pipelines.demo.train`
uses it for training and evaluation alike.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ACTIONS: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "grow",
    "shrink",
    "rotate_clockwise",
    "rotate_counterclockwise",
)

#: Each action and the one a horizontal flip of the frames turns it into.
HFLIP: dict[str, str] = {
    "move_left": "move_right",
    "move_right": "move_left",
    "rotate_clockwise": "rotate_counterclockwise",
    "rotate_counterclockwise": "rotate_clockwise",
}
#: Each action and the one a vertical flip of the frames turns it into.
VFLIP: dict[str, str] = {
    "move_up": "move_down",
    "move_down": "move_up",
    "rotate_clockwise": "rotate_counterclockwise",
    "rotate_counterclockwise": "rotate_clockwise",
}
#: Each action and the one that playing the clip backwards shows.
REVERSE: dict[str, str] = {
    "move_left": "move_right",
    "move_right": "move_left",
    "move_up": "move_down",
    "move_down": "move_up",
    "grow": "shrink",
    "shrink": "grow",
    "rotate_clockwise": "rotate_counterclockwise",
    "rotate_counterclockwise": "rotate_clockwise",
}

# Rates per second. Translation and sizes are fractions of the frame height.
SPEED_RANGE = (0.25, 0.50)  # translation, frame heights per second
GROWTH_RANGE = (0.35, 0.80)  # |d log(radius) / dt|: 0.35 is x1.42 per second, 0.8 is x2.23
SPIN_RANGE = (100.0, 220.0)  # degrees per second
RADIUS_RANGE = (0.11, 0.27)  # main object's circumscribed radius at the start of a clip
RADIUS_LIMITS = (0.10, 0.30)  # the main object never gets smaller or larger than this
DISTRACTOR_RADIUS = (0.03, 0.07)  # smaller than any main object
DISTRACTOR_SPEED = 0.05  # at most, frame heights per second; half of them stand still
DISTRACTOR_SPIN = 20.0  # at most, degrees per second
NOISE_SIGMA = (0.0, 5.0)  # per-pixel Gaussian noise, 8-bit levels
BLUR_PROBABILITY = 0.3
MARGIN = 0.02  # the main object stays this far inside the frame (fraction of the height)
ACCENT_RADIUS = 0.28  # radius of the accent dot, relative to the object radius

#: Default long-video script: (action, seconds). One continuous 31.6 s scene; every action appears.
DEFAULT_SEGMENTS: tuple[tuple[str, float], ...] = (
    ("move_right", 3.0),
    ("grow", 2.0),
    ("rotate_clockwise", 3.0),
    ("move_left", 2.5),
    ("shrink", 2.0),
    ("move_down", 1.8),
    ("rotate_counterclockwise", 3.0),
    ("move_up", 1.8),
    ("move_right", 3.0),
    ("grow", 2.0),
    ("move_left", 2.5),
    ("shrink", 2.0),
    ("rotate_clockwise", 3.0),
)


def _polygon(points: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


#: Main-object shapes in unit coordinates (inside the unit circle), each with the centre of
#: its accent dot. None has a rotational symmetry, so the direction of a rotation shows.
SHAPES: dict[str, tuple[np.ndarray, tuple[float, float]]] = {
    "arrow": (
        _polygon(
            [(-0.95, -0.28), (0.25, -0.28), (0.25, -0.62), (0.95, 0.0), (0.25, 0.62), (0.25, 0.28), (-0.95, 0.28)]
        ),
        (-0.6, 0.0),
    ),
    "ell": (_polygon([(-0.7, -0.7), (-0.2, -0.7), (-0.2, 0.3), (0.7, 0.3), (0.7, 0.7), (-0.7, 0.7)]), (-0.45, -0.4)),
    "dart": (_polygon([(0.95, 0.0), (-0.75, 0.6), (-0.4, 0.0), (-0.75, -0.6)]), (0.3, 0.0)),
    "hammer": (
        _polygon(
            [(-0.9, -0.22), (0.3, -0.22), (0.3, -0.7), (0.68, -0.7), (0.68, 0.7), (0.3, 0.7), (0.3, 0.22), (-0.9, 0.22)]
        ),
        (-0.62, 0.0),
    ),
    "bar": (_polygon([(-0.93, -0.34), (0.93, -0.34), (0.93, 0.34), (-0.93, 0.34)]), (0.6, 0.0)),
    "boot": (
        _polygon([(-0.55, -0.8), (-0.05, -0.8), (-0.05, 0.15), (0.75, 0.15), (0.75, 0.6), (-0.55, 0.6)]),
        (-0.3, -0.5),
    ),
}
#: Extra shapes only distractors use.
DISTRACTOR_SHAPES: dict[str, np.ndarray] = {
    "square": _polygon([(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)]),
    "triangle": _polygon([(0.0, -0.95), (0.82, 0.48), (-0.82, 0.48)]),
    "hexagon": _polygon([(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]),
}
#: Background textures of :func:`make_background`.
BACKGROUNDS = ("flat", "gradient", "blobs", "stripes", "checker")
_NOISE_PAD = 48  # the noise field is this much larger than a frame; each frame shows a random window of it
_SHIFT = 4  # fixed-point bits for sub-pixel drawing with cv2
_SCALE = 1 << _SHIFT


def check_action(action: str) -> int:
    """Index of ``action`` in :data:`ACTIONS`.

    Raises:
        ValueError: If ``action`` is not one of :data:`ACTIONS`.
    """
    try:
        return ACTIONS.index(action)
    except ValueError:
        raise ValueError(f"action: expected one of {', '.join(ACTIONS)}, got {action!r}") from None


# --------------------------------------------------------------------------- scene model


@dataclass(frozen=True)
class Pose:
    """Where the object is: centre ``(x, y)`` and circumscribed ``radius`` in pixels, ``angle`` in
    degrees (increasing angles turn clockwise on screen, since image y points down)."""

    x: float
    y: float
    radius: float
    angle: float = 0.0


@dataclass(frozen=True)
class Motion:
    """Constant rates per second: velocity in px/s, ``growth`` of log-radius, ``spin`` in degrees
    (positive is clockwise on screen)."""

    vx: float = 0.0
    vy: float = 0.0
    growth: float = 0.0
    spin: float = 0.0

    def pose_at(self, start: Pose, dt: float) -> Pose:
        """The pose ``dt`` seconds after ``start``."""
        return Pose(
            start.x + self.vx * dt,
            start.y + self.vy * dt,
            start.radius * math.exp(self.growth * dt),
            start.angle + self.spin * dt,
        )

    def scaled(self, factor: float) -> Motion:
        """The same motion, ``factor`` times as fast."""
        return Motion(self.vx * factor, self.vy * factor, self.growth * factor, self.spin * factor)


def sample_motion(action: str, height: int, rng: np.random.Generator) -> Motion:
    """A random motion that performs ``action`` in a frame ``height`` pixels tall.

    Raises:
        ValueError: If ``action`` is unknown.
    """
    check_action(action)
    if action.startswith("move_"):
        speed = rng.uniform(*SPEED_RANGE) * height
        vx, vy = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}[action]
        return Motion(vx=vx * speed, vy=vy * speed)
    if action in ("grow", "shrink"):
        rate = rng.uniform(*GROWTH_RANGE)
        return Motion(growth=rate if action == "grow" else -rate)
    spin = rng.uniform(*SPIN_RANGE)
    return Motion(spin=spin if action == "rotate_clockwise" else -spin)


def _min_rate_factor(action: str, motion: Motion, height: int) -> float:
    """The smallest factor :meth:`Motion.scaled` may apply and still stay in the action's rate range."""
    if action.startswith("move_"):
        return SPEED_RANGE[0] * height / max(math.hypot(motion.vx, motion.vy), 1e-9)
    if action in ("grow", "shrink"):
        return GROWTH_RANGE[0] / max(abs(motion.growth), 1e-9)
    return SPIN_RANGE[0] / max(abs(motion.spin), 1e-9)


def _fits(pose: Pose, motion: Motion, duration: float, size: tuple[int, int]) -> bool:
    """Whether the object stays inside the frame and within :data:`RADIUS_LIMITS` for ``duration``.

    Every motion is monotonic, so checking both ends is enough.
    """
    width, height = size
    margin = MARGIN * height
    for p in (pose, motion.pose_at(pose, duration)):
        if not RADIUS_LIMITS[0] * height * 0.999 <= p.radius <= RADIUS_LIMITS[1] * height * 1.001:
            return False
        if not (p.radius + margin <= p.x <= width - p.radius - margin):
            return False
        if not (p.radius + margin <= p.y <= height - p.radius - margin):
            return False
    return True


def place(
    action: str, motion: Motion, duration: float, size: tuple[int, int], rng: np.random.Generator
) -> tuple[Pose, Motion]:
    """A random start pose from which ``motion`` keeps the object in the frame for ``duration`` seconds.

    If no pose fits (a fast motion in a small frame), the motion is slowed down, never below
    the action's rate range; as a last resort it is slowed further.

    Returns:
        The start pose and the (possibly slowed) motion.
    """
    width, height = size
    lo_r, hi_r = RADIUS_LIMITS[0] * height, RADIUS_LIMITS[1] * height
    for _attempt in range(4):
        radius = rng.uniform(*RADIUS_RANGE) * height
        end_scale = math.exp(motion.growth * duration)
        radius = min(max(radius, lo_r / min(end_scale, 1.0)), hi_r / max(end_scale, 1.0))
        end = motion.pose_at(Pose(0.0, 0.0, radius), duration)
        margin = MARGIN * height
        extent = max(radius, end.radius) + margin
        x_lo, x_hi = extent - min(0.0, end.x), width - extent - max(0.0, end.x)
        y_lo, y_hi = extent - min(0.0, end.y), height - extent - max(0.0, end.y)
        if x_lo <= x_hi and y_lo <= y_hi:
            pose = Pose(rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi), radius, rng.uniform(0.0, 360.0))
            return pose, motion
        motion = motion.scaled(max(_min_rate_factor(action, motion, height), 0.7))
    # Tiny frames: centre a mid-size object and slow down until it fits.
    pose = Pose(width / 2, height / 2, 0.12 * height, rng.uniform(0.0, 360.0))
    while not _fits(pose, motion, duration, size):
        motion = motion.scaled(0.8)
    return pose, motion


@dataclass(frozen=True)
class Sprite:
    """A filled polygon with an accent dot, in unit coordinates, and its BGR colours."""

    polygon: np.ndarray
    accent: tuple[float, float] | None
    color: tuple[int, int, int]
    accent_color: tuple[int, int, int]

    def draw(self, image: np.ndarray, pose: Pose) -> None:
        """Draw the sprite into ``image`` (in place) at ``pose``, anti-aliased and sub-pixel."""
        theta = math.radians(pose.angle)
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, -s], [s, c]]) * pose.radius
        centre = np.array([pose.x, pose.y])
        points = self.polygon @ rot.T + centre
        cv2.fillPoly(image, [np.round(points * _SCALE).astype(np.int32)], self.color, cv2.LINE_AA, _SHIFT)
        if self.accent is not None:
            dot = np.asarray(self.accent) @ rot.T + centre
            radius = max(round(float(ACCENT_RADIUS * pose.radius * _SCALE)), _SCALE)
            cv2.circle(
                image,
                (round(float(dot[0] * _SCALE)), round(float(dot[1] * _SCALE))),
                radius,
                self.accent_color,
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )


@dataclass(frozen=True)
class Leg:
    """The main object performs ``action`` from ``start`` to ``end`` seconds, starting at ``pose``."""

    action: str
    start: float
    end: float
    pose: Pose
    motion: Motion
    cut: bool = False


@dataclass(frozen=True)
class Drifter:
    """A distractor drifting at constant velocity and bouncing off the frame edges."""

    sprite: Sprite
    pose: Pose
    vx: float
    vy: float
    spin: float

    def pose_at(self, t: float, size: tuple[int, int]) -> Pose:
        """Pose at time ``t`` seconds, reflected back into the frame."""
        width, height = size
        return Pose(
            _bounce(self.pose.x + self.vx * t, self.pose.radius, width - self.pose.radius),
            _bounce(self.pose.y + self.vy * t, self.pose.radius, height - self.pose.radius),
            self.pose.radius,
            self.pose.angle + self.spin * t,
        )


def _bounce(value: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    phase = (value - lo) % (2 * span)
    return lo + (phase if phase <= span else 2 * span - phase)


@dataclass
class Scene:
    """Everything needed to render any instant: background, distractors, the object's legs, nuisance."""

    size: tuple[int, int]
    background: np.ndarray
    sprite: Sprite
    legs: list[Leg]
    distractors: list[Drifter]
    noise_sigma: float
    blur: bool
    noise_field: np.ndarray | None = field(default=None, repr=False)

    def pose_at(self, t: float) -> Pose:
        """The main object's pose at ``t`` seconds (the last leg continues past its end)."""
        leg = self.legs[-1]
        for candidate in self.legs:
            if t < candidate.end:
                leg = candidate
                break
        return leg.motion.pose_at(leg.pose, t - leg.start)

    def render(self, t: float, rng: np.random.Generator) -> np.ndarray:
        """One BGR ``uint8`` frame at ``t`` seconds; ``rng`` picks its sensor noise.

        The noise is :attr:`noise_field` (int16, :data:`_NOISE_PAD` pixels larger than the
        frame, drawn once per scene); every frame adds a window of it at an offset drawn
        from ``rng``, which looks like fresh sensor noise at a fraction of the cost.
        """
        image = self.background.copy()
        for drifter in self.distractors:
            drifter.sprite.draw(image, drifter.pose_at(t, self.size))
        self.sprite.draw(image, self.pose_at(t))
        if self.blur:
            image = cv2.GaussianBlur(image, (3, 3), 0)
        if self.noise_field is not None:
            dy, dx = (int(v) for v in rng.integers(0, _NOISE_PAD + 1, size=2))
            window = self.noise_field[dy : dy + image.shape[0], dx : dx + image.shape[1]]
            image = cv2.add(image, window, dtype=cv2.CV_8U)
        return image


def make_background(size: tuple[int, int], rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A random BGR background: a base colour plus one of the :data:`BACKGROUNDS` textures (``kind``, default random).

    Raises:
        ValueError: For a ``kind`` not in :data:`BACKGROUNDS`.
    """
    if kind is not None and kind not in BACKGROUNDS:
        raise ValueError(f"background kind: expected one of {', '.join(BACKGROUNDS)}, got {kind!r}")
    width, height = size
    base = rng.uniform(20, 235, size=3).astype(np.float32)
    if kind is None:
        kind = str(rng.choice(list(BACKGROUNDS)))
    texture: np.ndarray
    xx = np.arange(width, dtype=np.float32)[None, :]
    yy = np.arange(height, dtype=np.float32)[:, None]
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (xx * math.cos(angle) + yy * math.sin(angle)) / max(width, height)
        ramp -= (math.cos(angle) * width + math.sin(angle) * height) / (2 * max(width, height))
        texture = ramp[..., None] * rng.uniform(-80, 80, size=3).astype(np.float32)
    elif kind == "blobs":
        cells = rng.standard_normal((max(height // 40, 2), max(width // 40, 2), 3)).astype(np.float32)
        texture = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(10, 25))
    elif kind == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(0.04, 0.15) * height
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * np.float32(2 * math.pi / period))
        texture = wave[..., None] * rng.uniform(-22, 22, size=3).astype(np.float32)
    elif kind == "checker":
        cell = rng.uniform(0.05, 0.16) * height
        board = ((xx // cell + yy // cell) % 2) * 2 - 1
        texture = board[..., None] * rng.uniform(-18, 18, size=3).astype(np.float32)
    else:
        return np.broadcast_to(np.clip(base, 0, 255).astype(np.uint8), (height, width, 3)).copy()
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def _mean_color(image: np.ndarray) -> np.ndarray:
    return image[::8, ::8].reshape(-1, 3).mean(0)


def _contrasting_color(against: np.ndarray, rng: np.random.Generator, min_distance: float = 110.0) -> tuple[int, ...]:
    best, best_distance = None, -1.0
    for _ in range(24):
        color = rng.integers(0, 256, size=3)
        distance = float(np.linalg.norm(color - against))
        if distance >= min_distance:
            return tuple(int(v) for v in color)
        if distance > best_distance:
            best, best_distance = color, distance
    return tuple(int(v) for v in best)  # type: ignore[union-attr]


def _random_sprite(background: np.ndarray, rng: np.random.Generator) -> Sprite:
    name = rng.choice(sorted(SHAPES))
    polygon, accent = SHAPES[str(name)]
    mean = _mean_color(background)
    color = _contrasting_color(mean, rng)
    accent_color = _contrasting_color(np.asarray(color, np.float64), rng, 140.0)
    return Sprite(polygon, accent, color, accent_color)  # type: ignore[arg-type]


def _random_distractors(
    background: np.ndarray, size: tuple[int, int], rng: np.random.Generator, count: int | None = None
) -> list[Drifter]:
    width, height = size
    mean = _mean_color(background)
    shapes = [*(p for p, _ in SHAPES.values()), *DISTRACTOR_SHAPES.values()]
    drifters = []
    for _ in range(int(rng.integers(1, 4)) if count is None else count):
        polygon = shapes[int(rng.integers(len(shapes)))]
        sprite = Sprite(polygon, None, _contrasting_color(mean, rng, 70.0), (0, 0, 0))  # type: ignore[arg-type]
        radius = rng.uniform(*DISTRACTOR_RADIUS) * height
        pose = Pose(
            rng.uniform(radius, width - radius), rng.uniform(radius, height - radius), radius, rng.uniform(0, 360)
        )
        if rng.random() < 0.5:
            vx = vy = spin = 0.0
        else:
            speed, heading = rng.uniform(0, DISTRACTOR_SPEED) * height, rng.uniform(0, 2 * math.pi)
            vx, vy = speed * math.cos(heading), speed * math.sin(heading)
            spin = rng.uniform(-DISTRACTOR_SPIN, DISTRACTOR_SPIN)
        drifters.append(Drifter(sprite, pose, vx, vy, spin))
    return drifters


def random_scene(
    size: tuple[int, int], rng: np.random.Generator, legs: list[Leg] | None = None, *, background: str | None = None
) -> Scene:
    """A scene with random background (of kind ``background`` if given), object, distractors and nuisance.

    ``legs`` default to none.
    """
    image = make_background(size, rng, background)
    sprite = _random_sprite(image, rng)
    distractors = _random_distractors(image, size, rng)
    sigma = float(rng.uniform(*NOISE_SIGMA))
    blur = bool(rng.random() < BLUR_PROBABILITY)
    width, height = size
    gauss = rng.standard_normal((height + _NOISE_PAD, width + _NOISE_PAD, 3), dtype=np.float32)
    noise = np.round(gauss * sigma).astype(np.int16)
    return Scene(size, image, sprite, list(legs or []), distractors, sigma, blur, noise)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(v) < 16 for v in size):
        raise ValueError(f"size: expected (width, height) of at least 16 pixels, got {tuple(size)!r}")
    return int(size[0]), int(size[1])


def _clip_indices(n_frames: int, fps: float, frame_indices: Sequence[int] | np.ndarray | None) -> list[int]:
    """The frames to render (default all), after checking ``n_frames``, ``fps`` and the indices."""
    if n_frames <= 0 or fps <= 0:
        raise ValueError(f"n_frames and fps: expected positive values, got {n_frames!r} and {fps!r}")
    indices = list(range(n_frames)) if frame_indices is None else [int(i) for i in frame_indices]
    if any(not 0 <= i < n_frames for i in indices):
        raise ValueError(f"frame_indices: expected values in [0, {n_frames}), got {indices!r}")
    return indices


def render_clip(
    action: str,
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    frame_indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Render a clip of a new random scene in which the main object performs ``action``.

    Frame ``k`` shows the scene at ``k / fps`` seconds, so the same action covers more
    frames at a higher frame rate. The object stays fully inside the frame for all
    ``n_frames`` frames. Frame ``k`` is the same whether or not other frames are rendered:
    ``render_clip(..., frame_indices=idx)`` equals ``render_clip(...)[idx]`` for equal ``rng`` states.

    Args:
        action: One of :data:`ACTIONS`.
        n_frames: Frames in the clip.
        fps: Frame rate the clip is rendered at (rates are per second).
        size: ``(width, height)`` in pixels.
        rng: Source of every random choice; the same generator state gives the same clip.
        frame_indices: Render only these frames of the clip (e.g. the ones a test
            pipeline samples); default all ``n_frames``.

    Returns:
        ``(len(frame_indices) or n_frames, height, width, 3)`` BGR ``uint8``.

    Raises:
        ValueError: For an unknown action, a non-positive ``n_frames``/``fps``, a tiny
            ``size`` or a frame index outside ``[0, n_frames)``.
    """
    check_action(action)
    size = _check_size(size)
    indices = _clip_indices(n_frames, fps, frame_indices)
    scene = random_scene(size, rng)
    duration = (n_frames - 1) / fps
    pose, motion = place(action, sample_motion(action, size[1], rng), duration, size, rng)
    scene.legs.append(Leg(action, 0.0, duration, pose, motion))
    return _render_frames(scene, indices, fps, rng)


def _render_frames(scene: Scene, indices: Sequence[int], fps: float, rng: np.random.Generator) -> np.ndarray:
    """Frames ``indices`` of ``scene`` at ``fps``; each frame's noise depends only on its index and ``rng``."""
    width, height = scene.size
    noise_seed = int(rng.integers(2**63))
    frames = np.empty((len(indices), height, width, 3), np.uint8)
    for out, index in enumerate(indices):
        frames[out] = scene.render(index / fps, np.random.default_rng([noise_seed, index]))
    return frames


def render_transition_clip(
    first: str,
    second: str,
    switch_frame: int,
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    frame_indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Render a clip in which the object performs ``first`` and then, from ``switch_frame`` on, ``second``.

    As in :func:`make_demo_video`, the second action starts where the first left the object
    (same place, size and angle; only the motion changes), so the clip looks like a window
    of a long video that straddles an action boundary. Frame ``k`` belongs to ``first``
    when ``k < switch_frame`` (``k / fps`` before the switch), else to ``second``.

    Args:
        first: Action of frames ``[0, switch_frame)``.
        second: Action of frames ``[switch_frame, n_frames)``.
        switch_frame: First frame of ``second``, in ``[1, n_frames)``.
        n_frames: Frames in the clip.
        fps: Frame rate the clip is rendered at (rates are per second).
        size: ``(width, height)`` in pixels.
        rng: Source of every random choice.
        frame_indices: Render only these frames (default all); see :func:`render_clip`.

    Returns:
        ``(len(frame_indices) or n_frames, height, width, 3)`` BGR ``uint8``.

    Raises:
        ValueError: For an unknown action, a ``switch_frame`` outside ``[1, n_frames)``, a
            non-positive ``n_frames``/``fps``, a tiny ``size`` or a frame index out of range.
    """
    check_action(first)
    check_action(second)
    size = _check_size(size)
    indices = _clip_indices(n_frames, fps, frame_indices)
    if not 1 <= switch_frame < n_frames:
        raise ValueError(f"switch_frame: expected a value in [1, {n_frames}), got {switch_frame!r}")
    scene = random_scene(size, rng)
    switch, duration = switch_frame / fps, (n_frames - 1) / fps
    for _attempt in range(8):
        pose, motion = place(first, sample_motion(first, size[1], rng), switch, size, rng)
        middle = motion.pose_at(pose, switch)
        then = _fitting_motion(second, middle, duration - switch, size, rng)
        if then is not None:
            scene.legs = [Leg(first, 0.0, switch, pose, motion), Leg(second, switch, duration, middle, then)]
            break
    else:  # rare: search for a chain from a central start, as the demo video does
        scene.legs = plan_legs([(first, switch), (second, duration - switch)], size, rng)
    return _render_frames(scene, indices, fps, rng)


# --------------------------------------------------------------------------- long demo video


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of a demo video: ``[start, end)`` seconds, ``[start_frame, end_frame)`` frames.

    ``cut`` is true when the object jumped to a new place at the segment's start because the
    action would not fit from where the previous one ended.
    """

    label: str
    start: float
    end: float
    start_frame: int
    end_frame: int
    cut: bool = False

    @property
    def label_index(self) -> int:
        """Index of :attr:`label` in :data:`ACTIONS`."""
        return ACTIONS.index(self.label)


@dataclass(frozen=True)
class GroundTruth:
    """What :func:`make_demo_video` wrote: the video's timing and its labelled segments."""

    video: str
    fps: int
    num_frames: int
    size: tuple[int, int]
    seed: int
    segments: tuple[Segment, ...]
    classes: tuple[str, ...] = field(default=ACTIONS)

    def frame_labels(self) -> np.ndarray:
        """Class index of every frame, ``(num_frames,)`` int64."""
        labels = np.full(self.num_frames, -1, np.int64)
        for segment in self.segments:
            labels[segment.start_frame : segment.end_frame] = self.classes.index(segment.label)
        return labels

    def boundaries(self) -> list[int]:
        """Frame indices where one segment ends and the next begins."""
        return [segment.start_frame for segment in self.segments[1:]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; segments carry ``label_index`` too."""
        out = asdict(self)
        out["size"] = list(self.size)
        out["classes"] = list(self.classes)
        out["segments"] = [{**asdict(s), "label_index": self.classes.index(s.label)} for s in self.segments]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroundTruth:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: If a key is missing or malformed.
        """
        try:
            segments = tuple(
                Segment(
                    label=str(s["label"]),
                    start=float(s["start"]),
                    end=float(s["end"]),
                    start_frame=int(s["start_frame"]),
                    end_frame=int(s["end_frame"]),
                    cut=bool(s.get("cut", False)),
                )
                for s in data["segments"]
            )
            width, height = data["size"]
            return cls(
                video=str(data["video"]),
                fps=int(data["fps"]),
                num_frames=int(data["num_frames"]),
                size=(int(width), int(height)),
                seed=int(data["seed"]),
                segments=segments,
                classes=tuple(str(c) for c in data.get("classes", ACTIONS)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"ground truth: cannot read it: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GroundTruth:
        """Read a ground-truth JSON written by :func:`make_demo_video`.

        Raises:
            ValueError: If the file is not valid ground truth.
            OSError: If it cannot be read.
        """
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"ground truth {path}: not JSON: {exc}") from exc
        return cls.from_dict(data)


def _fitting_motion(
    action: str, pose: Pose, seconds: float, size: tuple[int, int], rng: np.random.Generator
) -> Motion | None:
    """A random motion for ``action`` that keeps the object in the frame from ``pose`` for ``seconds``.

    The rate is drawn between the action's slowest rate and the fastest one that fits;
    ``None`` when even the slowest does not fit.
    """
    motion = sample_motion(action, size[1], rng)
    lo, hi = _min_rate_factor(action, motion, size[1]), 1.0
    if not _fits(pose, motion.scaled(lo), seconds, size):
        return None
    if not _fits(pose, motion, seconds, size):
        for _ in range(20):  # bisect for the largest factor that still fits
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _fits(pose, motion.scaled(mid), seconds, size) else (lo, mid)
        hi = lo
    return motion.scaled(rng.uniform(_min_rate_factor(action, motion, size[1]), hi))


def plan_legs(
    segments: Sequence[tuple[str, float]],
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    tries: int = 6,
    starts: int = 16,
    budget: int = 400,
) -> list[Leg]:
    """Chain the actions of ``segments`` into one continuous trajectory of the main object.

    Each action starts where the previous one ended, at a rate within the action's range
    that keeps the object inside the frame. From each of up to ``starts`` random start
    poses, a depth-first search over ``tries`` random rates per action (at most ``budget``
    rates in all) looks for a chain that fits throughout; if none is found, actions that
    do not fit start with a jump of the object to a fresh place (``Leg.cut``).

    Raises:
        ValueError: For an unknown action or a non-positive duration.
    """
    for index, (action, seconds) in enumerate(segments):
        check_action(action)
        if not seconds > 0:
            raise ValueError(f"segments[{index}]: expected a positive duration, got {seconds!r}")
    width, height = size
    left = [0]

    def search(index: int, pose: Pose, t: float) -> list[Leg] | None:
        if index == len(segments):
            return []
        action, seconds = segments[index]
        for _ in range(tries):
            left[0] -= 1
            if left[0] < 0:
                return None
            motion = _fitting_motion(action, pose, seconds, size, rng)
            if motion is None:
                return None
            rest = search(index + 1, motion.pose_at(pose, seconds), t + seconds)
            if rest is not None:
                return [Leg(action, t, t + seconds, pose, motion), *rest]
        return None

    for _ in range(starts):
        left[0] = budget
        start = Pose(
            rng.uniform(0.25, 0.75) * width,
            rng.uniform(0.35, 0.65) * height,
            rng.uniform(0.12, 0.15) * height,
            rng.uniform(0.0, 360.0),
        )
        legs = search(0, start, 0.0)
        if legs is not None:
            return legs
    # No continuous chain found: place each action that does not fit afresh.
    legs = []
    pose, t = start, 0.0
    for index, (action, seconds) in enumerate(segments):
        motion = _fitting_motion(action, pose, seconds, size, rng)
        cut = motion is None
        if motion is None:
            fresh, motion = place(action, sample_motion(action, height, rng), seconds, size, rng)
            pose = replace(fresh, angle=pose.angle)
        legs.append(Leg(action, t, t + seconds, pose, motion, cut and index > 0))
        pose, t = motion.pose_at(pose, seconds), t + seconds
    return legs


def _open_h264(path: Path, fps: int, size: tuple[int, int], bit_rate: int) -> tuple[Any, Any]:
    import av

    options = {"movflags": "faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    container = av.open(str(path), mode="w", options=options)
    stream = container.add_stream("h264", rate=fps, options={"preset": "medium"})
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = bit_rate
    stream.time_base = Fraction(1, fps)
    stream.codec_context.time_base = Fraction(1, fps)
    return container, stream


def make_demo_video(
    path: str | os.PathLike[str],
    segments: Sequence[tuple[str, float]] = DEFAULT_SEGMENTS,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    *,
    gt_path: str | os.PathLike[str] | None = None,
    bit_rate: int = 600_000,
) -> GroundTruth:
    """Write a long H.264 MP4 of one continuous scene in which one object performs ``segments`` in turn.

    The background, distractors, object look and nuisance are drawn once from ``seed``;
    the object then performs each ``(action, seconds)`` starting where the previous
    action left it (see :func:`plan_legs`). Frame ``k`` has ``pts = k`` in a ``1/fps``
    time base and belongs to the segment with ``start_frame <= k < end_frame``, where
    ``start_frame = round(start * fps)``.

    Args:
        path: Output video (``.mp4``).
        segments: ``(action, seconds)`` pairs; default :data:`DEFAULT_SEGMENTS` (31.6 s).
        fps: Integer frame rate, so timestamps are exact.
        size: ``(width, height)``, both even.
        seed: Seed of every random choice.
        gt_path: Where to write the ground-truth JSON; default ``<stem>_gt.json`` beside ``path``.
        bit_rate: H.264 target bit rate in bit/s (600 kbit/s keeps 32 s under 3 MB).

    Returns:
        The ground truth, as written to ``gt_path``.

    Raises:
        ValueError: For an empty script, an unknown action, a bad duration, fps or size.
    """
    width, height = _check_size(size)
    if width % 2 or height % 2:
        raise ValueError(f"size: expected even width and height for yuv420p, got {size!r}")
    if not isinstance(fps, int) or fps <= 0:
        raise ValueError(f"fps: expected a positive int, got {fps!r}")
    if not segments:
        raise ValueError("segments: expected at least one (action, seconds) pair, got none")
    path = Path(path)
    gt_file = Path(gt_path) if gt_path is not None else path.with_name(f"{path.stem}_gt.json")
    rng = np.random.default_rng(seed)
    scene = random_scene((width, height), rng)
    scene.legs = plan_legs(segments, (width, height), rng)
    bounds = [round(leg.start * fps) for leg in scene.legs] + [round(scene.legs[-1].end * fps)]
    truth = GroundTruth(
        video=path.name,
        fps=fps,
        num_frames=bounds[-1],
        size=(width, height),
        seed=seed,
        segments=tuple(
            Segment(leg.action, leg.start, leg.end, bounds[i], bounds[i + 1], leg.cut)
            for i, leg in enumerate(scene.legs)
        ),
    )
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    container, stream = _open_h264(path, fps, (width, height), bit_rate)
    with container:
        for index in range(truth.num_frames):
            image = scene.render(index / fps, np.random.default_rng([seed, index]))
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    gt_file.parent.mkdir(parents=True, exist_ok=True)
    gt_file.write_text(json.dumps(truth.to_dict(), indent=2) + "\n")
    return truth
