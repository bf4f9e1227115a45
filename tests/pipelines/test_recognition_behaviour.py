"""What a user sees from the recognition stage, with scores we control.

A :class:`ScriptedRecognizer` stands in for the engine: it scores each clip by a plain
function of the clip (its newest frame), so the tests can say exactly which label and
scores every frame must carry. Everything else (clip buffers, the live worker, placement,
averaging, top-k) is the real stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from engines.clip_spec import ClipSpec
from pipelines.clip_buffer import Clip
from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.recognizer import Recognizer
from stream.packet import FramePacket, Prediction

FPS = 25
SPEC = ClipSpec(clip_len=4, frame_interval=1, num_clips=1)  # a window of 4 frames
CLASSES = ["walk", "wave", "sit"]
WALK = np.array([0.6, 0.3, 0.1], np.float32)
SIT = np.array([0.1, 0.3, 0.6], np.float32)


class ScriptedRecognizer(Recognizer):
    """A recognizer whose class scores are ``score_of(clip)``; records the clips of each call.

    With ``hold_first``, the first call blocks until :attr:`release` is set (a model slower
    than the camera), after setting :attr:`started`.
    """

    def __init__(self, score_of: Callable[[Clip], np.ndarray], *, hold_first: bool = False) -> None:
        super().__init__(engine=None, spec=SPEC, class_names=list(CLASSES))  # type: ignore[arg-type]
        self.score_of = score_of
        self.hold_first = hold_first
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[list[int]] = []

    @property
    def max_batch(self) -> int:
        return 8

    def scores(self, clips: Sequence[Clip]) -> np.ndarray:
        self.calls.append([clip.frame_idx for clip in clips])
        if self.hold_first and len(self.calls) == 1:
            self.started.set()
            assert self.release.wait(5), "the test never released the first inference"
        return np.stack([self.score_of(clip) for clip in clips])

    def close(self) -> None:
        pass


def packet(idx: int, pts: int | None = None, source_id: str = "cam") -> FramePacket:
    image = np.full((8, 8, 3), idx % 256, np.uint8)
    return FramePacket(image, source_id, idx, idx if pts is None else pts, Fraction(1, FPS), 1_000 + idx)


def run_file_mode(recognizer: Recognizer, params: RecognitionParams, frames: list[FramePacket]) -> list[FramePacket]:
    stage = RecognitionStage(recognizer, params, fps=FPS)
    stage.setup()
    out: list[FramePacket] = []
    for p in frames:
        result = stage.process(p)
        out += [] if result is None else [result] if isinstance(result, FramePacket) else list(result)  # type: ignore[list-item]
    out += list(stage.finish() or [])  # type: ignore[arg-type]
    return out


def full_scores(prediction: Prediction) -> np.ndarray:
    out = np.zeros(len(CLASSES), np.float32)
    out[prediction.label_ids] = prediction.scores
    return out


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# --------------------------------------------------------------------------- live mode


def test_live_mode_infers_the_newest_waiting_clip_when_the_model_is_slow() -> None:
    recognizer = ScriptedRecognizer(lambda clip: WALK, hold_first=True)
    stage = RecognitionStage(recognizer, RecognitionParams(predict_stepsize=1, live=True, top_k=1), fps=FPS)
    stage.setup()
    (worker,) = stage.workers()
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        for i in range(4):  # the first whole window ends on frame 3
            assert stage.process(packet(i)) is not None
        assert recognizer.started.wait(5), "the first clip never reached the model"
        for i in range(4, 13):  # the model is busy: clips ending on frames 4..12 wait, each newer than the last
            assert stage.process(packet(i)) is not None
        recognizer.release.set()
        assert wait_until(lambda: worker.done >= 2), recognizer.calls
        out = stage.process(packet(13))
    finally:
        stop.set()
        worker.wake()
        thread.join(5)
    assert recognizer.calls[:2] == [[3], [12]]  # the newest waiting clip was inferred next, not frame 4's
    assert stage.dropped_clips == 8  # clips ending on frames 4..11 were replaced before they started
    assert isinstance(out, FramePacket)
    first, second = out.predictions[:2]
    assert first.end_s == 3 / FPS and first.names == ("walk",)
    assert (second.start_s, second.end_s) == (9 / FPS, 12 / FPS)  # the window of frames 9..12
    assert second.capture_ns == 1_000 + 12


# --------------------------------------------------------------------------- averaging


def walk_then_sit(clip: Clip) -> np.ndarray:
    """Clips ending before frame 9 look like walking, later ones like sitting."""
    return WALK if clip.frame_idx < 9 else SIT


def test_average_size_reports_the_mean_of_the_last_clips_and_the_label_follows_it() -> None:
    frames = 16  # clips end on frames 3, 5, 7 (walk), 9, 11, 13, 15 (sit)
    rows = [WALK, WALK, WALK, SIT, SIT, SIT, SIT]  # each clip's own scores

    def run(average_size: int) -> list[FramePacket]:
        params = RecognitionParams(predict_stepsize=2, top_k=3, average_size=average_size)
        return run_file_mode(ScriptedRecognizer(walk_then_sit), params, [packet(i) for i in range(frames)])

    single, averaged = run(1), run(3)

    for out in (single, averaged):
        assert [p.frame_idx for p in out] == list(range(frames))
        assert [p.frame_idx for p in out if p.predictions] == [3, 5, 7, 9, 11, 13, 15]
    expected = np.stack([np.mean(rows[max(0, k - 2) : k + 1], axis=0) for k in range(len(rows))])
    got = np.stack([full_scores(p.predictions[0]) for p in averaged if p.predictions])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(np.stack([full_scores(p.predictions[0]) for p in single if p.predictions]), rows)
    # One clip: the label switches on the first sitting clip. Three: once sitting outweighs walking.
    top = {p.frame_idx: p.predictions[0].names[0] for p in single if p.predictions}
    assert top == {3: "walk", 5: "walk", 7: "walk", 9: "sit", 11: "sit", 13: "sit", 15: "sit"}
    top = {p.frame_idx: p.predictions[0].names[0] for p in averaged if p.predictions}
    assert top == {3: "walk", 5: "walk", 7: "walk", 9: "walk", 11: "sit", 13: "sit", 15: "sit"}


# --------------------------------------------------------------------------- interpolation


def test_interpolated_labels_start_over_when_the_camera_clock_resets() -> None:
    # 20 frames of walking, then the camera restarts: its timestamps begin at 0 again
    # (frame numbers go on) and the person sits.
    frames = [packet(i) for i in range(20)] + [packet(20 + i, pts=i) for i in range(20)]
    recognizer = ScriptedRecognizer(lambda clip: WALK if clip.frame_idx < 20 else SIT)
    out = run_file_mode(recognizer, RecognitionParams(anchor="interpolate", stride=0.5, top_k=3), frames)

    assert [p.frame_idx for p in out] == list(range(40))  # every frame, in order
    unlabelled = [p.frame_idx for p in out if len(p.predictions) != 1]
    assert unlabelled == []  # every frame gets exactly one prediction
    for p in out:
        expected = WALK if p.frame_idx < 20 else SIT  # no scores from the other side of the reset
        np.testing.assert_allclose(full_scores(p.predictions[0]), expected, atol=1e-6, err_msg=f"frame {p.frame_idx}")


def test_frames_after_a_clock_reset_are_released_while_the_new_timeline_runs() -> None:
    stage = RecognitionStage(ScriptedRecognizer(lambda clip: WALK), RecognitionParams(anchor="interpolate", stride=0.5))
    stage.setup()
    frames = [packet(i) for i in range(200)] + [packet(200 + i, pts=i) for i in range(150)]  # 8 s, then 6 s
    released_after_reset = 0
    for p in frames:
        result = stage.process(p)
        if p.frame_idx >= 200 and result is not None:
            released_after_reset += 1 if isinstance(result, FramePacket) else len(result)  # type: ignore[arg-type]
    assert released_after_reset >= 150 - 2 * SPEC.clip_len  # at most about a window waits for the end


def test_interpolated_labels_reach_every_frame_of_every_source() -> None:
    # Two sources interleaved, same clock. Source "a"'s window middle releases "b"'s frames
    # before "b"'s own windows label them (Placement.place returns one time for all sources).
    frames = [packet(i, source_id=s) for i in range(24) for s in ("a", "b")]
    out = run_file_mode(ScriptedRecognizer(lambda clip: WALK), RecognitionParams(anchor="interpolate"), frames)
    assert len(out) == 48
    assert [p.frame_idx for p in out if len(p.predictions) != 1] == []
