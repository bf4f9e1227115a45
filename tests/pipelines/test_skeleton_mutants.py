"""Skeleton-stage behaviour that mutation testing found unchecked (docs/mutation.md).

What a user sees from :class:`~pipelines.skeleton.SkeletonStage`: the ``--metrics`` figures
(counters and latency / inference percentiles, with a controlled clock), the error text naming
the flag or the stage, when a person's first label comes, the times, box and labels of each
prediction, and in live mode which frame a person's labels reach and which are discarded.
Live mode is driven without threads or sleeps: :func:`drain` runs the stage's worker in the
test's thread until no window is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

import pipelines.skeleton as skeleton
from core.errors import ConfigError
from pipelines.skeleton import PersonWindow, SkeletonParams, SkeletonStage
from stream.packet import Detections, FramePacket, SourceEvent
from tests.pipelines.stage_helpers import Clock, drain, feed
from tests.pipelines.test_skeleton_stage import RaisedArms, person

T0_NS = 1_000_000_000


def frame(i: int, people: dict[int, bool], source_id: str = "cam", capture_ns: int | None = None) -> FramePacket:
    """Frame ``i`` (25 fps): each person at ``x = 40 (id + 1)``, their box moving 1 px a frame."""
    ids = sorted(people)
    xs = [40.0 * (t + 1) for t in ids]
    keypoints = np.stack([person(x, people[t]) for t, x in zip(ids, xs, strict=True)]) if ids else np.zeros((0, 17, 3))
    boxes = np.array([[x - 10 + i, 10, x + 10 + i, 150] for x in xs], np.float32).reshape(-1, 4)
    detections = Detections(
        boxes, np.full(len(ids), 0.9, np.float32), np.zeros(len(ids), np.int64), np.array(ids, np.int64),
        keypoints=keypoints,
    )  # fmt: skip
    ns = T0_NS + i * 40_000_000 if capture_ns is None else capture_ns
    return FramePacket(np.zeros((160, 320, 3), np.uint8), source_id, i, i, Fraction(1, 25), ns, detections)


class Fixed(RaisedArms):
    """Returns the same score row for every person (class names a, b, c, ...)."""

    def __init__(self, row: Sequence[float], clip_len: int = 4) -> None:
        super().__init__(clip_len=clip_len)
        self.row = np.asarray(row, np.float32)
        self.class_names = tuple("abcdefghijklmnopqrstuvwxyz"[: len(row)])  # type: ignore[misc]

    def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        self.batches.append([(w.track_id, len(w.keypoints)) for w in windows])
        return np.tile(self.row, (len(windows), 1))


# ---------------------------------------------------------------------- metrics


class Timed(RaisedArms):
    """Each call takes ``cost_ms`` and finishes ``latency_ms`` after its frame's capture."""

    def __init__(self, clock: Clock, calls: list[tuple[float, float]]) -> None:
        super().__init__(clip_len=8)
        self.clock, self.calls = clock, calls

    def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        cost_ms, latency_ms = self.calls[len(self.batches)]
        out = super().scores(windows)
        self.clock.perf += cost_ms / 1e3
        self.clock.ns = windows[0].capture_ns + round(latency_ms * 1e6)
        return out


def test_metrics_before_any_prediction() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=8))
    stage.setup()
    assert stage.metrics() == {
        "predictions": 0,
        "inferred": 0,
        "batches": 0,
        "people": 0,
        "dropped_windows": 0,
        "evicted_tracks": 0,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "infer_p50_ms_per_person": None,
    }


