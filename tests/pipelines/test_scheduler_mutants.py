"""Clip-scheduling behaviour that mutation testing found unchecked (docs/mutation.md).

What a user sees from :class:`~pipelines.scheduler.ClipScheduler`: which frames a clip covers
and on which frame it is due (every frame, every ``--input-step``-th frame, at a given
``fps`` / ``target_fps``, under ``--inference-fps``), that frames are resized on arrival,
whether a source has had a clip, how many stream frames its window spans, and the padded
clip (and its warning) for each source that ended before one whole window.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest

from engines.clip_spec import ClipSpec, ResizeSpec
from pipelines.clip_buffer import Clip
from pipelines.scheduler import ClipScheduler
from stream.packet import FramePacket
from tests.pipelines.test_recognition_behaviour import packet

SPEC = ClipSpec(clip_len=4, frame_interval=1, num_clips=1)  # a window of 4 frames


def frame_at(idx: int, fps: int) -> FramePacket:
    """Frame ``idx`` of a stream at ``fps`` (its image is filled with ``idx``)."""
    return FramePacket(np.full((8, 8, 3), idx % 256, np.uint8), "cam", idx, idx, Fraction(1, fps), 1_000 + idx)


def due(scheduler: ClipScheduler, frames: list[FramePacket]) -> dict[int, Clip]:
    """The clips fed ``frames`` make due, by the frame they became due on."""
    out = {}
    for p in frames:
        clip = scheduler.feed(p)
        if clip is not None:
            out[p.frame_idx] = clip
    return out


def covered(clip: Clip) -> list[int]:
    """The frames a clip is made of (each test image is filled with its frame index)."""
    return [int(image[0, 0, 0]) for image in clip.frames]


def test_by_default_every_frame_is_fed_and_a_clip_covers_the_last_four() -> None:
    clips = due(ClipScheduler(SPEC), [packet(i) for i in range(8)])
    assert sorted(clips) == [3, 7]
    assert covered(clips[3]) == [0, 1, 2, 3] and covered(clips[7]) == [4, 5, 6, 7]


@pytest.mark.parametrize("step", [2, 3])
def test_input_step_feeds_the_last_frame_of_every_step(step: int) -> None:
    scheduler = ClipScheduler(SPEC, input_step=step)
    clips = due(scheduler, [packet(i) for i in range(8 * step)])
    fed = [step * k + step - 1 for k in range(8)]  # frames step-1, 2·step-1, ...
    assert sorted(clips) == [fed[3], fed[7]]
    assert covered(clips[fed[3]]) == fed[:4] and covered(clips[fed[7]]) == fed[4:]
    assert (clips[fed[3]].start_s, clips[fed[3]].end_s) == (fed[0] / 25, fed[3] / 25)
    assert scheduler.window_frames("cam") == 4 * step  # stream frames one window spans


def test_fps_sets_the_window_of_a_target_fps_model() -> None:
    spec = ClipSpec(clip_len=4, frame_interval=1, num_clips=1, target_fps=25)  # 4 frames at 25 fps
    scheduler = ClipScheduler(spec, fps=50)  # a 50 fps stream: the window spans 8 frames
    clips = due(scheduler, [frame_at(i, 50) for i in range(16)])
    assert sorted(clips) == [7, 15]
    assert (clips[7].start_s, clips[7].end_s) == (0.0, 7 / 50)
    assert scheduler.window_frames("cam") == 8


def test_fps_with_input_step_is_the_rate_of_the_fed_frames() -> None:
    spec = ClipSpec(clip_len=4, frame_interval=1, num_clips=1, target_fps=25)
    scheduler = ClipScheduler(spec, fps=50, input_step=2)  # frames 1, 3, 5, ... arrive at 25 fps
    clips = due(scheduler, [frame_at(i, 50) for i in range(16)])
    assert sorted(clips) == [7, 15]  # four fed frames per window
    assert covered(clips[7]) == [1, 3, 5, 7]
    assert scheduler.window_frames("cam") == 8


def test_inference_fps_caps_the_clips_per_second_of_stream_time() -> None:
    scheduler = ClipScheduler(SPEC, predict_stepsize=1, inference_fps=5, fps=25)
    clips = due(scheduler, [packet(i) for i in range(20)])
    assert sorted(clips) == [3, 8, 13, 18]  # one clip per 0.2 s = 5 frames, not one per frame


def test_frames_are_resized_when_they_arrive() -> None:
    spec = ClipSpec(clip_len=4, frame_interval=1, num_clips=1, resize=ResizeSpec((4, 2), keep_ratio=False))
    clips = due(ClipScheduler(spec), [packet(i) for i in range(4)])
    clip = clips[3]
    assert clip.resized
    assert {image.shape for image in clip.frames} == {(2, 4, 3)}  # not the 8×8 frames that came in


def test_has_clips_and_window_frames_of_each_source() -> None:
    scheduler = ClipScheduler(SPEC, input_step=2)
    assert not scheduler.has_clips("cam")  # unknown source
    assert scheduler.window_frames("cam") == 2  # unknown source: one fed frame's worth
    assert scheduler.buffer_of("cam") is None
    for i in range(7):  # frames 1, 3, 5 fed: no whole window yet
        scheduler.feed(packet(i))
    assert not scheduler.has_clips("cam")
    assert scheduler.window_frames("cam") == 8
    assert scheduler.feed(packet(7)) is not None  # the first clip
    assert scheduler.has_clips("cam")
    assert not scheduler.has_clips("door")


def test_final_clips_pad_every_source_that_ended_short_and_warn(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = ClipScheduler(SPEC)
    for i in range(6):  # "long" had a clip on frame 3: no padded clip for it
        scheduler.feed(packet(i, source_id="long"))
    for i in range(2):
        scheduler.feed(packet(i, source_id="short"))
    with caplog.at_level(logging.WARNING, logger="pipelines.scheduler"):
        (clip,) = scheduler.final_clips()
    assert clip.source_id == "short"
    assert covered(clip) == [0, 0, 0, 1]  # the missing frames repeat the first one
    assert [r.getMessage() for r in caplog.records if r.name == "pipelines.scheduler"] == [
        "short: the video ended after 2 frames, before one whole window of 4; labelled from one clip "
        "whose missing frames repeat the first one"
    ]
    assert scheduler.final_clips() == []  # once per source
