"""Small sources and stages for runtime tests (no video decoding involved)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from stream.packet import FramePacket, SourceEvent
from stream.stage import Outputs, Source, Stage


def frame(i: int, source_id: str = "gen", size: tuple[int, int] = (24, 32)) -> FramePacket:
    image = np.full((*size, 3), i % 256, np.uint8)
    return FramePacket(image, source_id, i, i, Fraction(1, 25), time.monotonic_ns())


class CountingSource(Source):
    """Yields ``n`` frames (forever if None), ``interval_s`` apart; can fail at ``fail_at``."""

    def __init__(self, n: int | None, *, name: str = "gen", interval_s: float = 0.0, live: bool = False,
                 fail_at: int | None = None, size: tuple[int, int] = (24, 32)) -> None:  # fmt: skip
        super().__init__(name)
        self.n, self.interval_s, self.live, self.fail_at, self.size = n, interval_s, live, fail_at, size
        self.closed = False

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        i = 0
        while self.n is None or i < self.n:
            if self.fail_at is not None and i == self.fail_at:
                raise OSError(f"source broke at frame {i}")
            yield frame(i, self.name, self.size)
            i += 1
            if self.interval_s:
                time.sleep(self.interval_s)

    def close(self) -> None:
        self.closed = True


class Collect(Stage):
    """Records what reaches it; optionally slow."""

    def __init__(self, name: str = "collect", delay_s: float = 0.0) -> None:
        super().__init__(name)
        self.delay_s = delay_s
        self.frames: list[tuple[str, int]] = []
        self.events: list[SourceEvent] = []
        self.finished = threading.Event()
        self.closed = False

    def process(self, packet: FramePacket) -> Outputs:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.frames.append((packet.source_id, packet.frame_idx))
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        self.events.append(event)
        return event

    def finish(self) -> Outputs:
        self.finished.set()
        return None

    def close(self) -> None:
        self.closed = True


class FailAt(Stage):
    def __init__(self, at: int, name: str = "fail") -> None:
        super().__init__(name)
        self.at = at

    def process(self, packet: FramePacket) -> Outputs:
        if packet.frame_idx == self.at:
            raise ValueError(f"bad frame {packet.frame_idx}")
        return packet