def test_metrics_count_predictions_batches_and_time_per_person(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(skeleton, "time", clock)
    # three engine calls: person 1 alone, persons 2 and 3 together, person 4 alone
    model = Timed(clock, [(1.0, 10.100001), (4.688, 5.0), (4.0, 52.0)])
    stage = SkeletonStage(lambda: model, SkeletonParams(predict_stepsize=100))
    stage.setup()
    out = feed(stage, [frame(0, {1: True}), frame(1, {1: True, 2: True, 3: True})]
               + [frame(i, {1: True, 2: True, 3: True, 4: True}) for i in (2, 3)])  # fmt: skip
    assert model.batches == [[(1, 2)], [(2, 2), (3, 2)], [(4, 2)]]
    assert [len(f.predictions) for f in out] == [0, 1, 2, 1]
    # latency per person [10.100001, 5, 5, 52] ms; inference per person, per call: [1, 2.344, 4] ms
    assert stage.metrics() == {
        "predictions": 4,
        "inferred": 4,
        "batches": 3,
        "people": 4,
        "dropped_windows": 0,
        "evicted_tracks": 0,
        "latency_p50_ms": 7.6,
        "latency_p95_ms": 45.7,
        "infer_p50_ms_per_person": 2.34,
    }


def test_percentiles_cover_the_last_2048_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(skeleton, "time", clock)

    class Steady(RaisedArms):
        """100 ms late and 9 ms per call for the first 2048 calls, then 10 ms and 1 ms."""

        calls = 0

        def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
            old = self.calls < 2048
            self.calls += 1
            clock.perf += (9.0 if old else 1.0) / 1e3
            clock.ns = windows[0].capture_ns + (100_000_000 if old else 10_000_000)
            return np.zeros((len(windows), 2), np.float32)

    stage = SkeletonStage(lambda: Steady(clip_len=2), SkeletonParams(predict_stepsize=1, batch_size=1, min_frames=1))
    stage.setup()
    people = dict.fromkeys(range(16), True)  # 16 engine calls a frame
    feed(stage, [frame(i, people) for i in range(2 * 2048 // 16)])
    metrics = stage.metrics()
    assert metrics["batches"] == 4096
    assert (metrics["latency_p50_ms"], metrics["latency_p95_ms"], metrics["infer_p50_ms_per_person"]) == (10, 10, 1)


# ---------------------------------------------------------------------- flags and setup


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(threshold=-0.1), "--threshold: expected a score between 0 and 1, got -0.1"),
        (dict(threshold=1.5), "--threshold: expected a score between 0 and 1, got 1.5"),
        (dict(predict_stepsize=0), "--predict-stepsize: expected >= 1, got 0"),
        (dict(top_k=0), "--top-k: expected >= 1, got 0"),
        (dict(average_size=0), "--average-size: expected >= 1, got 0"),
        (dict(batch_size=-1), "--batch-size: expected >= 1, got -1"),
        (dict(max_tracks=0), "--max-tracks: expected >= 1, got 0"),
        (dict(window=1), "--window: expected >= 2 frames, got 1"),
        (dict(min_frames=0), "--min-frames: expected >= 1, got 0"),
        (dict(min_frames=9, window=8), "--min-frames 9: expected at most the window (8 frames)"),
    ],
)
def test_bad_flags_name_the_flag_and_the_value(params: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SkeletonParams(**params)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "params",
    [
        dict(threshold=0.0),
        dict(threshold=1.0),
        dict(predict_stepsize=1, top_k=1, average_size=1, batch_size=1, max_tracks=1),
        dict(window=2, min_frames=2),
        dict(min_frames=1),
        dict(window=8, min_frames=8),
    ],
)
def test_limit_values_are_accepted(params: dict[str, float]) -> None:
    SkeletonParams(**params)  # type: ignore[arg-type]


def test_a_model_window_under_two_frames_is_refused_naming_the_stage() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=1), name="pose-actions")
    with pytest.raises(ConfigError) as caught:
        stage.setup()
    assert str(caught.value) == "pose-actions: the model's window of 1 frames is too short (need >= 2)"


def test_min_frames_over_the_models_window_names_the_flag_and_the_window() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4), SkeletonParams(min_frames=6))
    with pytest.raises(ConfigError) as caught:
        stage.setup()
    assert str(caught.value) == "--min-frames 6: expected at most the window (4 frames)"


@pytest.mark.parametrize(
    ("clip_len", "params", "first", "longest"),
    [
        (2, SkeletonParams(), 1, 2),  # a quarter of the window, at least 2
        (10, SkeletonParams(), 1, 10),  # 10 // 4 = 2
        (12, SkeletonParams(), 2, 12),
        (16, SkeletonParams(), 3, 16),
        (16, SkeletonParams(min_frames=1), 0, 16),
        (4, SkeletonParams(min_frames=4), 3, 4),
        (8, SkeletonParams(window=4), 1, 4),  # --window wins over the model's clip_len
    ],
)
def test_first_label_after_min_frames_and_windows_of_the_window_length(
    clip_len: int, params: SkeletonParams, first: int, longest: int
) -> None:
    model = RaisedArms(clip_len=clip_len)
    stage = SkeletonStage(lambda: model, SkeletonParams(**{**params.__dict__, "predict_stepsize": 1000}))
    stage.setup()
    out = feed(stage, [frame(i, {1: True}) for i in range(20)])
    assert [f.frame_idx for f in out if f.predictions] == [first]
    stage = SkeletonStage(lambda: model, SkeletonParams(**{**params.__dict__, "predict_stepsize": 1}))
    stage.setup()
    model.batches.clear()
    feed(stage, [frame(i, {1: True}) for i in range(20)])
    assert max(n for batch in model.batches for _, n in batch) == longest


