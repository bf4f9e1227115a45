"""Several sinks in one stage (one thread), fed in order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stream.errors import ConfigError
from stream.packet import FramePacket, SourceEvent
from stream.stage import Outputs, Stage, as_outputs
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)


class MultiSink(Stage):
    """Runs several stages as one: each packet goes through them in order, as a chain would.

    Sinks pass packets through, so they can also be chained as separate stages; grouping
    them here saves a thread and a link each. A member that returns nothing ends the
    chain for that packet.

    Lifecycle: ``setup`` sets the members up in order (closing the ones already set up if
    one fails); ``finish`` and ``close`` reach every member even if one raises, then raise
    the first error.

    Args:
        sinks: the member stages, in order.
        name: stage name; defaults to ``MultiSink``.

    Raises:
        ConfigError: If ``sinks`` is empty.
    """

    live_policy = LIVE_RECORDING

    def __init__(self, sinks: Sequence[Stage], *, name: str | None = None) -> None:
        super().__init__(name)
        if not sinks:
            raise ConfigError("MultiSink: expected at least one sink")
        self.sinks = list(sinks)

    @property
    def written(self) -> list[Path]:
        """The files the members put in place."""
        return [path for sink in self.sinks for path in getattr(sink, "written", ())]

    def setup(self) -> None:
        done: list[Stage] = []
        try:
            for sink in self.sinks:
                sink.setup()
                done.append(sink)
        except BaseException:
            for sink in reversed(done):
                try:
                    sink.close()
                except Exception as exc:
                    log.warning("closing %s after a failed setup failed: %s", sink.name, exc)
            raise

    def _chain(self, packets: list[FramePacket | SourceEvent], start: int) -> list[FramePacket | SourceEvent]:
        for sink in self.sinks[start:]:
            out: list[FramePacket | SourceEvent] = []
            for packet in packets:
                result = sink.process(packet) if isinstance(packet, FramePacket) else sink.on_event(packet)
                out.extend(as_outputs(result))
            packets = out
        return packets

    def process(self, packet: FramePacket) -> Outputs:
        return self._chain([packet], 0)

    def on_event(self, event: SourceEvent) -> Outputs:
        return self._chain([event], 0)

    def finish(self) -> Outputs:
        outputs: list[FramePacket | SourceEvent] = []
        error: BaseException | None = None
        for i, sink in enumerate(self.sinks):
            try:
                flushed = as_outputs(sink.finish())
                # what a member flushes still goes through the members after it
                outputs.extend(self._chain(flushed, i + 1) if flushed else [])
            except Exception as exc:
                log.error("%s failed to finish: %s", sink.name, exc)
                error = error or exc
        if error is not None:
            raise error
        return outputs

    def close(self) -> None:
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("%s failed to close: %s", sink.name, exc)
                error = error or exc
        if error is not None:
            raise error
