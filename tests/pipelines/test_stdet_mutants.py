"""Spatio-temporal detection behaviour that mutation testing found unchecked (docs/mutation.md).

What a user sees from :class:`~pipelines.stdet.StdetStage`: the ``--metrics`` figures (with a
controlled clock), the error text naming the flag or the stage, which frames each clip holds
for odd and even ``clip_len``, the size the model gets frames at, what a change of frame size
or an ended source restarts, the times, box, track and labels of each prediction, and in live
mode which frame a keyframe's labels reach. Live mode is driven without threads or sleeps:
:func:`drain` runs the stage's worker in the test's thread until no keyframe is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

import pipelines.stdet as stdet
from core.errors import ConfigError
from pipelines.stdet import StdetParams, StdetStage
from stream.packet import Detections, FramePacket, SourceEvent
from tests.pipelines.stage_helpers import Clock, drain, feed
from tests.pipelines.test_stdet_stage import BrightBoxes

T0_NS = 1_000_000_000
BOXES = np.array([[8, 8, 40, 56], [72, 20, 120, 44]], np.float32)  # person 1 dark & tall, person 2 bright & wide


def moved(dx: float) -> np.ndarray:
    """Both people's boxes ``dx`` pixels to the right."""
    return BOXES + np.array([dx, 0, dx, 0], np.float32)


