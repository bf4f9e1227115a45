"""Frame sampling: hand-written MMAction2 index tables and a grid checked against MMAction2 itself."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from engines.sampling import dense_sample_frames, sample_frames, uniform_sample
from tests.engines.mmaction_ref import import_reference


def _mmaction_transforms() -> Any:
    return import_reference("mmaction.datasets.transforms")


def _mm_inds(transform: Any, num_frames: int, start_index: int = 0, fps: float | None = None) -> np.ndarray:
    results: dict[str, Any] = {"total_frames": num_frames, "start_index": start_index}
    if fps is not None:
        results["avg_fps"] = fps
    return np.asarray(transform.transform(results)["frame_inds"])


def _stepped(start: int, count: int, step: int) -> list[int]:
    return list(range(start, start + count * step, step))


# MMAction2's documented test-mode semantics, written out by hand.
CLASSIC: list[tuple[str, dict[str, Any], int, list[int]]] = [
    # TSN 1x1x8 on 100 frames: 8 segments of 12.5 frames, the middle frame of each.
    ("tsn-1x1x8", dict(clip_len=1, num_clips=8), 100, [6, 18, 31, 43, 56, 68, 81, 93]),
    # TSM twice_sample: the middles, then the segment starts.
    (
        "tsm-twice-1x1x8",
        dict(clip_len=1, num_clips=8, twice_sample=True),
        100,
        [6, 18, 31, 43, 56, 68, 81, 93, 0, 12, 25, 37, 50, 62, 75, 87],
    ),
    # TSN on a window shorter than the segment count: segments of 0.5 frames repeat frames.
    ("tsn-1x1x8-short", dict(clip_len=1, num_clips=8), 4, [0, 0, 1, 1, 2, 2, 3, 3]),
    # I3D 32x2x1 on 100 frames: a 63-frame clip centred, start (100 - 63) // 2 = 18.
    ("i3d-32x2x1", dict(clip_len=32, frame_interval=2), 100, _stepped(18, 32, 2)),
    # I3D on its own window (32 * 2 = 64 frames): start 0.
    ("i3d-32x2x1-window", dict(clip_len=32, frame_interval=2), 64, _stepped(0, 32, 2)),
    # SlowOnly 8x8x1 on 64 frames: span 57, start (64 - 57) // 2 = 3.
    ("slowonly-8x8x1", dict(clip_len=8, frame_interval=8), 64, _stepped(3, 8, 8)),
    # 3 clips of 8x8 on 62 frames: starts round(i * 5 / 2) = 0, 2 (half to even), 5.
    (
        "8x8x3-round-half-even",
        dict(clip_len=8, frame_interval=8, num_clips=3),
        62,
        _stepped(0, 8, 8) + _stepped(2, 8, 8) + _stepped(5, 8, 8),
    ),
    # Short video, loop: 32x2 wants 63 frames, 40 exist; indices wrap modulo 40.
    ("short-loop", dict(clip_len=32, frame_interval=2), 40, [i % 40 for i in _stepped(0, 32, 2)]),
    # Short video, repeat_last: past-the-end indices become the last in-bound one (38).
    (
        "short-repeat-last",
        dict(clip_len=32, frame_interval=2, out_of_bound_opt="repeat_last"),
        40,
        [min(i, 38) for i in _stepped(0, 32, 2)],
    ),
    # start_index shifts everything (raw-frame datasets count from 1).
    ("start-index", dict(clip_len=4, frame_interval=2, start_index=1), 7, [1, 3, 5, 7]),
    # X3D-S 13x6 with target_fps=30 at 30 fps: span 78, linspace(0, 77, 13) truncated.
    (
        "x3d-target-fps",
        dict(clip_len=13, frame_interval=6, target_fps=30, fps=30),
        78,
        [0, 6, 12, 19, 25, 32, 38, 44, 51, 57, 64, 70, 77],
    ),
]


@pytest.mark.parametrize(("kwargs", "num_frames", "expected"), [c[1:] for c in CLASSIC], ids=[c[0] for c in CLASSIC])
def test_classic_index_tables(kwargs: dict[str, Any], num_frames: int, expected: list[int]) -> None:
    kwargs = dict(kwargs)
    clip_len = kwargs.pop("clip_len")
    inds = sample_frames(num_frames, clip_len, **kwargs)
    assert inds.shape == (len(expected) // clip_len, clip_len)
    assert inds.ravel().tolist() == expected


def test_dense_window_tiles_start_positions() -> None:
    # Dense 32x2x1 on 640 frames: 10 starts linspace(0, 576) = 0, 64, ..., 576.
    inds = dense_sample_frames(640, 32, 2, 1)
    assert inds.shape == (10, 32)
    assert inds.tolist() == [_stepped(s, 32, 2) for s in range(0, 640, 64)]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_frames(0, 8), "num_frames"),
        (lambda: sample_frames(10, 0), "clip_len"),
        (lambda: sample_frames(10, 8, 0), "frame_interval"),
        (lambda: sample_frames(10, 8, 1, 0), "num_clips"),
        (lambda: sample_frames(10, 8, out_of_bound_opt="wrap"), "out_of_bound_opt"),  # type: ignore[arg-type]
        (lambda: sample_frames(10, 8, target_fps=0), "target_fps"),
        (lambda: sample_frames(10, 8, 1, 1, twice_sample=True), "twice_sample"),
        (lambda: dense_sample_frames(10, 8, sample_range=0), "sample_range"),
        (lambda: uniform_sample(0, 8), "num_frames"),
        (lambda: uniform_sample(10, 8, 0), "num_clips"),
    ],
)
def test_invalid_arguments(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


GRID_FRAMES = (1, 5, 16, 63, 64, 100, 301)


@pytest.mark.parametrize(
    ("clip_len", "frame_interval", "num_clips"),
    list(itertools.product((1, 2, 8, 32), (1, 2, 5), (1, 3, 10))),
)
def test_sample_frames_matches_mmaction(clip_len: int, frame_interval: int, num_clips: int) -> None:
    transforms = _mmaction_transforms()
    for twice, oob, start in itertools.product((False, True), ("loop", "repeat_last"), (0, 1)):
        if twice and clip_len > 1 and num_clips == 1:
            continue  # MMAction2 divides by zero; ours raises (tested above)
        ref = transforms.SampleFrames(
            clip_len=clip_len,
            frame_interval=frame_interval,
            num_clips=num_clips,
            twice_sample=twice,
            out_of_bound_opt=oob,
            test_mode=True,
        )
        for num_frames in GRID_FRAMES:
            ours = sample_frames(
                num_frames,
                clip_len,
                frame_interval,
                num_clips,
                twice_sample=twice,
                out_of_bound_opt=oob,  # type: ignore[arg-type]
                start_index=start,
            )
            expected = _mm_inds(ref, num_frames, start)
            assert ours.ravel().tolist() == expected.tolist(), (twice, oob, start, num_frames)


@pytest.mark.parametrize(
    ("clip_len", "frame_interval", "num_clips"), [(13, 6, 10), (16, 5, 10), (13, 6, 1), (4, 16, 3), (1, 1, 8)]
)
@pytest.mark.parametrize("fps", [None, 15.0, 25.0, 30.0, 59.94])
def test_target_fps_matches_mmaction(clip_len: int, frame_interval: int, num_clips: int, fps: float | None) -> None:
    transforms = _mmaction_transforms()
    ref = transforms.SampleFrames(
        clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips, target_fps=30, test_mode=True
    )
    for num_frames in (1, 40, 78, 200, 500):
        ours = sample_frames(num_frames, clip_len, frame_interval, num_clips, target_fps=30, fps=fps)
        assert ours.ravel().tolist() == _mm_inds(ref, num_frames, fps=fps).tolist(), num_frames


@pytest.mark.parametrize(("clip_len", "frame_interval", "num_clips"), [(32, 2, 1), (8, 8, 1), (16, 4, 2), (1, 1, 8)])
@pytest.mark.parametrize(("sample_range", "positions"), [(64, 10), (32, 3), (64, 1)])
def test_dense_sample_frames_matches_mmaction(
    clip_len: int, frame_interval: int, num_clips: int, sample_range: int, positions: int
) -> None:
    transforms = _mmaction_transforms()
    for oob in ("loop", "repeat_last"):
        ref = transforms.DenseSampleFrames(
            clip_len=clip_len,
            frame_interval=frame_interval,
            num_clips=num_clips,
            sample_range=sample_range,
            num_sample_positions=positions,
            out_of_bound_opt=oob,
            test_mode=True,
        )
        for num_frames in (1, 20, 64, 100, 640):
            ours = dense_sample_frames(
                num_frames,
                clip_len,
                frame_interval,
                num_clips,
                sample_range=sample_range,
                num_sample_positions=positions,
                out_of_bound_opt=oob,  # type: ignore[arg-type]
            )
            assert ours.ravel().tolist() == _mm_inds(ref, num_frames).tolist(), (oob, num_frames)


# UniformSample, by hand: 8 segments of (100 - 1) / 8 = 12.375 frames; one clip takes
# round(12.375 i) + int(12.375 / 2); three clips add int(12.375 / 4 * (k + 1)) = 3, 6, 9.
UNIFORM_STARTS = [0, 12, 25, 37, 50, 62, 74, 87]  # round(12.375 * i), 37.125 -> 37, 61.875 -> 62


@pytest.mark.parametrize(
    ("num_clips", "num_frames", "expected"),
    [
        (1, 100, [s + 6 for s in UNIFORM_STARTS]),
        (3, 100, [s + d for d in (3, 6, 9) for s in UNIFORM_STARTS]),
        (1, 1, [0] * 8),  # a one-frame window repeats it
        (1, 5, [0, 0, 1, 2, 2, 2, 3, 4]),  # segments of 0.5 frames: round-half-to-even starts
    ],
)
def test_uniform_sample_index_tables(num_clips: int, num_frames: int, expected: list[int]) -> None:
    assert uniform_sample(num_frames, 8, num_clips).ravel().tolist() == expected


@pytest.mark.parametrize(("clip_len", "num_clips"), list(itertools.product((1, 2, 8, 16, 32), (1, 2, 3, 4, 10))))
def test_uniform_sample_matches_mmaction(clip_len: int, num_clips: int) -> None:
    transforms = _mmaction_transforms()
    ref = transforms.UniformSample(clip_len=clip_len, num_clips=num_clips, test_mode=True)
    for num_frames, start in itertools.product((*GRID_FRAMES, 2, 8, 9, 33, 257, 1000), (0, 1)):
        ours = uniform_sample(num_frames, clip_len, num_clips, start_index=start)
        assert ours.shape == (num_clips, clip_len)
        assert ours.ravel().tolist() == _mm_inds(ref, num_frames, start).tolist(), (num_frames, start)
