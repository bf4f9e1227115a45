"""Link behaviour that mutation testing found unchecked (docs/mutation.md).

Each test drives a real ZeroMQ link the way the runner does and asserts what a user of the
link sees: which packets arrive, which sends return False, the counters, the error lines,
and how long a blocked call takes to give up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from stream.errors import ConfigError, TransportError
from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.transport import (
    GIVE_UP_AFTER_STOP_S,
    LIVE_DISPLAY,
    LIVE_INFERENCE,
    LIVE_RECORDING,
    LOSSLESS,
    MAX_FRAME_SIZE,
    LinkStats,
    QueuePolicy,
    Receiver,
    Sender,
)
from stream.wire import encode
from tests.stream.helpers import frame
from tests.waiting import wait_until

# A link that hangs fails its test within seconds, not at pytest's global timeout.
pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _event(kind: str = "connected") -> SourceEvent:
    return SourceEvent("gen", kind, "", 0.0)  # type: ignore[arg-type]


def _fill(sender: Sender, limit: int = 1000) -> int:
    """Frames a link accepts before a short blocking send gives up (nobody reads)."""
    n = 0
    while n < limit and sender.send(frame(n), timeout_s=0.05):
        n += 1
    return n


# -- policies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "capacity", "message"),
    [
        ("fifo", 4, "queue mode: expected block, latest or drop_oldest, got 'fifo'"),
        ("block", 0, "queue capacity: expected >= 1, got 0"),
        ("latest", -3, "queue capacity: expected >= 1, got -3"),
    ],
)
def test_an_invalid_policy_is_one_line_naming_the_setting(mode: str, capacity: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        QueuePolicy(mode, capacity)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize("mode", ["block", "latest", "drop_oldest"])
def test_every_mode_with_a_capacity_of_one_is_valid(mode: str) -> None:
    policy = QueuePolicy(mode, 1)  # type: ignore[arg-type]
    assert (policy.mode, policy.capacity) == (mode, 1)


def test_the_default_policy_is_lossless() -> None:
    assert QueuePolicy() == LOSSLESS == QueuePolicy("block", 8)


@pytest.mark.parametrize("policy", [LIVE_DISPLAY, LIVE_INFERENCE, LIVE_RECORDING])
def test_each_named_live_policy_keeps_its_newest_frames(ctx: zmq.Context, policy: QueuePolicy) -> None:
    # The named defaults promise how far a live consumer may fall behind: display 1 frame,
    # inference 4, recording 64. Nobody reads while 100 frames arrive; the newest are kept.
    keep = {"latest": 1, "drop_oldest": policy.capacity}[policy.mode]
    assert keep == {LIVE_DISPLAY: 1, LIVE_INFERENCE: 4, LIVE_RECORDING: 64}[policy]
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://named", policy, stats)
    sender = Sender(ctx, "inproc://named", policy, stats)
    for i in range(100):
        while not sender.send(frame(i)):  # the drain thread empties the socket; retry until taken
            stats.add(dropped=-1)
    wait_until(lambda: stats.received + stats.dropped == 100, 10, "the drain thread taking all 100 frames")
    got: list[int] = []
    while (p := receiver.recv(50)) is not None:
        got.append(p.frame_idx)  # type: ignore[union-attr]
    assert got == list(range(100 - keep, 100))
    assert stats.sent == 100 and stats.dropped == 100 - keep and stats.received == keep and stats.depth == 0
    sender.close()
    receiver.close()


# -- lossless links --------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 3, 8])
def test_a_lossless_link_holds_its_capacity_at_each_end_then_pushes_back(ctx: zmq.Context, capacity: int) -> None:
    policy = QueuePolicy("block", capacity)
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://hwm", policy, stats)
    sender = Sender(ctx, "inproc://hwm", policy, stats)
    assert _fill(sender) == 2 * capacity  # the sender's high-water mark plus the receiver's
    assert stats.sent == 2 * capacity and stats.dropped == 1
    # an end-of-stream that cannot be queued is not a dropped frame
    assert sender.send(EndOfStream("gen"), timeout_s=0.05) is False
    assert stats.dropped == 1
    # once the reader has emptied it, the link takes as many again
    got = [receiver.recv(1000) for _ in range(2 * capacity)]
    assert [p.frame_idx for p in got] == list(range(2 * capacity))  # type: ignore[union-attr]
    assert receiver.recv(50) is None and stats.received == 2 * capacity
    assert _fill(sender) == 2 * capacity
    sender.close()
    receiver.close()


def test_a_blocking_send_gives_up_at_its_timeout_not_before(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://tmo", QueuePolicy("block", 1))
    sender = Sender(ctx, "inproc://tmo", QueuePolicy("block", 1))
    assert _fill(sender) == 2
    start = time.monotonic()
    assert sender.send(frame(9), timeout_s=0.3) is False
    assert 0.28 <= time.monotonic() - start < 1.5
    sender.close()
    receiver.close()


def test_a_blocking_send_waits_for_room_and_then_delivers(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://room", QueuePolicy("block", 1), stats)
    sender = Sender(ctx, "inproc://room", QueuePolicy("block", 1), stats)
    assert _fill(sender) == 2
    reader = threading.Timer(0.2, receiver.recv, args=(1000,))
    reader.start()
    assert sender.send(frame(7)) is True  # no timeout: waits until the reader made room
    reader.join()
    assert [receiver.recv(1000).frame_idx, receiver.recv(1000).frame_idx] == [1, 7]  # type: ignore[union-attr]
    sender.close()
    receiver.close()


def test_a_lossless_producer_resumes_as_soon_as_its_consumer_makes_room(ctx: zmq.Context) -> None:
    # A producer faster than its consumer is blocked every frame or two; it must go on as soon
    # as the consumer made room, not at its next look at the stop flag (every 0.1 s), or the
    # link carries a fraction of what the consumer could take (here 100 frames: about 0.2 s of
    # consumer time, over 5 s at one frame per 0.1 s).
    n, work_s = 100, 0.002
    receiver = Receiver(ctx, "inproc://pace", QueuePolicy("block", 1))
    sender = Sender(ctx, "inproc://pace", QueuePolicy("block", 1))
    got: list[int] = []

    def consume() -> None:
        while len(got) < n and (p := receiver.recv(3000)) is not None:
            got.append(p.frame_idx)  # type: ignore[union-attr]
            time.sleep(work_s)  # the consumer's work on each frame

    consumer = threading.Thread(target=consume)
    consumer.start()
    start = time.monotonic()
    for i in range(n):
        assert sender.send(frame(i), timeout_s=5)
        assert time.monotonic() - start < 2.5, f"only {i + 1} of {n} frames sent in 2.5 s"
    consumer.join(10)
    assert got == list(range(n))
    sender.close()
    receiver.close()


@pytest.mark.parametrize("packet", [frame(5), EndOfStream("gen")], ids=["frame", "end-of-stream"])
def test_a_send_blocked_when_the_pipeline_stops_gives_up_half_a_second_later(
    ctx: zmq.Context, packet: FramePacket | EndOfStream
) -> None:
    stop = threading.Event()
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://stop", QueuePolicy("block", 1), stats)
    sender = Sender(ctx, "inproc://stop", QueuePolicy("block", 1), stats, stop=stop)
    assert _fill(sender) == 2
    dropped = stats.dropped
    stop.set()
    start = time.monotonic()
    assert sender.send(packet) is False
    took = time.monotonic() - start
    assert GIVE_UP_AFTER_STOP_S - 0.05 <= took < GIVE_UP_AFTER_STOP_S + 1.0
    # only a frame counts as dropped; a lost end-of-stream is not a frame
    assert stats.dropped == dropped + isinstance(packet, FramePacket)
    sender.close()
    receiver.close()


def test_a_send_that_does_not_block_is_not_affected_by_a_stop(ctx: zmq.Context) -> None:
    stop = threading.Event()
    stop.set()
    receiver = Receiver(ctx, "inproc://stopped", QueuePolicy("block", 4))
    sender = Sender(ctx, "inproc://stopped", QueuePolicy("block", 4), stop=stop)
    start = time.monotonic()
    assert all(sender.send(frame(i)) for i in range(8))
    assert time.monotonic() - start < 0.5
    assert [receiver.recv(1000).frame_idx for _ in range(8)] == list(range(8))  # type: ignore[union-attr]
    sender.close()
    receiver.close()


# -- drop links ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["latest", "drop_oldest"])
def test_a_drop_link_to_a_stalled_peer_drops_frames_at_once_but_never_events(ctx: zmq.Context, mode: str) -> None:
    # A peer that reads nothing: its socket fills, then frames are dropped without waiting,
    # while an event or end-of-stream still waits for room (here until its timeout).
    peer = ctx.socket(zmq.PULL)
    peer.setsockopt(zmq.RCVHWM, 1)
    peer.setsockopt(zmq.LINGER, 0)
    peer.bind("inproc://stalled")
    stats = LinkStats()
    sender = Sender(ctx, "inproc://stalled", QueuePolicy(mode, 1), stats)  # type: ignore[arg-type]
    start = time.monotonic()
    results = [sender.send(frame(i)) for i in range(20)]
    assert time.monotonic() - start < 0.5
    assert results == [True, True] + [False] * 18
    assert (stats.sent, stats.dropped) == (2, 18)
    for control in (_event(), EndOfStream("gen")):
        start = time.monotonic()
        assert sender.send(control, timeout_s=0.2) is False
        assert time.monotonic() - start >= 0.18  # it waited: control packets are never dropped
    assert (stats.sent, stats.dropped) == (2, 18)
    # once the peer reads, the waiting event goes through
    reader = threading.Timer(0.1, lambda: [peer.recv_multipart() for _ in range(2)])
    reader.start()
    assert sender.send(_event("disconnected"), timeout_s=5) is True
    reader.join()
    sender.close()
    peer.close()


def test_latest_counts_each_replaced_frame_as_dropped_not_received(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://latest-counts", QueuePolicy("latest", 1), stats)
    sender = Sender(ctx, "inproc://latest-counts", QueuePolicy("latest", 1), stats)
    sender.send(_event())
    for i in range(10):
        while not sender.send(frame(i)):
            stats.add(dropped=-1)
    sender.send(EndOfStream("gen"))
    wait_until(lambda: stats.received + stats.dropped == 10, 10, "the drain thread taking all 10 frames")
    wait_until(lambda: len(receiver._buffer) == 3, 10, "the end-of-stream behind the newest frame")
    got = [receiver.recv(1000) for _ in range(3)]
    assert isinstance(got[0], SourceEvent)  # events are kept, in order, around the frames
    assert isinstance(got[1], FramePacket) and got[1].frame_idx == 9
    assert isinstance(got[2], EndOfStream)
    assert (stats.sent, stats.received, stats.dropped, stats.depth) == (10, 1, 9, 0)
    sender.close()
    receiver.close()


def test_latest_keeps_one_frame_whatever_its_capacity(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://latest4", QueuePolicy("latest", 4), stats)
    sender = Sender(ctx, "inproc://latest4", QueuePolicy("latest", 4), stats)
    for i in range(6):
        while not sender.send(frame(i)):
            stats.add(dropped=-1)
    wait_until(lambda: stats.received + stats.dropped == 6, 10, "the drain thread taking all 6 frames")
    p = receiver.recv(1000)
    assert isinstance(p, FramePacket) and p.frame_idx == 5
    assert receiver.recv(50) is None and stats.dropped == 5
    sender.close()
    receiver.close()


def test_a_drop_link_absorbs_a_burst_larger_than_its_capacity(ctx: zmq.Context) -> None:
    # The drain thread's socket holds at least 16 messages, so a burst sent while the consumer
    # is busy keeps its end-of-stream even when the sender's side is full.
    stats = LinkStats()  # the receiver's: frames it took, and those it dropped to keep the newest 2
    receiver = Receiver(ctx, "inproc://burst", QueuePolicy("drop_oldest", 2), stats)
    sender = Sender(ctx, "inproc://burst", QueuePolicy("drop_oldest", 2))
    sent = sum(sender.send(frame(i)) for i in range(40))
    assert sender.send(EndOfStream("gen"), timeout_s=5)
    # the consumer is busy until the whole burst reached the link (reading earlier would take
    # frames one by one as they arrive, before any needs dropping)
    wait_until(lambda: stats.received + stats.dropped == sent, 10, f"the drain thread taking {sent} frames")
    got: list[int] = []
    while not isinstance(p := receiver.recv(2000), EndOfStream):
        assert p is not None, "the end-of-stream never arrived"
        got.append(p.frame_idx)  # type: ignore[union-attr]
    assert got == sorted(got) and len(got) <= 2 and got[-1] >= 17
    sender.close()
    receiver.close()


@pytest.mark.parametrize("mode", ["block", "drop_oldest"])
def test_recv_returns_none_after_its_timeout_each_time_it_is_asked(ctx: zmq.Context, mode: str) -> None:
    receiver = Receiver(ctx, "inproc://quiet", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    for timeout_ms in (1, 30, 300, 30):
        start = time.monotonic()
        assert receiver.recv(timeout_ms) is None
        took = time.monotonic() - start
        assert timeout_ms / 1000 - 0.02 <= took < timeout_ms / 1000 + 0.5, (timeout_ms, took)
    receiver.close()


@pytest.mark.parametrize("mode", ["block", "drop_oldest"])
def test_recv_returns_a_packet_as_soon_as_it_arrives(ctx: zmq.Context, mode: str) -> None:
    receiver = Receiver(ctx, "inproc://soon", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    sender = Sender(ctx, "inproc://soon", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    late = threading.Timer(0.1, sender.send, args=(_event(),))
    late.start()
    start = time.monotonic()
    assert isinstance(receiver.recv(5000), SourceEvent)
    assert time.monotonic() - start < 2.0
    late.join()
    sender.close()
    receiver.close()


def test_a_drop_link_idle_for_a_while_still_delivers(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://idle", QueuePolicy("drop_oldest", 2))
    sender = Sender(ctx, "inproc://idle", QueuePolicy("drop_oldest", 2))
    assert receiver.recv(350) is None  # several polls of the drain thread with nothing to read
    sender.send(frame(1))
    p = receiver.recv(2000)
    assert isinstance(p, FramePacket) and p.frame_idx == 1
    sender.close()
    receiver.close()


def test_a_buffered_frame_is_returned_without_waiting(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://ready", QueuePolicy("drop_oldest", 4), stats)
    sender = Sender(ctx, "inproc://ready", QueuePolicy("drop_oldest", 4), stats)
    for i in range(3):
        sender.send(frame(i))
    wait_until(lambda: stats.received == 3, 5, "the drain thread taking 3 frames")
    start = time.monotonic()
    assert [receiver.recv(3000).frame_idx for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert time.monotonic() - start < 1.0
    sender.close()
    receiver.close()


@pytest.mark.parametrize("mode", ["latest", "drop_oldest"])
def test_closing_a_drop_link_receiver_is_quick_even_after_traffic(ctx: zmq.Context, mode: str) -> None:
    receiver = Receiver(ctx, "tcp://127.0.0.1:*", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    sender = Sender(ctx, receiver.address, QueuePolicy(mode, 2))  # type: ignore[arg-type]
    sender.send(frame(0))
    assert isinstance(receiver.recv(3000), FramePacket)
    sender.close()
    start = time.monotonic()
    receiver.close()
    assert time.monotonic() - start < 0.6  # the drain thread notices within a poll interval


@pytest.mark.parametrize("mode", ["latest", "drop_oldest"])
def test_a_drop_link_receiver_runs_one_named_daemon_thread_that_close_ends(ctx: zmq.Context, mode: str) -> None:
    # The drain thread shows in a thread dump under the link it drains; it is a daemon, so a
    # receiver left open does not keep the process from exiting; and once close() returned,
    # nothing of the link is left running.
    before = set(threading.enumerate())
    receiver = Receiver(ctx, "tcp://127.0.0.1:*", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    started = [t for t in threading.enumerate() if t not in before]
    assert not receiver.address.endswith(":*")
    assert [(t.name, t.daemon) for t in started] == [(f"drain-{receiver.address}", True)]
    receiver.close()
    assert not started[0].is_alive()


def test_the_configure_hook_gets_each_socket_before_it_is_used(ctx: zmq.Context) -> None:
    # e.g. CurveZMQ keys; here a larger sender high-water mark, which shows in how much the link holds
    seen: list[zmq.Socket] = []

    def configure(sock: zmq.Socket) -> None:
        seen.append(sock)
        sock.setsockopt(zmq.SNDHWM, 5)

    receiver = Receiver(ctx, "inproc://conf", QueuePolicy("block", 1), configure=seen.append)
    sender = Sender(ctx, "inproc://conf", QueuePolicy("block", 1), configure=configure)
    assert seen == [receiver._sock, sender._sock]
    assert _fill(sender) == 5 + 1
    sender.close()
    receiver.close()


# -- malformed messages --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["block", "latest"])
def test_a_malformed_message_is_reported_once_and_the_link_stays_up(ctx: zmq.Context, mode: str) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://bad", QueuePolicy(mode, 4), stats)  # type: ignore[arg-type]
    raw = ctx.socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect("inproc://bad")
    raw.send(b"\xc1 not msgpack")
    raw.send_multipart(encode(frame(3)))
    with pytest.raises(TransportError):
        receiver.recv(2000)
    p = receiver.recv(2000)
    assert isinstance(p, FramePacket) and p.frame_idx == 3
    assert receiver.recv(50) is None
    assert receiver.malformed == 1 and stats.received == 1
    raw.close()
    receiver.close()


def test_a_flood_of_malformed_messages_reports_at_most_64_but_counts_them_all(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://flood", QueuePolicy("drop_oldest", 4))
    raw = ctx.socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect("inproc://flood")
    for _ in range(100):
        raw.send(b"\xc1")
    raw.send_multipart(encode(frame(1)))
    wait_until(lambda: receiver.malformed == 100 and receiver._buffer, 10, "the drain thread reading 101 messages")
    errors = 0
    while True:
        try:
            p = receiver.recv(1000)
        except TransportError:
            errors += 1
            continue
        break
    assert errors == 64 and isinstance(p, FramePacket) and p.frame_idx == 1
    raw.close()
    receiver.close()


# -- addresses and message sizes --------------------------------------------------------------------


def test_setting_up_a_link_on_a_bad_address_names_the_address(ctx: zmq.Context) -> None:
    with pytest.raises(TransportError, match=r"^cannot connect nowhere://x: "):
        Sender(ctx, "nowhere://x", LOSSLESS)
    with pytest.raises(TransportError, match=r"^cannot bind tcp://256\.0\.0\.1:1: "):
        Sender(ctx, "tcp://256.0.0.1:1", LOSSLESS, bind=True)
    with pytest.raises(TransportError, match=r"^cannot connect nowhere://y: "):
        Receiver(ctx, "nowhere://y", LOSSLESS, bind=False)
    with pytest.raises(TransportError, match=r"^cannot bind nowhere://z: "):
        Receiver(ctx, "nowhere://z", LIVE_DISPLAY)


def test_a_receiver_can_connect_to_a_binding_sender(ctx: zmq.Context) -> None:
    sender = Sender(ctx, "tcp://127.0.0.1:*", LOSSLESS, bind=True)
    address = sender._sock.getsockopt_string(zmq.LAST_ENDPOINT)
    receiver = Receiver(ctx, address, LOSSLESS, bind=False)
    assert receiver.address == address
    assert sender.send(frame(4), timeout_s=5)
    p = receiver.recv(5000)
    assert isinstance(p, FramePacket) and p.frame_idx == 4
    sender.close()
    receiver.close()


@pytest.mark.parametrize("mode", ["block", "latest"])
def test_closing_a_receiver_frees_its_port(ctx: zmq.Context, mode: str) -> None:
    first = Receiver(ctx, "tcp://127.0.0.1:*", QueuePolicy(mode, 2))  # type: ignore[arg-type]
    first.close()

    def rebind() -> Receiver | None:
        try:
            return Receiver(ctx, first.address, QueuePolicy(mode, 2))  # type: ignore[arg-type]
        except TransportError:  # ZeroMQ closes sockets in its own thread: it may take a moment
            return None

    second = wait_until(rebind, 3, f"{first.address} free again")
    assert second is not None
    assert second.address == first.address
    second.close()


def test_a_tcp_receiver_takes_a_4k_frame_and_refuses_a_larger_one(ctx: zmq.Context) -> None:
    width, height = MAX_FRAME_SIZE
    assert (width, height) == (3840, 2160)
    receiver = Receiver(ctx, "tcp://127.0.0.1:*", LOSSLESS)
    sender = Sender(ctx, receiver.address, LOSSLESS)
    assert sender.send(frame(1, size=(height, width)), timeout_s=5)
    p = receiver.recv(5000)
    assert isinstance(p, FramePacket) and p.image.shape == (height, width, 3)
    # one row more: libzmq drops the peer instead of buffering the message
    assert sender.send(frame(2, size=(height + 1, width)), timeout_s=5)
    assert receiver.recv(1000) is None
    sender.close()
    receiver.close()


def test_an_inproc_receiver_has_no_message_size_limit(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://big", LOSSLESS, max_message_bytes=100)
    sender = Sender(ctx, "inproc://big", LOSSLESS)
    assert sender.send(frame(1, size=(64, 64)), timeout_s=5)
    p = receiver.recv(2000)
    assert isinstance(p, FramePacket) and p.image.shape == (64, 64, 3)
    sender.close()
    receiver.close()


def test_an_ipc_sender_closed_right_after_sending_still_delivers(ctx: zmq.Context, tmp_path) -> None:
    # Over ipc/tcp, close() lingers to flush what is queued (over inproc it need not).
    receiver = Receiver(ctx, f"ipc://{tmp_path}/flush", LOSSLESS)
    sender = Sender(ctx, receiver.address, QueuePolicy("block", 64))
    for i in range(20):
        assert sender.send(frame(i, size=(240, 320)), timeout_s=5)
    assert sender.send(EndOfStream("gen"), timeout_s=5)
    sender.close()
    got: list[int] = []
    while not isinstance(p := receiver.recv(3000), EndOfStream):
        assert p is not None, f"only {len(got)} frames arrived"
        got.append(p.frame_idx)  # type: ignore[union-attr]
    assert got == list(range(20))
    receiver.close()


# -- acknowledged end-of-stream ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["block", "drop_oldest"])
def test_an_acknowledged_sender_learns_when_its_end_of_stream_was_read(ctx: zmq.Context, mode: str) -> None:
    policy = QueuePolicy(mode, 8)  # type: ignore[arg-type]
    receiver = Receiver(ctx, "tcp://127.0.0.1:*", policy, acknowledging=True)
    sender = Sender(ctx, receiver.address, policy, acknowledged=True)
    for i in range(3):
        assert sender.send(frame(i), timeout_s=5)
    assert sender.send(EndOfStream("gen"), timeout_s=5)
    if mode == "block":  # nothing read yet: no confirmation
        start = time.monotonic()
        assert sender.wait_acknowledged(0.2) is False
        assert 0.18 <= time.monotonic() - start < 1.0
    got: list[int] = []
    while not isinstance(p := receiver.recv(3000), EndOfStream):
        assert p is not None
        got.append(p.frame_idx)  # type: ignore[union-attr]
    assert got == [0, 1, 2]  # the sender's identity is not taken for a packet
    assert sender.wait_acknowledged(5) is True
    sender.close()
    receiver.close()


def test_frames_and_events_are_not_acknowledged(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://noack", LOSSLESS, acknowledging=True)
    sender = Sender(ctx, "inproc://noack", LOSSLESS, acknowledged=True)
    sender.send(frame(0), timeout_s=5)
    sender.send(_event(), timeout_s=5)
    assert isinstance(receiver.recv(2000), FramePacket) and isinstance(receiver.recv(2000), SourceEvent)
    assert sender.wait_acknowledged(0.3) is False
    sender.close()
    receiver.close()


def test_waiting_for_an_acknowledgement_ends_when_the_pipeline_stops(ctx: zmq.Context) -> None:
    stop = threading.Event()
    receiver = Receiver(ctx, "inproc://ackstop", LOSSLESS, acknowledging=True)
    sender = Sender(ctx, "inproc://ackstop", LOSSLESS, acknowledged=True, stop=stop)
    sender.send(EndOfStream("gen"), timeout_s=5)
    threading.Timer(0.1, stop.set).start()
    start = time.monotonic()
    assert sender.wait_acknowledged(30) is False  # nobody reads the end-of-stream
    assert time.monotonic() - start < 1.0
    sender.close()
    receiver.close()


# -- waiting costs (almost) no CPU ---------------------------------------------------------------
# A live pipeline has many links that mostly wait; each waiting call sleeps in ZeroMQ until
# something happens or it is time to look at the stop flag (every 0.1 s), never in a busy loop.


def test_a_blocked_producer_uses_under_one_percent_of_a_core(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://cpu-send", QueuePolicy("block", 1))
    sender = Sender(ctx, "inproc://cpu-send", QueuePolicy("block", 1))
    assert _fill(sender) == 2
    cpu, start = time.thread_time(), time.monotonic()
    assert sender.send(frame(9), timeout_s=1.0) is False  # nobody reads: blocked for a second
    cpu, took = time.thread_time() - cpu, time.monotonic() - start
    assert cpu < 0.01 * took, f"{cpu * 1000:.0f} ms of CPU in {took:.2f} s"
    sender.close()
    receiver.close()


def test_waiting_for_an_acknowledgement_uses_under_one_percent_of_a_core(ctx: zmq.Context) -> None:
    receiver = Receiver(ctx, "inproc://cpu-ack", LOSSLESS, acknowledging=True)
    sender = Sender(ctx, "inproc://cpu-ack", LOSSLESS, acknowledged=True)
    assert sender.send(EndOfStream("gen"), timeout_s=5)
    cpu, start = time.thread_time(), time.monotonic()
    assert sender.wait_acknowledged(1.0) is False  # nobody reads the end-of-stream
    cpu, took = time.thread_time() - cpu, time.monotonic() - start
    assert cpu < 0.01 * took, f"{cpu * 1000:.0f} ms of CPU in {took:.2f} s"
    sender.close()
    receiver.close()


def test_an_idle_drop_link_uses_under_half_a_percent_of_a_core(ctx: zmq.Context) -> None:
    links = 4
    receivers = [Receiver(ctx, f"inproc://cpu-idle{i}", LIVE_INFERENCE) for i in range(links)]
    cpu, start = time.process_time(), time.monotonic()
    threading.Event().wait(0.5)  # nothing arrives: each drain thread waits in ZeroMQ
    cpu, took = time.process_time() - cpu, time.monotonic() - start
    assert cpu < 0.005 * took * links, f"{cpu * 1000:.0f} ms of CPU for {links} links idle {took:.2f} s"
    for receiver in receivers:
        receiver.close()


def test_link_stats_depth_never_goes_negative() -> None:
    stats = LinkStats()
    assert stats.depth == 0
    stats.add(sent=5, received=3, dropped=1)
    assert (stats.sent, stats.received, stats.dropped, stats.depth) == (5, 3, 1, 1)
    stats.add(received=3)  # counters are read without the lock: they may run ahead of each other
    assert stats.depth == 0