def test_batch_size_one_runs_each_person_alone() -> None:
    model = RaisedArms(clip_len=4, max_batch=8)
    stage = SkeletonStage(lambda: model, SkeletonParams(batch_size=1, predict_stepsize=100))
    stage.setup()
    feed(stage, [frame(i, {1: True, 2: False, 3: True}) for i in range(2)])
    assert model.batches == [[(1, 2)], [(2, 2)], [(3, 2)]]


def test_the_models_batch_limit_caps_batch_size() -> None:
    model = RaisedArms(clip_len=4, max_batch=2)
    stage = SkeletonStage(lambda: model, SkeletonParams(batch_size=16, predict_stepsize=100))
    stage.setup()
    feed(stage, [frame(i, {1: True, 2: False, 3: True}) for i in range(2)])
    assert model.batches == [[(1, 2), (2, 2)], [(3, 2)]]


def test_process_before_setup_and_after_close_is_a_clear_error() -> None:
    model = RaisedArms(clip_len=4)
    stage = SkeletonStage(lambda: model)
    with pytest.raises(ConfigError) as caught:
        stage.process(frame(0, {1: True}))
    assert str(caught.value) == "skeleton: process() before setup()"
    stage.setup()
    feed(stage, [frame(0, {1: True})])
    stage.close()
    assert model.closed
    with pytest.raises(ConfigError) as caught:
        feed(stage, [frame(i, {1: True}) for i in (1, 2)])
    assert str(caught.value) == "skeleton: process() before setup()"


def test_closing_a_stage_that_never_started_is_fine() -> None:
    SkeletonStage(lambda: RaisedArms()).close()  # the runner closes every stage, even after a failed setup


def test_close_closes_the_model_once() -> None:
    closes = []
    model = RaisedArms(clip_len=4)
    model.close = lambda: closes.append(1)  # type: ignore[method-assign]
    stage = SkeletonStage(lambda: model)
    stage.setup()
    feed(stage, [frame(0, {1: True})])
    stage.close()
    stage.close()
    assert closes == [1]
    assert stage.people == 0


def test_a_wrong_score_shape_names_the_stage_and_both_shapes() -> None:
    class Broken(RaisedArms):
        def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
            return np.zeros((len(windows), 3), np.float32)

    stage = SkeletonStage(lambda: Broken(clip_len=4))
    stage.setup()
    with pytest.raises(ConfigError) as caught:
        feed(stage, [frame(i, {1: True, 2: True}) for i in range(2)])
    assert str(caught.value) == (
        "skeleton: the skeleton model returned scores of shape (2, 3), expected (2, 2) "
        "(one row per person, one column per label)"
    )


# ---------------------------------------------------------------------- what each prediction holds


def test_a_prediction_covers_its_windows_frames() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4), SkeletonParams(predict_stepsize=1))
    stage.setup()
    out = feed(stage, [frame(i, {1: True}, capture_ns=T0_NS + 7 * i) for i in range(6)])
    p = out[5].predictions[0]
    assert (p.start_s, p.end_s) == (2 / 25, 5 / 25)  # the window holds frames 2..5
    assert p.capture_ns == T0_NS + 35  # the newest frame's capture, for latency
    assert p.track_id == 1
    np.testing.assert_array_equal(p.box, [75, 10, 95, 150])  # the person's box on frame 5
    assert p.label_ids.dtype == np.int64 and p.scores.dtype == np.float32
    first = out[1].predictions[0]
    assert (first.start_s, first.end_s) == (0.0, 1 / 25)


def test_the_model_sees_the_frame_size_and_float32_keypoints() -> None:
    seen = []

    class Recording(RaisedArms):
        def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
            seen.extend((w.img_shape, w.keypoints.dtype, w.keypoints.shape, w.box.dtype) for w in windows)
            return super().scores(windows)

    stage = SkeletonStage(lambda: Recording(clip_len=4), SkeletonParams(predict_stepsize=100))
    stage.setup()
    feed(stage, [frame(i, {1: True}) for i in range(2)])
    assert seen == [((160, 320), np.float32, (2, 17, 3), np.float32)]


