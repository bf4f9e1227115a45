"""Per-frame labels of a long video, merged into segments, and a timeline plot.

:class:`TimelineStage` sits after the recognition stage. It holds each source's latest
prediction over the frames that follow it (as the annotated video shows it), records the
label of every frame, reports progress with an ETA, and at the end of the stream — also
after Ctrl-C or a failure upstream, so partial results are never lost — writes:

Frames before a source's first prediction get that prediction in these files (they lie
inside its window).

* per-frame results as JSON (``long_video_demo.py``'s ``OUT_FILE.json``): this project's
  schema, or with ``json_format='mmaction2'`` the one ``long_video_demo.py`` writes (see
  :func:`mmaction2_frames` and docs/configs.md),
* segments (``--segments OUT.csv|OUT.json``): consecutive frames with the same top label,
  with start, end, label and mean score,
* a PNG timeline of the segments.

Each file is written whole or not at all (:mod:`core.files`): under a hidden name beside
it, renamed into place once complete. Nothing is created before the end of the stream,
and a stage that saw no frame (the input could not be opened, or the model failed on the
first clip) writes nothing, leaving existing files of those names as they were.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from core.files import atomic_path, check_writable
from core.files import write_text as write_text_atomic
from stream.errors import ConfigError, OutputError, SinkError
from stream.packet import FramePacket, Prediction
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)

JsonFormat = Literal["ours", "mmaction2"]
JSON_FORMATS: tuple[JsonFormat, ...] = ("ours", "mmaction2")
#: What long_video_demo.py writes for a frame before the first prediction.
MMACTION2_WAITING = "Preparing action recognition ..."


@dataclass(frozen=True)
class Segment:
    """A run of frames with the same top label."""

    start_s: float
    end_s: float
    label: str
    score: float
    first_frame: int
    last_frame: int

    def to_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "label": self.label,
            "score": round(self.score, 4),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
        }


@dataclass
class _Frame:
    frame_idx: int
    time_s: float
    prediction: Prediction | None


def merge_segments(frames: Sequence[tuple[int, float, str | None, float]], period_s: float) -> list[Segment]:
    """Merge per-frame ``(frame_idx, time_s, top label or None, top score)`` into segments.

    Frames without a label (before the first prediction, or below the threshold) end a
    segment and belong to none. A segment ends one frame period after its last frame.
    """
    segments: list[Segment] = []
    run: list[tuple[int, float, str | None, float]] = []

    def close() -> None:
        if run and run[0][2] is not None:
            scores = [f[3] for f in run]
            segments.append(
                Segment(run[0][1], run[-1][1] + period_s, run[0][2], sum(scores) / len(scores), run[0][0], run[-1][0])
            )

    for frame in frames:
        if run and frame[2] != run[-1][2]:
            close()
            run = []
        run.append(frame)
    close()
    return segments


def write_segments(path: Path, segments: Sequence[Segment]) -> None:
    """Write segments as CSV (``start,end,label,score``…) or JSON, by the file's suffix, atomically.

    Raises:
        ConfigError: For another suffix.
        OutputError: If the file cannot be written (an existing one stays as it was).
    """
    if path.suffix.lower() == ".json":
        write_text_atomic(path, json.dumps([s.to_json() for s in segments], indent=2))
    elif path.suffix.lower() == ".csv":
        with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["start", "end", "label", "score", "first_frame", "last_frame"])
            for s in segments:
                row = s.to_json()
                writer.writerow([row["start"], row["end"], row["label"], row["score"], s.first_frame, s.last_frame])
    else:
        raise ConfigError(f"--segments: expected a .csv or .json file, got {path}")


def plot_timeline(
    path: Path, segments: Sequence[Segment], labels: Sequence[str], duration_s: float, title: str
) -> None:
    """Draw the segments as coloured bars on a time axis and save a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    index = {name: i for i, name in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(12, 1.6 + 0.05 * len(labels)), dpi=100)
    used: dict[str, Any] = {}
    for s in segments:
        color = colors(index.get(s.label, 0) % colors.N)
        bars = ax.broken_barh([(s.start_s, s.end_s - s.start_s)], (0, 1), facecolors=color, edgecolor="white")
        used.setdefault(s.label, bars)
    ax.set_xlim(0, max(duration_s, 1e-3))
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=10)
    if used:
        ax.legend(used.values(), used.keys(), loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=min(4, len(used)))
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


