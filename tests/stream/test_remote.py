"""Remote links: a pipeline split across two real processes, a failing sender, and peers that lie."""

from __future__ import annotations

import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from stream.errors import StageError, TransportError
from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.remote import HELLO_KEY, RemotePipelineFailed, RemoteSink, RemoteSource
from stream.runner import Pipeline, RunReport
from stream.security import CurveClient, CurveServer
from stream.stage import Outputs
from stream.transport import QueuePolicy
from stream.wire import WIRE_VERSION, encode
from tests.processes import spawn
from tests.stream import zmtp
from tests.stream.helpers import Collect, CountingSource
from tests.stream.test_security import keys  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SIZE = (36, 48)


class Frames(Collect):
    """Collect that also keeps the pixels and lets a test wait for a number of frames."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[np.ndarray] = []
        self._cond = threading.Condition()

    def process(self, packet: FramePacket) -> Outputs:
        self.images.append(packet.image.copy())
        with self._cond:
            super().process(packet)
            self._cond.notify_all()
        return packet

    def wait_frames(self, count: int, timeout_s: float = 20) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.frames) >= count, timeout_s):
                raise AssertionError(f"only {len(self.frames)} of {count} frames arrived in {timeout_s} s")


class WatchedSource(RemoteSource):
    """RemoteSource that lets a test wait until it has rejected a number of messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reasons: list[str] = []
        self._cond = threading.Condition()

    def _reject(self, reason: str) -> None:
        with self._cond:
            self.reasons.append(reason)
            self._cond.notify_all()
        super()._reject(reason)

    def wait_rejected(self, count: int, timeout_s: float = 20) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.reasons) >= count, timeout_s):
                raise AssertionError(f"only {len(self.reasons)} of {count} rejections in {timeout_s} s: {self.reasons}")