def frame(
    i: int,
    source_id: str = "cam",
    *,
    size: tuple[int, int] = (64, 128),
    track_ids: Sequence[int] | None = (1, 2),
    detections: Detections | None = None,
) -> FramePacket:
    """Frame ``i`` (25 fps, captured at ``T0_NS + 40 ms · i``); its pixels hold ``i``, the right
    half is bright, and both people's boxes move 1 px to the right each frame."""
    image = np.zeros((*size, 3), np.uint8)
    image[:, :, 0] = i
    image[:, size[1] // 2 :, 1] = 255
    if detections is None:
        ids = None if track_ids is None else np.array(track_ids, np.int64)
        detections = Detections(moved(i), np.full(2, 0.9, np.float32), np.zeros(2, np.int64), ids)
    return FramePacket(image, source_id, i, i, Fraction(1, 25), T0_NS + i * 40_000_000, detections)


def started(model: BrightBoxes, params: StdetParams | None = None) -> StdetStage:
    stage = StdetStage(lambda: model, params)
    stage.setup()
    return stage


class Fixed(BrightBoxes):
    """The same score row for every box (class names a, b, c, ...); records frame shapes."""

    def __init__(self, row: Sequence[float]) -> None:
        super().__init__(clip_len=2, frame_interval=1)
        self.row = np.asarray(row, np.float32)
        self.class_names = tuple("abcdefghijklmnopqrstuvwxyz"[: len(row)])  # type: ignore[misc]

    def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        return np.tile(self.row, (len(boxes), 1))


# ---------------------------------------------------------------------- metrics


def test_metrics_before_any_keyframe() -> None:
    assert started(BrightBoxes()).metrics() == {
        "keyframes": 0,
        "people": 0,
        "dropped_keyframes": 0,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "infer_p50_ms": None,
    }


def test_metrics_count_keyframes_people_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(stdet, "time", clock)
    calls = iter([(2.3499, 10.050001), (1.0, 5.0), (4.0, 52.3)])  # (inference ms, latency ms) per keyframe

    class Timed(BrightBoxes):
        def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
            cost_ms, latency_ms = next(calls)
            clock.perf += cost_ms / 1e3
            newest = int(frames[-1][0, 0, 0])  # the clip ends on the frame the keyframe is complete on
            clock.ns = T0_NS + newest * 40_000_000 + round(latency_ms * 1e6)
            return super().scores(frames, boxes)

    stage = started(Timed(clip_len=2, frame_interval=1), StdetParams(predict_stepsize=1))
    out = feed(stage, [frame(i) for i in range(4)])  # keyframes on frames 1, 2, 3
    assert [len(f.predictions) for f in out] == [0, 2, 2, 2]
    assert stage.metrics() == {
        "keyframes": 3,
        "people": 6,
        "dropped_keyframes": 0,
        "latency_p50_ms": 10.1,
        "latency_p95_ms": 48.1,
        "infer_p50_ms": 2.3,
    }


def test_percentiles_cover_the_last_2048_keyframes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(stdet, "time", clock)

    class Steady(BrightBoxes):
        """100 ms late and 9 ms a keyframe for the first 2048 keyframes, then 10 ms and 1 ms."""

        calls = 0

        def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
            old = self.calls < 2048
            self.calls += 1
            clock.perf += (9.0 if old else 1.0) / 1e3
            clock.ns += 100_000_000 if old else 10_000_000
            return np.zeros((len(boxes), 2), np.float32)

    stage = started(Steady(clip_len=1, frame_interval=1, short_side=8), StdetParams(predict_stepsize=1))
    detections = Detections(BOXES / 16, np.ones(2), np.zeros(2, np.int64), np.array([1, 2]))
    image = np.zeros((8, 8, 3), np.uint8)
    for i in range(4096):  # the clock stays at each frame's capture time until the model adds its latency
        stage.process(FramePacket(image, "cam", i, i, Fraction(1, 25), clock.ns, detections))
    metrics = stage.metrics()
    assert metrics["keyframes"] == 4096
    assert (metrics["latency_p50_ms"], metrics["latency_p95_ms"], metrics["infer_p50_ms"]) == (10, 10, 1)


# ---------------------------------------------------------------------- flags and setup


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(predict_stepsize=0), "--predict-stepsize: expected >= 1, got 0"),
        (dict(threshold=-0.5), "--action-score-thr: expected a score between 0 and 1, got -0.5"),
        (dict(threshold=2.0), "--action-score-thr: expected a score between 0 and 1, got 2.0"),
    ],
)
def test_bad_flags_name_the_flag_and_the_value(params: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StdetParams(**params)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize("params", [dict(predict_stepsize=1), dict(threshold=0.0), dict(threshold=1.0)])
def test_limit_values_are_accepted(params: dict[str, float]) -> None:
    StdetParams(**params)  # type: ignore[arg-type]


@pytest.mark.parametrize(("clip_len", "interval"), [(0, 1), (4, 0)])
def test_a_model_clip_of_no_frames_is_refused_naming_the_stage(clip_len: int, interval: int) -> None:
    stage = StdetStage(lambda: BrightBoxes(clip_len=clip_len, frame_interval=interval), name="ava")
    with pytest.raises(ConfigError) as caught:
        stage.setup()
    assert str(caught.value) == f"ava: the model's clip_len {clip_len} / frame_interval {interval} must be >= 1"


@pytest.mark.parametrize(
    ("clip_len", "interval", "clips", "labelled"),
    [
        (1, 1, [[0], [1], [2], [3], [4], [5], [6]], [0, 1, 2, 3, 4, 5, 6]),
        (1, 3, [[0], [1], [2], [3], [4], [5], [6]], [0, 1, 2, 3, 4, 5, 6]),
        (3, 2, [[0, 2, 4], [1, 3, 5], [2, 4, 6]], [4, 5, 6]),  # 1 frame before the keyframe, 1 after
        (5, 1, [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]], [4, 5, 6]),
        (2, 3, [[0, 3], [1, 4], [2, 5], [3, 6]], [3, 4, 5, 6]),  # the keyframe is the clip's last frame
    ],
)
def test_clips_for_odd_and_even_clip_lengths(
    clip_len: int, interval: int, clips: list[list[int]], labelled: list[int]
) -> None:
    model = BrightBoxes(clip_len=clip_len, frame_interval=interval)
    out = feed(started(model, StdetParams(predict_stepsize=1)), [frame(i) for i in range(7)])
    assert model.clips == clips
    assert [f.frame_idx for f in out if f.predictions] == labelled


def test_closing_a_stage_that_never_started_is_fine() -> None:
    StdetStage(lambda: BrightBoxes()).close()  # the runner closes every stage, even after a failed setup


def test_process_before_setup_and_after_close_is_a_clear_error() -> None:
    closes = []
    model = BrightBoxes()
    model.close = lambda: closes.append(1)  # type: ignore[method-assign]
    stage = StdetStage(lambda: model)
    with pytest.raises(ConfigError) as caught:
        stage.process(frame(0))
    assert str(caught.value) == "stdet: process() before setup()"
    stage.setup()
    feed(stage, [frame(0)])
    stage.close()
    stage.close()
    assert closes == [1]
    with pytest.raises(ConfigError) as caught:
        stage.process(frame(1))
    assert str(caught.value) == "stdet: process() before setup()"


