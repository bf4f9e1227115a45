import numpy as np
import pytest

from pipelines.events import ActionEvents, ActionEventStage
from stream.errors import ConfigError
from stream.packet import Prediction, SourceEvent


def pred(t: float, **scores: float) -> Prediction:
    names = tuple(scores)
    return Prediction(np.arange(len(names)), np.array(list(scores.values())), names, t - 1, t, 0)


def phases(events: list[SourceEvent]) -> list[tuple[str, str]]:
    return [(e.data["label"], e.data["phase"]) for e in events]


def test_event_starts_after_k_predictions_and_ends_when_the_label_drops() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=3, end_after=1)
    seen = []
    for t, wave in enumerate([0.9, 0.8, 0.2, 0.9, 0.9, 0.9, 0.7, 0.3], start=1):
        seen.append(phases(tracker.update("cam", pred(float(t), wave=wave, clap=0.05))))
    assert seen == [[], [], [], [], [], [("wave", "start")], [], [("wave", "end")]]


def test_event_data_and_hysteresis_against_flicker() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=2, end_after=2)
    out = []
    for t, s in enumerate([0.9, 0.9, 0.4, 0.9, 0.4, 0.4], start=1):
        out += tracker.update("cam", pred(float(t), wave=s))
    assert phases(out) == [("wave", "start"), ("wave", "end")]  # one dip did not end it
    start, end = out
    assert start.kind == "action" and start.data["start_s"] == 1.0 and start.data["end_s"] == 2.0
    assert end.data["end_s"] == 6.0 and end.data["duration_s"] == 5.0
    assert end.data["score"] == pytest.approx(0.9)


def test_sources_are_independent_and_close_ends_open_events() -> None:
    tracker = ActionEvents(threshold=0.5, start_after=1)
    a = tracker.update("a", pred(1.0, run=0.9))
    b = tracker.update("b", pred(1.0, sit=0.9))
    assert phases(a) == [("run", "start")] and phases(b) == [("sit", "start")]
    closed = tracker.close("a", reason="camera disconnected")
    assert phases(closed) == [("run", "end")] and closed[0].data["reason"] == "camera disconnected"
    assert phases(tracker.close()) == [("sit", "end")]


def test_stage_emits_events_before_the_frame_and_closes_on_disconnect() -> None:
    from tests.stream.helpers import frame

    stage = ActionEventStage(ActionEvents(threshold=0.5, start_after=1))
    packet = frame(0, "cam")
    packet.predictions.append(pred(1.0, wave=0.8))
    out = stage.process(packet)
    assert isinstance(out, list) and isinstance(out[0], SourceEvent) and out[-1] is packet
    out = stage.on_event(SourceEvent("cam", "disconnected", "lost", 0.0))
    assert phases([e for e in out if e.kind == "action"]) == [("wave", "end")]  # type: ignore[union-attr]
    assert stage.metrics()["events"] == 2


@pytest.mark.parametrize("kwargs", [{"threshold": 1.5}, {"start_after": 0}, {"end_after": 0}])
def test_invalid_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ActionEvents(**kwargs)
