"""JSON-lines results file: one line per frame result and per source event.

Each line is flushed as soon as it is written, so a reader tailing the file (or the
file left behind by Ctrl-C or a crash) has every result up to the last frame processed.
The record format is described in :mod:`stream.sinks.records`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import IO, Any

from stream.errors import SinkError
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
        self._file: IO[str] | None = None

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
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a" if self.append else "w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write results to {self.path}: {exc.strerror or exc}") from exc

    def write(self, record: dict[str, Any]) -> None:
        """Write one record as a line and flush it.

        Raises:
            SinkError: If the write fails (disk full, file closed).
        """
        if self._file is None:
            raise SinkError(f"{self.name}: write() before setup() or after close()")
        try:
            self._file.write(dumps(record) + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(f"cannot write results to {self.path}: {exc}") from exc
        self.lines += 1

    def process(self, packet: FramePacket) -> Outputs:
        if wants_frame(packet, self.include_frames):
            record = frame_record(
                packet, include_boxes=self.include_boxes, include_people=self.include_frames == "people"
            )
            self.write(record)
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        self.write(event.to_json())
        return event

    def close(self) -> None:
        file, self._file = self._file, None
        if file is None or file is sys.stdout:
            return
        try:
            file.close()
        except OSError as exc:
            log.warning("closing %s failed: %s", self.path, exc)
