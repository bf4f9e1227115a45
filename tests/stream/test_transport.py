import threading
import time

import numpy as np
import pytest
import zmq

from stream.errors import ConfigError, TransportError
from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.transport import LinkStats, QueuePolicy, Receiver, Sender
from tests.stream.helpers import frame
from tests.waiting import wait_until


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.mark.parametrize("scheme", ["inproc", "ipc", "tcp"])
def test_round_trip_over_each_transport(ctx: zmq.Context, scheme: str, tmp_path) -> None:
    address = {"inproc": "inproc://t", "ipc": f"ipc://{tmp_path}/s", "tcp": "tcp://127.0.0.1:*"}[scheme]
    receiver = Receiver(ctx, address, QueuePolicy("block", 8))
    sender = Sender(ctx, receiver.address, QueuePolicy("block", 8))
    sent = [frame(i, size=(720, 1280)) for i in range(5)] + [EndOfStream("gen")]
    for p in sent:
        assert sender.send(p, timeout_s=5)
    got = []
    while len(got) < len(sent):
        p = receiver.recv(2000)
        assert p is not None, f"timed out after {len(got)} packets"
        got.append(p)
    assert [p.frame_idx for p in got[:-1]] == list(range(5)) and isinstance(got[-1], EndOfStream)
    np.testing.assert_array_equal(got[3].image, sent[3].image)
    assert not got[0].image.flags.writeable  # received images are read-only views
    sender.close()
    receiver.close()


def test_latest_policy_delivers_only_the_newest_frame(ctx: zmq.Context) -> None:
    stats = LinkStats()
    policy = QueuePolicy("latest", 1)
    receiver = Receiver(ctx, "inproc://latest", QueuePolicy("latest", 16), stats)
    receiver.policy = policy
    sender = Sender(ctx, "inproc://latest", QueuePolicy("latest", 16), stats)
    for i in range(10):
        sender.send(frame(i))
    wait_until(lambda: stats.received + stats.dropped == 10, 10, "the drain thread taking all 10 frames")
    p = receiver.recv(1000)
    assert isinstance(p, FramePacket) and p.frame_idx == 9
    assert receiver.recv(50) is None
    assert stats.sent == 10 and stats.dropped == 9 and stats.depth == 0
    sender.close()
    receiver.close()


def test_drop_oldest_keeps_the_newest_frames_and_never_drops_control_packets(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://do", QueuePolicy("drop_oldest", 3), stats)
    sender = Sender(ctx, "inproc://do", QueuePolicy("drop_oldest", 3), stats)
    sender.send(SourceEvent("gen", "connected", "", 0.0))
    for i in range(3):  # fits the high-water mark
        sender.send(frame(i))
    wait_until(lambda: stats.received == 3, 10, "the drain thread taking the first 3 frames")
    first = receiver.recv(1000)  # the event; all 3 frames are kept
    for i in range(3, 6):
        sender.send(frame(i))
    sender.send(EndOfStream("gen"))
    wait_until(lambda: stats.dropped == 3, 10, "the 3 oldest frames dropped for the newer ones")
    rest = []
    while (p := receiver.recv(2000)) is not None:
        rest.append(p)
        if isinstance(p, EndOfStream):
            break
    assert isinstance(first, SourceEvent)
    frames = [p.frame_idx for p in rest if isinstance(p, FramePacket)]
    assert frames == [3, 4, 5]  # frames 0..2 were the oldest when the newer ones arrived
    assert isinstance(rest[-1], EndOfStream)
    assert stats.dropped == 3
    sender.close()
    receiver.close()


def test_block_policy_is_lossless_under_a_slow_consumer(ctx: zmq.Context) -> None:
    stats = LinkStats()
    receiver = Receiver(ctx, "inproc://blk", QueuePolicy("block", 2), stats)
    n = 40

    def produce() -> None:
        sender = Sender(ctx, "inproc://blk", QueuePolicy("block", 2), stats)
        for i in range(n):
            sender.send(frame(i))
        sender.send(EndOfStream("gen"))
        sender.close()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    while True:
        p = receiver.recv(2000)
        assert p is not None
        if isinstance(p, EndOfStream):
            break
        time.sleep(0.002)
        got.append(p.frame_idx)
        assert stats.depth <= 2 * 2 + 2  # bounded by the high-water marks
    t.join()
    assert got == list(range(n)) and stats.dropped == 0


def test_blocked_send_gives_up_after_stop(ctx: zmq.Context) -> None:
    stop = threading.Event()
    receiver = Receiver(ctx, "inproc://stuck", QueuePolicy("block", 1))  # nobody reads
    sender = Sender(ctx, "inproc://stuck", QueuePolicy("block", 1), stop=stop)
    results = [sender.send(frame(i)) for i in range(2)]
    stop.set()
    start = time.monotonic()
    while sender.send(frame(99)):
        pass
    assert time.monotonic() - start < 2.0
    assert results == [True, True]
    sender.close()
    receiver.close()


@pytest.mark.parametrize("mode, capacity", [("fifo", 4), ("block", 0)])
def test_invalid_policies(mode: str, capacity: int) -> None:
    with pytest.raises(ConfigError):
        QueuePolicy(mode, capacity)  # type: ignore[arg-type]


def test_bad_address_is_a_transport_error(ctx: zmq.Context) -> None:
    with pytest.raises(TransportError, match="cannot bind"):
        Receiver(ctx, "tcp://256.0.0.1:1", QueuePolicy())
