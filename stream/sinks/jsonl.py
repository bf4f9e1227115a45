"""JSON-lines results file: one line per frame result and per source event.

The file is written whole or not at all (:mod:`core.files`): lines stream into a hidden
file beside the destination (``.NAME.partial-PID-N.jsonl``), each flushed as soon as it
is written (so that file is line-valid at every moment), and it is renamed into place
when the stream ends, is interrupted (Ctrl-C) or fails after results arrived: partial
results are kept. A sink that received nothing (the input could not be opened) writes
nothing, and an existing file of that name stays as it was; so does one whose write
failed (disk full). A killed process leaves the destination untouched and its lines in
the hidden file. With ``append=True`` lines are appended to the destination directly
(appending never destroys what it holds; the file is opened by the first line, so a run
that produced nothing creates nothing): a log that can be followed live (``tail -f``). The record format is described in
:mod:`stream.sinks.records`; to follow results live, use the ZeroMQ publisher.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any

from core.files import AtomicFile, check_writable
from stream.errors import OutputError, SinkError
from stream.packet import FramePacket, SourceEvent
from stream.sinks.records import IncludeFrames, check_include_frames, dumps, frame_record, wants_frame
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)


class JsonlSink(Stage):
    """Writes results as JSON lines; passes every packet on unchanged.

    Args:
        path: the output file (parent folders are created), or ``-`` for stdout.
        include_frames: which frames get a line: ``predictions`` (frames carrying a
            prediction), ``all`` (every frame), ``people`` (every frame, listing its people
            with track id, box, score and keypoints) or ``none`` (events only).
        include_boxes: add each frame's boxes to its line.
        append: append to an existing file instead of replacing it.
        name: stage name; defaults to ``JsonlSink``.

    Raises:
        ConfigError: If ``include_frames`` is not one of the four values.
    """

    live_policy = LIVE_RECORDING

    def __init__(
        self,
        path: str | Path,
        *,
        include_frames: IncludeFrames = "predictions",
        include_boxes: bool = False,
        append: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.path = path if path == "-" else Path(path)
        self.include_frames = check_include_frames(include_frames)
        self.include_boxes = include_boxes
        self.append = append
        self.lines = 0
        self.written: list[Path] = []  # the file, once put in place
        self._file: IO[str] | None = None
        self._atomic: AtomicFile | None = None
        self._received = False  # a frame or event arrived: the run produced something
        self._broken = False  # a write failed: the file is incomplete
        self._opened_lazily = False  # append mode: the file is opened by the first line

    def setup(self) -> None:
        """Open the file.

        Raises:
            SinkError: If the file cannot be created, naming the path.
        """
        if self.path == "-":
            self._file = sys.stdout
            return
        path = Path(self.path)
        try:
            check_writable(path, "results")
        except OutputError as exc:
            raise SinkError(str(exc)) from exc
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.append:
                self._opened_lazily = True  # opened by the first line: a run that writes nothing creates nothing
            else:
                self._atomic = AtomicFile(path)
                self._file = open(self._atomic.path, "x", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write results to {self.path}: {exc.strerror or exc}") from exc

    @property
    def writing_path(self) -> Path | None:
        """The file lines go to now: the hidden temporary file, the destination when appending,
        None for stdout or when closed."""
        if self._file is None or self.path == "-":
            return None
        return self._atomic.path if self._atomic is not None else Path(self.path)

    def write(self, record: dict[str, Any]) -> None:
        """Write one record as a line and flush it.

        Raises:
            SinkError: If the write fails (disk full, file closed).
        """
        if self._file is None and self._opened_lazily:
            self._opened_lazily = False
            try:
                self._file = open(self.path, "a", encoding="utf-8")
            except OSError as exc:
                self._broken = True
                raise SinkError(f"cannot write results to {self.path}: {exc.strerror or exc}") from exc
        if self._file is None:
            raise SinkError(f"{self.name}: write() before setup() or after close()")
        try:
            self._file.write(dumps(record) + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:
            self._broken = True
            raise SinkError(f"cannot write results to {self.path}: {exc}") from exc
        self.lines += 1

    def process(self, packet: FramePacket) -> Outputs:
        self._received = True
        if wants_frame(packet, self.include_frames):
            record = frame_record(
                packet, include_boxes=self.include_boxes, include_people=self.include_frames == "people"
            )
            self.write(record)
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        self._received = True
        self.write(event.to_json())
        return event

    def finish(self) -> Outputs:
        self._close()
        return None

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        """Close the file; put it in place if something arrived and every write succeeded.

        Raises:
            SinkError: If closing or renaming the file fails (an existing file stays as it was).
        """
        file, self._file = self._file, None
        atomic, self._atomic = self._atomic, None
        self._opened_lazily = False
        if file is None or file is sys.stdout:
            return
        try:
            file.close()
        except OSError as exc:
            self._broken = True
            log.warning("closing %s failed: %s", self.path, exc)
        if atomic is None:  # appending
            if self._received:
                self.written.append(Path(self.path))
            return
        if self._broken or not self._received:
            atomic.discard()
            if not self._received:
                log.warning("%s: nothing arrived, no results written", self.path)
            return
        try:
            self.written.append(atomic.commit())
        except OutputError as exc:
            raise SinkError(str(exc)) from exc
        log.info("wrote %d result lines to %s", self.lines, self.path)