@pytest.mark.parametrize(
    ("params", "names", "ids", "scores"),
    [
        (SkeletonParams(top_k=2), ("b", "c"), [1, 2], [0.5, 0.3]),
        (SkeletonParams(top_k=5, threshold=0.3), ("b", "c"), [1, 2], [0.5, 0.3]),  # a score at the threshold counts
        (SkeletonParams(top_k=5, threshold=0.31), ("b",), [1], [0.5]),
        (SkeletonParams(top_k=1, threshold=0.9), (), [], []),
    ],
)
def test_top_k_and_threshold(
    params: SkeletonParams, names: tuple[str, ...], ids: list[int], scores: list[float]
) -> None:
    stage = SkeletonStage(
        lambda: Fixed([0.2, 0.5, 0.3]), SkeletonParams(**{**params.__dict__, "predict_stepsize": 100})
    )
    stage.setup()
    (p,) = feed(stage, [frame(i, {1: True}) for i in range(2)])[1].predictions
    assert p.names == names
    assert p.label_ids.tolist() == ids
    np.testing.assert_allclose(p.scores, scores)


def test_equal_scores_keep_the_class_order() -> None:
    row = np.random.default_rng(0).choice([0.1, 0.2, 0.3], 400)  # 400 classes, many ties
    model = Fixed(row)
    model.class_names = tuple(str(i) for i in range(400))  # type: ignore[misc]
    stage = SkeletonStage(lambda: model, SkeletonParams(top_k=400, predict_stepsize=100))
    stage.setup()
    (p,) = feed(stage, [frame(i, {1: True}) for i in range(2)])[1].predictions
    assert p.label_ids.tolist() == sorted(range(400), key=lambda i: -row[i])  # best first, ties by class id


def test_the_threshold_applies_to_the_float32_scores_reported() -> None:
    model = Fixed([0.29999999999, 0.7])
    model.row = np.array([0.29999999999, 0.7])  # a model answering in float64
    stage = SkeletonStage(lambda: model, SkeletonParams(threshold=0.3, predict_stepsize=100))
    stage.setup()
    (p,) = feed(stage, [frame(i, {1: True}) for i in range(2)])[1].predictions
    assert p.names == ("b", "a")  # "a" is reported as 0.3 (float32), so it meets the threshold
    assert p.scores.tolist() == [np.float32(0.7), np.float32(0.3)]


def test_average_size_averages_a_persons_last_score_vectors() -> None:
    # person 1 raises the arms from frame 4 on; window 4, a prediction every frame
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4), SkeletonParams(predict_stepsize=1, average_size=2, top_k=2))
    stage.setup()
    out = feed(stage, [frame(i, {1: i >= 4}) for i in range(8)])
    raised = [
        dict(zip(f.predictions[0].names, f.predictions[0].scores.tolist(), strict=True))["raised"] for f in out[1:]
    ]
    # the model alone says 0, 0, 0, 1/4, 2/4, 3/4, 1; the reported score is the mean of the last two
    assert raised == pytest.approx([0.0, 0.0, 0.0, 0.125, 0.375, 0.625, 0.875])


# ---------------------------------------------------------------------- buffers


@pytest.mark.parametrize(
    "detections",
    [
        None,
        Detections.empty(),
        Detections(np.zeros((1, 4)), np.ones(1), np.zeros(1, np.int64), keypoints=np.zeros((1, 17, 3))),  # untracked
        Detections(np.zeros((1, 4)), np.ones(1), np.zeros(1, np.int64), np.array([1])),  # no pose
    ],
)
def test_frames_without_tracked_poses_add_nobody(detections: Detections | None) -> None:
    model = RaisedArms(clip_len=4)
    stage = SkeletonStage(lambda: model, SkeletonParams(min_frames=1))
    stage.setup()
    for i in range(3):
        p = FramePacket(np.zeros((8, 8, 3), np.uint8), "cam", i, i, Fraction(1, 25), T0_NS, detections)
        assert stage.process(p) is p
    assert stage.people == 0 and model.batches == []


def test_the_least_recently_seen_person_is_evicted_first() -> None:
    model = RaisedArms(clip_len=8)
    stage = SkeletonStage(lambda: model, SkeletonParams(max_tracks=2, predict_stepsize=1, min_frames=3))
    stage.setup()
    feed(stage, [frame(0, {1: True, 2: True}), frame(1, {1: True}), frame(2, {1: True, 3: True})])
    assert stage.people == 2 and stage.metrics()["evicted_tracks"] == 1
    assert model.batches == [[(1, 3)]]  # person 1 kept its frames; person 2 went


def test_finish_frees_every_person() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4))
    stage.setup()
    feed(stage, [frame(0, {1: True, 2: True})])
    assert stage.finish() is None
    assert stage.people == 0


@pytest.mark.parametrize("kind", ["disconnected", "gave_up"])
def test_a_source_that_ends_frees_only_its_people(kind: str) -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4))
    stage.setup()
    feed(stage, [frame(0, {1: True, 2: True}), frame(0, {1: True}, source_id="lab")])
    event = SourceEvent("cam", kind, "", 0.0)  # type: ignore[arg-type]
    assert stage.on_event(event) is event
    assert stage.people == 1


