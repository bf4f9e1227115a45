"""Skeleton-based action recognition per person: keypoint windows per track → a label each.

:class:`SkeletonStage` sits after the people stages (detect → track → pose). It keeps, for
every ``(source_id, track_id)``, the track's last ``window`` frames of COCO-17 keypoints,
and every ``predict_stepsize`` frames of that track it asks the skeleton recognizer (ST-GCN,
ST-GCN++, 2s-AGCN, PoseC3D) for the track's class scores. Each person thus gets a label of
its own, updated continuously — unlike MMAction2's ``demo_skeleton.py``, which gives one
label to a whole video.

* **Buffers** are created on a track's first frame with keypoints, freed on its
  ``track_lost`` event and when its source disconnects or ends; at most ``max_tracks`` are
  kept (the least recently seen is dropped first), so memory is bounded whatever the scene.
* **A track seen for fewer than** ``min_frames`` frames gets no label (a person glimpsed for
  one frame is not classified) and no error.
* **Batching**: all people due on a frame (and, live, on every camera) go through the engine
  together, at most ``batch_size`` at a time; more people are run in turns.
* **File mode** (lossless): every due window is inferred in this stage's thread and its
  prediction attached to the frame the window ends on — deterministic, whatever the speed.
* **Live mode**: windows go to a :class:`~stream.worker.LatestPerKey` worker keyed by person,
  so frames pass on at once; a person's window not started before a newer one of the same
  person arrived is dropped and counted. Predictions are attached to that source's next frame.

Predictions carry ``track_id`` and the person's box, so annotators draw them on the person and
:class:`~pipelines.events.ActionEventStage` makes per-person start/end events.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.errors import ConfigError
from pipelines.sequences import SequenceBuffers
from stream.packet import FramePacket, Prediction, SourceEvent
from stream.stage import Outputs, Stage
from stream.worker import LatestPerKey

_WINDOW = 2048  # latency samples kept for percentiles
#: Source events that free every person buffer of their source.
SOURCE_END_EVENTS = ("disconnected", "gave_up")

Person = tuple[str, int]  # (source_id, track_id)


@dataclass(eq=False)
class PersonWindow:
    """The recent keypoints of one tracked person, as the skeleton recognizer takes them.

    Attributes:
        source_id: the stream the person is in.
        track_id: the person's track id.
        keypoints: ``(T, 17, 3)`` float32 ``[x, y, score]`` in frame pixels, oldest first.
        img_shape: ``(height, width)`` of the frames.
        box: ``(4,)`` the person's box on the window's newest frame.
        start_s: stream time of the window's oldest frame.
        end_s: stream time of its newest frame.
        capture_ns: capture time (monotonic ns) of the newest frame, for latency.
    """

    source_id: str
    track_id: int
    keypoints: np.ndarray
    img_shape: tuple[int, int]
    box: np.ndarray
    start_s: float
    end_s: float
    capture_ns: int


class SkeletonRecognizer(Protocol):
    """What :class:`SkeletonStage` needs of a skeleton model (see ``engines.skeleton``)."""

    @property
    def class_names(self) -> Sequence[str]: ...

    @property
    def clip_len(self) -> int:
        """Frames the model's test pipeline samples from a window (its ``UniformSampleFrames``)."""
        ...

    @property
    def max_batch(self) -> int: ...

    def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        """Class scores ``(len(windows), num_classes)`` as MMAction2 reports them."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SkeletonParams:
    """How often each person is classified and what is reported (MMAction2 flag names).

    Attributes:
        window: frames of a track in one window (None: the model's ``clip_len``).
        predict_stepsize: a new prediction every this many frames of a track.
        min_frames: a track needs this many frames before its first label (None: a quarter
            of the window, at least 2).
        threshold: labels scoring below this are not reported.
        top_k: labels reported per prediction.
        average_size: average each person's last N score vectors.
        batch_size: people per engine call.
        max_tracks: person buffers kept at once (least recently seen dropped first).
        live: live mode (worker thread, drop stale windows) instead of lossless file mode.
    """

    window: int | None = None
    predict_stepsize: int = 8
    min_frames: int | None = None
    threshold: float = 0.0
    top_k: int = 5
    average_size: int = 1
    batch_size: int = 16
    max_tracks: int = 256
    live: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold: expected a score between 0 and 1, got {self.threshold}")
        for name in ("predict_stepsize", "top_k", "average_size", "batch_size", "max_tracks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(self, name)}")
        if self.window is not None and self.window < 2:
            raise ConfigError(f"--window: expected >= 2 frames, got {self.window}")
        if self.min_frames is not None and self.min_frames < 1:
            raise ConfigError(f"--min-frames: expected >= 1, got {self.min_frames}")
        if self.window is not None and self.min_frames is not None and self.min_frames > self.window:
            raise ConfigError(f"--min-frames {self.min_frames}: expected at most the window ({self.window} frames)")


class _Person:
    """What a person's keypoint buffer does not hold: their newest box, when they were last
    labelled, and their recent score vectors (``--average-size``)."""

    __slots__ = ("box", "capture_ns", "history", "labelled", "resets", "since_prediction")

    def __init__(self, average_size: int) -> None:
        self.box = np.zeros(4, np.float32)
        self.capture_ns = 0
        self.labelled = False
        self.resets = 0
        self.since_prediction = 0
        self.history: collections.deque[np.ndarray] = collections.deque(maxlen=average_size)


class SkeletonStage(Stage):
    """Per-person skeleton action recognition (see the module docstring).

    Args:
        recognizer: builds the skeleton recognizer (called once, in :meth:`setup`, so building
            a pipeline loads nothing).
        params: window, step and reporting settings.
        name: stage name.
    """

    def __init__(
        self,
        recognizer: Callable[[], SkeletonRecognizer],
        params: SkeletonParams | None = None,
        *,
        name: str = "skeleton",
    ) -> None:
        super().__init__(name)
        self._factory = recognizer
        self._recognizer: SkeletonRecognizer | None = None
        self.params = params or SkeletonParams()
        self._buffers: SequenceBuffers[np.ndarray] = SequenceBuffers(1, max_keys=self.params.max_tracks)
        self._people: dict[Person, _Person] = {}
        self._worker: LatestPerKey[PersonWindow, Prediction] = LatestPerKey(
            self._infer, max_batch=self.params.batch_size, name="infer"
        )
        self.window = 0
        self.min_frames = 0
        # metrics
        self.predictions = 0  # attached to frames
        self.inferred = 0  # made by the model (live: some finish after their person left or the stream ended)
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self.infer_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self.batches = 0

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        recognizer = self._recognizer = self._factory()
        self.window = self.params.window or int(recognizer.clip_len)
        if self.window < 2:
            raise ConfigError(f"{self.name}: the model's window of {self.window} frames is too short (need >= 2)")
        self._buffers = SequenceBuffers(self.window, max_keys=self.params.max_tracks)
        self.min_frames = self.params.min_frames or max(2, self.window // 4)
        if self.min_frames > self.window:
            raise ConfigError(f"--min-frames {self.min_frames}: expected at most the window ({self.window} frames)")
        self._worker.max_batch = max(1, min(self.params.batch_size, recognizer.max_batch))

    def workers(self) -> Sequence[LatestPerKey[PersonWindow, Prediction]]:
        return (self._worker,) if self.params.live else ()

    def process(self, packet: FramePacket) -> Outputs:
        due = self._feed(packet)
        if self.params.live:
            for window in due:
                self._worker.submit((window.source_id, window.track_id), window)
            for person in [p for p in self._people if p[0] == packet.source_id]:
                taken = self._worker.take(person)
                packet.predictions.extend(taken)
                self.predictions += len(taken)
            return packet
        for start in range(0, len(due), self._worker.max_batch):
            made = self._infer(due[start : start + self._worker.max_batch])
            packet.predictions.extend(made)
            self.predictions += len(made)
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        if event.kind == "track_lost":
            track_id = event.data.get("track_id")
            if track_id is not None:
                self._forget((event.source_id, int(track_id)))
        elif event.kind in SOURCE_END_EVENTS:
            for person in [p for p in self._people if p[0] == event.source_id]:
                self._forget(person)
        return event

    def finish(self) -> Outputs:
        self._clear()
        return None

    def close(self) -> None:
        self._clear()
        if self._recognizer is not None:
            self._recognizer.close()
            self._recognizer = None

    def metrics(self) -> dict[str, Any]:
        lat = np.fromiter(self.latency_ms, np.float64) if self.latency_ms else None
        inf = np.fromiter(self.infer_ms, np.float64) if self.infer_ms else None
        return {
            "predictions": self.predictions,
            "inferred": self.inferred,
            "batches": self.batches,
            "people": len(self._buffers),
            "dropped_windows": self._worker.dropped,
            "evicted_tracks": self._buffers.evicted,
            "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 1),
            "latency_p95_ms": None if lat is None else round(float(np.percentile(lat, 95)), 1),
            "infer_p50_ms_per_person": None if inf is None else round(float(np.percentile(inf, 50)), 2),
        }

    @property
    def people(self) -> int:
        """Person buffers held now."""
        return len(self._buffers)

    # ------------------------------------------------------------------ buffers

    def _clear(self) -> None:
        for person in list(self._people):
            self._buffers.end(person)
        self._people.clear()

    def _require(self) -> SkeletonRecognizer:
        if self._recognizer is None:
            raise ConfigError(f"{self.name}: process() before setup()")
        return self._recognizer

    def _feed(self, packet: FramePacket) -> list[PersonWindow]:
        """Add the frame's people to their buffers; the windows due for a prediction."""
        detections = packet.detections
        if detections is None or detections.track_ids is None or detections.keypoints is None or not len(detections):
            return []
        if self.window == 0:
            raise ConfigError(f"{self.name}: process() before setup()")
        due: list[PersonWindow] = []
        img_shape = (packet.height, packet.width)
        for row, track_id in enumerate(detections.track_ids.tolist()):
            person = (packet.source_id, int(track_id))
            evicted = self._buffers.evicted
            buffer = self._buffers.push(
                person, packet.time_s, packet.frame_idx, np.array(detections.keypoints[row], np.float32)
            )
            if self._buffers.evicted != evicted:  # the least recently seen people made room
                for gone in [p for p in self._people if p not in self._buffers]:
                    del self._people[gone]
            state = self._people.get(person)
            if state is None:
                state = self._people[person] = _Person(self.params.average_size)
            if buffer.resets != state.resets:  # the person's clock went back: a new window
                state.resets, state.labelled = buffer.resets, False
            state.box = np.array(detections.xyxy[row], np.float32)
            state.capture_ns = packet.capture_ns
            state.since_prediction += 1
            ready = len(buffer) >= self.min_frames
            if ready and (not state.labelled or state.since_prediction >= self.params.predict_stepsize):
                state.labelled, state.since_prediction = True, 0
                items = list(buffer)
                due.append(
                    PersonWindow(
                        packet.source_id, person[1], np.stack([i.item for i in items]), img_shape, state.box.copy(),
                        items[0].time_s, items[-1].time_s, state.capture_ns,
                    )
                )  # fmt: skip
        return due

    def _forget(self, person: Person) -> None:
        self._buffers.end(person)
        self._people.pop(person, None)
        self._worker.take(person)  # results of a person who left are not attached to anyone

    # ------------------------------------------------------------------ inference

    def _infer(self, windows: list[PersonWindow]) -> list[Prediction]:
        recognizer = self._require()
        start = time.perf_counter()
        scores = np.asarray(recognizer.scores(windows), np.float32)
        done_ns = time.monotonic_ns()
        if scores.shape != (len(windows), len(recognizer.class_names)):
            raise ConfigError(
                f"{self.name}: the skeleton model returned scores of shape {scores.shape}, expected "
                f"({len(windows)}, {len(recognizer.class_names)}) (one row per person, one column per label)"
            )
        self.infer_ms.append((time.perf_counter() - start) * 1e3 / max(1, len(windows)))
        self.batches += 1
        out = []
        for window, row in zip(windows, scores, strict=True):
            state = self._people.get((window.source_id, window.track_id))
            if state is not None:
                state.history.append(row)
                row = np.mean(state.history, axis=0) if len(state.history) > 1 else row
            self.latency_ms.append((done_ns - window.capture_ns) / 1e6)
            out.append(self._prediction(window, row, recognizer.class_names))
        self.inferred += len(out)
        return out

    def _prediction(self, window: PersonWindow, scores: np.ndarray, names: Sequence[str]) -> Prediction:
        order = np.argsort(-scores, kind="stable")[: self.params.top_k]
        order = order[scores[order] >= self.params.threshold]
        return Prediction(
            label_ids=order.astype(np.int64),
            scores=scores[order],
            names=tuple(names[i] for i in order),
            start_s=window.start_s,
            end_s=window.end_s,
            capture_ns=window.capture_ns,
            track_id=window.track_id,
            box=window.box,
        )