def mmaction2_frames(frames: Sequence[tuple[int, Prediction | None]]) -> dict[str, Any]:
    """Per-frame results in ``long_video_demo.py``'s JSON schema.

    ``{"<frame number, 1-based>": {"<rank, 1-based>": "<label>: <score rounded to 2 places>"}}``,
    the ranks being the prediction's top-k above the threshold (an empty object when none is);
    a frame without a prediction holds the string ``"Preparing action recognition ..."``.

    Args:
        frames: ``(frame_idx, prediction or None)`` per frame, ``frame_idx`` 0-based.
    """
    out: dict[str, Any] = {}
    for frame_idx, prediction in frames:
        if prediction is None:
            out[str(frame_idx + 1)] = MMACTION2_WAITING
            continue
        out[str(frame_idx + 1)] = {
            str(rank): f"{name}: {round(float(score), 2)}"
            for rank, (name, score) in enumerate(zip(prediction.names, prediction.scores, strict=True), start=1)
        }
    return out


class TimelineStage(Stage):
    """Record every frame's label; write results, segments and a timeline at the end.

    Args:
        labels: class names (for the plot's colours).
        frames_json: per-frame results file, or None.
        json_format: its schema: ``ours`` (labels, sources, frames with times and scores,
            segments) or ``mmaction2`` (:func:`mmaction2_frames`).
        segments_path: ``.csv`` or ``.json`` segments file, or None.
        timeline_png: timeline plot, or None.
        total_frames: frames expected, for the progress bar (None: no ETA).
        progress: where the progress bar goes (None: no progress bar).
        title: plot title.
    """

    live_policy = LIVE_RECORDING

    def __init__(
        self,
        labels: Sequence[str],
        *,
        frames_json: Path | None = None,
        json_format: JsonFormat = "ours",
        segments_path: Path | None = None,
        timeline_png: Path | None = None,
        total_frames: int | None = None,
        progress: TextIO | None = sys.stderr,
        title: str = "",
        name: str = "timeline",
    ) -> None:
        super().__init__(name)
        if segments_path is not None and segments_path.suffix.lower() not in (".csv", ".json"):
            raise ConfigError(f"--segments: expected a .csv or .json file, got {segments_path}")
        if json_format not in JSON_FORMATS:
            raise ConfigError(f"--json-format: expected one of {', '.join(JSON_FORMATS)}, got {json_format!r}")
        self.labels = list(labels)
        self.frames_json = frames_json
        self.json_format = json_format
        self.segments_path = segments_path
        self.timeline_png = timeline_png
        self.total_frames = total_frames
        self.progress = progress
        self.title = title
        self.frames: dict[str, list[_Frame]] = {}
        self._current: dict[str, Prediction] = {}
        self._started = 0.0
        self._last_report = 0.0
        self.segments: dict[str, list[Segment]] = {}
        self.written: list[Path] = []  # files put in place

    def setup(self) -> None:
        """Check that the outputs can be written; creates nothing.

        Raises:
            SinkError: If one cannot be written, naming it.
        """
        outputs = (("per-frame results", self.frames_json), ("segments", self.segments_path),
                   ("timeline", self.timeline_png))  # fmt: skip
        for what, path in outputs:
            if path is not None:
                try:
                    check_writable(path, what)
                except OutputError as exc:
                    raise SinkError(str(exc)) from exc
        self._started = time.monotonic()

    def process(self, packet: FramePacket) -> Outputs:
        if packet.predictions:
            self._current[packet.source_id] = packet.predictions[-1]
        frames = self.frames.setdefault(packet.source_id, [])
        frames.append(_Frame(packet.frame_idx, packet.time_s, self._current.get(packet.source_id)))
        self._report(len(frames))
        return packet

    def _report(self, done: int, final: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not final and now - self._last_report < 0.5:
            return
        self._last_report = now
        elapsed = max(now - self._started, 1e-9)
        fps = done / elapsed
        if self.total_frames:
            frac = min(1.0, done / self.total_frames)
            eta = (self.total_frames - done) / fps if fps > 0 else float("inf")
            bar = "#" * int(frac * 30)
            line = f"\r[{bar:<30}] {frac:4.0%} {done}/{self.total_frames} frames, {fps:.1f} fps, ETA {eta:4.0f} s"
        else:
            line = f"\r{done} frames, {fps:.1f} fps"
        self.progress.write(line + ("\n" if final else ""))
        self.progress.flush()

    def finish(self) -> Outputs:
        self._write()
        return None

    def _write(self) -> None:
        total = sum(len(f) for f in self.frames.values())
        self._report(total, final=True)
        if not total:
            log.warning("no frames arrived: no per-frame results, segments or timeline written")
            return
        results: dict[str, Any] = {"labels": self.labels, "sources": {}}
        for source_id, frames in self.frames.items():
            _backfill(frames)
            rows = [_row(f) for f in frames]
            period = _period(frames)
            self.segments[source_id] = merge_segments(
                [(f.frame_idx, f.time_s, r[0], r[1]) for f, r in zip(frames, rows, strict=True)], period
            )
            results["sources"][source_id] = {
                "frames": [
                    {
                        "frame_idx": f.frame_idx,
                        "time_s": round(f.time_s, 4),
                        "labels": [] if f.prediction is None else list(f.prediction.names),
                        "scores": [] if f.prediction is None else [round(float(x), 5) for x in f.prediction.scores],
                    }
                    for f in frames
                ],
                "segments": [s.to_json() for s in self.segments[source_id]],
            }
        try:
            if self.frames_json is not None:
                if self.json_format == "mmaction2":  # one source: long_video_demo.py labels one video
                    frames = [f for frs in self.frames.values() for f in frs]
                    text = json.dumps(mmaction2_frames([(f.frame_idx, f.prediction) for f in frames]))
                else:
                    text = json.dumps(results)
                write_text_atomic(self.frames_json, text)
                self.written.append(self.frames_json)
                log.info("wrote per-frame results to %s", self.frames_json)
            segments = [s for segs in self.segments.values() for s in segs]
            if self.segments_path is not None:
                write_segments(self.segments_path, segments)
                self.written.append(self.segments_path)
                log.info("wrote %d segments to %s", len(segments), self.segments_path)
            if self.timeline_png is not None:
                duration = max((f[-1].time_s + _period(f) for f in self.frames.values() if f), default=0.0)
                plot_timeline(self.timeline_png, segments, self.labels, duration, self.title)
                self.written.append(self.timeline_png)
                log.info("wrote the timeline plot to %s", self.timeline_png)
        except OutputError as exc:
            raise SinkError(str(exc)) from exc


def _backfill(frames: Sequence[_Frame]) -> None:
    """Give the frames before the first prediction that prediction: they lie inside its window.

    (The annotated video, written while streaming, shows "Preparing…" on them instead.)
    """
    first = next((f.prediction for f in frames if f.prediction is not None), None)
    for f in frames:
        if f.prediction is not None:
            break
        f.prediction = first


def _row(frame: _Frame) -> tuple[str | None, float]:
    p = frame.prediction
    if p is None or not p.names:
        return None, 0.0
    return p.names[0], float(p.scores[0])


def _period(frames: Sequence[_Frame]) -> float:
    if len(frames) < 2:
        return 0.0
    return (frames[-1].time_s - frames[0].time_s) / (len(frames) - 1)
