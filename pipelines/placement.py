"""Where a clip's prediction lands among the frames held back in file mode (``end``, ``center``, ``interpolate``).

In file (lossless) mode the recognition stage holds frames until the clips that concern
them are inferred; a :class:`Placement` then attaches the predictions and says up to which
stream time the held frames are final (no later clip will touch them), so they can go on:

* :class:`AtFrame` (``end``, causal as live; ``center``, offline) puts each clip's prediction
  on the held frame of its source nearest to the clip's newest frame, or to its window's
  middle, so labels line up with the action instead of lagging half a window behind it;
* :class:`Interpolate` (``stream.long_video``'s default) gives every frame a prediction of its
  own: the class scores of the two windows whose middles are nearest before and after it,
  blended linearly by its distance to each middle (the first window's scores before its
  middle, the last one's after its middle; a timestamp reset starts over).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.clip_buffer import Clip
from stream.packet import FramePacket, Prediction

#: ``to_prediction(scores, start_s, end_s, capture_ns)``: scores of one clip (or blend) → its prediction.
ToPrediction = Callable[[np.ndarray, float, float, int], Prediction]
#: Placement names (``--frame-labels`` and the stage's ``anchor``).
ANCHORS = ("end", "center", "interpolate")


class Placement(ABC):
    """Attaches inferred clips' predictions to held frames."""

    @abstractmethod
    def place(
        self, held: list[FramePacket], clips: Sequence[Clip], scores: Sequence[np.ndarray], to_prediction: ToPrediction
    ) -> dict[str, float]:
        """Attach the predictions of ``clips``; returns, per source of ``clips``, the stream time up
        to which its held frames are final (labelled for good)."""

    def finish(self, held: list[FramePacket], to_prediction: ToPrediction) -> None:
        """End of stream: label what is still held and can be labelled."""


class AtFrame(Placement):
    """Each prediction on the held frame nearest to its clip's newest frame (``end``) or middle (``center``)."""

    def __init__(self, anchor: str) -> None:
        self.anchor = anchor

    def place(
        self, held: list[FramePacket], clips: Sequence[Clip], scores: Sequence[np.ndarray], to_prediction: ToPrediction
    ) -> dict[str, float]:
        times = np.fromiter((p.time_s for p in held), np.float64, len(held))
        for clip, row in zip(clips, scores, strict=True):
            prediction = to_prediction(row, clip.start_s, clip.end_s, clip.capture_ns)
            target = clip.end_s if self.anchor == "end" else (clip.start_s + clip.end_s) / 2
            candidates = [i for i, p in enumerate(held) if p.source_id == clip.source_id]
            if candidates:
                best = min(candidates, key=lambda i: (abs(times[i] - target), -times[i]))
                held[best].predictions.append(prediction)
        if self.anchor == "end":
            return {clip.source_id: float("inf") for clip in clips}
        return _middles(clips)


@dataclass(frozen=True)
class _Window:
    """A window's middle (stream time), class scores and extent."""

    centre_s: float
    scores: np.ndarray
    start_s: float
    end_s: float
    capture_ns: int


