"""The recognition stage: clip buffers in stream time, batched inference, smoothing, live dropping.

:class:`RecognitionStage` sits in a pipeline after the source. For every frame it

1. pushes the frame into its source's :class:`~pipelines.clip_buffer.ClipBuffer` (frames are
   resized on arrival, so big frames are not kept);
2. when a clip is due (``--predict-stepsize`` / ``--stride``, capped by ``--inference-fps``, all
   in stream time) runs the engine on it;
3. averages the class scores of the last ``--average-size`` clips, keeps the top-k above
   ``--threshold``, and attaches a :class:`~stream.packet.Prediction` to the frame. A
   prediction is attached once, to one frame; consumers hold it until a newer one comes.

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
* **live** — inference runs in one worker thread of the stage, so frames pass on at once
  (display never waits for the model). The worker always takes the newest due clip of each
  source; a due clip that was not started before a newer one replaced it is dropped and
  counted. Predictions are attached to the next frame of their source, and carry the capture
  time of their newest frame, so capture-to-label latency is measured.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipelines.clip_buffer import Clip, ClipBuffer, ClipBuffers
from pipelines.recognizer import Recognizer
from stream.errors import ConfigError
from stream.packet import FramePacket, Prediction
from stream.stage import Outputs, Stage

log = logging.getLogger(__name__)
_WINDOW = 2048  # latency samples kept for percentiles
#: Where file mode puts a clip's prediction (see :class:`RecognitionParams`).
ANCHORS = ("end", "center", "interpolate")


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


@dataclass(frozen=True)
class _Window:
    """A window's middle (stream time), class scores and extent, for ``anchor='interpolate'``."""

    centre_s: float
    scores: np.ndarray
    start_s: float
    end_s: float
    capture_ns: int


