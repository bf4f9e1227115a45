"""Placement behaviour that mutation testing found unchecked (docs/mutation.md).

What a user sees in file mode: on which frame each label lands and when the held frames go
on (``center``, ``interpolate``), the capture time each prediction carries (latency), that
every frame gets exactly one interpolated prediction when a window's middle falls exactly on
a frame, the scores frames get around a camera clock reset (a repeated timestamp, another
source's frames in between, a reset that lands on the old window's middle, the new clip
inferred only at the end), and the blend of two windows at a given time.
"""

from __future__ import annotations

import numpy as np
import pytest

from engines.clip_spec import ClipSpec
from pipelines.clip_buffer import Clip
from pipelines.placement import Interpolate, _Window, blend
from pipelines.recognition import RecognitionParams, RecognitionStage
from stream.packet import FramePacket, Prediction
from tests.pipelines.test_recognition_behaviour import (
    CLASSES,
    FPS,
    SIT,
    WALK,
    ScriptedRecognizer,
    full_scores,
    packet,
    run_file_mode,
)


def scripted(score_of, clip_len: int = 4) -> ScriptedRecognizer:  # type: ignore[no-untyped-def]
    recognizer = ScriptedRecognizer(score_of)
    recognizer.spec = ClipSpec(clip_len=clip_len, frame_interval=1, num_clips=1)
    return recognizer


def released_by(params: RecognitionParams, frames: list[FramePacket]) -> dict[int, int | None]:
    """For each frame, the frame whose ``process`` call let it go (None: at the end)."""
    stage = RecognitionStage(scripted(lambda clip: WALK), params, fps=FPS)
    stage.setup()
    out: dict[int, int | None] = {}
    for p in frames:
        result = stage.process(p)
        for q in [] if result is None else [result] if isinstance(result, FramePacket) else result:  # type: ignore[union-attr]
            out[q.frame_idx] = p.frame_idx
    for q in stage.finish() or []:  # type: ignore[union-attr]
        out[q.frame_idx] = None
    return out


def one_each(out: list[FramePacket]) -> None:
    assert [p.frame_idx for p in out] == sorted(p.frame_idx for p in out)
    counts = {p.frame_idx: len(p.predictions) for p in out if len(p.predictions) != 1}
    assert counts == {}, "frames without exactly one prediction"


# --------------------------------------------------------------------------- when frames go on


@pytest.mark.parametrize("anchor", ["center", "interpolate"])
def test_frames_go_on_once_no_later_window_is_centred_before_them(anchor: str) -> None:
    # Windows of frames 0..3, 4..7, 8..11: middles 1.5, 5.5, 9.5 (frames).
    out = released_by(RecognitionParams(anchor=anchor), [packet(i) for i in range(12)])  # type: ignore[arg-type]
    assert out == {0: 3, 1: 3, 2: 7, 3: 7, 4: 7, 5: 7, 6: 11, 7: 11, 8: 11, 9: 11, 10: None, 11: None}


def test_center_labels_land_on_the_frame_at_each_middle() -> None:
    frames = [packet(i) for i in range(15)]  # windows of 5 frames: middles on frames 2, 7, 12
    out = run_file_mode(scripted(lambda clip: WALK, clip_len=5), RecognitionParams(anchor="center"), frames)
    labelled = {p.frame_idx: (p.predictions[0].start_s, p.predictions[0].end_s) for p in out if p.predictions}
    assert labelled == {2: (0.0, 4 / FPS), 7: (5 / FPS, 9 / FPS), 12: (10 / FPS, 14 / FPS)}


# --------------------------------------------------------------------------- capture time


def test_end_predictions_carry_the_capture_time_of_the_clips_newest_frame() -> None:
    out = run_file_mode(scripted(lambda clip: WALK), RecognitionParams(anchor="end"), [packet(i) for i in range(8)])
    assert {p.frame_idx: p.predictions[0].capture_ns for p in out if p.predictions} == {3: 1_003, 7: 1_007}


def test_interpolated_predictions_carry_the_capture_time_of_the_later_window() -> None:
    out = run_file_mode(
        scripted(lambda clip: WALK), RecognitionParams(anchor="interpolate"), [packet(i) for i in range(12)]
    )
    one_each(out)
    later_window_end = [3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 11, 11]  # middles 1.5, 5.5, 9.5; the last after 9.5
    assert [p.predictions[0].capture_ns for p in out] == [1_000 + i for i in later_window_end]