class Background:
    """Runs a pipeline in a thread; ``join()`` returns its report or raises its error."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.report: RunReport | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.report = self.pipeline.run()
        except BaseException as exc:  # handed to the test thread by join()
            self.error = exc

    def join(self, timeout_s: float = 30) -> RunReport:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the pipeline did not end"
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def _expected_image(i: int) -> np.ndarray:
    return np.full((*SIZE, 3), i % 256, np.uint8)


# -- two processes ----------------------------------------------------------------------------


class SlowFrames(Frames):
    """Frames whose every frame takes a while, so the sender finishes long before the receiver."""

    def process(self, packet: FramePacket) -> Outputs:
        time.sleep(0.02)  # simulated slow work, not synchronisation
        return super().process(packet)


@pytest.mark.parametrize("sink_kind", [Frames, SlowFrames], ids=["fast-receiver", "slow-receiver"])
def test_a_pipeline_split_across_two_processes(tmp_path: Path, sink_kind: type[Frames]) -> None:
    # A slow receiver still holds frames when the sender is done; libzmq drops those when the
    # sender disconnects, so the sender must wait for the receiver to confirm the end of stream.
    address = f"ipc://{tmp_path}/link"
    source = RemoteSource(address, idle_timeout_s=30)
    sink = sink_kind()
    sender = spawn([sys.executable, "-m", "tests.stream.remote_proc", address, "30"], cwd=ROOT, env=ENV)
    report = Pipeline([source], [sink], metrics_interval_s=0).run()
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert report.status == "ok" and sink.finished.is_set()
    assert sink.frames == [("cam", i) for i in range(30)]
    for i, image in enumerate(sink.images):
        np.testing.assert_array_equal(image, _expected_image(i))
    assert source.rejected == 0 and not [e for e in sink.events if e.kind == "error"]


def test_a_failing_remote_pipeline_fails_the_receiving_one(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/link"
    source = RemoteSource(address, idle_timeout_s=30)
    sink = Frames()
    sender = spawn([sys.executable, "-m", "tests.stream.remote_proc", address, "30", "5"], cwd=ROOT, env=ENV)
    with pytest.raises(StageError, match=r"remote pipeline.* failed: OSError: source broke at frame 5") as info:
        Pipeline([source], [sink], metrics_interval_s=0).run()
    sender.communicate(timeout=30)
    assert sender.returncode == 1
    assert isinstance(info.value.__cause__, RemotePipelineFailed)
    assert sink.frames == [("cam", i) for i in range(5)]
    assert sink.finished.is_set()  # downstream stages still finish: partial outputs stay valid
    errors = [e.message for e in sink.events if e.kind == "error"]
    assert errors == ["remote pipeline failed: OSError: source broke at frame 5"]


# -- peers that lie -----------------------------------------------------------------------------


def _frame_header(tb_num: Any, tb_den: Any) -> list[bytes]:
    header = [WIRE_VERSION, "f", "cam", 0, 0, tb_num, tb_den, 0, SIZE[0], SIZE[1], None]
    return [msgpack.packb(header), bytes(SIZE[0] * SIZE[1] * 3)]


def test_spoofed_end_of_stream_and_bad_time_bases_are_counted_not_fatal(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/link"
    source = WatchedSource(address, idle_timeout_s=30)
    sink = Frames()
    receiver = Background(Pipeline([source], [sink], metrics_interval_s=0))
    sending = RemoteSink(address, name="remote-sink")
    sender = Background(
        Pipeline([CountingSource(None, name="cam", interval_s=0.005, size=SIZE)], [sending], metrics_interval_s=0)
    )
    ctx = zmq.Context()
    stranger = ctx.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    try:
        sink.wait_frames(5)
        stranger.connect(address)
        spoofs: list[list[bytes]] = [
            encode(EndOfStream("remote-sink")),  # the real sender's name
            encode(EndOfStream("0" * 32)),  # a made-up token
            encode(SourceEvent("x", "opened", "", 0.0, {HELLO_KEY: "f" * 32})),  # one sender too many
            _frame_header(1, 0),  # time base 0: ZeroDivisionError before
            _frame_header(-1, 25),
            _frame_header(10**6, 1),  # a million seconds per tick
            _frame_header("1", 25),
            [b"\xc1 not msgpack"],
        ]
        for parts in spoofs:
            stranger.send_multipart(parts)
        source.wait_rejected(len(spoofs))
        seen = len(sink.frames)
        sink.wait_frames(seen + 5)  # the stream goes on after the spoofs
        sender.pipeline.stop()
        sender.join()
        report = receiver.join()
    finally:
        stranger.close()
        ctx.term()
        sender.pipeline.stop()
        receiver.pipeline.stop()
    assert report.status == "ok"
    assert [i for _, i in sink.frames] == list(range(len(sink.frames)))  # nothing injected, nothing lost
    assert source.rejected == len(spoofs)
    reasons = "\n".join(source.reasons)
    needles = ["end-of-stream from a sender that did not announce", "beyond the 1 sender(s)", "time base 1/0"]
    needles += ["time base -1/25", "time base 1000000/1", "time base: expected two integers", "malformed"]
    for needle in needles:
        assert needle in reasons, reasons


def test_too_many_bad_messages_fail_with_a_clear_error(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/link"
    source = RemoteSource(address, max_bad_messages=3, idle_timeout_s=30)
    receiver = Background(Pipeline([source], [Collect()], metrics_interval_s=0))
    ctx = zmq.Context()
    stranger = ctx.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 1000)
    stranger.connect(address)
    for _ in range(4):
        stranger.send(b"\xc1")
    stranger.close()
    ctx.term()
    with pytest.raises(StageError, match=r"4 malformed or unexpected messages .*bind it to 127\.0\.0\.1") as info:
        receiver.join()
    assert isinstance(info.value.__cause__, TransportError)


def test_frames_before_any_announcement_are_refused(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/link"
    source = WatchedSource(address, idle_timeout_s=30)
    sink = Collect()
    receiver = Background(Pipeline([source], [sink], metrics_interval_s=0))
    ctx = zmq.Context()
    stranger = ctx.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 1000)
    stranger.connect(address)
    stranger.send_multipart(encode(FramePacket(_expected_image(1), "fake", 0, 0, Fraction(1, 25), 0)))
    source.wait_rejected(1)
    stranger.close()
    ctx.term()
    Pipeline([CountingSource(3, name="cam", size=SIZE)], [RemoteSink(address)], metrics_interval_s=0).run()
    receiver.join()
    assert sink.frames == [("cam", 0), ("cam", 1), ("cam", 2)]
    assert "before any RemoteSink announced itself" in source.reasons[0]


def test_an_oversized_message_part_disconnects_the_peer() -> None:
    source = RemoteSource("tcp://127.0.0.1:*", max_message_bytes=1 << 20)
    source.setup()
    try:
        assert source.endpoint is not None
        peer = zmtp.connect(source.endpoint, b"DEALER")
        try:
            accepted, closed = zmtp.declare_huge_frame(peer, 1 << 30, payload_bytes=8 << 20)
        finally:
            peer.close()
    finally:
        source.close()
    assert closed, f"the receiver kept reading a declared 1 GiB part ({accepted} bytes taken)"


# -- CurveZMQ -------------------------------------------------------------------------------------


def test_curve_admits_only_allowed_senders(keys: dict[str, Path]) -> None:  # noqa: F811
    source = RemoteSource(
        "tcp://127.0.0.1:*", curve=CurveServer(keys["server.key_secret"], keys["allowed"]), idle_timeout_s=30
    )
    sink = Collect()
    source.setup()  # bind now to learn the port; the pipeline's setup() keeps this socket
    endpoint = source.endpoint
    assert endpoint is not None
    receiver = Background(Pipeline([source], [sink], metrics_interval_s=0))

    def send(name: str, policy: QueuePolicy) -> None:
        curve = CurveClient(keys[f"{name}.key_secret"], keys["server.key"])
        sink_stage = RemoteSink(endpoint, curve=curve, policy=policy, name=f"sink-{name}")
        Pipeline([CountingSource(5, name=f"{name}-cam", size=SIZE)], [sink_stage], metrics_interval_s=0).run()

    send("mallory", QueuePolicy("drop_oldest", 4))  # unknown key: nothing gets through, and nothing waits forever
    send("alice", QueuePolicy("block", 8))
    receiver.join()
    assert sink.frames == [("alice-cam", i) for i in range(5)]
    assert source.rejected == 0