class RecognitionStage(Stage):
    """Action recognition on the frames passing through (see the module docstring).

    Args:
        recognizer: the recognizer, or a factory called in :meth:`setup` with the first
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
        self._buffers: ClipBuffers | None = None
        self._history: dict[str, collections.deque[np.ndarray]] = {}
        # file mode
        self._held: list[FramePacket] = []
        self._pending: list[Clip] = []
        self._windows: dict[str, _Window] = {}  # anchor='interpolate': each source's newest window
        # live mode
        self._mailbox: dict[str, Clip] = {}
        self._results: dict[str, list[Prediction]] = collections.defaultdict(list)
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closing = False
        self._worker_error: BaseException | None = None
        # metrics
        self.clips = 0
        self.dropped_clips = 0
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self.infer_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)

    @property
    def recognizer(self) -> Recognizer | None:
        return self._recognizer

    # ------------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        if self._recognizer is not None:
            self._make_buffers(self._recognizer)
        if self.params.live:
            self._worker = threading.Thread(target=self._work, name=f"{self.name}-infer", daemon=True)
            self._worker.start()

    def _make_buffers(self, recognizer: Recognizer) -> None:
        self._buffers = ClipBuffers(
            recognizer.spec,
            predict_stepsize=self.params.predict_stepsize,
            stride=self.params.stride,
            inference_fps=self.params.inference_fps,
            fps=None if self.fps is None else self.fps / self.params.input_step,
            resize_on_push=True,
        )

    def process(self, packet: FramePacket) -> Outputs:
        if self._buffers is None:
            assert self._factory is not None  # one of the two is always set
            with self._cond:
                self._recognizer = self._factory((packet.width, packet.height))
            self._make_buffers(self._recognizer)
        assert self._buffers is not None
        step = self.params.input_step
        clip = self._buffers.feed(packet) if step == 1 or packet.frame_idx % step == step - 1 else None
        if self.params.live:
            return self._process_live(packet, clip)
        return self._process_file(packet, clip)

    def finish(self) -> Outputs:
        if self.params.live:
            self._stop_worker()
            return None
        self._clip_short_sources()
        self._infer_pending()
        if self.params.anchor == "interpolate":
            for packet in self._held:  # after the last window's middle: its scores
                window = self._windows.get(packet.source_id)
                if window is not None and packet.time_s > window.centre_s:
                    packet.predictions.append(self._blend(window, window, packet.time_s))
        released, self._held = self._held, []
        return released

    def _buffer_of(self, source_id: str) -> ClipBuffer | None:
        return self._buffers[source_id] if self._buffers is not None and source_id in self._buffers else None

    def _clip_short_sources(self) -> None:
        """File mode, at the end: a source that ended before its first whole window gets one clip.

        Its window is padded with the nearest frames, so a video shorter than one window is
        still labelled (with a warning) instead of silently getting no label at all.
        """
        buffers = self._buffers
        if buffers is None:
            return
        for source_id in buffers:
            buffer = buffers[source_id]
            clip = buffer.final_clip()
            if clip is None:
                continue
            log.warning(
                "%s: the video ended after %d frames, before one whole window of %d; labelled from one clip "
                "whose missing frames repeat the first one",
                source_id, len(buffer), buffer.window_frames,
            )  # fmt: skip
            self._pending.append(clip)

    def close(self) -> None:
        self._stop_worker()
        if self._recognizer is not None:
            self._recognizer.close()

    def metrics(self) -> dict[str, Any]:
        lat = np.fromiter(self.latency_ms, np.float64) if self.latency_ms else None
        inf = np.fromiter(self.infer_ms, np.float64) if self.infer_ms else None
        return {
            "clips": self.clips,
            "dropped_clips": self.dropped_clips,
            "latency_p50_ms": None if lat is None else round(float(np.percentile(lat, 50)), 1),
            "latency_p95_ms": None if lat is None else round(float(np.percentile(lat, 95)), 1),
            "infer_p50_ms": None if inf is None else round(float(np.percentile(inf, 50)), 1),
        }

    # ------------------------------------------------------------------ file mode

    def _process_file(self, packet: FramePacket, clip: Clip | None) -> Outputs:
        if clip is None and not self._pending and self.params.anchor == "end":
            buffer = self._buffer_of(packet.source_id)
            if buffer is not None and buffer.clips:
                return packet  # nothing in flight: the frame's prediction state is known
            # Before a source's first clip its frames are held, so that a video shorter than
            # one window gets a padded clip at the end (_clip_short_sources) on its last frame;
            # more frames than a window without a clip (timestamps reset) are let go.
            self._held.append(packet)
            window = buffer.window_frames if buffer is not None else 1
            if len(self._held) > window * self.params.input_step:
                released, self._held = self._held, []
                return released
            return None
        self._held.append(packet)
        if clip is not None:
            self._pending.append(clip)
            if len(self._pending) >= self.params.batch_size:
                return self._release(self._infer_pending())
        return None

    def _infer_pending(self) -> float:
        """Infer the pending clips, attach their predictions; returns the time up to which frames are final."""
        if not self._pending:
            return float("inf")
        clips, self._pending = self._pending, []
        if self.params.anchor == "interpolate":
            for clip, row in zip(clips, self._scores(clips), strict=True):
                self._interpolate(clip, row)
        else:
            predictions = self._infer(clips)
            times = np.fromiter((p.time_s for p in self._held), np.float64, len(self._held))
            for clip, prediction in zip(clips, predictions, strict=True):
                target = clip.end_s if self.params.anchor == "end" else (clip.start_s + clip.end_s) / 2
                candidates = [i for i, p in enumerate(self._held) if p.source_id == clip.source_id]
                if candidates:
                    best = min(candidates, key=lambda i: (abs(times[i] - target), -times[i]))
                    self._held[best].predictions.append(prediction)
        if self.params.anchor == "end":
            return float("inf")
        # Frames after the newest window's middle may still get the next clip's prediction.
        return max((c.start_s + c.end_s) / 2 for c in clips)

    def _interpolate(self, clip: Clip, row: np.ndarray) -> None:
        """Give the held frames of ``clip``'s source up to its window's middle their blended scores.

        Frames after the previous window's middle blend the two windows by distance; before
        the first window's middle (or after a timestamp reset), frames take this window's scores.
        """
        window = _Window((clip.start_s + clip.end_s) / 2, row, clip.start_s, clip.end_s, clip.capture_ns)
        previous = self._windows.get(clip.source_id)
        if previous is not None and previous.centre_s >= window.centre_s:
            previous = None
        for packet in self._held:
            if packet.source_id != clip.source_id or packet.time_s > window.centre_s:
                continue
            if previous is None:
                packet.predictions.append(self._blend(window, window, packet.time_s))
            elif packet.time_s > previous.centre_s:
                packet.predictions.append(self._blend(previous, window, packet.time_s))
        self._windows[clip.source_id] = window

    def _blend(self, before: _Window, after: _Window, time_s: float) -> Prediction:
        """The prediction at ``time_s`` between two windows' middles: their scores, linearly blended."""
        span = after.centre_s - before.centre_s
        weight = min(max((time_s - before.centre_s) / span, 0.0), 1.0) if span > 0 else 1.0
        scores = after.scores if weight == 1.0 else (1.0 - weight) * before.scores + weight * after.scores
        return self._to_prediction(scores, before.start_s, after.end_s, after.capture_ns)

    def _release(self, final_until: float) -> list[FramePacket]:
        cut = len(self._held)
        if final_until != float("inf"):
            cut = next((i for i, p in enumerate(self._held) if p.time_s > final_until), len(self._held))
        released, self._held = self._held[:cut], self._held[cut:]
        return released

    # ------------------------------------------------------------------ live mode

    def _process_live(self, packet: FramePacket, clip: Clip | None) -> Outputs:
        with self._cond:
            if self._worker_error is not None:
                raise self._worker_error
            if clip is not None:
                if self._mailbox.get(clip.source_id) is not None:
                    self.dropped_clips += 1  # a newer clip replaces one the worker did not start
                self._mailbox[clip.source_id] = clip
                self._cond.notify()
            ready = self._results.pop(packet.source_id, None)
        if ready:
            packet.predictions.extend(ready)
        return packet

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._mailbox and not self._closing:
                    self._cond.wait(0.1)
                if self._closing:
                    return
                batch = list(self._mailbox.values())[: self._max_batch()]
                for clip in batch:
                    del self._mailbox[clip.source_id]
            try:
                predictions = self._infer(batch)
            except BaseException as exc:  # handed to the stage thread, which fails the pipeline
                with self._cond:
                    self._worker_error = exc
                return
            with self._cond:
                for clip, prediction in zip(batch, predictions, strict=True):
                    self._results[clip.source_id].append(prediction)

    def _stop_worker(self) -> None:
        if self._worker is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
        self._worker = None

    def _max_batch(self) -> int:
        recognizer = self._recognizer
        return max(1, min(self.params.batch_size, recognizer.max_batch if recognizer else 1))

    # ------------------------------------------------------------------ inference

    def _infer(self, clips: list[Clip]) -> list[Prediction]:
        return [
            self._to_prediction(row, clip.start_s, clip.end_s, clip.capture_ns)
            for clip, row in zip(clips, self._scores(clips), strict=True)
        ]

    def _scores(self, clips: list[Clip]) -> list[np.ndarray]:
        """Run the engine on ``clips``; each clip's class scores, averaged over its source's last ``average_size``."""
        recognizer = self._recognizer
        assert recognizer is not None
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
        assert recognizer is not None
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
