"""Frame indices of MMAction2's test-mode samplers, for a window of ``num_frames`` frames.

MMAction2 samples a whole video; a stream has no end, so the clip buffer treats its
newest window of frames as the "video" and asks these functions which of them a model
sees. The results equal MMAction2 1.2's ``SampleFrames`` / ``DenseSampleFrames`` with
``test_mode=True`` (``frame_inds`` reshaped to ``(clips, clip_len)``), and the tests
check that against MMAction2 itself.

``SampleFrames`` (test mode), with ``N = num_clips`` and ``L = clip_len``:

* ``L == 1`` (TSN-style segment sampling, 2D models): the window is cut into ``N``
  equal segments of ``avg = num_frames / N`` frames and the middle frame of each is
  taken: ``offset_i = floor(i * avg + avg / 2)``. ``twice_sample`` appends the first
  frame of each segment, ``floor(i * avg)``, as ``N`` more clips.
* ``L > 1`` (3D models): one clip spans ``span = (L - 1) * frame_interval + 1``
  frames; with ``max_offset = max(num_frames - span, 0)`` the clip starts are
  ``round(i * max_offset / (N - 1))`` (numpy's round-half-to-even) for ``N > 1``, or
  ``max_offset // 2`` for one clip. ``twice_sample`` makes ``2N`` starts on the same
  step (MMAction2's behaviour: the extra starts lie past the window and wrap).
  Frame ``j`` of a clip is ``start + j * frame_interval``.
* ``target_fps`` (SlowFast-style, used by X3D configs): the clip spans
  ``span = max(1, L * frame_interval * fps / target_fps)`` frames of the input,
  starts are ``i * floor(max_offset / (N - 1))`` (or ``max_offset // 2``), and frame
  ``j`` is ``start + int(linspace(0, span - 1, L)[j])``.

``DenseSampleFrames`` (test mode): ``num_sample_positions`` start positions
``linspace(0, max(1, 1 + num_frames - sample_range) - 1)`` (as ints), each followed by
``N`` clips ``sample_range // N`` frames apart, wrapped modulo ``num_frames``.

``UniformSample`` (test mode): the window is cut into ``L`` segments of
``seg = (num_frames - 1) / L`` frames; clip ``k`` of ``N`` takes from segment ``i`` the
frame ``round(seg * i) + int(seg / (N + 1) * (k + 1))`` (numpy's round-half-to-even, then
Python's truncation), so every index lies inside the window.

Out-of-bound indices (``>= num_frames``) are wrapped (``'loop'``: ``i % num_frames``) or
replaced by the last in-bound index of their clip (``'repeat_last'``), then
``start_index`` is added.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

OutOfBound = Literal["loop", "repeat_last"]

OUT_OF_BOUND_OPTS: tuple[str, ...] = ("loop", "repeat_last")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_common(num_frames: int, clip_len: int, frame_interval: int, num_clips: int, out_of_bound_opt: str) -> None:
    _check_positive("num_frames", num_frames)
    _check_positive("clip_len", clip_len)
    _check_positive("frame_interval", frame_interval)
    _check_positive("num_clips", num_clips)
    if out_of_bound_opt not in OUT_OF_BOUND_OPTS:
        raise ValueError(f"out_of_bound_opt: expected one of {OUT_OF_BOUND_OPTS}, got {out_of_bound_opt!r}")


def _finish(inds: np.ndarray, num_frames: int, out_of_bound_opt: str, start_index: int) -> np.ndarray:
    """Apply the out-of-bound rule to ``(clips, clip_len)`` indices (int or float) and cast."""
    if out_of_bound_opt == "loop":
        inds = np.mod(inds, num_frames)
    else:
        safe = inds < num_frames
        last = np.max(np.where(safe, inds, 0), axis=1, keepdims=True)
        inds = np.where(safe, inds, last)
    # MMAction2 casts (truncates) after adding start_index; the floats here are >= 0.
    return (inds + start_index).astype(np.int64)


def sample_frames(
    num_frames: int,
    clip_len: int,
    frame_interval: int = 1,
    num_clips: int = 1,
    *,
    twice_sample: bool = False,
    out_of_bound_opt: OutOfBound = "loop",
    start_index: int = 0,
    target_fps: float | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """Indices MMAction2's ``SampleFrames(test_mode=True)`` picks from ``num_frames`` frames.

    Args:
        num_frames: Frames in the window (MMAction2's ``total_frames``).
        clip_len: Frames per clip.
        frame_interval: Step between the frames of one clip.
        num_clips: Clips per sample.
        twice_sample: Also sample the segment starts (2D) or twice the clips (3D), as TSM tests do.
        out_of_bound_opt: ``'loop'`` or ``'repeat_last'`` for indices past the window.
        start_index: Added to every index (MMAction2 uses 1 for some raw-frame datasets).
        target_fps: ``SampleFrames.target_fps``: clips span ``clip_len * frame_interval`` frames
            at this rate.
        fps: Frame rate of the input; only used with ``target_fps`` (None: assume ``target_fps``).

    Returns:
        int64 array ``(clips, clip_len)``, ``clips = num_clips`` (``2 * num_clips`` with
        ``twice_sample``). ``.ravel()`` equals MMAction2's ``frame_inds``.

    Raises:
        ValueError: For a non-positive count, an unknown ``out_of_bound_opt``, a
            non-positive ``target_fps``, or ``twice_sample`` with one 3D clip (MMAction2
            divides by zero there).
    """
    _check_common(num_frames, clip_len, frame_interval, num_clips, out_of_bound_opt)
    if target_fps is not None and not target_fps > 0:
        raise ValueError(f"target_fps: expected a positive number or None, got {target_fps!r}")
    total_clips = num_clips * 2 if twice_sample else num_clips
    if clip_len > 1 and total_clips > 1 and num_clips == 1:
        raise ValueError("twice_sample with clip_len > 1 needs num_clips > 1 (MMAction2 divides by num_clips - 1)")

    ratio = fps / target_fps if target_fps is not None and fps else 1.0
    if target_fps is not None:
        span: float = float(np.maximum(1, clip_len * frame_interval * ratio))
    else:
        span = (clip_len - 1) * frame_interval + 1

    if clip_len == 1:  # segment sampling (2D recognizers)
        avg_interval = num_frames / float(num_clips)
        base_offsets = np.arange(num_clips) * avg_interval
        offsets = base_offsets + avg_interval / 2.0
        if twice_sample:
            offsets = np.concatenate([offsets, base_offsets])
    else:
        max_offset = max(num_frames - span, 0)
        if total_clips > 1:
            if target_fps is not None:
                offsets = np.arange(total_clips) * np.floor(max_offset / float(num_clips - 1))
            else:
                offsets = np.round(np.arange(total_clips) * (max_offset / float(num_clips - 1)))
        else:
            offsets = np.array([max_offset // 2])

    steps: np.ndarray
    if target_fps:
        steps = np.linspace(0, span - 1, clip_len).astype(np.int32)
    else:
        steps = np.arange(clip_len) * frame_interval
    inds = offsets[:, None] + steps[None, :]
    return _finish(inds, num_frames, out_of_bound_opt, start_index)


def dense_sample_frames(
    num_frames: int,
    clip_len: int,
    frame_interval: int = 1,
    num_clips: int = 1,
    *,
    sample_range: int = 64,
    num_sample_positions: int = 10,
    out_of_bound_opt: OutOfBound = "loop",
    start_index: int = 0,
) -> np.ndarray:
    """Indices MMAction2's ``DenseSampleFrames(test_mode=True)`` picks from ``num_frames`` frames.

    Args:
        num_frames: Frames in the window.
        clip_len: Frames per clip.
        frame_interval: Step between the frames of one clip.
        num_clips: Clips per start position.
        sample_range: Frames one start position covers.
        num_sample_positions: Start positions spread over the window.
        out_of_bound_opt: ``'loop'`` or ``'repeat_last'``.
        start_index: Added to every index.

    Returns:
        int64 array ``(num_sample_positions * num_clips, clip_len)``.

    Raises:
        ValueError: For a non-positive count or an unknown ``out_of_bound_opt``.
    """
    _check_common(num_frames, clip_len, frame_interval, num_clips, out_of_bound_opt)
    _check_positive("sample_range", sample_range)
    _check_positive("num_sample_positions", num_sample_positions)
    sample_position = max(1, 1 + num_frames - sample_range)
    interval = sample_range // num_clips
    starts = np.linspace(0, sample_position - 1, num=num_sample_positions, dtype=int)
    base_offsets = np.arange(num_clips) * interval
    offsets = ((starts[:, None] + base_offsets[None, :]) % num_frames).ravel()
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return _finish(inds, num_frames, out_of_bound_opt, start_index)


def uniform_sample(num_frames: int, clip_len: int, num_clips: int = 1, *, start_index: int = 0) -> np.ndarray:
    """Indices MMAction2's ``UniformSample(test_mode=True)`` picks from ``num_frames`` frames.

    Args:
        num_frames: Frames in the window (MMAction2's ``total_frames``).
        clip_len: Frames per clip (the number of segments).
        num_clips: Clips per sample; clip ``k`` takes the frame ``(k + 1) / (num_clips + 1)`` of the
            way into each segment (rounded down).
        start_index: Added to every index.

    Returns:
        int64 array ``(num_clips, clip_len)``; ``.ravel()`` equals MMAction2's ``frame_inds``.

    Raises:
        ValueError: For a non-positive count.
    """
    _check_positive("num_frames", num_frames)
    _check_positive("clip_len", clip_len)
    _check_positive("num_clips", num_clips)
    seg_size = float(num_frames - 1) / clip_len
    duration = seg_size / (num_clips + 1)
    starts = [int(np.round(seg_size * i)) for i in range(clip_len)]
    inds = [[start + int(duration * (k + 1)) for start in starts] for k in range(num_clips)]
    return np.asarray(inds, dtype=np.int64).reshape(num_clips, clip_len) + start_index
