"""Video files decoded with PyAV.

:class:`FileSource` decodes any container and codec FFmpeg knows, on the CPU with
FFmpeg's own threading (``thread_type='AUTO'``). Timestamps come from the container:
``pts`` and ``time_base`` are the stream's, and only frames without a timestamp get one
synthesised from the previous frame plus its duration. With ``realtime=True`` frames come
out at their presentation rate, as a camera would deliver them.

Damaged files fail early and clearly: a missing file raises :class:`SourceNotFound`,
a file that is empty, not a video, has no video stream, no decodable frames or a broken
header raises :class:`SourceError` naming the file and the reason, at :meth:`setup`.
A file damaged further in (typically truncated by a crashed recorder) decodes what it
can, then yields a ``SourceEvent(kind='error')`` and ends, instead of crashing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from stream.errors import ConfigError, SourceError, SourceNotFound
from stream.packet import FramePacket, SourceEvent
from stream.stage import Output, Source

log = logging.getLogger(__name__)

#: Undecodable packets in a row after which a file counts as unreadable from there on.
MAX_BAD_PACKETS = 25
#: A paced source that falls this far behind its schedule restarts the schedule instead of bursting.
MAX_PACING_LAG_S = 1.0
#: Longest single sleep, so a paced source notices :meth:`close` quickly.
SLEEP_SLICE_S = 0.25


@dataclass(frozen=True)
class VideoInfo:
    """What a source knows about its video after ``setup()``.

    Attributes:
        width, height: frame size in pixels.
        fps: nominal frame rate as an exact fraction (e.g. ``30000/1001``), None if unknown.
        frames: number of frames if the container says so, else None.
        duration_s: duration in seconds if known, else None (live streams).
        time_base: seconds per ``pts`` unit of the packets this source yields.
        codec: decoder name, e.g. ``h264``.
    """

    width: int
    height: int
    fps: Fraction | None
    frames: int | None
    duration_s: float | None
    time_base: Fraction
    codec: str = ""

    @property
    def fps_float(self) -> float | None:
        """``fps`` as a float, None if unknown."""
        return float(self.fps) if self.fps else None


class Pacer:
    """Sleeps so that items leave at their stream-time rate, relative to the first one.

    Args:
        stop: set it to cut a sleep short (the owner's "closed" flag).
        max_lag_s: when the caller falls further behind than this (slow decoding, a blocked
            consumer), the schedule restarts from now instead of emitting a burst.
    """

    def __init__(self, stop: threading.Event, max_lag_s: float = MAX_PACING_LAG_S) -> None:
        self.stop = stop
        self.max_lag_s = max_lag_s
        self._anchor: tuple[float, float] | None = None  # (monotonic time, stream time) of the schedule start

    def wait(self, stream_time_s: float) -> bool:
        """Sleep until ``stream_time_s`` is due. Returns False if ``stop`` was set meanwhile."""
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, stream_time_s)
            return not self.stop.is_set()
        due = self._anchor[0] + (stream_time_s - self._anchor[1])
        if now - due > self.max_lag_s:
            log.debug("pacing fell %.2fs behind; restarting the schedule", now - due)
            self._anchor = (now, stream_time_s)
            return not self.stop.is_set()
        while (remaining := due - time.monotonic()) > 0:
            if self.stop.wait(min(remaining, SLEEP_SLICE_S)):
                return False
        return not self.stop.is_set()


def ffmpeg_reason(exc: BaseException) -> str:
    """The human part of a PyAV error (``Invalid data found when processing input``)."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as an ``H×W×3`` uint8 BGR array (contiguous)."""
    return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))


