"""Action-event behaviour that mutation testing found unchecked (docs/mutation.md).

What a user reads from the events: when they start and end with the default settings, the
message and data of each event (person, reason, rounding), the order of events that happen
together, and which camera's events a disconnect or the end of the stream closes.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipelines.events import ActionEvents, ActionEventStage
from stream.errors import ConfigError
from stream.packet import Prediction, SourceEvent
from tests.stream.helpers import frame


def pred(t: float, track_id: int | None = None, **scores: float) -> Prediction:
    names = tuple(scores)
    return Prediction(np.arange(len(names)), np.array(list(scores.values())), names, t - 1, t, 0, track_id=track_id)


def phases(events: list[SourceEvent]) -> list[tuple[str, str]]:
    return [(e.data["label"], e.data["phase"]) for e in events]


def test_defaults_start_on_the_third_score_at_the_threshold_and_end_on_the_first_below() -> None:
    tracker = ActionEvents()
    seen = [phases(tracker.update("cam", pred(float(t), wave=s))) for t, s in enumerate([0.5, 0.5, 0.5, 0.49], 1)]
    assert seen == [[], [], [("wave", "start")], [("wave", "end")]]


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_thresholds_at_the_ends_of_the_range_are_accepted(threshold: float) -> None:
    tracker = ActionEvents(threshold=threshold, start_after=1)
    assert phases(tracker.update("cam", pred(1.0, wave=1.0))) == [("wave", "start")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.5}, r"^event threshold: expected a score between 0 and 1, got 1\.5$"),
        ({"threshold": -0.1}, r"^event threshold: expected a score between 0 and 1, got -0\.1$"),
        ({"start_after": 0}, r"^event start/end counts: expected >= 1, got 0 and 1$"),
        ({"end_after": 0}, r"^event start/end counts: expected >= 1, got 3 and 0$"),
    ],
)
def test_invalid_settings_say_what_was_expected(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ActionEvents(**kwargs)


def test_events_that_happen_together_come_in_label_order() -> None:
    tracker = ActionEvents(start_after=1)
    labels = ["wave", "clap", "sit", "run", "jump", "kick", "bow", "nod"]
    started = tracker.update("cam", pred(1.0, **dict.fromkeys(labels, 0.9)))
    assert [label for label, _ in phases(started)] == sorted(labels)
    ended = tracker.update("cam", pred(2.0, other=0.9))
    assert [label for label, phase in phases(ended) if phase == "end"] == sorted(labels)


def test_an_ended_event_stays_ended_and_a_new_run_starts_a_new_event() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=2, end_after=1)
    scores = [0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9]
    seen = [phases(tracker.update("cam", pred(float(t), wave=s))) for t, s in enumerate(scores, 1)]
    assert seen == [[], [("wave", "start")], [("wave", "end")], [], [], [], [("wave", "start")]]
    (closed,) = tracker.close()
    assert closed.data["start_s"] == 6.0  # the new event starts at its own first frame


def test_event_messages_and_data_of_a_person() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=1)
    before = time.time()
    (start,) = tracker.update("cam", pred(1.23456, track_id=7, wave=0.123456 + 0.5))
    (end,) = tracker.update("cam", pred(2.5, track_id=7, wave=0.1))
    assert start.source_id == "cam" and start.kind == "action"
    assert before <= start.wall_time <= time.time()
    assert start.message == "wave (person 7) started at 1.23 s (mean score 0.62)"
    assert start.data == {
        "label": "wave",
        "phase": "start",
        "score": 0.6235,
        "start_s": 1.235,
        "end_s": 1.235,
        "duration_s": 0.0,
        "track_id": 7,
    }
    assert end.message == "wave (person 7) ended at 2.50 s (mean score 0.62)"
    assert end.data["end_s"] == 2.5 and end.data["duration_s"] == 1.265 and "reason" not in end.data


def test_whole_frame_events_name_no_person_and_close_gives_the_reason() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=1)
    (start,) = tracker.update("cam", pred(1.0, wave=0.9))
    assert start.message == "wave started at 1.00 s (mean score 0.90)"
    assert start.data["track_id"] is None and "reason" not in start.data
    (closed,) = tracker.close()
    assert closed.message == "wave ended at 1.00 s (mean score 0.90, stream ended)"
    assert closed.data["reason"] == "stream ended"


@pytest.mark.parametrize(("kind", "reason"), [("disconnected", "camera disconnected"), ("gave_up", "camera gave up")])
def test_a_lost_camera_ends_only_its_own_events(kind: str, reason: str) -> None:
    stage = ActionEventStage(ActionEvents(threshold=0.5, start_after=1))
    for source in ("a", "b"):
        packet = frame(0, source)
        packet.predictions.append(pred(1.0, wave=0.9))
        stage.process(packet)
    out = stage.on_event(SourceEvent("a", kind, "lost", 0.0))
    assert isinstance(out, list)
    ended = [e for e in out if e.kind == "action"]
    assert [(e.source_id, e.data["phase"], e.data["reason"]) for e in ended] == [("a", "end", reason)]
    assert out[-1].kind == kind
    (last,) = stage.finish()
    assert (last.source_id, last.data["reason"]) == ("b", "stream ended")
    assert stage.metrics() == {"events": 4}


def test_the_stage_is_named_events_and_counts_every_event() -> None:
    stage = ActionEventStage(ActionEvents(threshold=0.5, start_after=1))
    assert stage.name == "events"
    for i, label in enumerate(["wave", "clap"]):
        packet = frame(i, "cam")
        packet.predictions.append(pred(float(i + 1), **{label: 0.9}))
        stage.process(packet)
    assert stage.metrics() == {"events": 3}  # wave start, then wave end + clap start
    assert phases(stage.finish()) == [("clap", "end")]
    assert stage.metrics() == {"events": 4}
