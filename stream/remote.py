"""Links that cross process or host boundaries.

Split a pipeline across processes by ending one with a :class:`RemoteSink` and starting
the other with a :class:`RemoteSource` on the same address (``ipc://`` or ``tcp://``).
Packets travel in the same wire format as inside a process (msgpack header + raw pixels,
never pickle), end-of-stream included, so the receiving pipeline ends when the sending
one does::

    # process A: decode and send
    Pipeline([FileSource("in.mp4")], [RemoteSink("tcp://127.0.0.1:5555")]).run()
    # process B: receive, annotate, write
    Pipeline([RemoteSource("tcp://127.0.0.1:5555")], [AnnotateStage(...), VideoWriterSink("out.mp4")]).run()
"""

from __future__ import annotations

from collections.abc import Iterator

import zmq

from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.stage import Outputs, Source, Stage
from stream.transport import LOSSLESS, QueuePolicy, Receiver, Sender

LINGER_MS = 2000  # how long close() waits to deliver frames still queued for the peer


class RemoteSource(Source):
    """Receive packets sent by :class:`RemoteSink` s of other processes.

    Args:
        address: ZeroMQ address to bind (default) or connect to.
        senders: how many remote pipelines feed this address; the stream ends after
            an end-of-stream from each.
        policy: queue policy of the receiving end (``latest``/``drop_oldest`` for live feeds).
        bind: bind the address (the receiver is the stable end) or connect to it.
        live: whether the remote feed is live (decides the default downstream policies).
        idle_timeout_s: end the stream if nothing arrives for this long (None: wait forever,
            until the pipeline stops).
    """

    def __init__(
        self,
        address: str,
        *,
        senders: int = 1,
        policy: QueuePolicy = LOSSLESS,
        bind: bool = True,
        live: bool = False,
        idle_timeout_s: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name or f"remote:{address}")
        self.address = address
        self.senders = senders
        self.policy = policy
        self.bind = bind
        self.live = live
        self.idle_timeout_s = idle_timeout_s
        self._ctx: zmq.Context | None = None
        self._receiver: Receiver | None = None

    def setup(self) -> None:
        self._ctx = zmq.Context()
        self._receiver = Receiver(self._ctx, self.address, self.policy, bind=self.bind)

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        assert self._receiver is not None, "setup() must run first"  # programming error, not input
        ended = 0
        idle = 0.0
        while ended < self.senders and not self.stop_event.is_set():
            packet = self._receiver.recv(100)
            if packet is None:
                idle += 0.1
                if self.idle_timeout_s is not None and idle >= self.idle_timeout_s:
                    yield SourceEvent(self.source_id, "error", f"nothing received for {self.idle_timeout_s:g} s", 0.0)
                    return
                continue
            idle = 0.0
            if isinstance(packet, EndOfStream):
                ended += 1
                if packet.error:
                    yield SourceEvent(self.source_id, "error", f"remote pipeline failed: {packet.error}", 0.0)
                continue
            yield packet

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.close()
        if self._ctx is not None:
            self._ctx.term()


class RemoteSink(Stage):
    """Send every packet to a :class:`RemoteSource` in another process; passes nothing on.

    Args:
        address: ZeroMQ address to connect to (default) or bind.
        policy: ``block`` keeps every frame (waits for the receiver); drop policies never wait.
        bind: bind instead of connect.
    """

    def __init__(
        self, address: str, *, policy: QueuePolicy = LOSSLESS, bind: bool = False, name: str | None = None
    ) -> None:
        super().__init__(name or f"remote-sink:{address}")
        self.address = address
        self.policy = policy
        self.bind = bind
        self._ctx: zmq.Context | None = None
        self._sender: Sender | None = None
        self._source_ids: set[str] = set()

    def setup(self) -> None:
        self._ctx = zmq.Context()
        # Linger so frames still queued for a remote peer are delivered after close().
        self._sender = Sender(self._ctx, self.address, self.policy, bind=self.bind, linger_ms=LINGER_MS)

    def process(self, packet: FramePacket) -> Outputs:
        assert self._sender is not None, "setup() must run first"
        self._source_ids.add(packet.source_id)
        self._sender.send(packet)
        return None

    def on_event(self, event: SourceEvent) -> Outputs:
        assert self._sender is not None, "setup() must run first"
        self._sender.send(event)
        return None

    def close(self) -> None:
        if self._sender is not None:
            # Sent in close(), which always runs, so the remote pipeline ends even after a failure.
            self._sender.send(EndOfStream(self.name), timeout_s=LINGER_MS / 1000)
            self._sender.close()
        if self._ctx is not None:
            self._ctx.term()
