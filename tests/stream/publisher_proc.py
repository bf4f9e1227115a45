"""A live pipeline with a publisher and a recording-like stage after it, run as its own process.

    python -m tests.stream.publisher_proc ADDRESS

Prints ``{"endpoint": ...}`` once the publisher is bound, runs until SIGINT, then prints
one JSON report: frames that reached the stage after the publisher, the longest gap
between two of them, and the publisher's metrics. Tests read its RSS from ``/proc``.
"""

from __future__ import annotations

import json
import sys
import time

from stream.packet import FramePacket
from stream.runner import Pipeline
from stream.sinks import ZmqPublisherSink
from stream.stage import Outputs, Stage
from tests.stream.helpers import CountingSource

FRAME_INTERVAL_S = 0.01


class AnnouncingPublisher(ZmqPublisherSink):
    def setup(self) -> None:
        super().setup()
        print(json.dumps({"endpoint": self.endpoint}), flush=True)


class GapRecorder(Stage):
    """Stands for the recorder after the publisher: notes the longest wait between frames."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.frames = 0
        self.max_gap_s = 0.0
        self._last: float | None = None

    def process(self, packet: FramePacket) -> Outputs:
        now = time.monotonic()
        if self._last is not None:
            self.max_gap_s = max(self.max_gap_s, now - self._last)
        self._last = now
        self.frames += 1
        return None


def main(address: str) -> int:
    publisher = AnnouncingPublisher(address, include_frames="all")
    recorder = GapRecorder()
    source = CountingSource(None, name="cam", interval_s=FRAME_INTERVAL_S, live=True, size=(48, 64))
    pipeline = Pipeline([source], [publisher, recorder], metrics_interval_s=0)
    report = pipeline.run()
    print(
        json.dumps(
            {
                "status": report.status,
                "frames": recorder.frames,
                "max_gap_s": recorder.max_gap_s,
                "publisher": report.stages[publisher.name],
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
