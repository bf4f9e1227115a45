"""Results published on a ZeroMQ PUB socket, for other programs to subscribe to.

Each message has two parts: the topic (``b"results"`` by default) and one JSON record
(see :mod:`stream.sinks.records`; ``"type"`` is ``"frame"`` or ``"event"``). PUB/SUB
drops what a slow or absent subscriber cannot take; a subscriber that connects late
misses what was sent before.

The socket faces other programs, so it is built not to let them hurt the pipeline
(threat model: ``docs/security.md``):

* it binds ``tcp://127.0.0.1`` by default; an address other machines can reach is
  refused unless CurveZMQ is configured (``curve=``, only allowed client keys get in)
  or ``insecure=True`` (:func:`stream.security.check_exposure`);
* the socket lives in its own thread: :meth:`process` only queues the record
  (``QUEUE_SIZE``, dropped and counted when full), so no subscriber, flood or stall can
  delay the stages after this one (recording, health);
* subscriptions are handled by hand (``XPUB_MANUAL``): only prefixes of the topic are
  applied; a subscription larger than ``MAX_SUBSCRIPTION_BYTES`` (``CURVE_MAX_MESSAGE_BYTES``
  with CurveZMQ, whose handshake needs more), or any larger frame, disconnects its peer
  (``ZMQ_MAXMSGSIZE``); libzmq keeps every subscription a peer sends, so after
  ``FOREIGN_SUBSCRIPTION_LIMIT`` subscriptions (or ``FOREIGN_SUBSCRIPTION_BYTES``) that
  match no topic the socket is rebound, which drops every connection and frees them
  (subscribers reconnect and resubscribe by themselves).

A subscriber, in any program::

    import json, zmq

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect("tcp://127.0.0.1:5560")
    sub.setsockopt(zmq.SUBSCRIBE, b"results")
    while True:
        topic, payload = sub.recv_multipart()
        record = json.loads(payload)
        if record["type"] == "frame" and record["predictions"]:
            print(record["frame_idx"], record["predictions"][0]["labels"][0])

With CurveZMQ, the subscriber also sets its key pair and the server's public key before
connecting (``docs/security.md``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import zmq

from stream.errors import ConfigError, SinkError
from stream.packet import FramePacket, SourceEvent
from stream.security import CurveServer, check_exposure
from stream.sinks.records import IncludeFrames, check_include_frames, dumps, frame_record, wants_frame
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5560"
SEND_HWM = 1000  # messages queued per subscriber before PUB drops
LINGER_MS = 500  # how long close() may wait to deliver messages still queued
QUEUE_SIZE = 256  # records waiting for the publisher thread; more are dropped (counted), never waited for
MAX_TOPIC_BYTES = 48
MAX_SUBSCRIPTION_BYTES = 64  # ZMQ_MAXMSGSIZE of the socket: subscriptions are the only thing peers send
CURVE_MAX_MESSAGE_BYTES = 1024  # with CurveZMQ: its handshake commands (HELLO, INITIATE) need a few hundred
SUBSCRIPTION_HWM = 100  # subscription messages queued per peer before libzmq stops reading it
SUBSCRIPTIONS_PER_ROUND = 256  # handled before queued records get their turn
FOREIGN_SUBSCRIPTION_LIMIT = 1000  # subscriptions matching no topic before every connection is dropped
FOREIGN_SUBSCRIPTION_BYTES = 64 << 10  # ... or this many bytes of them
READY_TIMEOUT_S = 5.0  # how long setup() waits for the publisher thread to bind
POLL_MS = 100
REBIND_TRIES, REBIND_WAIT_S = 100, 0.01  # a reset waits at most ~1 s for the port to be free again
_ids = itertools.count()


class ZmqPublisherSink(Stage):
    """Publishes JSON results and events on a PUB socket; passes every packet on unchanged.

    Args:
        address: ZeroMQ address to bind, e.g. ``tcp://127.0.0.1:5560`` or ``ipc:///tmp/results``.
            An address other machines can reach (``tcp://*:5560``, ``tcp://0.0.0.0:5560``, a
            routable IP) needs ``curve`` or ``insecure=True``.
        topic: first message part; subscribers filter on its prefix (at most 48 bytes).
        include_frames: which frames get a message: ``predictions``, ``all``, ``people`` or ``none``.
        include_boxes: add each frame's boxes to its record.
        curve: CurveZMQ key pair and allowed client keys; only those clients can subscribe.
        insecure: allow a reachable address without CurveZMQ (anyone can subscribe).
        queue_size: records waiting for the publisher thread before new ones are dropped.
        name: stage name; defaults to ``ZmqPublisherSink``.

    Raises:
        ConfigError: If ``topic`` is not bytes/str or too long, ``include_frames`` is invalid,
            or the address is reachable from other machines without ``curve``/``insecure``.
    """

    live_policy = LIVE_RECORDING

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        topic: bytes | str = b"results",
        include_frames: IncludeFrames = "predictions",
        include_boxes: bool = False,
        curve: CurveServer | None = None,
        insecure: bool = False,
        queue_size: int = QUEUE_SIZE,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(topic, str):
            topic = topic.encode()
        if not isinstance(topic, bytes):
            raise ConfigError(f"topic: expected bytes or str, got {type(topic).__name__}")
        if len(topic) > MAX_TOPIC_BYTES:
            raise ConfigError(f"topic: at most {MAX_TOPIC_BYTES} bytes, got {len(topic)}")
        if queue_size < 1:
            raise ConfigError(f"queue_size: expected >= 1, got {queue_size}")
        check_exposure(address, what="--publish", curve=curve, insecure=insecure)
        self.address = address
        self.topic = topic
        self.include_frames = check_include_frames(include_frames)
        self.include_boxes = include_boxes
        self.curve = curve
        self.queue_size = queue_size
        self.dropped = 0  # records dropped because the publisher thread's queue was full
        self.endpoint: str | None = None  # the bound endpoint (with the real port if bound to ``:*``)
        self._thread: _PublisherThread | None = None
        self._push: zmq.Socket | None = None

    @property
    def sent(self) -> int:
        """Records handed to the PUB socket (which may still drop them for a slow subscriber)."""
        return self._thread.sent if self._thread is not None else 0

    def setup(self) -> None:
        """Start the publisher thread and bind its socket.

        Raises:
            SinkError: If the address cannot be bound (in use, malformed), naming it.
        """
        thread = _PublisherThread(self.address, self.topic, self.curve, self.queue_size, name=f"publisher-{self.name}")
        thread.start()
        if not thread.ready.wait(READY_TIMEOUT_S):
            thread.stop()
            raise SinkError(f"cannot publish results on {self.address}: the socket did not bind in time")
        if thread.error is not None:
            thread.stop()
            raise SinkError(f"cannot publish results on {self.address}: {thread.error}") from thread.error
        push = thread.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, self.queue_size)
        push.setsockopt(zmq.LINGER, LINGER_MS)
        push.connect(thread.inbox)
        self._thread, self._push = thread, push
        self.endpoint = thread.endpoint
        log.info("publishing results on %s (topic %r%s)", self.endpoint, self.topic, ", CurveZMQ" if self.curve else "")

    def publish(self, record: dict[str, Any]) -> bool:
        """Queue one record for the publisher thread; returns False if it was dropped (queue full).

        Never waits: a slow, stalled or flooded publisher costs records, not time.

        Raises:
            SinkError: If called before ``setup()`` or after ``close()``.
        """
        if self._push is None:
            raise SinkError(f"{self.name}: publish() before setup() or after close()")
        try:
            self._push.send(dumps(record).encode(), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        return True

    def process(self, packet: FramePacket) -> Outputs:
        if wants_frame(packet, self.include_frames):
            people = self.include_frames == "people"
            self.publish(frame_record(packet, include_boxes=self.include_boxes, include_people=people))
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        self.publish(event.to_json())
        return event

    def metrics(self) -> dict[str, Any]:
        thread = self._thread
        if thread is None:
            return {"published": 0, "publish_dropped": self.dropped}
        return {
            "published": thread.sent,
            "publish_dropped": self.dropped,
            "subscriptions_ignored": thread.ignored,
            "publisher_resets": thread.resets,
        }

    def close(self) -> None:
        push, self._push = self._push, None
        if push is not None:
            push.close()  # inproc: what is queued is already with the thread
        thread = self._thread  # kept: its counters stay readable in metrics()
        if thread is not None:
            thread.stop()
            if thread.is_alive():
                log.warning("%s: the publisher thread did not stop in time", self.name)


class _PublisherThread(threading.Thread):
    """Owns the XPUB socket (and the ZAP authenticator): applies subscriptions, sends records."""

    def __init__(self, address: str, topic: bytes, curve: CurveServer | None, queue_size: int, *, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.address = address
        self.topic = topic
        self.curve = curve
        self.queue_size = queue_size
        self.ctx = zmq.Context()
        self.inbox = f"inproc://publisher-inbox-{next(_ids)}"
        self.ready = threading.Event()
        self.error: zmq.ZMQError | None = None
        self.endpoint: str | None = None
        self.sent = 0
        self.ignored = 0  # subscriptions that match no prefix of the topic
        self.resets = 0
        self._foreign = 0  # ignored since the last reset
        self._foreign_bytes = 0
        self._stop_event = threading.Event()
        self._xpub: zmq.Socket | None = None
        self._auth: Any = None

    def _bind(self, address: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.RCVHWM, SUBSCRIPTION_HWM)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES if self.curve is None else CURVE_MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.XPUB_MANUAL, 1)
        if self.curve is not None:
            self.curve.apply(sock)
        try:
            sock.bind(address)
        except zmq.ZMQError:
            sock.close(0)
            raise
        return sock

    def run(self) -> None:
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, self.queue_size)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self.inbox)
        try:
            if self.curve is not None:
                self._auth = self.curve.start(self.ctx)
            self._xpub = self._bind(self.address)
            self.endpoint = self._xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self.error = exc
            self.ready.set()
            pull.close()
            self._shutdown()
            return
        self.ready.set()
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(self._xpub, zmq.POLLIN)
        try:
            while not self._stop_event.is_set():
                events = dict(poller.poll(POLL_MS))
                if self._xpub in events:
                    old = self._xpub
                    self._read_subscriptions()
                    if self._xpub is not old:  # reset: poll the new socket
                        poller.unregister(old)
                        poller.register(self._xpub, zmq.POLLIN)
                if pull in events:
                    self._forward(pull, SEND_HWM)
            self._forward(pull, None)  # what the stage queued before close()
        except zmq.ZMQError as exc:  # the context went away under us
            log.warning("publisher on %s stopped: %s", self.endpoint, exc)
        finally:
            pull.close()
            self._shutdown()

    def _read_subscriptions(self) -> None:
        sock = self._xpub
        assert sock is not None  # programming error: only called while bound
        for _ in range(SUBSCRIPTIONS_PER_ROUND):
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not message or message[0] not in (0, 1):
                continue
            prefix = message[1:]
            if self.topic.startswith(prefix):
                sock.setsockopt(zmq.SUBSCRIBE if message[0] == 1 else zmq.UNSUBSCRIBE, prefix)
                continue
            self.ignored += 1
            self._foreign += 1
            self._foreign_bytes += len(message)
            if self._foreign > FOREIGN_SUBSCRIPTION_LIMIT or self._foreign_bytes > FOREIGN_SUBSCRIPTION_BYTES:
                self._reset()
                return

    def _reset(self) -> None:
        """Drop every connection (and the subscriptions libzmq keeps for them) by rebinding."""
        assert self._xpub is not None and self.endpoint is not None
        self.resets += 1
        self._foreign = self._foreign_bytes = 0
        log.warning(
            "publisher on %s: too many subscriptions matching no topic (> %d or > %d bytes); dropping every "
            "connection to free them (reset %d; restrict who can connect, see docs/security.md)",
            self.endpoint, FOREIGN_SUBSCRIPTION_LIMIT, FOREIGN_SUBSCRIPTION_BYTES, self.resets,
        )  # fmt: skip
        self._xpub.close(0)
        for _ in range(REBIND_TRIES):  # the old listener closes asynchronously
            try:
                self._xpub = self._bind(self.endpoint)
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or self._stop_event.wait(REBIND_WAIT_S):
                    raise
        self._xpub = self._bind(self.endpoint)

    def _forward(self, pull: zmq.Socket, limit: int | None) -> None:
        sock = self._xpub
        assert sock is not None
        count = 0
        while limit is None or count < limit:
            try:
                record = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            sock.send_multipart([self.topic, record], zmq.NOBLOCK)  # PUB drops for full subscribers, never waits
            self.sent += 1
            count += 1

    def _shutdown(self) -> None:
        if self._xpub is not None:
            self._xpub.close()  # keeps LINGER_MS to deliver what is queued
            self._xpub = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def stop(self) -> None:
        """Ask the thread to send what is queued and close; wait for it (bounded). Idempotent."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=LINGER_MS / 1000 + 2)
        if not self.is_alive() and not self.ctx.closed:
            self.ctx.term()