def test_a_wrong_score_shape_names_the_stage_and_both_shapes() -> None:
    class Broken(BrightBoxes):
        def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
            return np.zeros((1, 3), np.float32)

    stage = StdetStage(lambda: Broken(clip_len=1, frame_interval=1), name="ava")
    stage.setup()
    with pytest.raises(ConfigError) as caught:
        stage.process(frame(0))
    assert str(caught.value) == (
        "ava: the model returned scores of shape (1, 3), expected (2, 2) (one row per person, one column per action)"
    )


# ---------------------------------------------------------------------- frames the model gets


@pytest.mark.parametrize(
    ("size", "resized"),
    [
        ((48, 100), (32, 67)),  # 100 · 2/3 = 66.7 rounds to 67
        ((32, 50), (32, 50)),  # already at the short side
        ((100, 48), (67, 32)),
    ],
)
def test_frames_are_resized_to_the_models_short_side(size: tuple[int, int], resized: tuple[int, int]) -> None:
    shapes = []

    class Shapes(BrightBoxes):
        def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
            shapes.extend(f.shape for f in frames)
            return np.zeros((len(boxes), 2), np.float32)

    feed(started(Shapes(clip_len=1, frame_interval=1)), [frame(0, size=size)])
    assert shapes == [(*resized, 3)]


def test_a_change_of_frame_size_starts_a_new_clip() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=1))
    feed(stage, [frame(0), frame(1)] + [frame(i, size=(96, 96)) for i in (2, 3)])
    assert model.clips == [[0, 1], [2, 3]]  # no clip mixes the two sizes
    # the keyframe (frame 3) boxes at the new scale, 32/96
    np.testing.assert_allclose(model.boxes[-1], moved(3) / 3, rtol=1e-6)


@pytest.mark.parametrize(
    "detections",
    [
        Detections.empty(),
        Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)),  # tracked, nobody
        Detections(BOXES, np.ones(2), np.zeros(2, np.int64)),  # people not tracked yet
    ],
)
def test_keyframes_without_tracked_people_are_skipped(detections: Detections) -> None:
    model = BrightBoxes(clip_len=1, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=1))
    p = FramePacket(np.zeros((64, 64, 3), np.uint8), "cam", 0, 0, Fraction(1, 25), T0_NS, None)
    assert stage.process(p) is p and p.predictions == []
    assert feed(stage, [frame(1, detections=detections)])[0].predictions == []
    assert model.clips == [] and stage.metrics()["keyframes"] == 0


def test_a_source_that_gives_up_before_its_first_frame_is_fine() -> None:
    stage = started(BrightBoxes())
    event = SourceEvent("cam", "gave_up", "never connected", 0.0)
    assert stage.on_event(event) is event


# ---------------------------------------------------------------------- what each prediction holds


def test_a_prediction_holds_the_keyframes_people_and_the_clips_times() -> None:
    model = BrightBoxes(clip_len=4, frame_interval=1)  # 2 frames before the keyframe, 1 after
    frames = [frame(i) for i in range(3)] + [frame(3, track_ids=(7, 8))]
    out = feed(started(model, StdetParams(predict_stepsize=100, threshold=0.5)), frames)
    p1, p2 = out[3].predictions
    assert (p1.track_id, p2.track_id) == (1, 2)  # the keyframe's (frame 2's) people
    np.testing.assert_array_equal(p2.box, moved(2)[1])  # their box on the keyframe
    assert p2.box.dtype == np.float32
    assert (p2.start_s, p2.end_s) == (0.0, 3 / 25)  # the clip's oldest and newest frames
    assert p2.capture_ns == T0_NS + 3 * 40_000_000
    assert p2.names == ("bright", "wide") and p2.label_ids.tolist() == [0, 1] and p2.label_ids.dtype == np.int64
    assert p1.multi_label and p2.multi_label
    assert model.boxes[0].dtype == np.float32


@pytest.mark.parametrize(
    ("threshold", "names", "scores"),
    [
        (0.2, ("b", "c"), [0.5, 0.3]),  # best first
        (0.3, ("b",), [0.5]),  # strictly above, as MMAction2's demos
        (0.5, (), []),
    ],
)
def test_actions_strictly_above_the_threshold_best_first(
    threshold: float, names: tuple[str, ...], scores: list[float]
) -> None:
    out = feed(started(Fixed([0.2, 0.5, 0.3]), StdetParams(threshold=threshold)), [frame(0), frame(1)])
    for p in out[1].predictions:
        assert p.names == names
        np.testing.assert_allclose(p.scores, scores)


