"""The two kinds of pipeline element: sources and stages.

A stage is a small class with an explicit lifecycle: ``setup()`` once in its thread,
``process(packet)`` per frame, ``finish()`` at end of stream, ``close()`` always. It
never touches sockets or threads: the runner does (see :mod:`stream.runner`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from stream.packet import FramePacket, SourceEvent
from stream.transport import LIVE_INFERENCE, QueuePolicy
from stream.worker import LatestPerKey

Output = FramePacket | SourceEvent
Outputs = Iterable[Output] | Output | None


class Stage:
    """Base class of processing stages and sinks.

    Subclasses override :meth:`process` and whichever of the other hooks they need.
    ``process`` returns the packet(s) to pass on: one packet, an iterable of packets, or
    None to pass nothing on.
    """

    #: Name used in logs, metrics and errors; defaults to the class name.
    name: str = ""
    #: Policy of this stage's input link when a source is live: costly stages keep only the
    #: newest few frames; cheap stages and writers take a deep buffer so that a burst (a
    #: camera's first GOP on connect, a hiccup upstream) is absorbed rather than dropped.
    live_policy: QueuePolicy = LIVE_INFERENCE
    #: Set by the runner just before :meth:`close`: why the stream ended if it ended because of
    #: a failure (this stage's or one upstream, as ``"Type: message"``), else None. Stages that
    #: forward the stream elsewhere (:class:`~stream.remote.RemoteSink`) pass it on.
    stream_error: str | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.name or type(self).__name__

    def setup(self) -> None:
        """Acquire resources (open files, load models). Runs in the stage's own thread."""

    def process(self, packet: FramePacket) -> Outputs:
        """Handle one frame; by default pass it on unchanged."""
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        """Handle a source event; by default pass it on."""
        return event

    def finish(self) -> Outputs:
        """End of stream reached normally or after an upstream failure: flush what is pending."""
        return None

    def close(self) -> None:
        """Release resources. Always called, also after errors."""

    def metrics(self) -> dict[str, Any]:
        """Stage-specific counters merged into the runner's metrics (e.g. clips, latency)."""
        return {}

    def workers(self) -> Sequence[LatestPerKey[Any, Any]]:
        """Background workers the runner runs for this stage (see :mod:`stream.worker`).

        Called after :meth:`setup`; each gets a thread that the runner stops after
        :meth:`finish`, and an exception in it fails this stage.
        """
        return ()


class Source(ABC):
    """Base class of frame sources (files, cameras, streams, remote links).

    ``setup()`` opens the source and raises a :class:`~stream.errors.SourceError` with a
    clear message when it can't; iterating yields frames and events until the stream ends.
    """

    name: str = ""
    #: Set by the runner when the pipeline stops; long waits (reconnect back-off, idle
    #: network reads) should wait on it so that a stop takes effect within a second.
    stop_event: threading.Event
    #: Live sources (cameras, RTSP, ``--realtime`` files) get drop policies by default.
    live: bool = False

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.name or type(self).__name__
        self.stop_event = threading.Event()

    @property
    def source_id(self) -> str:
        return self.name

    def setup(self) -> None:
        """Open the source."""

    @abstractmethod
    def __iter__(self) -> Iterator[Output]:
        """Yield frames and events until the stream ends."""

    def close(self) -> None:
        """Release the source. Always called."""


def as_outputs(result: Outputs) -> list[Output]:
    """Normalise a hook's return value to a list of packets."""
    if result is None:
        return []
    if isinstance(result, (FramePacket, SourceEvent)):
        return [result]
    return list(result)
