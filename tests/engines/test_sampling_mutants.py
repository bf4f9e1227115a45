"""Frame indices a model sees, written out by hand, and the exact error lines for bad arguments.

Complements ``test_sampling.py`` (which compares a grid with MMAction2 itself): these cases
run without MMAction2 and pin the edges (short windows, out-of-bound options, start_index,
target_fps rates, dense sampling with several clips).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engines.sampling import OUT_OF_BOUND_OPTS, dense_sample_frames, sample_frames


def _stepped(start: int, count: int, step: int) -> list[int]:
    return list(range(start, start + count * step, step))


SAMPLE: list[tuple[str, int, dict[str, Any], list[list[int]]]] = [
    # TSN 1x1x3 on 10 frames: segments of 3.33 frames, middles floor(1.67), floor(5), floor(8.33).
    ("tsn-3-of-10", 10, dict(clip_len=1, num_clips=3), [[1], [5], [8]]),
    ("tsn-twice-3-of-10", 10, dict(clip_len=1, num_clips=3, twice_sample=True), [[1], [5], [8], [0], [3], [6]]),
    # One segment: the middle frame.
    ("tsn-1-of-7", 7, dict(clip_len=1), [[3]]),
    ("tsn-1-of-1", 1, dict(clip_len=1, num_clips=3), [[0], [0], [0]]),
    # start_index is added before truncation: 1.67 + 1 -> 2, 5 + 1 -> 6, 8.33 + 1 -> 9.
    ("tsn-start-index", 10, dict(clip_len=1, num_clips=3, start_index=1), [[2], [6], [9]]),
    # One 3D clip, centred: span 7, (10 - 7) // 2 = 1.
    ("4x2x1-of-10", 10, dict(clip_len=4, frame_interval=2), [_stepped(1, 4, 2)]),
    # Two clips: starts 0 and max_offset.
    ("4x2x2-of-10", 10, dict(clip_len=4, frame_interval=2, num_clips=2), [[0, 2, 4, 6], [3, 5, 7, 9]]),
    # Three clips on 11 frames: max_offset 4, starts 0, 2, 4.
    ("4x2x3-of-11", 11, dict(clip_len=4, frame_interval=2, num_clips=3), [[0, 2, 4, 6], [2, 4, 6, 8], [4, 6, 8, 10]]),
    # twice_sample with 3D clips: 4 starts on the step of 2 clips; the last ones wrap.
    (
        "4x1x2-twice-of-6",
        6,
        dict(clip_len=4, num_clips=2, twice_sample=True),
        [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 0, 1], [0, 1, 2, 3]],
    ),
    (
        "4x1x2-twice-of-6-repeat",
        6,
        dict(clip_len=4, num_clips=2, twice_sample=True, out_of_bound_opt="repeat_last"),
        [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 5, 5], [0, 0, 0, 0]],  # no in-bound frame: 0
    ),
    # Short window, several clips: all start at 0.
    ("4x2x3-of-5-loop", 5, dict(clip_len=4, frame_interval=2, num_clips=3), [[0, 2, 4, 1]] * 3),
    (
        "4x2x3-of-5-repeat",
        5,
        dict(clip_len=4, frame_interval=2, num_clips=3, out_of_bound_opt="repeat_last"),
        [[0, 2, 4, 4]] * 3,
    ),
    # repeat_last keeps the last in-bound index of each clip; start_index shifts after it.
    (
        "repeat-start-index",
        5,
        dict(clip_len=4, frame_interval=2, out_of_bound_opt="repeat_last", start_index=1),
        [[1, 3, 5, 5]],
    ),
    ("loop-start-index", 5, dict(clip_len=4, frame_interval=2, start_index=2), [[2, 4, 6, 3]]),
    # A window of one frame.
    ("8x8x1-of-1", 1, dict(clip_len=8, frame_interval=8), [[0] * 8]),
    ("8x8x1-of-1-repeat", 1, dict(clip_len=8, frame_interval=8, out_of_bound_opt="repeat_last"), [[0] * 8]),
    # The window exactly one clip long.
    ("4x3x1-exact", 10, dict(clip_len=4, frame_interval=3), [[0, 3, 6, 9]]),
    # Odd max_offset: 11 - 7 = 4 -> start 2; 12 - 7 = 5 -> start 2 (floor).
    ("4x2x1-of-12", 12, dict(clip_len=4, frame_interval=2), [_stepped(2, 4, 2)]),
    # target_fps: SlowFast-style spans, starts on floor(max_offset / (N - 1)).
    # 4x4 at 30 fps of 30: span 16, linspace(0, 15, 4) -> 0, 5, 10, 15; 40 frames, 1 clip: start 12.
    ("fps-1-clip", 40, dict(clip_len=4, frame_interval=4, target_fps=30, fps=30), [[12, 17, 22, 27]]),
    # fps None: as if the input were at target_fps.
    ("fps-none", 40, dict(clip_len=4, frame_interval=4, target_fps=30), [[12, 17, 22, 27]]),
    # 60 fps input: span 32, linspace(0, 31, 4) -> 0, 10, 20, 31; start (40 - 32) // 2 = 4.
    ("fps-60", 40, dict(clip_len=4, frame_interval=4, target_fps=30, fps=60), [[4, 14, 24, 35]]),
    # 15 fps input: span 8, linspace(0, 7, 4) -> 0, 2, 4, 7; 3 clips on 21 frames: step floor(13 / 2) = 6.
    (
        "fps-15-3-clips",
        21,
        dict(clip_len=4, frame_interval=4, num_clips=3, target_fps=30, fps=15),
        [[0, 2, 4, 7], [6, 8, 10, 13], [12, 14, 16, 19]],
    ),
    # A tiny span is at least one frame: 4x1 at 3 fps of 30 -> span 0.4 -> 1.
    ("fps-min-span", 9, dict(clip_len=4, target_fps=30, fps=3), [[4, 4, 4, 4]]),
    # Short window with target_fps: 10 frames, span 16 -> start 0, indices wrap.
    ("fps-short-loop", 10, dict(clip_len=4, frame_interval=4, target_fps=30), [[0, 5, 0, 5]]),
    (
        "fps-short-repeat",
        10,
        dict(clip_len=4, frame_interval=4, target_fps=30, out_of_bound_opt="repeat_last"),
        [[0, 5, 5, 5]],
    ),
    # A target rate under 1 fps is valid: 0.25 fps input of 0.5 -> span 4, start (40 - 4) // 2 = 18.
    ("fps-below-one", 40, dict(clip_len=4, frame_interval=2, target_fps=0.5, fps=0.25), [[18, 19, 20, 21]]),
    # clip_len 1 with target_fps: still segment sampling.
    ("fps-2d", 10, dict(clip_len=1, num_clips=2, target_fps=30, fps=60), [[2], [7]]),
]


@pytest.mark.parametrize(("num_frames", "kwargs", "expected"), [c[1:] for c in SAMPLE], ids=[c[0] for c in SAMPLE])
def test_sample_frames_tables(num_frames: int, kwargs: dict[str, Any], expected: list[list[int]]) -> None:
    kwargs = dict(kwargs)
    clip_len = kwargs.pop("clip_len")
    inds = sample_frames(num_frames, clip_len, **kwargs)
    assert inds.dtype == np.int64
    assert inds.tolist() == expected


def test_numpy_ints_are_accepted() -> None:
    inds = sample_frames(np.int64(10), np.int32(4), np.int64(2), np.int64(2))  # type: ignore[arg-type]
    assert inds.tolist() == [[0, 2, 4, 6], [3, 5, 7, 9]]


DENSE: list[tuple[str, int, dict[str, Any], list[list[int]]]] = [
    # 3 start positions over a 20-frame window, range 8: linspace(0, 12, 3) = 0, 6, 12.
    (
        "3-positions",
        20,
        dict(clip_len=2, frame_interval=3, sample_range=8, num_sample_positions=3),
        [[0, 3], [6, 9], [12, 15]],
    ),
    # 2 clips per position, sample_range // 2 = 4 apart; the last wraps modulo 20.
    (
        "2-clips",
        20,
        dict(clip_len=2, num_clips=2, sample_range=8, num_sample_positions=2),
        [[0, 1], [4, 5], [12, 13], [16, 17]],
    ),
    # Window shorter than sample_range: every position starts at 0; loop wraps modulo 5.
    (
        "short-loop",
        5,
        dict(clip_len=3, frame_interval=2, sample_range=8, num_sample_positions=2),
        [[0, 2, 4], [0, 2, 4]],
    ),
    ("short-wrap", 4, dict(clip_len=3, frame_interval=2, sample_range=8, num_sample_positions=1), [[0, 2, 0]]),
    (
        "short-repeat",
        4,
        dict(clip_len=3, frame_interval=2, sample_range=8, num_sample_positions=1, out_of_bound_opt="repeat_last"),
        [[0, 2, 2]],
    ),
    # 3 clips per position: sample_range // 3 = 2 frames apart (not 2.67).
    (
        "3-clips-floor-interval",
        20,
        dict(clip_len=1, num_clips=3, sample_range=8, num_sample_positions=2),
        [[0], [2], [4], [12], [14], [16]],
    ),
    # Window exactly sample_range + 1: positions 0 and 1.
    ("range-plus-one", 9, dict(clip_len=1, sample_range=8, num_sample_positions=2), [[0], [1]]),
    ("start-index", 20, dict(clip_len=2, sample_range=8, num_sample_positions=2, start_index=1), [[1, 2], [13, 14]]),
    # Clip starts wrap too: 3 clips 2 apart from start 4 on 7 frames -> 4, 6, 1.
    (
        "wrapped-starts",
        7,
        dict(clip_len=1, num_clips=3, sample_range=6, num_sample_positions=2),
        [[0], [2], [4], [1], [3], [5]],
    ),
]


@pytest.mark.parametrize(("num_frames", "kwargs", "expected"), [c[1:] for c in DENSE], ids=[c[0] for c in DENSE])
def test_dense_sample_frames_tables(num_frames: int, kwargs: dict[str, Any], expected: list[list[int]]) -> None:
    kwargs = dict(kwargs)
    clip_len = kwargs.pop("clip_len")
    inds = dense_sample_frames(num_frames, clip_len, **kwargs)
    assert inds.dtype == np.int64
    assert inds.tolist() == expected


def test_dense_defaults_are_mmaction2s() -> None:
    # sample_range 64, 10 positions: on 640 frames the positions are 64 apart.
    assert dense_sample_frames(640, 1)[:, 0].tolist() == list(range(0, 640, 64))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_frames(0, 8), "num_frames: expected a positive int, got 0"),
        (lambda: sample_frames(-3, 8), "num_frames: expected a positive int, got -3"),
        (lambda: sample_frames(10, 0), "clip_len: expected a positive int, got 0"),
        (lambda: sample_frames(10, True), "clip_len: expected a positive int, got True"),
        (lambda: sample_frames(10.0, 8), "num_frames: expected a positive int, got 10.0"),
        (lambda: sample_frames(10, 8, 0), "frame_interval: expected a positive int, got 0"),
        (lambda: sample_frames(10, 8, 1, 0), "num_clips: expected a positive int, got 0"),
        (lambda: sample_frames(10, 8, 1, "2"), "num_clips: expected a positive int, got '2'"),
        (
            lambda: sample_frames(10, 8, out_of_bound_opt="wrap"),
            "out_of_bound_opt: expected one of ('loop', 'repeat_last'), got 'wrap'",
        ),
        (lambda: sample_frames(10, 8, target_fps=0), "target_fps: expected a positive number or None, got 0"),
        (lambda: sample_frames(10, 8, target_fps=-30.0), "target_fps: expected a positive number or None, got -30.0"),
        (
            lambda: sample_frames(10, 2, 1, 1, twice_sample=True),
            "twice_sample with clip_len > 1 needs num_clips > 1 (MMAction2 divides by num_clips - 1)",
        ),
        (lambda: dense_sample_frames(10, 8, sample_range=0), "sample_range: expected a positive int, got 0"),
        (
            lambda: dense_sample_frames(10, 8, num_sample_positions=0),
            "num_sample_positions: expected a positive int, got 0",
        ),
        (lambda: dense_sample_frames(10, 8, 0), "frame_interval: expected a positive int, got 0"),
        (
            lambda: dense_sample_frames(10, 8, out_of_bound_opt="clip"),
            "out_of_bound_opt: expected one of ('loop', 'repeat_last'), got 'clip'",
        ),
    ],
)
def test_invalid_arguments_exact_message(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_valid_edges_do_not_raise() -> None:
    assert sample_frames(1, 1, 1, 1).tolist() == [[0]]
    assert sample_frames(10, 1, 1, 1, twice_sample=True).tolist() == [[5], [0]]
    assert sample_frames(10, 4, 1, 2, twice_sample=True).shape == (4, 4)
    assert dense_sample_frames(1, 1, 1, 1, sample_range=1, num_sample_positions=1).tolist() == [[0]]
    assert OUT_OF_BOUND_OPTS == ("loop", "repeat_last")
