"""The demo recognizer: synthetic generator, training script, shipped checkpoint and its long-video accuracy."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.transforms import preprocess
from pipelines.demo import ASSETS, DEMO_CONFIG
from pipelines.demo import synthetic as syn
from pipelines.demo.train import (
    build_model,
    decode_video,
    demo_clip_spec,
    frame_scores,
    resize_clip,
    score_video,
    to_inputs,
    window_starts,
)
from stream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ASSETS / "demo_recognizer.pth"
VIDEO = ASSETS / "demo.mp4"
GT = ASSETS / "demo_gt.json"


def plain_clip(action: str, seed: int = 0, frames: int = 9, fps: float = 10.0) -> tuple[np.ndarray, syn.Sprite]:
    """``action`` on a flat grey background with no distractors and no noise (easy to measure)."""
    size = (320, 180)
    rng = np.random.default_rng(seed)
    background = np.full((size[1], size[0], 3), 128, np.uint8)
    polygon, accent = syn.SHAPES["arrow"]
    sprite = syn.Sprite(polygon, accent, (20, 20, 230), (230, 230, 20))
    duration = (frames - 1) / fps
    pose, motion = syn.place(action, syn.sample_motion(action, size[1], rng), duration, size, rng)
    scene = syn.Scene(size, background, sprite, [syn.Leg(action, 0.0, duration, pose, motion)], [], 0.0, False)
    return np.stack([scene.render(k / fps, rng) for k in range(frames)]), sprite


def blob(frame: np.ndarray, color: tuple[int, int, int]) -> tuple[float, float, int]:
    """Centroid x, y and pixel count of the pixels close to ``color``."""
    mask = np.abs(frame.astype(int) - np.asarray(color)).sum(-1) < 60
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean()), int(mask.sum())


# --------------------------------------------------------------------------- generator


def test_render_clip_is_deterministic_per_seed() -> None:
    a = syn.render_clip("grow", 12, 25.0, (160, 90), np.random.default_rng(7))
    b = syn.render_clip("grow", 12, 25.0, (160, 90), np.random.default_rng(7))
    c = syn.render_clip("grow", 12, 25.0, (160, 90), np.random.default_rng(8))
    assert a.shape == (12, 90, 160, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_clip_frame_indices_match_full_render() -> None:
    full = syn.render_clip("move_up", 29, 20.0, (160, 90), np.random.default_rng(3))
    picks = [0, 4, 8, 28]
    some = syn.render_clip("move_up", 29, 20.0, (160, 90), np.random.default_rng(3), frame_indices=picks)
    np.testing.assert_array_equal(some, full[picks])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(action="jump"), "expected one of move_left"),
        (dict(n_frames=0), "positive"),
        (dict(size=(8, 8)), "at least 16"),
        (dict(frame_indices=[12]), r"\[0, 12\)"),
    ],
)
def test_render_clip_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = dict(action="grow", n_frames=12, fps=25.0, size=(64, 48), rng=np.random.default_rng(0)) | kwargs
    with pytest.raises(ValueError, match=match):
        syn.render_clip(**args)


def test_transition_clip_is_deterministic_and_renders_only_the_picked_frames() -> None:
    full = syn.render_transition_clip("grow", "move_left", 10, 32, 25.0, (160, 90), np.random.default_rng(5))
    again = syn.render_transition_clip("grow", "move_left", 10, 32, 25.0, (160, 90), np.random.default_rng(5))
    picks = [1, 9, 10, 31]
    some = syn.render_transition_clip(
        "grow", "move_left", 10, 32, 25.0, (160, 90), np.random.default_rng(5), frame_indices=picks
    )
    assert full.shape == (32, 90, 160, 3)
    np.testing.assert_array_equal(full, again)
    np.testing.assert_array_equal(some, full[picks])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(second="jump"), "expected one of move_left"),
        (dict(switch_frame=0), r"switch_frame: expected a value in \[1, 12\)"),
        (dict(switch_frame=12), r"switch_frame"),
        (dict(frame_indices=[-1]), r"\[0, 12\)"),
    ],
)
def test_transition_clip_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = dict(first="grow", second="shrink", switch_frame=6, n_frames=12, fps=25.0, size=(64, 48))
    with pytest.raises(ValueError, match=match):
        syn.render_transition_clip(**(args | kwargs), rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("action", "dx", "dy", "area"),
    [
        ("move_left", -1, 0, 0),
        ("move_right", 1, 0, 0),
        ("move_up", 0, -1, 0),
        ("move_down", 0, 1, 0),
        ("grow", 0, 0, 1),
        ("shrink", 0, 0, -1),
        ("rotate_clockwise", 0, 0, 0),
        ("rotate_counterclockwise", 0, 0, 0),
    ],
)
def test_actions_render_their_motion(action: str, dx: int, dy: int, area: int) -> None:
    frames, sprite = plain_clip(action)
    x0, y0, a0 = blob(frames[0], sprite.color)
    x1, y1, a1 = blob(frames[-1], sprite.color)
    height = frames.shape[1]
    for moved, sign in ((x1 - x0, dx), (y1 - y0, dy)):
        if sign:
            assert moved * sign > 0.1 * height, (action, moved)
        else:
            # A rotating asymmetric shape's colour centroid circles its pivot a little.
            limit = 0.08 if action.startswith("rotate") else 0.03
            assert abs(moved) < limit * height, (action, moved)
    if area:
        assert math.log(a1 / a0) * area > 0.3, (action, a0, a1)
    else:
        assert abs(math.log(a1 / a0)) < 0.1, (action, a0, a1)
    if action.startswith("rotate"):
        # The accent dot circles the centre: clockwise on screen is an increasing angle (image y points down).
        turns = []
        for before, after in itertools.pairwise(frames):
            (cx, cy, _), (ax, ay, _) = blob(before, sprite.color), blob(before, sprite.accent_color)
            (cx2, cy2, _), (ax2, ay2, _) = blob(after, sprite.color), blob(after, sprite.accent_color)
            turn = math.atan2(ay2 - cy2, ax2 - cx2) - math.atan2(ay - cy, ax - cx)
            turns.append(math.remainder(turn, 2 * math.pi))
        assert np.sign(turns).tolist() == [1 if action == "rotate_clockwise" else -1] * len(turns)


def test_rates_are_per_second_not_per_frame() -> None:
    spec = dict(action="move_right", size=(320, 180))
    for fps in (20.0, 30.0):
        rng = np.random.default_rng(5)
        motion = syn.sample_motion(spec["action"], 180, rng)
        assert syn.SPEED_RANGE[0] * 180 <= motion.vx <= syn.SPEED_RANGE[1] * 180
        # One second of motion spans fps frames: the pose after 1 s does not depend on fps.
        pose = syn.Pose(100.0, 90.0, 20.0)
        after = [motion.pose_at(pose, k / fps) for k in range(int(fps) + 1)][-1]
        assert after.x == pytest.approx(100.0 + motion.vx)


def test_plan_legs_is_continuous_and_stays_in_frame() -> None:
    size = (640, 360)
    rng = np.random.default_rng(0)
    syn.random_scene(size, rng)  # make_demo_video draws the scene first, then the trajectory
    legs = syn.plan_legs(syn.DEFAULT_SEGMENTS, size, rng)
    assert [leg.action for leg in legs] == [a for a, _ in syn.DEFAULT_SEGMENTS]
    assert not any(leg.cut for leg in legs)
    for leg, following in itertools.pairwise(legs):
        end = leg.motion.pose_at(leg.pose, leg.end - leg.start)
        assert (end.x, end.y, end.radius) == pytest.approx((following.pose.x, following.pose.y, following.pose.radius))
        assert following.start == leg.end
    for leg in legs:
        assert syn._fits(leg.pose, leg.motion, leg.end - leg.start, size)


def test_plan_legs_cuts_when_an_action_cannot_fit() -> None:
    # Four seconds of fast rightward motion cannot fit twice in a row in a small frame.
    legs = syn.plan_legs([("move_right", 4.0), ("move_right", 4.0)], (320, 180), np.random.default_rng(0))
    assert [leg.cut for leg in legs] == [False, True]
    for leg in legs:
        assert syn._fits(leg.pose, leg.motion, leg.end - leg.start, (320, 180))


def test_make_demo_video_writes_decodable_video_and_ground_truth(tmp_path: Path) -> None:
    segments = [("move_left", 1.2), ("grow", 0.8), ("rotate_clockwise", 1.0)]
    truth = syn.make_demo_video(tmp_path / "v.mp4", segments, fps=10, size=(160, 96), seed=3)
    assert truth.num_frames == 30 and truth.fps == 10
    assert [(s.label, s.start_frame, s.end_frame) for s in truth.segments] == [
        ("move_left", 0, 12),
        ("grow", 12, 20),
        ("rotate_clockwise", 20, 30),
    ]
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 160, 96)
    assert len(frames) == 30
    assert [f.pts * f.time_base for f in frames[:3]] == [0, pytest.approx(0.1), pytest.approx(0.2)]
    saved = syn.GroundTruth.load(tmp_path / "v_gt.json")
    assert saved == truth
    assert json.loads((tmp_path / "v_gt.json").read_text())["segments"][1]["label_index"] == syn.ACTIONS.index("grow")
    np.testing.assert_array_equal(truth.frame_labels(), [0] * 12 + [4] * 8 + [6] * 10)
    again = syn.make_demo_video(tmp_path / "w.mp4", segments, fps=10, size=(160, 96), seed=3)
    assert again.segments == truth.segments


# --------------------------------------------------------------------------- preprocessing


def test_demo_clip_spec() -> None:
    spec = demo_clip_spec(DEMO_CONFIG)
    assert (spec.clip_len, spec.frame_interval, spec.window_frames) == (8, 4, 32)
    assert spec.output_hw(360, 640) == spec.output_hw(480, 640) == (64, 112)  # the whole frame, squeezed
    assert spec.bgr_to_rgb and spec.mean == (123.675, 116.28, 103.53)
    # MMAction2 centres the 29-frame span of an 8x4 clip in the 32-frame window.
    np.testing.assert_array_equal(spec.sample(32).ravel(), np.arange(1, 32, 4))


def test_demo_clip_spec_rejects_cropping_pipelines() -> None:
    config = ROOT / "configs/recognition/slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py"
    with pytest.raises(ConfigError, match="one SampleFrames clip"):
        demo_clip_spec(config)


def test_training_inputs_equal_runtime_preprocessing() -> None:
    spec = demo_clip_spec(DEMO_CONFIG)
    frames = syn.render_clip("rotate_clockwise", 32, 25.0, (320, 180), np.random.default_rng(1))
    picked = [frames[i] for i in spec.sample(len(frames)).ravel()]
    runtime = preprocess(picked, spec)
    ours = to_inputs(resize_clip(picked, spec)[None], spec).numpy()
    assert runtime.shape == (1, 3, 8, 64, 112)
    np.testing.assert_array_equal(ours, runtime)


def test_window_starts_follow_the_clip_buffer() -> None:
    np.testing.assert_array_equal(window_starts(100, 32, 16), [0, 16, 32, 48, 64])
    np.testing.assert_array_equal(window_starts(80, 32, 16), [0, 16, 32, 48])
    np.testing.assert_array_equal(window_starts(32, 32, 16), [0])
    assert len(window_starts(20, 32, 16)) == 0


def test_frame_scores_interpolate_between_window_middles() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    out = frame_scores(scores, np.array([0, 4]), window=5, num_frames=10)  # middles at frames 2 and 6
    np.testing.assert_allclose(out[:, 1], [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1])
    np.testing.assert_allclose(out.sum(1), 1.0)


# --------------------------------------------------------------------------- training script


def test_quick_training_writes_mmaction2_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo.train", "--quick", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    raw = torch.load(tmp_path / "out" / "demo_recognizer.pth", weights_only=True)
    assert set(raw) == {"state_dict", "meta"}
    model, _ = build_model(DEMO_CONFIG)
    assert list(raw["state_dict"]) == list(model.state_dict())
    assert all(v.dtype == torch.float32 for v in raw["state_dict"].values() if v.is_floating_point())
    meta = raw["meta"]
    assert meta["dataset_meta"]["classes"] == list(syn.ACTIONS)
    assert meta["trained_by"] == "pipelines.demo.train" and meta["epoch"] == 1
    right = meta["val_top1"] * meta["val_clips"]  # a share of the validation clips, as logged
    assert abs(right - round(right)) < 1e-3 * meta["val_clips"], meta
    assert f"validation top-1 {meta['val_top1']:.4f}" in proc.stderr, proc.stderr[-2000:]
    model.load_state_dict(raw["state_dict"], strict=True)
    labels = (tmp_path / "out" / "label_map.txt").read_text().splitlines()
    assert labels == list(syn.ACTIONS)


# --------------------------------------------------------------------------- shipped assets


def test_demo_config_points_at_shipped_assets() -> None:
    from mmengine.config import Config

    cfg = Config.fromfile(str(DEMO_CONFIG))
    for key, path in (("load_from", CHECKPOINT), ("label_file", ASSETS / "label_map.txt"), ("demo_video", VIDEO)):
        assert Path(cfg[key]).resolve() == path, key
        assert path.is_file(), path
    assert Path(cfg["demo_gt"]).resolve() == GT
    assert CHECKPOINT.stat().st_size < 8.5e6
    assert VIDEO.stat().st_size < 3e6


def test_shipped_checkpoint_loads_strictly() -> None:
    model, _ = build_model(DEMO_CONFIG)
    ckpt = load_checkpoint(model, CHECKPOINT, config_name=DEMO_CONFIG)
    assert ckpt.classes == list(syn.ACTIONS)
    assert ckpt.meta["val_top1"] >= 0.97
    raw = torch.load(CHECKPOINT, weights_only=True)
    model.load_state_dict(raw["state_dict"], strict=True)
    assert (ASSETS / "label_map.txt").read_text().splitlines() == list(syn.ACTIONS)


def test_shipped_model_labels_the_demo_video() -> None:
    """Sliding windows at half- and quarter-window strides label >= 95% of ALL frames correctly.

    Every frame counts, including those next to the 12 action changes, where windows straddle
    two actions: each frame blends the scores of the windows centred before and after it,
    as ``stream.long_video`` does (``frame_scores``).
    """
    model, spec = build_model(DEMO_CONFIG)
    load_checkpoint(model, CHECKPOINT, config_name=DEMO_CONFIG)
    truth = syn.GroundTruth.load(GT)
    frames = decode_video(VIDEO, spec)
    assert len(frames) == truth.num_frames
    assert (truth.fps, truth.size) == (25, (640, 360))
    assert [s.label for s in truth.segments] == [a for a, _ in syn.DEFAULT_SEGMENTS]
    assert [s.end - s.start for s in truth.segments] == pytest.approx([t for _, t in syn.DEFAULT_SEGMENTS])
    assert not any(s.cut for s in truth.segments)  # one continuous scene
    for stride in (0.5, 0.25):
        score = score_video(model, spec, frames, truth, stride)
        assert score.frame_accuracy >= 0.95, (stride, score.frame_accuracy)
        assert score.window_accuracy >= 0.95, (stride, score.window_accuracy)
