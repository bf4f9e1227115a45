"""ZeroMQ links between stages, with backpressure and drop policy set in one place.

A link is one PUSH→PULL pair (many PUSH peers may connect to one PULL for fan-in).
Its :class:`QueuePolicy` decides what happens when the consumer is slower than the
producer:

* ``block`` — lossless: the producer waits (files, offline jobs);
* ``latest`` — the consumer only ever sees the newest frame (live display);
* ``drop_oldest`` — the consumer keeps the newest ``capacity`` frames and the oldest
  are dropped (live inference).

Only frames are ever dropped; events and end-of-stream markers always go through.
Every drop is counted in :class:`LinkStats`.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import zmq

from stream.errors import ConfigError, TransportError
from stream.packet import EndOfStream, FramePacket, Packet
from stream.wire import decode, encode

DropMode = Literal["block", "latest", "drop_oldest"]


@dataclass(frozen=True)
class QueuePolicy:
    """How one link buffers and drops.

    Attributes:
        mode: ``block``, ``latest`` or ``drop_oldest`` (see module docstring).
        capacity: frames buffered on the link (ZeroMQ high-water mark and the consumer's buffer).
    """

    mode: DropMode = "block"
    capacity: int = 8

    def __post_init__(self) -> None:
        if self.mode not in ("block", "latest", "drop_oldest"):
            raise ConfigError(f"queue mode: expected block, latest or drop_oldest, got {self.mode!r}")
        if self.capacity < 1:
            raise ConfigError(f"queue capacity: expected >= 1, got {self.capacity}")


# The named defaults, in one place.
LOSSLESS = QueuePolicy("block", 8)
LIVE_DISPLAY = QueuePolicy("latest", 1)
LIVE_INFERENCE = QueuePolicy("drop_oldest", 4)
LIVE_RECORDING = QueuePolicy("drop_oldest", 64)  # writers absorb bursts (~2 s), drop only when far behind
ACK = b"eos-ack"  # what a ROUTER Receiver answers an end-of-stream with
POLL_MS = 100  # how often blocked sends/receives look at the stop flag
DEFAULT_LINGER_MS = 1000  # ipc/tcp senders: how long close() may take to deliver queued messages
GIVE_UP_AFTER_STOP_S = 0.5  # a blocked send abandons its frame this long after stop
#: Largest frame a link from another process expects: 4K BGR. Every receiving ipc/tcp socket
#: refuses (and disconnects) a peer sending a larger message part (``ZMQ_MAXMSGSIZE``).
MAX_FRAME_SIZE = (3840, 2160)
MAX_MESSAGE_BYTES = MAX_FRAME_SIZE[0] * MAX_FRAME_SIZE[1] * 3

#: Called on a socket before it binds or connects (e.g. CurveZMQ keys).
SocketSetup = Callable[[zmq.Socket], None]


@dataclass
class LinkStats:
    """Counters of one link, shared by its producers and its consumer (thread-safe increments)."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, sent: int = 0, received: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self.sent += sent
            self.received += received
            self.dropped += dropped

    @property
    def depth(self) -> int:
        """Frames sent but neither received nor dropped yet (approximate)."""
        return max(0, self.sent - self.received - self.dropped)


def _socket(ctx: zmq.Context, kind: int, policy: QueuePolicy) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    hwm = max(1, policy.capacity)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


class Sender:
    """Producer end of a link (PUSH). Use it from one thread only."""

    def __init__(
        self,
        ctx: zmq.Context,
        address: str,
        policy: QueuePolicy,
        stats: LinkStats | None = None,
        *,
        bind: bool = False,
        stop: threading.Event | None = None,
        linger_ms: int | None = None,
        configure: SocketSetup | None = None,
        acknowledged: bool = False,
    ) -> None:
        self.policy = policy
        self.stats = stats or LinkStats()
        self._stop = stop or threading.Event()
        # DEALER (to a ROUTER Receiver) behaves as PUSH and can also read the end-of-stream acknowledgement.
        self._sock = _socket(ctx, zmq.DEALER if acknowledged else zmq.PUSH, policy)
        if linger_ms is None:  # inproc delivers at once; other transports need time to flush on close
            linger_ms = 0 if address.startswith("inproc://") else DEFAULT_LINGER_MS
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        if configure is not None:
            configure(self._sock)
        try:
            (self._sock.bind if bind else self._sock.connect)(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise TransportError(f"cannot {'bind' if bind else 'connect'} {address}: {exc}") from exc

    def send(self, packet: Packet, timeout_s: float | None = None) -> bool:
        """Send a packet according to the policy; returns False if it was dropped.

        Args:
            packet: what to send.
            timeout_s: give up a blocking send after this long (None: until sent or stopped).
        """
        parts = encode(packet)
        droppable = isinstance(packet, FramePacket) and self.policy.mode != "block"
        if droppable:
            try:
                self._send_parts(parts, zmq.NOBLOCK)
            except zmq.Again:
                self.stats.add(dropped=1)
                return False
            self.stats.add(sent=1 if isinstance(packet, FramePacket) else 0)
            return True
        stopped_at: float | None = None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                self._send_parts(parts, zmq.NOBLOCK)
                if isinstance(packet, FramePacket):
                    self.stats.add(sent=1)
                return True
            except zmq.Again:
                pass
            if self._stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if time.monotonic() - stopped_at > GIVE_UP_AFTER_STOP_S:
                    if isinstance(packet, FramePacket):
                        self.stats.add(dropped=1)
                    return False
            if deadline is not None and time.monotonic() > deadline:
                if isinstance(packet, FramePacket):
                    self.stats.add(dropped=1)
                return False
            self._sock.poll(POLL_MS, zmq.POLLOUT)

    def _send_parts(self, parts: list[Any], flags: int) -> None:
        if len(parts) == 1:
            self._sock.send(parts[0], flags, copy=True)
        else:
            self._sock.send(parts[0], flags | zmq.SNDMORE, copy=True)
            self._sock.send(parts[1], flags, copy=False)

    def wait_acknowledged(self, timeout_s: float) -> bool:
        """Wait until the receiver confirms it read an end-of-stream (``acknowledged`` links only).

        libzmq discards the messages a receiving socket still holds when its sender
        disconnects, so a sender that closes before its peer has read everything loses the
        tail of its stream; waiting for this confirmation first loses nothing.

        Returns:
            True once confirmed; False after ``timeout_s`` or when the pipeline stops.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if self._sock.poll(POLL_MS, zmq.POLLIN):
                if self._sock.recv(zmq.NOBLOCK) == ACK:
                    return True
        return False

    def close(self) -> None:
        self._sock.close()  # honours the LINGER set above


class Receiver:
    """Consumer end of a link (PULL). Use it from one thread only.

    In ``block`` mode the socket is read directly, so ZeroMQ's high-water marks push back
    on the producers. In the drop modes a small drain thread empties the socket as fast as
    messages arrive into a buffer of ``capacity`` frames, dropping the oldest, so producers
    never wait and the consumer always gets the newest frames.

    With ``acknowledging`` the socket is a ROUTER for :class:`Sender` s created with
    ``acknowledged``: it answers every end-of-stream, so those senders can wait for their
    whole stream to have been read before they disconnect (:meth:`Sender.wait_acknowledged`).

    A malformed message makes :meth:`recv` raise :class:`TransportError` once and the link
    stays usable (the caller decides how many it tolerates). Sockets bound or connected on
    ``ipc://`` / ``tcp://`` refuse message parts over ``max_message_bytes``
    (``ZMQ_MAXMSGSIZE``: libzmq drops the peer before buffering them).
    """

    def __init__(
        self,
        ctx: zmq.Context,
        address: str,
        policy: QueuePolicy,
        stats: LinkStats | None = None,
        *,
        bind: bool = True,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        configure: SocketSetup | None = None,
        acknowledging: bool = False,
    ) -> None:
        self.policy = policy
        self.stats = stats or LinkStats()
        hwm_policy = policy if policy.mode == "block" else QueuePolicy(policy.mode, max(16, 2 * policy.capacity))
        # ROUTER (fed by acknowledged Senders) behaves as PULL and answers each end-of-stream.
        self._acknowledging = acknowledging
        self._sock = _socket(ctx, zmq.ROUTER if acknowledging else zmq.PULL, hwm_policy)
        if not address.startswith("inproc://"):
            self._sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        if configure is not None:
            configure(self._sock)
        self._buffer: collections.deque[Packet] = collections.deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._bad: collections.deque[TransportError] = collections.deque(maxlen=64)  # malformed, not yet reported
        self.malformed = 0  # malformed messages received (all of them, reported or not)
        try:
            (self._sock.bind if bind else self._sock.connect)(address)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise TransportError(f"cannot {'bind' if bind else 'connect'} {address}: {exc}") from exc
        self.address = self._sock.getsockopt_string(zmq.LAST_ENDPOINT) if bind else address
        self._rcvtimeo = -1
        self._drain: threading.Thread | None = None
        if policy.mode != "block":
            self._drain = threading.Thread(target=self._drain_loop, name=f"drain-{self.address}", daemon=True)
            self._drain.start()

    def recv(self, timeout_ms: int = POLL_MS) -> Packet | None:
        """Next packet per the policy, or None if nothing arrived within ``timeout_ms``.

        Raises:
            TransportError: If a malformed message arrives.
        """
        if self._drain is None:
            if timeout_ms != self._rcvtimeo:
                self._sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
                self._rcvtimeo = timeout_ms
            try:
                return self._take(self._sock.recv_multipart(copy=False))
            except zmq.Again:
                return None
        with self._cond:
            if not self._buffer and not self._bad:
                self._cond.wait(timeout_ms / 1000)
            if self._bad:
                raise self._bad.popleft()
            return self._buffer.popleft() if self._buffer else None

    def _drain_loop(self) -> None:
        sock = self._sock
        while not self._closing.is_set():
            try:
                if not sock.poll(POLL_MS, zmq.POLLIN):
                    continue
                while True:
                    parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    try:
                        packet = self._take(parts)
                    except TransportError as exc:  # reported by recv(); the link stays up
                        with self._cond:
                            self._bad.append(exc)
                            self._cond.notify()
                        continue
                    with self._cond:
                        self._buffer.append(packet)
                        self._trim()
                        self._cond.notify()
            except zmq.Again:
                continue
            except zmq.ZMQError:
                return
        sock.close(0)

    def _take(self, parts: list[zmq.Frame]) -> Packet:
        peer = None
        if self._acknowledging:  # a ROUTER prefixes every message with its sender's identity
            peer, parts = parts[0], parts[1:]
        try:
            packet = decode(parts)
        except TransportError:
            self.malformed += 1
            raise
        if peer is not None and isinstance(packet, EndOfStream):
            # Called by the thread that owns the socket; never blocks (ROUTER drops what it cannot send).
            self._sock.send_multipart([peer.bytes, ACK], zmq.NOBLOCK)
        if isinstance(packet, FramePacket):
            self.stats.add(received=1)
        return packet

    def _trim(self) -> None:
        keep = 1 if self.policy.mode == "latest" else self.policy.capacity
        frames = sum(isinstance(p, FramePacket) for p in self._buffer)
        excess = frames - keep
        if excess <= 0:
            return
        kept: collections.deque[Packet] = collections.deque()
        for packet in self._buffer:
            if excess > 0 and isinstance(packet, FramePacket):
                excess -= 1
                self.stats.add(dropped=1, received=-1)
                continue
            kept.append(packet)
        self._buffer = kept

    def close(self) -> None:
        if self._drain is not None:
            self._closing.set()
            self._drain.join(timeout=2 * POLL_MS / 1000 + 1)
        else:
            self._sock.close(0)
