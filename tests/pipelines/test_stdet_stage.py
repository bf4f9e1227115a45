"""StdetStage: keyframes, clips centred on them as SampleAVAFrames samples, labels per person.

Frames carry their index in their pixels, and the rule model below reports which frames and
which box pixels it was given, so a wrong keyframe schedule, clip offset, frame interval or
box scaling fails the tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np
import pytest

from core.errors import ConfigError
from pipelines.stdet import StdetParams, StdetStage
from stream.packet import Detections, FramePacket, SourceEvent
from stream.runner import Pipeline
from stream.stage import Source
from stream.transport import LOSSLESS
from tests.stream.helpers import Collect


class BrightBoxes:
    """Two actions: 'bright' = the box's mean pixel in the keyframe-centred clip is above 128,
    'wide' = the box is wider than tall. Records the frame indices of each clip."""

    class_names = ("bright", "wide")

    def __init__(self, clip_len: int = 4, frame_interval: int = 2, short_side: int = 32, delay_s: float = 0.0) -> None:
        self.clip_len, self.frame_interval, self.short_side = clip_len, frame_interval, short_side
        self.delay_s = delay_s
        self.clips: list[list[int]] = []
        self.boxes: list[np.ndarray] = []
        self.closed = False

    def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.clips.append([int(f[0, 0, 0]) for f in frames])  # the top-left pixel holds the frame index
        self.boxes.append(boxes.copy())
        rows = []
        for x1, y1, x2, y2 in boxes.astype(int):
            mean = float(np.mean([f[y1:y2, x1:x2, 1].mean() for f in frames]))
            rows.append([1.0 if mean > 128 else 0.0, 1.0 if (x2 - x1) > (y2 - y1) else 0.0])
        return np.asarray(rows, np.float32)

    def close(self) -> None:
        self.closed = True


def packet(i: int, with_people: bool = True, source_id: str = "cam") -> FramePacket:
    image = np.zeros((64, 128, 3), np.uint8)  # short side 64 -> resized by 0.5 to 32 x 64
    image[:, :, 0] = i
    image[:, 64:, 1] = 255  # the right half is bright
    boxes = np.array([[8, 8, 40, 56], [72, 20, 120, 44]], np.float32)  # person 1 dark & tall, person 2 bright & wide
    detections = (
        Detections(boxes, np.full(2, 0.9, np.float32), np.zeros(2, np.int64), np.array([1, 2], np.int64))
        if with_people
        else Detections.empty()
    )
    return FramePacket(image, source_id, i, i, Fraction(1, 25), time.monotonic_ns(), detections)


def run(stage: StdetStage, n: int, people: Sequence[bool] | None = None) -> list[FramePacket]:
    stage.setup()
    out = []
    for i in range(n):
        result = stage.process(packet(i, True if people is None else people[i]))
        assert isinstance(result, FramePacket)
        out.append(result)
    return out


def test_clips_are_centred_on_keyframes_as_sample_ava_frames() -> None:
    model = BrightBoxes(clip_len=4, frame_interval=2)
    out = run(StdetStage(lambda: model, StdetParams(predict_stepsize=3, threshold=0.5)), 20)
    # before = 2 * 2 = 4 frames, after = (2 - 1) * 2 = 2: keyframes 4, 7, 10, 13, 16 (19 would need frame 21)
    assert model.clips == [[k - 4, k - 2, k, k + 2] for k in (4, 7, 10, 13, 16)]
    assert [f.frame_idx for f in out if f.predictions] == [6, 9, 12, 15, 18]
    np.testing.assert_allclose(model.boxes[0], [[4, 4, 20, 28], [36, 10, 60, 22]])  # scaled to the 32-px short side


def test_each_person_gets_their_own_actions_multi_label() -> None:
    out = run(StdetStage(lambda: BrightBoxes(), StdetParams(predict_stepsize=4, threshold=0.5)), 12)
    predictions = [p for f in out for p in f.predictions]
    assert predictions
    by_track = {p.track_id: p for p in predictions}
    assert by_track[1].names == () and by_track[2].names == ("bright", "wide")
    assert all(p.multi_label for p in predictions)
    np.testing.assert_allclose(by_track[2].box, [72, 20, 120, 44])  # the box in the source frame's pixels


def test_keyframes_without_people_are_skipped() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    people = [i % 2 == 0 for i in range(10)]
    run(StdetStage(lambda: model, StdetParams(predict_stepsize=1)), 10, people)
    assert [c[1] for c in model.clips] == [2, 4, 6, 8]  # keyframes with people only


def test_a_disconnected_source_is_freed_and_restarts_its_schedule() -> None:
    model = BrightBoxes(clip_len=4, frame_interval=1)
    stage = StdetStage(lambda: model, StdetParams(predict_stepsize=100))
    run(stage, 5)
    assert model.clips == [[0, 1, 2, 3]]
    stage.on_event(SourceEvent("cam", "disconnected", "", 0.0))
    for i in range(5, 9):
        stage.process(packet(i))
    assert model.clips == [[0, 1, 2, 3], [5, 6, 7, 8]]


def test_bad_params_and_wrong_model_output() -> None:
    with pytest.raises(ConfigError, match="--predict-stepsize"):
        StdetParams(predict_stepsize=0)
    with pytest.raises(ConfigError, match="--action-score-thr"):
        StdetParams(threshold=2.0)

    class Broken(BrightBoxes):
        def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
            return np.zeros((1, 2), np.float32)

    with pytest.raises(ConfigError, match=r"shape \(1, 2\), expected \(2, 2\)"):
        run(StdetStage(lambda: Broken(clip_len=1, frame_interval=1)), 2)


class Frames(Source):
    def __init__(self, n: int, interval_s: float) -> None:
        super().__init__("cam")
        self.n, self.interval_s, self.live = n, interval_s, True

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        for i in range(self.n):
            yield packet(i)
            time.sleep(self.interval_s)


def test_live_mode_drops_stale_keyframes_and_never_holds_frames() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1, delay_s=0.06)
    stage = StdetStage(lambda: model, StdetParams(predict_stepsize=1, live=True))
    collect = Collect()
    report = Pipeline([Frames(40, 0.01)], [stage, collect], policies=LOSSLESS).run()
    assert report.status == "ok", report
    assert collect.frames == [("cam", i) for i in range(40)]
    metrics = report.stages["stdet"]
    assert metrics["dropped_keyframes"] > 0 and metrics["keyframes"] >= 2
    assert model.closed
