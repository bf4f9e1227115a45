"""Action events with hysteresis, from a stream of predictions.

An event for (source, label) **starts** when the label scores at or above ``threshold`` in
``start_after`` consecutive predictions of that source, and **ends** when it scores below
``threshold`` (or drops out of the top-k) in ``end_after`` consecutive predictions, or when
the stream ends or disconnects. Each start and end is emitted as a
:class:`~stream.packet.SourceEvent` of kind ``action`` with
``data = {label, phase, score, start_s, end_s, duration_s, track_id}``, so it flows through
the pipeline to the JSON-lines writer and the ZeroMQ publisher like any other event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from stream.errors import ConfigError
from stream.packet import FramePacket, Prediction, SourceEvent
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING


@dataclass
class _Track:
    above: int = 0
    below: int = 0
    active: bool = False
    start_s: float = 0.0
    last_s: float = 0.0
    scores: list[float] = field(default_factory=list)


class ActionEvents:
    """The hysteresis state machine, one track per (source, person, label).

    Args:
        threshold: score a label needs to count as present.
        start_after: consecutive predictions above the threshold that start an event.
        end_after: consecutive predictions below it that end the event.

    Raises:
        ConfigError: For a threshold outside [0, 1] or counts below 1.
    """

    def __init__(self, threshold: float = 0.5, start_after: int = 3, end_after: int = 1) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"event threshold: expected a score between 0 and 1, got {threshold}")
        if start_after < 1 or end_after < 1:
            raise ConfigError(f"event start/end counts: expected >= 1, got {start_after} and {end_after}")
        self.threshold = threshold
        self.start_after = start_after
        self.end_after = end_after
        self._tracks: dict[tuple[str, int | None, str], _Track] = {}

    def update(self, source_id: str, prediction: Prediction) -> list[SourceEvent]:
        """Feed one prediction of ``source_id``; returns the events it starts or ends."""
        events: list[SourceEvent] = []
        present = {n: float(s) for n, s in zip(prediction.names, prediction.scores, strict=True) if s >= self.threshold}
        keys = {(source_id, prediction.track_id, name) for name in present}
        keys |= {k for k in self._tracks if k[0] == source_id and k[1] == prediction.track_id}
        for key in sorted(keys, key=lambda k: k[2]):
            track = self._tracks.setdefault(key, _Track())
            score = present.get(key[2])
            if score is not None:
                if not track.active and track.above == 0:  # a new candidate run
                    track.start_s, track.scores = prediction.end_s, []
                track.above += 1
                track.below = 0
                track.scores.append(score)
                track.last_s = prediction.end_s
                if not track.active and track.above >= self.start_after:
                    track.active = True
                    events.append(self._event(key, track, "start", prediction.end_s))
            else:
                track.below += 1
                track.above = 0
                if track.active and track.below >= self.end_after:
                    events.append(self._event(key, track, "end", prediction.end_s))
                    track.active = False
                if not track.active:
                    del self._tracks[key]
        return events

    def close(
        self, source_id: str | None = None, reason: str = "stream ended", *, track_id: int | None = None
    ) -> list[SourceEvent]:
        """End the open events of one source (or all), e.g. on disconnect or end of stream, or
        only those of one person of that source (``track_id``: the person left)."""
        events = []
        for key in [
            k
            for k in self._tracks
            if (source_id is None or k[0] == source_id) and (track_id is None or k[1] == track_id)
        ]:
            track = self._tracks.pop(key)
            if track.active:
                events.append(self._event(key, track, "end", track.last_s, reason))
        return events

    def _event(
        self, key: tuple[str, int | None, str], track: _Track, phase: str, now_s: float, reason: str = ""
    ) -> SourceEvent:
        source_id, track_id, label = key
        mean = sum(track.scores) / len(track.scores) if track.scores else 0.0
        who = "" if track_id is None else f" (person {track_id})"
        extra = f", {reason}" if reason else ""
        verb = "started" if phase == "start" else "ended"
        return SourceEvent(
            source_id,
            "action",
            f"{label}{who} {verb} at {now_s:.2f} s (mean score {mean:.2f}{extra})",
            time.time(),
            {
                "label": label,
                "phase": phase,
                "score": round(mean, 4),
                "start_s": round(track.start_s, 3),
                "end_s": round(now_s, 3),
                "duration_s": round(now_s - track.start_s, 3),
                "track_id": track_id,
                **({"reason": reason} if reason else {}),
            },
        )


class ActionEventStage(Stage):
    """Turns predictions into start/end action events (see :class:`ActionEvents`); frames pass on."""

    live_policy = LIVE_RECORDING

    def __init__(self, events: ActionEvents, name: str = "events") -> None:
        super().__init__(name)
        self.events = events
        self.emitted = 0

    def process(self, packet: FramePacket) -> Outputs:
        out: list[FramePacket | SourceEvent] = []
        for prediction in packet.predictions:
            out.extend(self.events.update(packet.source_id, prediction))
        self.emitted += len(out)
        out.append(packet)
        return out

    def on_event(self, event: SourceEvent) -> Outputs:
        if event.kind in ("disconnected", "gave_up"):
            closed = self.events.close(event.source_id, reason=f"camera {event.kind.replace('_', ' ')}")
            self.emitted += len(closed)
            return [*closed, event]
        if event.kind == "track_lost" and event.data.get("track_id") is not None:
            closed = self.events.close(event.source_id, reason="person left", track_id=int(event.data["track_id"]))
            self.emitted += len(closed)
            return [*closed, event]
        return event

    def finish(self) -> Outputs:
        closed = self.events.close()
        self.emitted += len(closed)
        return closed

    def metrics(self) -> dict[str, int]:
        return {"events": self.emitted}
