"""The recognition stage: clip scheduling in stream time, batched inference, smoothing, placement.

:class:`RecognitionStage` sits in a pipeline after the source and composes three parts:

1. the :class:`~pipelines.scheduler.ClipScheduler` pushes each frame into its source's clip
   buffer (resized on arrival, so big frames are not kept) and says when a clip is due
   (``--predict-stepsize`` / ``--stride``, capped by ``--inference-fps``, all in stream time);
2. inference: the engine runs on due clips, in this stage's thread (file mode) or in a
   :class:`~stream.worker.LatestPerKey` worker whose thread, errors and drop-stale policy the
   runner owns (live mode); the class scores of each source's last ``--average-size`` clips
   are averaged and the top-k above ``--threshold`` make a :class:`~stream.packet.Prediction`;
3. a :class:`~pipelines.placement.Placement` (file mode) attaches each prediction to the
   frame it belongs to. A prediction is attached once, to one frame; consumers hold it until
   a newer one comes.

Two modes:

* **file (lossless)** — every due clip is inferred. Clips are batched (``batch_size``) and the
  frames wait in the stage until the clips that concern them are inferred, so results are
  deterministic and do not depend on speed. Each prediction is attached to the frame its clip
  ends on (``anchor='end'``, causal, as live) or, for offline labelling, to the frame nearest
  the middle of its window (``anchor='center'``), so labels line up with the action instead of
  lagging half a window behind it. With ``anchor='interpolate'`` (offline labelling, as
  ``stream.long_video`` does) every frame gets a prediction of its own: the class scores of
  the two windows whose middles are nearest before and after it, blended linearly by its
  distance to each middle (the first window's scores before its middle, the last one's after
  its middle). A frame is then labelled by the windows centred around it rather than by the
  last window whose middle it passed, which lags half a stride behind; and where successive
  windows' scores move across an action change, the label switches where they cross.
* **live** — inference runs in the stage's worker thread (owned by the runner), so frames pass
  on at once (display never waits for the model). The worker always takes the newest due clip
  of each source; a due clip that was not started before a newer one replaced it is dropped
  and counted. Predictions are attached to the next frame of their source, and carry the
  capture time of their newest frame, so capture-to-label latency is measured.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from pipelines.clip_buffer import Clip
from pipelines.placement import ANCHORS, Placement, placement
from pipelines.recognizer import Recognizer
from pipelines.scheduler import ClipScheduler
from stream.packet import FramePacket, Prediction
from stream.stage import Outputs, Stage
from stream.worker import LatestPerKey

log = logging.getLogger(__name__)
_WINDOW = 2048  # latency samples kept for percentiles
__all__ = ["ANCHORS", "RecognitionParams", "RecognitionStage"]


@dataclass(frozen=True)
class RecognitionParams:
    """How often to predict and how to report it (MMAction2 demo flag names).

    Attributes:
        threshold: labels whose (averaged) score is below this are not reported.
        top_k: labels reported per prediction.
        average_size: average the scores of this many consecutive clips.
        predict_stepsize: a new clip every this many frames.
        stride: a new clip every ``stride × window`` frames (exclusive with ``predict_stepsize``).
        inference_fps: at most this many clips per second of stream time.
        batch_size: clips per engine call (file mode batches across windows).
        live: live mode (see the module docstring) instead of lossless file mode.
        anchor: file mode: attach a prediction to its clip's newest frame (``end``), to the
            frame nearest the middle of its window (``center``), or give every frame the scores
            of the windows centred before and after it, linearly blended (``interpolate``).
        input_step: feed every N-th frame to the clip buffers (long_video_demo's ``--input-step``:
            a window then spans N times as many frames; the choice is deterministic).
    """

    threshold: float = 0.0
    top_k: int = 5
    average_size: int = 1
    predict_stepsize: int | None = None
    stride: float | None = None
    inference_fps: float | None = None
    batch_size: int = 1
    live: bool = False
    anchor: Literal["end", "center", "interpolate"] = "end"
    input_step: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold: expected a score between 0 and 1, got {self.threshold}")
        if self.anchor not in ANCHORS:
            raise ConfigError(f"anchor: expected one of {', '.join(map(repr, ANCHORS))}, got {self.anchor!r}")
        for name in ("top_k", "average_size", "batch_size", "input_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(self, name)}")
        if self.predict_stepsize is not None and self.stride is not None:
            raise ConfigError("give --predict-stepsize or --stride, not both")


class RecognitionStage(Stage):
    """Action recognition on the frames passing through (see the module docstring).

    Args:
        recognizer: the recognizer, or a factory called in :meth:`process` with the first
            frame's ``(width, height)`` (for configs whose input size depends on it).
        params: prediction settings.
        fps: the stream's frame rate if known (else read from packets or estimated).
    """

    def __init__(
        self,
        recognizer: Recognizer | Callable[[tuple[int, int]], Recognizer],
        params: RecognitionParams,
        *,
        fps: float | None = None,
        name: str = "recognizer",
    ) -> None:
        super().__init__(name)
        self._recognizer = recognizer if isinstance(recognizer, Recognizer) else None
        self._factory = None if isinstance(recognizer, Recognizer) else recognizer
        self.params = params
        self.fps = fps
        self._scheduler: ClipScheduler | None = None
        self._history: dict[str, collections.deque[np.ndarray]] = {}
        # file mode: frames held until the clips that concern them are inferred
        self._held: list[FramePacket] = []
        self._pending: list[Clip] = []
        self._final: dict[str, float] = {}  # per source: stream time up to which its held frames are final
        self._placement: Placement = placement(params.anchor)
        # live mode: the runner runs this worker's thread
        self._worker: LatestPerKey[Clip, Prediction] = LatestPerKey(
            self._infer, max_batch=max(1, params.batch_size), name="infer"
        )
        # metrics
        self.clips = 0
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self.infer_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)

    @property
    def recognizer(self) -> Recognizer | None:
        return self._recognizer

    @property
    def dropped_clips(self) -> int:
        """Live mode: due clips replaced by a newer one of their source before inference started."""
        return self._worker.dropped

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        if self._recognizer is not None:
            self._make_scheduler(self._recognizer)

    def workers(self) -> Sequence[LatestPerKey[Clip, Prediction]]:
        return (self._worker,) if self.params.live else ()

    def _make_scheduler(self, recognizer: Recognizer) -> None:
        self._worker.max_batch = max(1, min(self.params.batch_size, recognizer.max_batch))
        self._scheduler = ClipScheduler(
            recognizer.spec,
            predict_stepsize=self.params.predict_stepsize,
            stride=self.params.stride,
            inference_fps=self.params.inference_fps,
            fps=self.fps,
            input_step=self.params.input_step,
        )

    def process(self, packet: FramePacket) -> Outputs:
        if self._scheduler is None:
            if self._factory is None:
                raise ConfigError("RecognitionStage: no recognizer and no factory")
            self._recognizer = self._factory((packet.width, packet.height))
            self._make_scheduler(self._recognizer)
        scheduler = self._scheduler
        if scheduler is None:  # set just above; keeps the type checker informed
            return packet
        clip = scheduler.feed(packet)
        if self.params.live:
            return self._process_live(packet, clip)
        return self._process_file(packet, clip, scheduler)

    def finish(self) -> Outputs:
        if self.params.live:
            return None
        if self._scheduler is not None:
            self._pending += self._scheduler.final_clips()
        self._infer_pending()
        if self._recognizer is not None and self._recognizer.reuse is not None:
            self._recognizer.reuse.clear()  # the sources ended: their frames' features are not needed
        self._placement.finish(self._held, self._to_prediction)
        released, self._held = self._held, []
        return released

    def close(self) -> None:
        if self._recognizer is not None:
            self._recognizer.close()

    def metrics(self) -> dict[str, Any]:
        lat = np.fromiter(self.latency_ms, np.float64) if self.latency_ms else None
        inf = np.fromiter(self.infer_ms, np.float64) if self.infer_ms else None
        recognizer = self._recognizer
        return {
            "clips": self.clips,
            "dropped_clips": self.dropped_clips,
            # frame views (frames × crops) through the backbone, and those whose features were reused
            "backbone_frames": 0 if recognizer is None else recognizer.backbone_frames,
            "reused_frames": 0 if recognizer is None else recognizer.reused_frames,
            "frame_reuse": recognizer is not None and recognizer.reuse is not None,
            # what the engines run at (``auto`` decides per engine: the full one and the reuse pair apart)
            "precision": None if recognizer is None else recognizer.engine.manifest.precision,
            "reuse_precision": None
            if recognizer is None or recognizer.reuse is None
            else recognizer.reuse.engines.precision,
            "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 1),
            "latency_p95_ms": None if lat is None else round(float(np.percentile(lat, 95)), 1),
            "infer_p50_ms": None if inf is None else round(float(np.percentile(inf, 50)), 1),
        }

    # ------------------------------------------------------------------ file mode

    def _process_file(self, packet: FramePacket, clip: Clip | None, scheduler: ClipScheduler) -> Outputs:
        if clip is None and not self._pending and self.params.anchor == "end":
            if scheduler.has_clips(packet.source_id):
                return packet  # nothing in flight: the frame's prediction state is known
            # Before a source's first clip its frames are held, so that a video shorter than
            # one window gets a padded clip at the end (final_clips) on its last frame; more
            # frames than a window without a clip (timestamps reset) are let go.
            self._held.append(packet)
            if len(self._held) > scheduler.window_frames(packet.source_id):
                released, self._held = self._held, []
                return released
            return None
        self._held.append(packet)
        if clip is not None:
            self._pending.append(clip)
            if len(self._pending) >= self.params.batch_size:
                return self._release(self._infer_pending())
        return None

    def _infer_pending(self) -> dict[str, float] | None:
        """Infer the pending clips and place their predictions; returns, per source, the stream
        time up to which its held frames are final (None: nothing waits for a label)."""
        if not self._pending:
            return None
        clips, self._pending = self._pending, []
        self._final.update(self._placement.place(self._held, clips, self._scores(clips), self._to_prediction))
        return self._final

    def _release(self, final: Mapping[str, float] | None) -> list[FramePacket]:
        """The held frames, in order, up to the first one not final yet.

        A frame is final up to its source's time in ``final`` (a source with no clip inferred
        yet: not yet) and, whatever its time, when its timeline ended: a later frame of the
        same source has an earlier timestamp (a camera clock reset; the placement labelled
        them when it saw the reset). Otherwise the new timeline's frames would wait until its
        clock passed the old one's end.
        """
        held = self._held
        cut = len(held)
        if final is not None:
            ended = [False] * len(held)
            earliest_after: dict[str, float] = {}  # per source: the earliest time among the frames after this one
            for i in range(len(held) - 1, -1, -1):
                packet = held[i]
                later = earliest_after.get(packet.source_id, float("inf"))
                ended[i] = packet.time_s > later
                earliest_after[packet.source_id] = min(later, packet.time_s)
            cut = next(
                (i for i, p in enumerate(held) if not ended[i] and p.time_s > final.get(p.source_id, float("-inf"))),
                len(held),
            )
        released, self._held = held[:cut], held[cut:]
        return released

    # ------------------------------------------------------------------ live mode

    def _process_live(self, packet: FramePacket, clip: Clip | None) -> Outputs:
        if clip is not None:
            self._worker.submit(clip.source_id, clip)  # a newer clip replaces one not started yet
        packet.predictions.extend(self._worker.take(packet.source_id))
        return packet

    # ------------------------------------------------------------------ inference

    def _infer(self, clips: list[Clip]) -> list[Prediction]:
        return [
            self._to_prediction(row, clip.start_s, clip.end_s, clip.capture_ns)
            for clip, row in zip(clips, self._scores(clips), strict=True)
        ]

    def _scores(self, clips: list[Clip]) -> list[np.ndarray]:
        """Run the engine on ``clips``; each clip's class scores, averaged over its source's last ``average_size``."""
        recognizer = self._recognizer
        if recognizer is None:
            raise ConfigError("RecognitionStage: inference before the recognizer was opened")
        start = time.perf_counter()
        scores = recognizer.scores(clips)
        done_ns = time.monotonic_ns()
        self.infer_ms.append((time.perf_counter() - start) * 1e3 / len(clips))
        averaged = []
        for clip, row in zip(clips, scores, strict=True):
            history = self._history.setdefault(clip.source_id, collections.deque(maxlen=self.params.average_size))
            history.append(row)
            averaged.append(np.mean(history, axis=0) if len(history) > 1 else row)
            self.latency_ms.append((done_ns - clip.capture_ns) / 1e6)
        self.clips += len(clips)
        return averaged

    def _to_prediction(self, scores: np.ndarray, start_s: float, end_s: float, capture_ns: int) -> Prediction:
        recognizer = self._recognizer
        if recognizer is None:
            raise ConfigError("RecognitionStage: prediction before the recognizer was opened")
        order = np.argsort(-scores, kind="stable")[: self.params.top_k]
        order = order[scores[order] >= self.params.threshold]
        return Prediction(
            label_ids=order,
            scores=scores[order],
            names=tuple(recognizer.class_names[i] for i in order),
            start_s=start_s,
            end_s=end_s,
            capture_ns=capture_ns,
        )
