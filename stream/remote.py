"""Links that cross process or host boundaries.

Split a pipeline across processes by ending one with a :class:`RemoteSink` and starting
the other with a :class:`RemoteSource` on the same address (``ipc://`` or ``tcp://``).
Packets travel in the same wire format as inside a process (msgpack header + raw pixels,
never pickle), end-of-stream included, so the receiving pipeline ends when the sending
one does, and fails when it fails::

    # process A: decode and send
    Pipeline([FileSource("in.mp4")], [RemoteSink("tcp://127.0.0.1:5555")]).run()
    # process B: receive, annotate, write
    Pipeline([RemoteSource("tcp://127.0.0.1:5555")], [AnnotateStage(...), VideoWriterSink("out.mp4")]).run()

The receiving socket is reachable by whoever can connect to it, so a :class:`RemoteSource`
treats what arrives as untrusted (``docs/security.md``):

* addresses other machines can reach need CurveZMQ (``curve=``) or ``insecure=True``;
* each :class:`RemoteSink` announces itself first with a random token, and only an
  end-of-stream carrying an announced token ends that sender's stream; at most
  ``senders`` tokens are accepted;
* malformed messages (bad time base, wrong types, oversized parts, which libzmq refuses
  at ``max_message_bytes``), stray end-of-streams and frames before any announcement
  are counted and logged, not pipeline-ending; after ``max_bad_messages`` of them the
  source fails with a clear error;
* a sender whose pipeline failed sends its error with its end-of-stream: the receiving
  source reports an ``error`` event and, once every sender has ended, fails with
  :class:`RemotePipelineFailed` (downstream stages still finish).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import zmq

from stream.errors import ConfigError, StreamError, TransportError
from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.security import CurveClient, CurveServer, check_exposure
from stream.stage import Outputs, Source, Stage
from stream.transport import LOSSLESS, MAX_MESSAGE_BYTES, QueuePolicy, Receiver, Sender

log = logging.getLogger(__name__)

LINGER_MS = 10_000  # how long close() waits for the peer to read what is still queued (a slow, loaded peer)
MAX_BAD_MESSAGES = 100  # malformed or unexpected messages a RemoteSource tolerates before failing
LOG_FIRST_BAD = 5  # the first few are logged one by one, then every 100th
HELLO_KEY = "remote_sender"  # data key of the announcement a RemoteSink sends first
HELLO_MESSAGE = "remote sink"

Curve = CurveServer | CurveClient


class RemotePipelineFailed(StreamError, RuntimeError):
    """A remote pipeline feeding a :class:`RemoteSource` ended because of a failure."""

    user_error = False


def _start_curve(ctx: zmq.Context, curve: Curve | None) -> Any:
    return curve.start(ctx) if isinstance(curve, CurveServer) else None


class RemoteSource(Source):
    """Receive packets sent by :class:`RemoteSink` s of other processes.

    Args:
        address: ZeroMQ address to bind (default) or connect to.
        senders: how many remote pipelines feed this address; the stream ends after
            an end-of-stream from each (only from senders that announced themselves).
        policy: queue policy of the receiving end (``latest``/``drop_oldest`` for live feeds).
        bind: bind the address (the receiver is the stable end) or connect to it.
        live: whether the remote feed is live (decides the default downstream policies).
        idle_timeout_s: end the stream if nothing arrives for this long (None: wait forever,
            until the pipeline stops).
        curve: CurveZMQ settings: :class:`CurveServer` (keys + allowed senders) when this
            side accepts connections, :class:`CurveClient` when it connects to a server.
        insecure: allow an address other machines can reach without ``curve``.
        max_message_bytes: largest message part accepted (default: a 4K BGR frame); a peer
            sending more is disconnected by libzmq before it is buffered.
        max_bad_messages: malformed or unexpected messages tolerated (counted, logged)
            before the source fails.

    Raises:
        ConfigError: If ``senders`` < 1, or the address is reachable from other machines
            without ``curve`` / ``insecure``.
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
        curve: Curve | None = None,
        insecure: bool = False,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_bad_messages: int = MAX_BAD_MESSAGES,
        name: str | None = None,
    ) -> None:
        super().__init__(name or f"remote:{address}")
        if senders < 1:
            raise ConfigError(f"senders: expected >= 1, got {senders}")
        check_exposure(address, what="RemoteSource", curve=curve, insecure=insecure)
        self.address = address
        self.senders = senders
        self.policy = policy
        self.bind = bind
        self.live = live
        self.idle_timeout_s = idle_timeout_s
        self.curve = curve
        self.max_message_bytes = max_message_bytes
        self.max_bad_messages = max_bad_messages
        self.rejected = 0  # malformed or unexpected messages so far
        self.endpoint: str | None = None  # the bound endpoint (with the real port if bound to ``:*``)
        self._ctx: zmq.Context | None = None
        self._auth: Any = None
        self._receiver: Receiver | None = None

    def setup(self) -> None:
        """Bind (or connect) the socket; a second call keeps it (call it early to learn :attr:`endpoint`)."""
        if self._receiver is not None:
            return
        self._ctx = zmq.Context()
        self._auth = _start_curve(self._ctx, self.curve)
        self._receiver = Receiver(
            self._ctx,
            self.address,
            self.policy,
            bind=self.bind,
            max_message_bytes=self.max_message_bytes,
            configure=self.curve.apply if self.curve is not None else None,
            acknowledging=True,
        )
        self.endpoint = self._receiver.address

    def _reject(self, reason: str) -> None:
        """Count and log one bad message; fail once more than ``max_bad_messages`` arrived.

        Raises:
            TransportError: After too many, naming the address and what to do.
        """
        self.rejected += 1
        if self.rejected <= LOG_FIRST_BAD or self.rejected % 100 == 0:
            log.warning("%s: ignored a message (%d so far): %s", self.name, self.rejected, reason)
        if self.rejected > self.max_bad_messages:
            raise TransportError(
                f"{self.address}: {self.rejected} malformed or unexpected messages (last: {reason}); something other "
                "than the expected RemoteSink(s) sends to this address: bind it to 127.0.0.1 or an ipc:// path, or "
                "require CurveZMQ keys (see docs/security.md)"
            )

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        receiver = self._receiver
        if receiver is None:
            raise TransportError(f"{self.name}: iterated before setup()")
        announced: dict[str, bool] = {}  # sender token -> ended
        failures: list[str] = []
        ended = 0
        idle = 0.0
        while ended < self.senders and not self.stop_event.is_set():
            try:
                packet = receiver.recv(100)
            except TransportError as exc:
                self._reject(str(exc))
                continue
            if packet is None:
                idle += 0.1
                if self.idle_timeout_s is not None and idle >= self.idle_timeout_s:
                    yield SourceEvent(
                        self.source_id, "error", f"nothing received for {self.idle_timeout_s:g} s", time.time()
                    )
                    return
                continue
            idle = 0.0
            if isinstance(packet, SourceEvent) and HELLO_KEY in packet.data:
                token = packet.data[HELLO_KEY]
                if not isinstance(token, str) or not token or token in announced:
                    self._reject(f"a repeated or malformed announcement from {packet.source_id!r}")
                elif len(announced) >= self.senders:
                    self._reject(f"an announcement from {packet.source_id!r} beyond the {self.senders} sender(s)")
                else:
                    announced[token] = False
                    log.info("%s: sender %r announced itself", self.name, packet.source_id)
                continue
            if not announced:
                kind = type(packet).__name__
                self._reject(f"a {kind} from {packet.source_id!r} before any RemoteSink announced itself")
                continue
            if isinstance(packet, EndOfStream):
                if announced.get(packet.source_id) is not False:
                    self._reject("an end-of-stream from a sender that did not announce itself (or ended already)")
                    continue
                announced[packet.source_id] = True
                ended += 1
                if packet.error:
                    failures.append(packet.error)
                    yield SourceEvent(self.source_id, "error", f"remote pipeline failed: {packet.error}", time.time())
                continue
            yield packet
        if failures:
            raise RemotePipelineFailed(
                f"{self.address}: {len(failures)} of {self.senders} remote pipeline(s) failed: {failures[0]}"
            )

    def close(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
        self._auth, self._ctx = _stop(self._auth, self._ctx)


class RemoteSink(Stage):
    """Send every packet to a :class:`RemoteSource` in another process; passes nothing on.

    It first announces itself with a random token, and its end-of-stream (sent in
    :meth:`close`, which always runs) carries that token and, if the stream ended because
    of a failure here or upstream, the error.

    Args:
        address: ZeroMQ address to connect to (default) or bind.
        policy: ``block`` keeps every frame (waits for the receiver); drop policies never wait.
        bind: bind instead of connect.
        curve: CurveZMQ settings: :class:`CurveClient` (this sink's keys + the receiver's
            public key) when connecting, :class:`CurveServer` when binding.
        insecure: allow an address other machines can reach without ``curve``.

    Raises:
        ConfigError: If the address is reachable from other machines without ``curve`` / ``insecure``.
    """

    def __init__(
        self,
        address: str,
        *,
        policy: QueuePolicy = LOSSLESS,
        bind: bool = False,
        curve: Curve | None = None,
        insecure: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name or f"remote-sink:{address}")
        check_exposure(address, what="RemoteSink", curve=curve, insecure=insecure)
        self.address = address
        self.policy = policy
        self.bind = bind
        self.curve = curve
        self._ctx: zmq.Context | None = None
        self._auth: Any = None
        self._sender: Sender | None = None
        self._token = secrets.token_hex(16)

    def setup(self) -> None:
        self._ctx = zmq.Context()
        self._auth = _start_curve(self._ctx, self.curve)
        # Linger so frames still queued for a remote peer are delivered after close().
        self._sender = Sender(
            self._ctx,
            self.address,
            self.policy,
            bind=self.bind,
            linger_ms=LINGER_MS,
            configure=self.curve.apply if self.curve is not None else None,
            acknowledged=True,
        )
        hello = SourceEvent(self.name, "opened", HELLO_MESSAGE, time.time(), {HELLO_KEY: self._token})
        self._sender.send(hello, timeout_s=LINGER_MS / 1000)

    def _require(self) -> Sender:
        if self._sender is None:
            raise TransportError(f"{self.name}: used before setup() or after close()")
        return self._sender

    def process(self, packet: FramePacket) -> Outputs:
        self._require().send(packet)
        return None

    def on_event(self, event: SourceEvent) -> Outputs:
        self._require().send(event)
        return None

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            # Sent in close(), which always runs, so the remote pipeline ends even after a failure.
            sent = sender.send(EndOfStream(self._token, error=self.stream_error), timeout_s=LINGER_MS / 1000)
            # libzmq drops what the receiver still holds when this end disconnects: wait until it read everything.
            if not (sent and sender.wait_acknowledged(LINGER_MS / 1000)):
                log.warning(
                    "%s: the receiver did not confirm the end of the stream within %g s; frames it had not read "
                    "yet may be lost", self.name, LINGER_MS / 1000,
                )  # fmt: skip
            sender.close()
        self._auth, self._ctx = _stop(self._auth, self._ctx)


def _stop(auth: Any, ctx: Any) -> tuple[None, None]:
    """Stop a ZAP authenticator and terminate a context (either may be None); returns (None, None)."""
    if auth is not None:
        auth.stop()
    if ctx is not None:
        ctx.term()
    return None, None