# --------------------------------------------------------------------------- middles on a frame


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_frame_on_a_windows_middle_gets_one_prediction(batch_size: int) -> None:
    # Windows of 5 frames: 0..4, 5..9, 10..14, with middles on frames 2, 7 and 12.
    rows = {4: WALK, 9: SIT, 14: WALK}
    out = run_file_mode(
        scripted(lambda clip: rows[clip.frame_idx], clip_len=5),
        RecognitionParams(anchor="interpolate", top_k=3, batch_size=batch_size),
        [packet(i) for i in range(15)],
    )
    one_each(out)
    by_frame = {p.frame_idx: p.predictions[0] for p in out}
    np.testing.assert_allclose(full_scores(by_frame[7]), SIT, atol=1e-6)
    assert (by_frame[7].start_s, by_frame[7].end_s) == (0.0, 9 / FPS)  # the blend of windows 1 and 2 at its end
    np.testing.assert_allclose(full_scores(by_frame[12]), WALK, atol=1e-6)
    assert (by_frame[13].start_s, by_frame[13].end_s) == (10 / FPS, 14 / FPS)  # after the last middle: its window


# --------------------------------------------------------------------------- timestamp resets


def walk_then_sit(first_new: int):  # type: ignore[no-untyped-def]
    return lambda clip: WALK if clip.frame_idx < first_new else SIT


def assert_scores(out: list[FramePacket], first_new: int) -> None:
    one_each(out)
    for p in out:
        expected = WALK if p.frame_idx < first_new else SIT  # no scores from the other side of the reset
        np.testing.assert_allclose(full_scores(p.predictions[0]), expected, atol=1e-6, err_msg=f"frame {p.frame_idx}")


def test_reset_whose_new_window_has_the_old_windows_middle() -> None:
    # One window of frames 0..3 (middle 1.5), then the clock restarts and repeats pts 0..3.
    frames = [packet(i) for i in range(4)] + [packet(4 + i, pts=i) for i in range(4)]
    out = run_file_mode(scripted(walk_then_sit(4)), RecognitionParams(anchor="interpolate", top_k=3), frames)
    assert_scores(out, 4)


def test_reset_seen_only_when_the_last_batch_is_inferred_at_the_end() -> None:
    # Windows 0..3 and 4..7 are inferred together; the new timeline's one clip waits for the
    # end (batch of 2), when the old frames after 5.5 are still held.
    frames = [packet(i) for i in range(8)] + [packet(8 + i, pts=i) for i in range(6)]
    params = RecognitionParams(anchor="interpolate", top_k=3, batch_size=2)
    out = run_file_mode(scripted(walk_then_sit(8)), params, frames)
    assert [p.frame_idx for p in out] == list(range(14))
    assert_scores(out, 8)


def test_reset_when_no_old_frame_is_held_any_more() -> None:
    # One-frame windows: every frame is final once its own clip is placed.
    frames = [packet(i) for i in range(4)] + [packet(4 + i, pts=i) for i in range(4)]
    out = run_file_mode(
        scripted(walk_then_sit(4), clip_len=1), RecognitionParams(anchor="interpolate", top_k=3), frames
    )
    assert [p.frame_idx for p in out] == list(range(8))
    assert_scores(out, 4)


# Placement on its own: held frames as the stage would hold them, clips made by hand.


def clip_of(source_id: str, first: float, last: float, frame_idx: int) -> Clip:
    """A clip whose window runs from pts ``first`` to ``last`` (frames of 1/FPS s)."""
    return Clip(source_id, (), np.zeros((1, 0), np.int64), first / FPS, last / FPS, 1_000 + frame_idx, frame_idx, False)


def to_prediction(scores: np.ndarray, start_s: float, end_s: float, capture_ns: int) -> Prediction:
    return Prediction(
        np.arange(len(CLASSES)), np.asarray(scores, np.float32), tuple(CLASSES), start_s, end_s, capture_ns
    )


def test_reset_labels_the_old_tail_across_another_sources_frames() -> None:
    placement = Interpolate()
    held = [packet(i, source_id=s) for i in range(8) for s in ("door", "cam")]  # interleaved
    placement.place(held, [clip_of("cam", 0, 3, 3), clip_of("cam", 4, 7, 7)], [WALK, WALK], to_prediction)
    held = [p for p in held if p.time_s > 5.5 / FPS]  # what the stage still holds: frames 6 and 7
    held += [p for i in range(4) for p in (packet(8 + i, source_id="door"), packet(8 + i, pts=i, source_id="cam"))]
    placement.place(held, [clip_of("cam", 0, 3, 11)], [SIT], to_prediction)
    for p in held[:4]:
        if p.source_id == "cam":  # the old timeline's frames after its last middle: its scores
            assert [full_scores(q).tolist() for q in p.predictions] == [WALK.tolist()], p.frame_idx
        else:
            assert p.predictions == []
    new = {p.frame_idx: [full_scores(q).tolist() for q in p.predictions] for p in held[4:] if p.source_id == "cam"}
    assert new == {8: [SIT.tolist()], 9: [SIT.tolist()], 10: [], 11: []}  # up to the new window's middle


