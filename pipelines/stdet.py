"""Spatio-temporal action detection per person: keyframes, the clip centred on each, labels per box.

:class:`StdetStage` sits after the people stages (detect → track). Every ``predict_stepsize``
frames of a source is a **keyframe**; once the frames after it have arrived, the clip centred
on it is sampled as MMAction2's ``SampleAVAFrames`` does (``clip_len`` frames,
``frame_interval`` apart, ``clip_len // 2`` of them before the keyframe) and the model scores
every tracked person of the keyframe at once (one RoI per person, multi-label sigmoid scores,
as AVA models are trained). Each person gets a :class:`~stream.packet.Prediction` with
``multi_label=True``, its ``track_id`` and its keyframe box, holding every action scoring more
than ``threshold`` (strictly, as MMAction2's demos compare); annotators draw it on the person's
current box until the next keyframe (labels are carried by the track).

* **Memory**: frames are resized to the model's short side on arrival and only the span of one
  clip is kept per source, so a 4K camera costs what a 256-pixel one does; sources that
  disconnect are freed.
* **File mode** (lossless): every keyframe is inferred in this stage's thread when its clip is
  complete; the prediction is attached to that frame (half a clip after the keyframe).
* **Live mode**: keyframes go to a :class:`~stream.worker.LatestPerKey` worker keyed by source,
  so frames pass on at once; a keyframe not started before the next one of its source is
  dropped and counted (the model never falls behind the camera), and predictions are
  attached to that source's next frame.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from core.errors import ConfigError
from engines.transforms import short_side_size
from stream.packet import Detections, FramePacket, Prediction, SourceEvent
from stream.stage import Outputs, Stage
from stream.worker import LatestPerKey

_WINDOW = 2048  # latency samples kept for percentiles
SOURCE_END_EVENTS = ("disconnected", "gave_up")


class SpatioTemporalDetector(Protocol):
    """What :class:`StdetStage` needs of a spatio-temporal action detector (see ``engines.stdet``)."""

    @property
    def class_names(self) -> Sequence[str]: ...

    @property
    def clip_len(self) -> int: ...

    @property
    def frame_interval(self) -> int: ...

    @property
    def short_side(self) -> int:
        """Frames are resized to this short side before they reach :meth:`scores`."""
        ...

    def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """Scores ``(K, num_classes)`` of the ``K`` boxes ``(K, 4)`` (pixels of ``frames``) in
        the clip ``frames`` (``clip_len`` BGR uint8 images, oldest first)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StdetParams:
    """Keyframe schedule and reporting (MMAction2 demo flag names).

    Attributes:
        predict_stepsize: a keyframe every this many frames (``--predict-stepsize``).
        threshold: actions scoring at most this are not reported (``--action-score-thr``).
        live: live mode (worker thread, drop stale keyframes) instead of lossless file mode.
    """

    predict_stepsize: int = 8
    threshold: float = 0.5
    live: bool = False

    def __post_init__(self) -> None:
        if self.predict_stepsize < 1:
            raise ConfigError(f"--predict-stepsize: expected >= 1, got {self.predict_stepsize}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--action-score-thr: expected a score between 0 and 1, got {self.threshold}")


@dataclass(eq=False)
class Keyframe:
    """One keyframe's clip and people, ready for the model."""

    source_id: str
    frames: list[np.ndarray]
    boxes: np.ndarray  # (K, 4) in the resized frames' pixels
    frame_boxes: np.ndarray  # (K, 4) in the source frame's pixels
    track_ids: np.ndarray
    start_s: float
    end_s: float
    capture_ns: int


class _Source:
    """One source's recent resized frames and the keyframes' people."""

    def __init__(self, span: int) -> None:
        self.frames: collections.deque[tuple[np.ndarray, float, Detections | None, float]] = collections.deque(
            maxlen=span
        )
        self.count = 0


