"""SkeletonStage: per-person keypoint buffers, labels to the right person, bounded memory.

The recognizer here is a small rule model with a real contract: its score for "raised" is
the fraction of frames in the window whose wrists are above the nose, so a wrong buffer
(another person's keypoints, a stale window, a window of the wrong length) changes its
output and fails the tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np
import pytest

from core.errors import ConfigError
from pipelines.events import ActionEvents, ActionEventStage
from pipelines.skeleton import PersonWindow, SkeletonParams, SkeletonStage
from stream.packet import Detections, FramePacket, SourceEvent
from stream.runner import Pipeline
from stream.stage import Source
from stream.transport import LOSSLESS
from tests.stream.helpers import Collect

NOSE, LEFT_WRIST, RIGHT_WRIST = 0, 9, 10


class RaisedArms:
    """scores = [down, raised]: the share of window frames with both wrists above the nose."""

    class_names = ("down", "raised")

    def __init__(self, clip_len: int = 8, max_batch: int = 4, delay_s: float = 0.0) -> None:
        self.clip_len = clip_len
        self.max_batch = max_batch
        self.delay_s = delay_s
        self.batches: list[list[tuple[int, int]]] = []  # (track_id, window length) per call
        self.closed = False

    def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.batches.append([(w.track_id, len(w.keypoints)) for w in windows])
        rows = []
        for w in windows:
            k = w.keypoints
            raised = float(np.mean((k[:, LEFT_WRIST, 1] < k[:, NOSE, 1]) & (k[:, RIGHT_WRIST, 1] < k[:, NOSE, 1])))
            rows.append([1.0 - raised, raised])
        return np.asarray(rows, np.float32)

    def close(self) -> None:
        self.closed = True


def person(x: float, raised: bool) -> np.ndarray:
    k = np.zeros((17, 3), np.float32)
    k[:, 0] = x
    k[:, 1] = 100.0
    k[:, 2] = 0.9
    k[NOSE, 1] = 50.0
    wrist_y = 20.0 if raised else 120.0
    k[LEFT_WRIST, 1] = k[RIGHT_WRIST, 1] = wrist_y
    return k


def packet(i: int, people: dict[int, bool], source_id: str = "cam") -> FramePacket:
    ids = sorted(people)
    xs = [40.0 * (t + 1) for t in ids]
    keypoints = np.stack([person(x, people[t]) for t, x in zip(ids, xs, strict=True)]) if ids else np.zeros((0, 17, 3))
    boxes = np.array([[x - 10, 10, x + 10, 150] for x in xs], np.float32).reshape(-1, 4)
    detections = Detections(
        boxes, np.full(len(ids), 0.9, np.float32), np.zeros(len(ids), np.int64), np.array(ids, np.int64),
        keypoints=keypoints,
    )  # fmt: skip
    image = np.zeros((160, 320, 3), np.uint8)
    return FramePacket(image, source_id, i, i, Fraction(1, 25), time.monotonic_ns(), detections)


def run_file_mode(stage: SkeletonStage, frames: list[dict[int, bool]]) -> list[FramePacket]:
    stage.setup()
    out = []
    for i, people in enumerate(frames):
        result = stage.process(packet(i, people))
        assert isinstance(result, FramePacket)
        out.append(result)
    return out


def test_each_person_gets_the_label_of_their_own_keypoints() -> None:
    model = RaisedArms(clip_len=8)
    stage = SkeletonStage(lambda: model, SkeletonParams(predict_stepsize=4))
    out = run_file_mode(stage, [{1: True, 2: False, 3: True}] * 16)
    predictions = [p for f in out for p in f.predictions]
    assert predictions, "no person was labelled"
    for p in predictions:
        assert p.names[0] == ("raised" if p.track_id in (1, 3) else "down"), (p.track_id, p.names)
        assert p.box is not None and p.box[0] == pytest.approx(40.0 * (p.track_id + 1) - 10)
    # first label after min_frames (window // 4 = 2), then every predict_stepsize frames of the track
    frames_with = sorted({f.frame_idx for f in out if f.predictions})
    assert frames_with == [1, 5, 9, 13]
    assert {p.track_id for p in out[1].predictions} == {1, 2, 3}
    # windows never exceed the window and hold only this person's frames
    assert max(n for batch in model.batches for _, n in batch) == 8


def test_window_follows_the_person_over_time() -> None:
    # person 1 raises the arms from frame 8 on: the share in the window grows frame by frame
    frames = [{1: i >= 8} for i in range(24)]
    stage = SkeletonStage(lambda: RaisedArms(clip_len=8), SkeletonParams(predict_stepsize=1, top_k=2))
    out = run_file_mode(stage, frames)
    raised = {f.frame_idx: dict(zip(f.predictions[0].names, f.predictions[0].scores, strict=True))["raised"]
              for f in out if f.predictions}  # fmt: skip
    assert raised[7] == 0.0
    assert raised[11] == pytest.approx(4 / 8)  # frames 8..11 of the window 4..11
    assert raised[15] == pytest.approx(1.0)


def test_a_person_seen_once_gets_no_label_and_no_error() -> None:
    frames = [{1: True, 7: True}] + [{1: True}] * 6
    stage = SkeletonStage(lambda: RaisedArms(clip_len=8), SkeletonParams(predict_stepsize=2))
    out = run_file_mode(stage, frames)
    assert all(p.track_id == 1 for f in out for p in f.predictions)
    assert any(f.predictions for f in out)


def test_more_people_than_the_batch_limit_run_in_turns() -> None:
    model = RaisedArms(clip_len=4, max_batch=3)
    stage = SkeletonStage(lambda: model, SkeletonParams(batch_size=8, predict_stepsize=4))
    people = {t: t % 2 == 0 for t in range(10)}
    out = run_file_mode(stage, [people] * 4)
    assert [len(b) for b in model.batches[:4]] == [3, 3, 3, 1]  # the model's own limit wins over batch_size
    labelled = {p.track_id: p.names[0] for f in out for p in f.predictions}
    assert labelled == {t: "raised" if t % 2 == 0 else "down" for t in range(10)}


def test_lost_tracks_and_disconnects_free_their_buffers() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=8), SkeletonParams())
    run_file_mode(stage, [{1: True, 2: True}] * 3)
    assert stage.people == 2
    stage.on_event(SourceEvent("cam", "track_lost", "person 1 left", 0.0, {"track_id": 1}))
    assert stage.people == 1
    stage.on_event(SourceEvent("other", "disconnected", "", 0.0))
    assert stage.people == 1
    stage.on_event(SourceEvent("cam", "disconnected", "", 0.0))
    assert stage.people == 0


def test_person_buffers_are_bounded() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=8), SkeletonParams(max_tracks=5))
    frames = [{t: True} for t in range(12)]  # a new person every frame, none ever lost
    run_file_mode(stage, frames)
    assert stage.people == 5
    assert stage.metrics()["evicted_tracks"] == 7


def test_a_returning_person_after_eviction_starts_a_fresh_window() -> None:
    model = RaisedArms(clip_len=8)
    stage = SkeletonStage(lambda: model, SkeletonParams(max_tracks=1, predict_stepsize=1))
    run_file_mode(stage, [{1: True}] * 3 + [{2: False}] + [{1: False}] * 2)
    assert model.batches[-1] == [(1, 2)]  # person 1's old frames were dropped with its buffer


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(predict_stepsize=0), "--predict-stepsize"),
        (dict(window=1), "--window"),
        (dict(min_frames=9, window=8), "--min-frames 9"),
        (dict(threshold=1.5), "--threshold"),
        (dict(batch_size=0), "--batch-size"),
    ],
)
def test_bad_params(params: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SkeletonParams(**params)  # type: ignore[arg-type]


def test_min_frames_longer_than_the_models_window_is_refused_at_setup() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4), SkeletonParams(min_frames=6))
    with pytest.raises(ConfigError, match="--min-frames 6"):
        stage.setup()


def test_a_model_returning_the_wrong_shape_is_a_clear_error() -> None:
    class Broken(RaisedArms):
        def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
            return np.zeros((len(windows), 3), np.float32)

    stage = SkeletonStage(lambda: Broken(clip_len=4), SkeletonParams())
    with pytest.raises(ConfigError, match=r"scores of shape \(1, 3\), expected \(1, 2\)"):
        run_file_mode(stage, [{1: True}] * 2)


class PeopleSource(Source):
    def __init__(self, frames: list[dict[int, bool]], interval_s: float) -> None:
        super().__init__("cam")
        self.frames, self.interval_s, self.live = frames, interval_s, True

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        for i, people in enumerate(self.frames):
            yield packet(i, people)
            if i == len(self.frames) // 2:
                yield SourceEvent("cam", "track_lost", "person 2 left", time.time(), {"track_id": 2})
            time.sleep(self.interval_s)


def test_live_mode_with_a_slow_model_drops_stale_windows_and_labels_the_right_people() -> None:
    model = RaisedArms(clip_len=8, delay_s=0.05)
    stage = SkeletonStage(lambda: model, SkeletonParams(predict_stepsize=1, live=True))
    collect = Collect()
    frames = [{1: True, 2: False}] * 20 + [{1: True}] * 20
    events = ActionEventStage(ActionEvents(threshold=0.5, start_after=1))
    # lossless links: every frame arrives; stale windows are dropped by the stage's own worker
    report = Pipeline([PeopleSource(frames, 0.01)], [stage, events, collect], policies=LOSSLESS).run()
    assert report.status == "ok", report
    assert collect.frames == [("cam", i) for i in range(40)]  # frames pass on at once
    metrics = report.stages["skeleton"]
    assert metrics["dropped_windows"] > 0  # the model (50 ms) is slower than the frames (10 ms)
    assert metrics["predictions"] >= 2
    actions = [e.data for e in collect.events if e.kind == "action"]
    starts = {(a["track_id"], a["label"]) for a in actions if a["phase"] == "start"}
    assert (1, "raised") in starts and (1, "down") not in starts
    ends = [a for a in actions if a["phase"] == "end" and a["track_id"] == 2]
    assert all(a.get("reason") == "person left" for a in ends)  # person 2's events end when they leave
    assert model.closed


def test_a_clock_going_back_starts_a_fresh_window() -> None:
    model = RaisedArms(clip_len=8)
    stage = SkeletonStage(lambda: model, SkeletonParams(predict_stepsize=100))
    stage.setup()
    for i in [0, 1, 2, 3, 4, 5, 0, 1, 2]:  # a looping file or a restarted camera: pts go back to 0
        stage.process(packet(i, {1: True}))
    # labelled once the window had min_frames (2) frames, again after the reset, on a window of the new frames only
    assert model.batches == [[(1, 2)], [(1, 2)]]
