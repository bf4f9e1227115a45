"""Results published on a ZeroMQ PUB socket, for other programs to subscribe to.

Each message has two parts: the topic (``b"results"`` by default) and one JSON record
(see :mod:`stream.sinks.records`; ``"type"`` is ``"frame"`` or ``"event"``). PUB/SUB
drops what a slow or absent subscriber cannot take, so publishing never slows the
pipeline down; a subscriber that connects late misses what was sent before.

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
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from stream.errors import ConfigError, SinkError
from stream.packet import FramePacket, SourceEvent
from stream.sinks.records import IncludeFrames, check_include_frames, dumps, frame_record, wants_frame
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5560"
SEND_HWM = 1000  # messages queued per subscriber before PUB drops
LINGER_MS = 500  # how long close() may wait to deliver messages still queued


class ZmqPublisherSink(Stage):
    """Publishes JSON results and events on a PUB socket; passes every packet on unchanged.

    Args:
        address: ZeroMQ address to bind, e.g. ``tcp://127.0.0.1:5560`` or ``ipc:///tmp/results``.
            Use ``tcp://0.0.0.0:PORT`` to accept subscribers from other machines.
        topic: first message part; subscribers filter on its prefix.
        include_frames: which frames get a message: ``predictions``, ``all``, ``people`` or ``none``.
        include_boxes: add each frame's boxes to its record.
        name: stage name; defaults to ``ZmqPublisherSink``.

    Raises:
        ConfigError: If ``topic`` is not bytes/str or ``include_frames`` is invalid.
    """

    live_policy = LIVE_RECORDING

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        topic: bytes | str = b"results",
        include_frames: IncludeFrames = "predictions",
        include_boxes: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(topic, str):
            topic = topic.encode()
        if not isinstance(topic, bytes):
            raise ConfigError(f"topic: expected bytes or str, got {type(topic).__name__}")
        self.address = address
        self.topic = topic
        self.include_frames = check_include_frames(include_frames)
        self.include_boxes = include_boxes
        self.sent = 0
        self.dropped = 0
        self.endpoint: str | None = None  # the bound endpoint (with the real port if bound to ``:*``)
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None

    def setup(self) -> None:
        """Bind the PUB socket.

        Raises:
            SinkError: If the address cannot be bound (in use, malformed), naming it.
        """
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        try:
            sock.bind(self.address)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._ctx.term()
            self._ctx = None
            raise SinkError(f"cannot publish results on {self.address}: {exc}") from exc
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("publishing results on %s (topic %r)", self.endpoint, self.topic)

    def publish(self, record: dict[str, Any]) -> bool:
        """Send one record; returns False if it was dropped (a subscriber's queue is full).

        Raises:
            SinkError: If called before ``setup()`` or after ``close()``.
        """
        if self._sock is None:
            raise SinkError(f"{self.name}: publish() before setup() or after close()")
        try:
            self._sock.send_multipart([self.topic, dumps(record).encode()], zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def process(self, packet: FramePacket) -> Outputs:
        if wants_frame(packet, self.include_frames):
            people = self.include_frames == "people"
            self.publish(frame_record(packet, include_boxes=self.include_boxes, include_people=people))
        return packet

    def on_event(self, event: SourceEvent) -> Outputs:
        self.publish(event.to_json())
        return event

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()  # keeps LINGER_MS to deliver what is queued
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.term()