def test_equal_scores_keep_the_class_order() -> None:
    row = np.random.default_rng(0).choice([0.6, 0.7, 0.8], 400)  # 400 actions, many ties
    model = Fixed(row)
    model.class_names = tuple(str(i) for i in range(400))  # type: ignore[misc]
    out = feed(started(model, StdetParams(threshold=0.5)), [frame(0), frame(1)])
    assert out[1].predictions[0].label_ids.tolist() == sorted(range(400), key=lambda i: -row[i])


def test_the_threshold_applies_to_the_float32_scores_reported() -> None:
    model = Fixed([0.30000000001, 0.7])
    model.row = np.array([0.30000000001, 0.7])  # a model answering in float64
    out = feed(started(model, StdetParams(threshold=0.3)), [frame(0), frame(1)])
    # "a" would be reported as 0.3 (float32): not above --action-score-thr 0.3, so it is left out
    assert out[1].predictions[0].names == ("b",)


# ---------------------------------------------------------------------- sources


def test_finish_restarts_every_sources_schedule() -> None:
    model = BrightBoxes(clip_len=4, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=100))
    feed(stage, [frame(i) for i in range(3)])
    assert stage.finish() is None
    feed(stage, [frame(i) for i in range(3, 7)])
    assert model.clips == [[3, 4, 5, 6]]


@pytest.mark.parametrize("kind", ["disconnected", "gave_up"])
def test_an_ended_source_frees_only_its_own_frames(kind: str) -> None:
    model = BrightBoxes(clip_len=4, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=100))
    feed(stage, [frame(0), frame(1), frame(10, "lab"), frame(11, "lab")])
    for event in [SourceEvent("lab", kind, "", 0.0), SourceEvent("cam", "reconnecting", "", 0.0)]:  # type: ignore[arg-type]
        assert stage.on_event(event) is event
    feed(stage, [frame(2), frame(3), frame(12, "lab"), frame(13, "lab")])
    assert model.clips == [[0, 1, 2, 3]]  # the lab's schedule restarted with frame 12


# ---------------------------------------------------------------------- live mode


def test_file_mode_has_no_worker_and_live_mode_one() -> None:
    assert StdetStage(lambda: BrightBoxes()).workers() == ()
    (worker,) = StdetStage(lambda: BrightBoxes(), StdetParams(live=True)).workers()
    assert worker.name == "infer"  # its thread is "stdet-infer" in logs and thread dumps


def test_live_labels_reach_the_next_frame_of_their_own_source() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=100, live=True))
    out = feed(stage, [frame(0), frame(1), frame(10, "lab"), frame(11, "lab")])
    assert all(not f.predictions for f in out)  # frames pass on before the model ran
    drain(stage)
    assert model.clips == [[0, 1], [10, 11]]
    (lab,) = feed(stage, [frame(12, "lab")])
    assert [(p.track_id, p.end_s) for p in lab.predictions] == [(1, 11 / 25), (2, 11 / 25)]
    (cam,) = feed(stage, [frame(2)])
    assert [(p.track_id, p.end_s) for p in cam.predictions] == [(1, 1 / 25), (2, 1 / 25)]
    assert feed(stage, [frame(3)])[0].predictions == []
    assert stage.metrics()["keyframes"] == 2


def test_live_keyframes_not_started_are_replaced_and_counted() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=1, live=True))
    feed(stage, [frame(i) for i in range(4)])  # keyframes on frames 1, 2, 3
    drain(stage)
    assert model.clips == [[2, 3]]
    assert [p.end_s for p in feed(stage, [frame(4)])[0].predictions] == [3 / 25, 3 / 25]
    assert stage.metrics()["dropped_keyframes"] == 2


def test_live_labels_of_an_ended_source_reach_nobody() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=100, live=True))
    feed(stage, [frame(0), frame(1)])
    drain(stage)
    stage.on_event(SourceEvent("cam", "disconnected", "", 0.0))
    assert feed(stage, [frame(0)])[0].predictions == []  # the camera is back


def test_a_change_of_frame_size_restarts_the_keyframe_schedule() -> None:
    model = BrightBoxes(clip_len=2, frame_interval=1)
    stage = started(model, StdetParams(predict_stepsize=3))
    feed(stage, [frame(i) for i in range(4)] + [frame(i, size=(96, 96)) for i in range(4, 9)])
    # as after a disconnect: the new stream's first keyframe comes as soon as its first clip is complete
    assert model.clips == [[0, 1], [4, 5], [7, 8]]