def test_reset_labels_every_old_frame_after_a_repeated_timestamp() -> None:
    placement = Interpolate()
    pts = [0, 1, 2, 3, 4, 5, 6, 6, 7]  # frame 7 repeats frame 6's timestamp
    held = [packet(i, pts=t) for i, t in enumerate(pts)]
    placement.place(held, [clip_of("cam", 0, 3, 3), clip_of("cam", 4, 7, 8)], [WALK, WALK], to_prediction)
    assert [len(p.predictions) for p in held] == [1] * 6 + [0] * 3  # up to the second middle (5.5)
    held = held[6:] + [packet(9 + i, pts=i) for i in range(4)]  # frames 6, 7, 8 (after 5.5), then the reset
    placement.place(held, [clip_of("cam", 0, 3, 12)], [SIT], to_prediction)
    old = {p.frame_idx: [full_scores(q).tolist() for q in p.predictions] for p in held[:3]}
    assert old == {6: [WALK.tolist()], 7: [WALK.tolist()], 8: [WALK.tolist()]}


def test_reset_between_two_clips_of_one_batch_labels_each_frame_once() -> None:
    # Bug found by mutation testing: with --batch-size 2 the old window labelled the new
    # timeline's frames before its middle too, and the new window the old ones.
    frames = [packet(i) for i in range(5)] + [packet(5 + i, pts=i) for i in range(5)]
    params = RecognitionParams(anchor="interpolate", top_k=3, batch_size=2)
    out = run_file_mode(scripted(walk_then_sit(5), clip_len=5), params, frames)
    assert [p.frame_idx for p in out] == list(range(10))
    assert_scores(out, 5)


def test_reset_in_the_same_batch_as_the_last_old_window() -> None:
    # Window 0..4 (middle on frame 2) and the new timeline's first window, placed together.
    placement = Interpolate()
    held = [packet(i) for i in range(5)] + [packet(5 + i, pts=i) for i in range(5)]
    placement.place(held, [clip_of("cam", 0, 4, 4), clip_of("cam", 0, 4, 9)], [WALK, SIT], to_prediction)
    placement.finish(held, to_prediction)
    assert [len(p.predictions) for p in held] == [1] * 10
    for p in held:
        expected = WALK if p.frame_idx < 5 else SIT
        np.testing.assert_allclose(full_scores(p.predictions[0]), expected, err_msg=f"frame {p.frame_idx}")


# --------------------------------------------------------------------------- blend


def window(centre: float, scores: np.ndarray) -> _Window:
    return _Window(centre, scores, centre - 1, centre + 1, int(centre * 1000))


@pytest.mark.parametrize(
    "time_s, expected",
    [
        (0.0, WALK),  # before the first middle: the first window's scores
        (1.0, WALK),
        (2.0, (WALK + SIT) / 2),
        (3.0, SIT),
        (5.0, SIT),  # after the second middle: the second window's scores
    ],
)
def test_blend_is_linear_between_the_middles_and_flat_outside(time_s: float, expected: np.ndarray) -> None:
    prediction = blend(window(1.0, WALK), window(3.0, SIT), time_s, to_prediction)
    np.testing.assert_allclose(prediction.scores, expected, atol=1e-6)
    assert (prediction.start_s, prediction.end_s, prediction.capture_ns) == (0.0, 4.0, 3000)


def test_blend_of_windows_with_the_same_middle_is_the_later_one() -> None:
    prediction = blend(window(2.0, WALK), window(2.0, SIT), 2.0, to_prediction)
    np.testing.assert_allclose(prediction.scores, SIT)


def test_a_window_whose_newest_frame_is_not_held_labels_the_newest_timeline() -> None:
    placement = Interpolate()
    held = [packet(i) for i in range(3)]  # frame 3, the clip's newest, has gone on already
    placement.place(held, [clip_of("cam", 0, 3, 3)], [WALK], to_prediction)
    assert [len(p.predictions) for p in held] == [1, 1, 0]  # up to the middle (1.5)