def stream_fps(stream: Any) -> Fraction | None:
    """A video stream's nominal frame rate, or None if the container gives none."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            fps = Fraction(rate)
            if 0 < fps <= 1000:
                return fps
    return None


class FileSource(Source):
    """Frames of a video file, decoded with PyAV.

    Args:
        path: the video file.
        realtime: emit frames at their presentation rate (``--realtime``), like a camera;
            the source then counts as live (drop policies downstream).
        max_frames: stop after this many frames (all if None).
        source_id: stream name in packets; default the file stem.
        threads: decoder threads, 0 for FFmpeg's choice.

    Attributes:
        info: what the container says about the video (set by :meth:`setup`).

    Example::

        source = FileSource("clip.mp4", max_frames=100)
        source.setup()
        try:
            for item in source:
                ...
        finally:
            source.close()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = False,
        max_frames: int | None = None,
        source_id: str | None = None,
        threads: int = 0,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames: expected a positive number of frames or None, got {max_frames}")
        if threads < 0:
            raise ConfigError(f"threads: expected >= 0 (0 = automatic), got {threads}")
        self.path = Path(path)
        super().__init__(source_id or self.path.stem or str(self.path))
        self.realtime = realtime
        self.live = realtime
        self.max_frames = max_frames
        self.threads = threads
        self.info: VideoInfo | None = None
        self._container: Any = None
        self._stream: Any = None
        self._items: Iterator[av.VideoFrame | SourceEvent] | None = None
        self._primed: list[av.VideoFrame | SourceEvent] = []
        self._io = threading.Lock()  # held while PyAV reads, so close() from another thread never races it
        self._damaged = False

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        """Open the file, read its stream info and decode the first frame.

        Raises:
            SourceNotFound: If the file does not exist.
            SourceError: If it is empty, a directory, not a video, has no video stream,
                no decodable frame, or a damaged header.
        """
        if self._container is not None:
            return
        path = self.path
        if not path.exists():
            raise SourceNotFound(f"video file not found: {path}")
        if path.is_dir():
            raise SourceError(f"{path} is a directory, not a video file; for image frames use the images source")
        if path.stat().st_size == 0:
            raise SourceError(f"cannot open video file {path}: the file is empty (0 bytes)")
        try:
            container = av.open(str(path), metadata_errors="replace")
        except av.error.FFmpegError as exc:
            raise SourceError(
                f"cannot open video file {path}: not a video, or its header is damaged ({ffmpeg_reason(exc)})"
            ) from exc
        except OSError as exc:
            raise SourceError(f"cannot open video file {path}: {exc.strerror or exc}") from exc
        try:
            self._container = container
            if not container.streams.video:
                kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["none"]
                raise SourceError(f"{path} has no video stream (streams found: {', '.join(kinds)})")
            stream = self._stream = container.streams.video[0]
            if stream.codec_context is None:
                raise SourceError(f"cannot decode {path}: FFmpeg has no decoder for its video codec")
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            self._items = self._decode()
            with self._io:
                for item in self._items:
                    self._primed.append(item)
                    if isinstance(item, av.VideoFrame):
                        break
            first = self._primed[-1] if self._primed else None
            if not isinstance(first, av.VideoFrame):
                events = [e for e in self._primed if isinstance(e, SourceEvent)]
                if events:
                    why = f"{events[0].data.get('error')}; the file looks damaged or truncated"
                else:
                    why = "its video stream holds no frames"
                raise SourceError(f"cannot decode any frame of {path}: {why}")
            self.info = self._info(stream, first)
        except BaseException:
            self._close_container()
            raise
        log.info(
            "opened %s: %dx%d, %s fps, %s frames, %s s, %s",
            path, self.info.width, self.info.height,
            f"{float(self.info.fps):.3f}" if self.info.fps else "unknown", self.info.frames or "unknown",
            f"{self.info.duration_s:.2f}" if self.info.duration_s is not None else "unknown", self.info.codec,
        )  # fmt: skip

    def __iter__(self) -> Iterator[Output]:
        """Yield frames (and an ``error`` event if the file turns out damaged) until the end."""
        if self.stop_event.is_set():
            return
        self.setup()
        items, info = self._items, self.info
        if items is None or info is None:  # unreachable: setup() sets both or raises
            raise SourceError(f"{self.path} is not open")
        time_base = info.time_base
        nominal = self._nominal_duration(time_base)
        pacer = Pacer(self.stop_event) if self.realtime else None
        frame_idx = 0
        last_pts: int | None = None
        warned_order = False
        try:
            while not self.stop_event.is_set():
                item: av.VideoFrame | SourceEvent | None
                if self._primed:
                    item = self._primed.pop(0)
                else:
                    with self._io:
                        if self.stop_event.is_set():
                            break
                        item = next(items, None)
                if item is None:
                    break
                if isinstance(item, SourceEvent):
                    yield item
                    continue
                pts = self._pts(item, time_base)
                if pts is None:
                    pts = 0 if last_pts is None else last_pts + self._duration(item, time_base, nominal)
                elif last_pts is not None and pts <= last_pts:
                    if not warned_order:
                        log.warning(
                            "%s: timestamps go backwards at frame %d; making them increase", self.path, frame_idx
                        )
                        warned_order = True
                    pts = last_pts + self._duration(item, time_base, nominal)
                last_pts = pts
                if pacer is not None and not pacer.wait(float(pts * time_base)):
                    break
                packet = FramePacket(to_bgr(item), self.source_id, frame_idx, pts, time_base, time.monotonic_ns())
                frame_idx += 1
                yield packet
                if self.max_frames is not None and frame_idx >= self.max_frames:
                    return
            if not self.stop_event.is_set() and not self._damaged:
                expected = info.frames
                if expected and frame_idx < expected * 0.98 - 1:
                    yield self._damage_event(
                        f"the file ended after {frame_idx} of {expected} frames; it looks truncated",
                        frames_decoded=frame_idx,
                        frames_expected=expected,
                    )
        finally:
            with self._io:
                self._close_container()

    def close(self) -> None:
        """Stop iterating and release the file; safe to call from any thread, and twice."""
        self.stop_event.set()
        if self._io.acquire(blocking=False):
            try:
                self._close_container()
            finally:
                self._io.release()
        # else: the iterating thread is inside PyAV; it closes the file when it returns

    # -- helpers --------------------------------------------------------------------------

    def _close_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except av.error.FFmpegError as exc:  # closing a damaged file can complain; nothing to save
                log.debug("closing %s: %s", self.path, exc)

    def _decode(self) -> Iterator[av.VideoFrame | SourceEvent]:
        """Decoded frames; damaged packets are skipped and reported once as an event."""
        demux = self._container.demux(self._stream)
        bad_in_a_row = 0
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                yield self._damage_event("reading stopped", error=ffmpeg_reason(exc))
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                bad_in_a_row += 1
                if not self._damaged:
                    yield self._damage_event("undecodable data skipped", error=ffmpeg_reason(exc))
                else:
                    log.debug("%s: undecodable packet skipped: %s", self.path, exc)
                if bad_in_a_row >= MAX_BAD_PACKETS:
                    log.warning("%s: %d undecodable packets in a row; stopping here", self.path, bad_in_a_row)
                    return
                continue
            bad_in_a_row = 0
            yield from frames

    def _damage_event(self, reason: str, **data: Any) -> SourceEvent:
        self._damaged = True
        message = f"{self.path}: {reason}" + (f" ({data['error']})" if data.get("error") else "")
        log.warning("%s", message)
        return SourceEvent(
            self.source_id, "error", message, time.time(), {"path": str(self.path), "reason": reason, **data}
        )

    def _info(self, stream: Any, first: av.VideoFrame) -> VideoInfo:
        fps = stream_fps(stream)
        time_base = Fraction(stream.time_base) if stream.time_base else None
        if time_base is None:
            time_base = Fraction(first.time_base) if first.time_base else (1 / fps if fps else Fraction(1, 90_000))
        duration_s: float | None = None
        if stream.duration is not None and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration_s = self._container.duration / av.time_base
        frames = int(stream.frames) or None
        return VideoInfo(first.width, first.height, fps, frames, duration_s, time_base, stream.codec_context.name)

    def _nominal_duration(self, time_base: Fraction) -> int:
        fps = self.info.fps if self.info else None
        return max(1, round(1 / (fps * time_base))) if fps else 1

    @staticmethod
    def _pts(frame: av.VideoFrame, time_base: Fraction) -> int | None:
        if frame.pts is None:
            return None
        if frame.time_base and Fraction(frame.time_base) != time_base:
            return round(frame.pts * Fraction(frame.time_base) / time_base)
        return int(frame.pts)

    @staticmethod
    def _duration(frame: av.VideoFrame, time_base: Fraction, nominal: int) -> int:
        duration = getattr(frame, "duration", None)
        if duration and frame.time_base:
            return max(1, round(duration * Fraction(frame.time_base) / time_base))
        return nominal