class StdetStage(Stage):
    """Spatio-temporal action detection per tracked person (see the module docstring).

    Args:
        detector: builds the detector (called once, in :meth:`setup`).
        params: keyframe schedule and threshold.
        name: stage name.
    """

    def __init__(
        self, detector: Callable[[], SpatioTemporalDetector], params: StdetParams | None = None, *, name: str = "stdet"
    ) -> None:
        super().__init__(name)
        self._factory = detector
        self._detector: SpatioTemporalDetector | None = None
        self.params = params or StdetParams()
        self._sources: dict[str, _Source] = {}
        self._worker: LatestPerKey[Keyframe, list[Prediction]] = LatestPerKey(self._infer_batch, name="infer")
        self.before = self.after = self.span = 0
        self.keyframes = 0
        self.people = 0
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self.infer_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        detector = self._detector = self._factory()
        clip_len, interval = int(detector.clip_len), int(detector.frame_interval)
        if clip_len < 1 or interval < 1:
            raise ConfigError(f"{self.name}: the model's clip_len {clip_len} / frame_interval {interval} must be >= 1")
        # SampleAVAFrames: clip_len // 2 frames before the keyframe, the rest from it on
        self.before = (clip_len // 2) * interval
        self.after = ((clip_len + 1) // 2 - 1) * interval
        self.span = self.before + self.after + 1

    def workers(self) -> Sequence[LatestPerKey[Keyframe, list[Prediction]]]:
        return (self._worker,) if self.params.live else ()

    def process(self, packet: FramePacket) -> Outputs:
        keyframe = self._feed(packet)
        if self.params.live:
            if keyframe is not None:
                self._worker.submit(packet.source_id, keyframe)
            for predictions in self._worker.take(packet.source_id):
                packet.predictions.extend(predictions)
        elif keyframe is not None:
            packet.predictions.extend(self._infer(keyframe))
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        if event.kind in SOURCE_END_EVENTS:
            self._sources.pop(event.source_id, None)
            self._worker.take(event.source_id)
        return event

    def finish(self) -> Outputs:
        self._sources.clear()
        return None

    def close(self) -> None:
        self._sources.clear()
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def metrics(self) -> dict[str, Any]:
        lat = np.fromiter(self.latency_ms, np.float64) if self.latency_ms else None
        inf = np.fromiter(self.infer_ms, np.float64) if self.infer_ms else None
        return {
            "keyframes": self.keyframes,
            "people": self.people,
            "dropped_keyframes": self._worker.dropped,
            "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 1),
            "latency_p95_ms": None if lat is None else round(float(np.percentile(lat, 95)), 1),
            "infer_p50_ms": None if inf is None else round(float(np.percentile(inf, 50)), 1),
        }

    # ------------------------------------------------------------------ keyframes

    def _require(self) -> SpatioTemporalDetector:
        if self._detector is None:
            raise ConfigError(f"{self.name}: process() before setup()")
        return self._detector

    def _feed(self, packet: FramePacket) -> Keyframe | None:
        detector = self._require()
        state = self._sources.get(packet.source_id)
        if state is None:
            state = self._sources[packet.source_id] = _Source(self.span)
        image = np.asarray(packet.image)
        h, w = image.shape[:2]
        scale = detector.short_side / min(h, w)
        size = short_side_size(detector.short_side, w, h)
        resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if size != (w, h) else image
        if state.frames and state.frames[-1][0].shape != resized.shape:
            state.frames.clear()  # the frame size changed: a new stream, a new keyframe schedule
            state.count = 0
        state.frames.append((resized, packet.time_s, packet.detections, scale))
        state.count += 1
        if len(state.frames) < self.span:
            return None
        keyframe_no = state.count - 1 - self.after  # frames counted from 0
        if (keyframe_no - self.before) % self.params.predict_stepsize:
            return None
        _, _, detections, key_scale = state.frames[self.before]
        if detections is None or detections.track_ids is None or not len(detections):
            return None
        interval = int(detector.frame_interval)
        frames = [state.frames[i][0] for i in range(0, self.span, interval)]
        return Keyframe(
            packet.source_id,
            frames,
            (detections.xyxy * key_scale).astype(np.float32),
            detections.xyxy.astype(np.float32),
            detections.track_ids.copy(),
            state.frames[0][1],
            packet.time_s,
            packet.capture_ns,
        )

    # ------------------------------------------------------------------ inference

    def _infer_batch(self, keyframes: list[Keyframe]) -> list[list[Prediction]]:
        return [self._infer(k) for k in keyframes]

    def _infer(self, keyframe: Keyframe) -> list[Prediction]:
        detector = self._require()
        start = time.perf_counter()
        scores = np.asarray(detector.scores(keyframe.frames, keyframe.boxes), np.float32)
        self.infer_ms.append((time.perf_counter() - start) * 1e3)
        names = detector.class_names
        if scores.shape != (len(keyframe.boxes), len(names)):
            raise ConfigError(
                f"{self.name}: the model returned scores of shape {scores.shape}, expected "
                f"({len(keyframe.boxes)}, {len(names)}) (one row per person, one column per action)"
            )
        self.latency_ms.append((time.monotonic_ns() - keyframe.capture_ns) / 1e6)
        self.keyframes += 1
        self.people += len(scores)
        out = []
        for row, box, track_id in zip(scores, keyframe.frame_boxes, keyframe.track_ids.tolist(), strict=True):
            order = np.argsort(-row, kind="stable")
            order = order[row[order] > self.params.threshold]  # strictly above, as MMAction2's demos
            out.append(
                Prediction(
                    label_ids=order.astype(np.int64), scores=row[order], names=tuple(names[i] for i in order),
                    start_s=keyframe.start_s, end_s=keyframe.end_s, capture_ns=keyframe.capture_ns,
                    track_id=int(track_id), box=box, multi_label=True,
                )
            )  # fmt: skip
        return out