def test_track_events_of_another_source_or_without_id_free_nobody() -> None:
    stage = SkeletonStage(lambda: RaisedArms(clip_len=4))
    stage.setup()
    feed(stage, [frame(0, {1: True, 2: True})])
    for event in [
        SourceEvent("lab", "track_lost", "", 0.0, {"track_id": 1}),
        SourceEvent("cam", "track_lost", "", 0.0),
        SourceEvent("cam", "track_started", "", 0.0, {"track_id": 1}),
        SourceEvent("cam", "reconnecting", "", 0.0),
    ]:
        assert stage.on_event(event) is event
    assert stage.people == 2
    stage.on_event(SourceEvent("cam", "track_lost", "", 0.0, {"track_id": "2"}))  # an id read from text
    assert stage.people == 1


# ---------------------------------------------------------------------- live mode


def live_stage(model: RaisedArms, **params: int) -> SkeletonStage:
    stage = SkeletonStage(lambda: model, SkeletonParams(live=True, **params))  # type: ignore[arg-type]
    stage.setup()
    return stage


def test_file_mode_has_no_worker_and_live_mode_one() -> None:
    assert SkeletonStage(lambda: RaisedArms()).workers() == ()
    (worker,) = SkeletonStage(lambda: RaisedArms(), SkeletonParams(live=True)).workers()
    assert worker.name == "infer"  # its thread is "skeleton-infer" in logs and thread dumps


def test_live_labels_reach_the_next_frame_of_their_own_source() -> None:
    model = RaisedArms(clip_len=4)
    stage = live_stage(model, predict_stepsize=100)
    frames = feed(stage, [frame(0, {1: True}), frame(1, {1: True}),
                          frame(10, {1: False}, "lab"), frame(11, {1: False}, "lab")])  # fmt: skip
    assert all(not f.predictions for f in frames)  # frames pass on before the model ran
    drain(stage)
    assert model.batches == [[(1, 2), (1, 2)]]  # both sources' people in one engine call
    (lab,) = feed(stage, [frame(12, {1: False}, "lab")])
    assert [(p.track_id, p.names[0], p.end_s) for p in lab.predictions] == [(1, "down", 11 / 25)]
    (cam,) = feed(stage, [frame(2, {1: True})])
    assert [(p.track_id, p.names[0], p.end_s) for p in cam.predictions] == [(1, "raised", 1 / 25)]
    (again,) = feed(stage, [frame(3, {1: True})])
    assert again.predictions == []
    metrics = stage.metrics()
    assert (metrics["predictions"], metrics["inferred"], metrics["batches"], metrics["dropped_windows"]) == (2, 2, 1, 0)


def test_live_windows_not_started_are_replaced_and_counted() -> None:
    model = RaisedArms(clip_len=4)
    stage = live_stage(model, predict_stepsize=1)
    feed(stage, [frame(i, {1: True}) for i in range(4)])  # windows due on frames 1, 2, 3
    drain(stage)
    assert model.batches == [[(1, 4)]]  # only the newest window ran
    (nxt,) = feed(stage, [frame(4, {1: True})])
    assert [p.end_s for p in nxt.predictions] == [3 / 25]
    assert stage.metrics()["dropped_windows"] == 2


def test_live_labels_of_a_person_who_left_reach_nobody() -> None:
    model = RaisedArms(clip_len=4)
    stage = live_stage(model, predict_stepsize=100)
    feed(stage, [frame(i, {1: True, 2: True}) for i in range(2)])
    drain(stage)
    stage.on_event(SourceEvent("cam", "track_lost", "", 0.0, {"track_id": 1}))
    assert stage.people == 1
    (nxt,) = feed(stage, [frame(2, {1: True, 2: True})])  # track id 1 again: a new person
    assert [p.track_id for p in nxt.predictions] == [2]
    metrics = stage.metrics()
    assert (metrics["predictions"], metrics["inferred"]) == (1, 2)


def test_live_labels_of_an_ended_source_reach_nobody() -> None:
    model = RaisedArms(clip_len=4)
    stage = live_stage(model, predict_stepsize=100)
    feed(stage, [frame(i, {1: True}) for i in range(2)])
    drain(stage)
    stage.on_event(SourceEvent("cam", "disconnected", "", 0.0))
    (nxt,) = feed(stage, [frame(0, {1: True})])  # the camera is back
    assert nxt.predictions == [] and stage.metrics()["predictions"] == 0
