"""Helpers for driving a per-person stage in the test's own thread: feed frames, run its worker
until nothing is left, and a stand-in clock for its latency figures."""

from __future__ import annotations

from collections.abc import Sequence

from stream.packet import FramePacket
from stream.stage import Stage


def feed(stage: Stage, frames: Sequence[FramePacket]) -> list[FramePacket]:
    """``stage.process`` on each frame; every call must pass its frame on."""
    out = []
    for p in frames:
        result = stage.process(p)
        assert isinstance(result, FramePacket)
        out.append(result)
    return out


class Drained:
    """A stop flag for ``LatestPerKey.serve`` that is set once no work is left, so ``serve``
    runs every queued item in the caller's thread and returns."""

    def __init__(self, stage: Stage) -> None:
        (self.worker,) = stage.workers()

    def is_set(self) -> bool:
        return self.worker.pending() == 0


def drain(stage: Stage) -> None:
    """Run the stage's live worker on everything queued, in this thread."""
    flag = Drained(stage)
    flag.worker.serve(flag)  # type: ignore[arg-type]


class Clock:
    """Stands in for the ``time`` module of a stage under test (``monkeypatch.setattr(mod, "time", clock)``)."""

    def __init__(self) -> None:
        self.perf = 100.0
        self.ns = 0

    def perf_counter(self) -> float:
        return self.perf

    def monotonic_ns(self) -> int:
        return self.ns