class Interpolate(Placement):
    """Every frame gets the scores of the windows centred before and after it, linearly blended."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}  # each source's newest window
        self._resumed: dict[str, FramePacket] = {}  # each source's first frame after its latest timestamp reset

    def place(
        self, held: list[FramePacket], clips: Sequence[Clip], scores: Sequence[np.ndarray], to_prediction: ToPrediction
    ) -> dict[str, float]:
        for clip, row in zip(clips, scores, strict=True):
            self._add(held, clip, row, to_prediction)
        return _middles(clips)

    def _add(self, held: list[FramePacket], clip: Clip, row: np.ndarray, to_prediction: ToPrediction) -> None:
        window = _Window((clip.start_s + clip.end_s) / 2, row, clip.start_s, clip.end_s, clip.capture_ns)
        previous = self._windows.get(clip.source_id)
        if previous is not None and previous.centre_s >= window.centre_s:
            resumed = _end_timeline(held, clip.source_id, previous, to_prediction)
            if resumed is None:
                self._resumed.pop(clip.source_id, None)
            else:
                self._resumed[clip.source_id] = resumed
            previous = None  # a timestamp reset: start over from this window
        for packet in _timeline(held, clip):
            if packet.time_s > window.centre_s:
                continue
            if previous is None:
                packet.predictions.append(blend(window, window, packet.time_s, to_prediction))
            elif packet.time_s > previous.centre_s:
                packet.predictions.append(blend(previous, window, packet.time_s, to_prediction))
        self._windows[clip.source_id] = window

    def finish(self, held: list[FramePacket], to_prediction: ToPrediction) -> None:
        # Frames before a source's latest reset were labelled at the reset.
        resumed = {key: first for key, first in self._resumed.items() if any(p is first for p in held)}
        for packet in held:  # after the last window's middle: its scores
            first = resumed.get(packet.source_id)
            if first is not None:
                if packet is not first:
                    continue
                del resumed[packet.source_id]
            window = self._windows.get(packet.source_id)
            if window is not None and packet.time_s > window.centre_s:
                packet.predictions.append(blend(window, window, packet.time_s, to_prediction))


def _middles(clips: Sequence[Clip]) -> dict[str, float]:
    """Per source, the middle of its last clip (clips come in stream order per source)."""
    return {clip.source_id: (clip.start_s + clip.end_s) / 2 for clip in clips}


def _timeline(held: list[FramePacket], clip: Clip) -> list[FramePacket]:
    """The held frames of ``clip``'s source on its timeline: the run between timestamp resets
    that holds its newest frame (the newest run if that frame is not held).

    A batch may hold clips from both sides of a reset; a window labels only its own run.
    """
    runs: list[list[FramePacket]] = [[]]
    newest = float("-inf")
    for packet in held:
        if packet.source_id != clip.source_id:
            continue
        if packet.time_s < newest:  # the first frame after a reset
            runs.append([])
        newest = packet.time_s
        runs[-1].append(packet)
        if packet.frame_idx == clip.frame_idx and packet.time_s == clip.end_s:
            return runs[-1]  # the run's later frames lie after the window's middle
    return runs[-1]


def _end_timeline(
    held: list[FramePacket], source_id: str, last: _Window, to_prediction: ToPrediction
) -> FramePacket | None:
    """A timestamp reset: the old timeline's frames after its last window's middle get that window's scores.

    They are the held frames of ``source_id`` before the first one whose time goes back;
    without this they would wait for, and be labelled by, windows of the new timeline.
    Returns that first frame of the new timeline (None if no old frame is held).
    """
    newest = float("-inf")
    tail: list[FramePacket] = []
    for packet in held:
        if packet.source_id != source_id:
            continue
        if packet.time_s < newest:  # the first frame after the reset
            for old in tail:
                old.predictions.append(blend(last, last, old.time_s, to_prediction))
            return packet
        newest = packet.time_s
        if packet.time_s > last.centre_s:
            tail.append(packet)
    return None  # no frame of the old timeline is held: nothing to label


def blend(before: _Window, after: _Window, time_s: float, to_prediction: ToPrediction) -> Prediction:
    """The prediction at ``time_s`` between two windows' middles: their scores, linearly blended."""
    span = after.centre_s - before.centre_s
    weight = min(max((time_s - before.centre_s) / span, 0.0), 1.0) if span > 0 else 1.0
    scores = after.scores if weight == 1.0 else (1.0 - weight) * before.scores + weight * after.scores
    return to_prediction(scores, before.start_s, after.end_s, after.capture_ns)


def placement(anchor: str) -> Placement:
    """The placement for an anchor name (one of :data:`ANCHORS`)."""
    return Interpolate() if anchor == "interpolate" else AtFrame(anchor)
