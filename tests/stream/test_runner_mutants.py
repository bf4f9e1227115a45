"""Runner behaviour that mutation testing found unchecked (docs/mutation.md).

Every test runs a real :class:`~stream.runner.Pipeline` (threads, inproc ZeroMQ links) and
asserts what its user sees: the frames each stage got, the report and metrics file, the
error raised, the log lines, and how long the run took.

A runner that waits for one end-of-stream too many, or sends none after a failure, hangs;
the fault tests here give their run a long ``stop_timeout_s`` (so that the runner's own
clean-up after a stop cannot hide a missing end-of-stream) and a per-test timeout of a few
seconds, so such a hang fails the test in seconds instead of at pytest's global timeout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from stream.errors import ConfigError, OutputError, StageError
from stream.packet import FramePacket, SourceEvent
from stream.runner import Pipeline, RunReport, StageMetrics
from stream.stage import Outputs, Source, Stage
from stream.transport import LIVE_DISPLAY, LIVE_RECORDING, LOSSLESS, LinkStats, QueuePolicy
from stream.worker import LatestPerKey
from tests.stream.helpers import Collect, CountingSource, FailAt, frame
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(10)

#: A stop timeout no test waits for: a stage that needs it to finish has hung.
NEVER_S = 60.0


class Blocker(Collect):
    """Passes frames on; blocks in ``process`` on frame ``at`` until ``release`` is set."""

    def __init__(self, at: int, name: str = "blocker") -> None:
        super().__init__(name)
        self.at = at
        self.reached = threading.Event()
        self.release = threading.Event()

    def process(self, packet: FramePacket) -> Outputs:
        if packet.frame_idx == self.at:
            self.reached.set()
            self.release.wait(30)
        return super().process(packet)


class EventSource(Source):
    """An event, ``n`` frames, another event; then waits on its stop event if ``hold``."""

    def __init__(self, n: int, *, name: str = "ev", hold: bool = False) -> None:
        super().__init__(name)
        self.n, self.hold = n, hold

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        yield SourceEvent(self.name, "connected", "hello", 0.0)
        for i in range(self.n):
            yield frame(i, self.name)
        yield SourceEvent(self.name, "disconnected", "bye", 0.0)
        if self.hold:
            self.stop_event.wait(30)


class Recorder(Collect):
    """A sink that also records why its stream ended."""

    def __init__(self, name: str = "collect", delay_s: float = 0.0) -> None:
        super().__init__(name, delay_s)
        self.stream_errors: list[str | None] = []

    def close(self) -> None:
        self.stream_errors.append(self.stream_error)
        super().close()


def frames_of(sink: Collect, source: str = "gen") -> list[int]:
    return [i for s, i in sink.frames if s == source]


# -- end-of-stream ---------------------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize("n_sources", [1, 2, 3])
def test_every_stage_of_a_chain_ends_when_every_source_has_ended(n_sources: int) -> None:
    sources = [CountingSource(10 + 5 * k, name=f"s{k}") for k in range(n_sources)]
    sink = Collect()
    started = time.monotonic()
    report = Pipeline(sources, [Collect("a"), Collect("b"), sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert time.monotonic() - started < 3
    for k in range(n_sources):
        assert frames_of(sink, f"s{k}") == list(range(10 + 5 * k))
    assert report.status == "ok" and sink.finished.is_set() and sink.closed


@pytest.mark.timeout(5)
def test_the_first_stage_waits_for_the_last_source_not_the_first() -> None:
    slow = CountingSource(30, name="slow", interval_s=0.005)
    sink = Collect()
    Pipeline([CountingSource(3, name="quick"), slow], [sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert frames_of(sink, "quick") == [0, 1, 2] and frames_of(sink, "slow") == list(range(30))


@pytest.mark.timeout(5)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_failing_stage_ends_the_run_at_once_wherever_it_is(position: int) -> None:
    stages: list[Stage] = [Collect("a"), Collect("b"), Recorder()]
    stages.insert(position, FailAt(3))
    sink = stages[-1]
    assert isinstance(sink, Recorder)
    started = time.monotonic()
    with pytest.raises(StageError, match=r"^stage 'fail' failed: ValueError: bad frame 3$") as info:
        Pipeline([CountingSource(None)], stages, metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert time.monotonic() - started < 3  # not the stop timeout: every stage got its end-of-stream
    assert sink.finished.is_set() and sink.closed and frames_of(sink) == [0, 1, 2]
    # the sink learns why its stream ended, so it can mark its output incomplete
    assert sink.stream_errors == ["ValueError: bad frame 3"]
    report = info.value.report  # type: ignore[attr-defined]
    assert report.status == "failed" and report.error == "fail: ValueError: bad frame 3"


@pytest.mark.timeout(5)
def test_a_failing_source_ends_the_run_at_once_and_tells_the_stages_why() -> None:
    sink = Recorder()
    middle = Recorder("middle")
    other = CountingSource(None, name="other", interval_s=0.001)
    started = time.monotonic()
    with pytest.raises(StageError, match=r"^stage 'gen' failed: OSError: source broke at frame 4$"):
        Pipeline(
            [CountingSource(None, fail_at=4), other], [middle, sink], metrics_interval_s=0, stop_timeout_s=NEVER_S
        ).run()
    assert time.monotonic() - started < 3
    assert frames_of(sink) == [0, 1, 2, 3] and other.closed
    assert middle.stream_errors == sink.stream_errors == ["OSError: source broke at frame 4"]


@pytest.mark.timeout(5)
def test_a_clean_run_leaves_no_stream_error() -> None:
    sink = Recorder()
    Pipeline([CountingSource(5)], [Recorder("middle"), sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert sink.stream_errors == [None]


@pytest.mark.timeout(5)
def test_a_stage_whose_close_fails_fails_the_run_and_its_end_of_stream_says_so() -> None:
    class BadClose(Recorder):
        def close(self) -> None:
            super().close()
            raise OSError("disk full")

    sink = Recorder()
    with pytest.raises(StageError, match=r"^stage 'bad' failed: OSError: disk full$"):
        Pipeline([CountingSource(5)], [BadClose("bad"), sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert frames_of(sink) == list(range(5)) and sink.stream_errors == ["OSError: disk full"]


@pytest.mark.timeout(5)
def test_a_close_failing_after_the_stage_failed_does_not_replace_the_first_error() -> None:
    class FailBoth(FailAt):
        def close(self) -> None:
            raise OSError("and close broke too")

    sink = Recorder()
    with pytest.raises(StageError, match=r"^stage 'fail' failed: ValueError: bad frame 2$"):
        Pipeline([CountingSource(5)], [FailBoth(2), sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert sink.stream_errors == ["ValueError: bad frame 2"]


@pytest.mark.timeout(5)
def test_a_source_whose_close_fails_only_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    class BadCloseSource(CountingSource):
        def close(self) -> None:
            raise OSError("camera gone")

    sink = Collect()
    with caplog.at_level(logging.WARNING, logger="stream.runner"):
        report = Pipeline([BadCloseSource(4)], [sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert report.status == "ok" and frames_of(sink) == [0, 1, 2, 3]
    assert "closing source 'gen' failed: camera gone" in caplog.messages


@pytest.mark.timeout(5)
def test_the_first_of_two_failures_is_the_one_reported() -> None:
    class CloseFails(Collect):
        def close(self) -> None:
            raise OSError("second failure")

    with pytest.raises(StageError, match=r"^stage 'first' failed: ValueError: bad frame 2$") as info:
        Pipeline(
            [CountingSource(10)], [FailAt(2, "first"), CloseFails("second")], metrics_interval_s=0,
            stop_timeout_s=NEVER_S,
        ).run()  # fmt: skip
    assert info.value.report.error == "first: ValueError: bad frame 2"  # type: ignore[attr-defined]


# -- events, finish, outputs -----------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_events_travel_in_order_with_the_frames_and_finish_outputs_reach_the_next_stage() -> None:
    class Flusher(Stage):
        def process(self, packet: FramePacket) -> Outputs:
            return None  # holds everything back until the end

        def finish(self) -> Outputs:
            return [frame(100 + i, "ev") for i in range(3)]

    sink = Collect()
    Pipeline([EventSource(2)], [Collect("first"), Flusher("flush"), sink], metrics_interval_s=0).run()
    assert [e.kind for e in sink.events] == ["connected", "disconnected"]
    assert frames_of(sink, "ev") == [100, 101, 102]


@pytest.mark.timeout(5)
def test_max_frames_ends_each_source_after_that_many_frames() -> None:
    sink = Collect()
    report = Pipeline(
        [CountingSource(None, name="a"), EventSource(10, hold=True)], [sink], metrics_interval_s=0, max_frames=3
    ).run()
    assert frames_of(sink, "a") == [0, 1, 2] and frames_of(sink, "ev") == [0, 1, 2]
    assert [e.kind for e in sink.events] == ["connected"]  # events are not frames; the source ended at its 3rd frame
    assert report.stages["a"]["frames"] == 3 and report.stages["ev"]["frames"] == 3


@pytest.mark.timeout(5)
def test_max_frames_of_one_is_one_frame() -> None:
    sink = Collect()
    Pipeline([CountingSource(None)], [sink], metrics_interval_s=0, max_frames=1).run()
    assert frames_of(sink) == [0]


@pytest.mark.parametrize("max_frames", [0, -2])
def test_max_frames_below_one_is_refused(max_frames: int) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline([CountingSource(1)], [Collect()], max_frames=max_frames)
    assert str(info.value) == f"max_frames: expected a positive number of frames, got {max_frames}"


# -- errors tolerated ---------------------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("max_errors", "fatal"), [(0, True), (2, True), (3, False)])
def test_max_errors_is_how_many_frames_a_stage_may_fail_on(
    max_errors: int, fatal: bool, caplog: pytest.LogCaptureFixture
) -> None:
    class FailEvery3rd(Stage):
        def process(self, packet: FramePacket) -> Outputs:
            if packet.frame_idx % 3 == 1:
                raise ValueError(f"bad frame {packet.frame_idx}")
            return packet

    sink = Collect()
    pipeline = Pipeline([CountingSource(9)], [FailEvery3rd("f"), sink], metrics_interval_s=0, max_errors=max_errors)
    with caplog.at_level(logging.WARNING, logger="stream.runner"):
        if fatal:
            with pytest.raises(StageError, match=f"bad frame {3 * max_errors + 1}$"):
                pipeline.run()
            return
        report = pipeline.run()
    assert frames_of(sink) == [0, 2, 3, 5, 6, 8]
    assert report.stages["f"]["errors"] == 3 and report.stages["f"]["frames"] == 6
    assert "stage 'f' dropped frame 1 of 'gen': ValueError: bad frame 1 (1 of 3 tolerated errors)" in caplog.messages
    assert "stage 'f' dropped frame 7 of 'gen': ValueError: bad frame 7 (3 of 3 tolerated errors)" in caplog.messages


# -- workers -------------------------------------------------------------------------------------------


class WorkerStage(Collect):
    """A stage with one background worker that fails on the item ``fail_on``."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__("worked")
        self.fail_on = fail_on
        self.served: list[int] = []
        self.worker: LatestPerKey[int, int] = LatestPerKey(self._run, name="job")

    def _run(self, items: list[int]) -> list[int]:
        for item in items:
            if item == self.fail_on:
                raise RuntimeError(f"worker broke on {item}")
            self.served.append(item)
        return items

    def workers(self) -> Sequence[LatestPerKey[Any, Any]]:
        return [self.worker]

    def process(self, packet: FramePacket) -> Outputs:
        self.worker.submit(packet.source_id, packet.frame_idx)
        deadline = time.monotonic() + 2.0
        while self.worker.pending() and time.monotonic() < deadline:  # a failed worker takes nothing more
            time.sleep(0.001)
        return super().process(packet)


@pytest.mark.timeout(5)
def test_a_stage_worker_runs_while_the_stage_runs_and_is_stopped_after_it() -> None:
    stage = WorkerStage()
    sink = Collect()
    report = Pipeline([CountingSource(5)], [stage, sink], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
    assert report.status == "ok" and frames_of(sink) == list(range(5))
    assert stage.served == list(range(5))
    assert not any(t.name == "worked-job" for t in threading.enumerate())


@pytest.mark.timeout(5)
def test_a_failing_worker_fails_its_stage_and_the_stream_says_why() -> None:
    stage = WorkerStage(fail_on=2)
    sink = Recorder()
    started = time.monotonic()
    with pytest.raises(StageError, match=r"^stage 'worked' failed: RuntimeError: worker broke on 2$"):
        Pipeline([CountingSource(None, interval_s=0.001)], [stage, sink], metrics_interval_s=0,
                 stop_timeout_s=NEVER_S).run()  # fmt: skip
    assert time.monotonic() - started < 3
    assert sink.stream_errors == ["RuntimeError: worker broke on 2"]


# -- stop, interrupt, draining --------------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_stop_wakes_a_source_waiting_on_its_stop_event() -> None:
    source = EventSource(3, hold=True)
    sink = Collect()
    pipeline = Pipeline([source], [sink], metrics_interval_s=0)
    threading.Timer(0.2, pipeline.stop).start()
    started = time.monotonic()
    report = pipeline.run()
    assert time.monotonic() - started < 1.5 and report.status == "ok" and pipeline.stopping
    assert frames_of(sink, "ev") == [0, 1, 2] and sink.finished.is_set()


@pytest.mark.timeout(10)
def test_after_a_stop_stages_drain_for_stop_timeout_then_drop_the_rest() -> None:
    blocker = Blocker(at=0)
    sink = Collect()
    pipeline = Pipeline([CountingSource(10)], [blocker, sink], metrics_interval_s=0, stop_timeout_s=0.3)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    assert blocker.reached.wait(5)
    wait_until(lambda: pipeline.links[0].sent == 10, 5, "all 10 frames queued before the blocked stage")
    pipeline.stop()
    threading.Timer(0.6, blocker.release.set).start()  # after the stop timeout: the queue is dropped
    runner.join(5)
    assert not runner.is_alive()
    # the frame in progress is finished and passed on, but the sink's stop timeout is over too
    assert frames_of(sink) == [] and pipeline.links[0].dropped == 9 and pipeline.links[1].dropped == 1
    assert blocker.finished.is_set() and sink.finished.is_set()


@pytest.mark.timeout(10)
def test_within_the_stop_timeout_queued_frames_are_still_processed() -> None:
    blocker = Blocker(at=0)
    sink = Collect()
    pipeline = Pipeline([CountingSource(10)], [blocker, sink], metrics_interval_s=0, stop_timeout_s=NEVER_S)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    assert blocker.reached.wait(5)
    wait_until(lambda: pipeline.links[0].sent == 10, 5, "all 10 frames queued before the blocked stage")
    pipeline.stop()
    blocker.release.set()
    runner.join(5)
    assert not runner.is_alive() and frames_of(sink) == list(range(10))


@pytest.mark.timeout(10)
def test_interrupts_stop_then_drop_then_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    blocker = Blocker(at=0)
    sink = Collect()
    pipeline = Pipeline([CountingSource(10)], [blocker, sink], metrics_interval_s=0, stop_timeout_s=NEVER_S)
    result: list[RunReport] = []
    runner = threading.Thread(target=lambda: result.append(pipeline.run()))
    with caplog.at_level(logging.INFO, logger="stream.runner"):
        runner.start()
        assert blocker.reached.wait(5)
        wait_until(lambda: pipeline.links[0].sent == 10, 5, "all 10 frames queued before the blocked stage")
        pipeline.interrupt()
        assert pipeline.stopping
        pipeline.interrupt()  # the second drops what is queued, though the stop timeout is far away
        pipeline.interrupt()
        blocker.release.set()
        runner.join(5)
    assert not runner.is_alive() and result[0].status == "interrupted"
    assert frames_of(sink) == [] and pipeline.links[0].dropped == 9 and pipeline.links[1].dropped == 1
    assert sink.finished.is_set()
    assert caplog.messages == [
        "interrupted: stopping (press Ctrl-C again to drop queued frames)",
        "second interrupt: dropping queued frames; closing the outputs (kill -9 to abandon them)",
        "still closing the outputs; kill -9 abandons them",
    ]


@pytest.fixture
def signals_at_default() -> Iterator[None]:
    """SIGINT and SIGTERM at Python's defaults for the test (a background job starts with SIGINT ignored)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def signal_when_running(sink: Collect, sig: int) -> None:
    """Send ``sig`` to this process once a frame reached ``sink``: the run's handlers are in place.

    (A fixed delay raced the run's start on a loaded machine: a SIGTERM that came first killed
    the whole test process.)
    """

    def send() -> None:
        deadline = time.monotonic() + 8
        while not sink.frames:  # no signal if the run never starts: the test then fails on its timeout
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        os.kill(os.getpid(), sig)

    threading.Thread(target=send, daemon=True).start()


@pytest.mark.timeout(10)
@pytest.mark.usefixtures("signals_at_default")
def test_ctrl_c_during_run_interrupts_it_and_the_handler_is_restored_after() -> None:
    sink = Collect()
    pipeline = Pipeline([CountingSource(None, interval_s=0.001)], [sink], metrics_interval_s=0)
    signal_when_running(sink, signal.SIGINT)
    started = time.monotonic()
    report = pipeline.run()  # in the main thread, as the command-line tools run it
    assert time.monotonic() - started < 5 and report.status == "interrupted" and sink.finished.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.timeout(10)
@pytest.mark.usefixtures("signals_at_default")
def test_sigterm_during_run_interrupts_it_too() -> None:
    stray: list[int] = []  # a SIGTERM outside the run lands here instead of killing the test process

    def record(signum: int, _frame: object) -> None:
        stray.append(signum)

    signal.signal(signal.SIGTERM, record)
    sink = Collect()
    pipeline = Pipeline([CountingSource(None, interval_s=0.001)], [sink], metrics_interval_s=0)
    signal_when_running(sink, signal.SIGTERM)
    report = pipeline.run()
    assert report.status == "interrupted" and signal.getsignal(signal.SIGTERM) is record and not stray


@pytest.mark.timeout(10)
def test_an_ignored_ctrl_c_stays_ignored_during_a_run() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sink = Collect()
        pipeline = Pipeline([CountingSource(None, interval_s=0.001)], [sink], metrics_interval_s=0)
        threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGINT)).start()
        threading.Timer(0.6, pipeline.stop).start()
        report = pipeline.run()
        assert report.status == "ok"  # the SIGINT did nothing; the stop ended the run
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(15)
def test_a_stage_stuck_outside_its_outputs_is_abandoned_after_a_stop(caplog: pytest.LogCaptureFixture) -> None:
    blocker = Blocker(at=0)
    sink = Collect()
    pipeline = Pipeline([CountingSource(3)], [blocker, sink], metrics_interval_s=0, stop_timeout_s=0.1)
    threading.Timer(0.3, pipeline.stop).start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="stream.runner"):
        report = pipeline.run()
    took = time.monotonic() - started
    blocker.release.set()
    assert 0.3 + 0.2 + 3.0 - 0.1 <= took < 0.3 + 0.2 + 3.0 + 2.0  # 2 x stop timeout + 3 s, then given up
    assert report.status == "ok"
    assert "threads still running after stop, leaving them: stage-blocker" in caplog.messages
    assert "stage 'collect': upstream did not finish in time, closing" in caplog.messages
    assert sink.finished.is_set() and sink.closed  # the sink still finalised what it had


@pytest.mark.timeout(15)
def test_a_stage_writing_its_outputs_is_waited_for_however_long_it_takes() -> None:
    class SlowFinish(Collect):
        def finish(self) -> Outputs:
            time.sleep(4.0)  # a slow disk: longer than 2 x stop timeout + 3 s
            return super().finish()

    sink = SlowFinish()
    pipeline = Pipeline([CountingSource(None, interval_s=0.001)], [sink], metrics_interval_s=0, stop_timeout_s=0.1)
    threading.Timer(0.2, pipeline.stop).start()
    pipeline.run()
    assert sink.finished.is_set() and sink.closed


# -- construction ------------------------------------------------------------------------------------


def test_policies_default_to_lossless_for_files_and_each_stages_live_policy_when_live() -> None:
    class Display(Collect):
        live_policy = LIVE_DISPLAY

    class Writer(Collect):
        live_policy = LIVE_RECORDING

    stages = [Display("d"), Writer("w")]
    assert Pipeline([CountingSource(1)], stages).policies == [LOSSLESS, LOSSLESS]
    assert Pipeline([CountingSource(1), CountingSource(1, name="cam", live=True)], stages).policies == [
        LIVE_DISPLAY,
        LIVE_RECORDING,
    ]
    one = QueuePolicy("latest", 2)
    assert Pipeline([CountingSource(1)], stages, policies=one).policies == [one, one]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": []}, "a pipeline needs at least one source"),
        ({"stages": []}, "a pipeline needs at least one stage after its sources"),
        ({"stages": [Collect("x"), Collect("y"), Collect("x"), Collect("y")]},
         "pipeline element names must be unique, repeated: x, y"),
        ({"stages": [Collect("gen")]}, "pipeline element names must be unique, repeated: gen"),
        ({"policies": [LOSSLESS]}, "expected 2 queue policies (one per stage), got 1"),
        ({"addresses": ["inproc://only-one"]}, "expected 2 link addresses (one per stage), got 1"),
    ],
)  # fmt: skip
def test_an_invalid_pipeline_is_one_line_naming_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"sources": [CountingSource(1)], "stages": [Collect("a"), Collect("b")], **kwargs}
    with pytest.raises(ConfigError) as info:
        Pipeline(**args)
    assert str(info.value) == message


@pytest.mark.timeout(20)
def test_links_over_ipc_and_tcp_deliver_every_frame_and_the_end(tmp_path) -> None:
    # Over ipc/tcp libzmq drops what a receiver holds from a sender that disconnects: a sender
    # closing right after its end-of-stream lost the tail of the stream about one run in three,
    # and the next stage then waited for that end forever. Several runs make that visible.
    for run in range(6):
        sink = Collect()
        addresses = [f"ipc://{tmp_path}/first{run}", "tcp://127.0.0.1:*"]
        pipeline = Pipeline([CountingSource(20)], [Collect("a"), sink], addresses=addresses, metrics_interval_s=0)
        assert pipeline.addresses == addresses
        runner = threading.Thread(target=pipeline.run, daemon=True)
        runner.start()
        runner.join(2.5)
        if runner.is_alive():
            pipeline.stop()
            pytest.fail(f"run {run} did not end: the sink got {len(sink.frames)} of 20 frames")
        assert frames_of(sink) == list(range(20)) and sink.finished.is_set()
        assert (tmp_path / f"first{run}").exists()  # the link really ran over ipc
        assert pipeline.addresses[1].startswith("tcp://127.0.0.1:") and not pipeline.addresses[1].endswith("*")


def test_two_pipelines_get_their_own_links() -> None:
    first = Pipeline([CountingSource(1)], [Collect()])
    second = Pipeline([CountingSource(1)], [Collect()])
    assert len(set(first.addresses) | set(second.addresses)) == 2


def test_an_unwritable_metrics_path_is_refused_before_the_run(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="metrics"):
        Pipeline([CountingSource(1)], [Collect()], metrics_path=blocker / "metrics.json")


# -- report and metrics ------------------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_the_report_and_metrics_file_hold_the_counters_of_each_stage(tmp_path) -> None:
    class Counted(Collect):
        written: list[str]

        def metrics(self) -> dict[str, Any]:
            return {"clips": 7, "latency_ms": None}

        def finish(self) -> Outputs:
            self.written = [str(tmp_path / "out.mp4")]
            return super().finish()

    class BrokenMetrics(Collect):
        def metrics(self) -> dict[str, Any]:
            raise KeyError("not ready")

    path = tmp_path / "metrics.json"
    sink = BrokenMetrics("broken")
    started = time.monotonic()
    report = Pipeline(
        [CountingSource(12)], [Counted("counted", delay_s=0.002), sink], metrics_interval_s=0, metrics_path=path
    ).run()
    elapsed = time.monotonic() - started
    assert report.status == "ok" and report.error is None
    assert report.outputs == [str(tmp_path / "out.mp4"), str(path)]
    assert 0 < report.elapsed_s <= elapsed
    counted = report.stages["counted"]
    assert counted["frames"] == 12 and counted["errors"] == 0 and counted["clips"] == 7
    assert counted["queue_depth"] == 0 and counted["dropped"] == 0
    assert "latency_ms" in counted  # the stage's own counters, None included
    assert 2.0 <= counted["p50_ms"] <= counted["p95_ms"] < 1000  # each frame took at least 2 ms
    assert 0 < counted["fps"] <= 12 / (12 * 0.002)
    assert set(report.stages["broken"]) == {"frames", "fps", "p50_ms", "p95_ms", "errors", "queue_depth", "dropped"}
    assert set(report.stages["gen"]) == {"frames", "fps", "p50_ms", "p95_ms", "errors"}
    assert report.stages["gen"]["p50_ms"] is None and report.stages["gen"]["frames"] == 12
    saved = json.loads(path.read_text())
    assert list(saved) == ["status", "elapsed_s", "error", "outputs", "stages"]
    assert saved["status"] == "ok" and saved["error"] is None and saved["outputs"] == [str(tmp_path / "out.mp4")]
    assert saved["elapsed_s"] == round(report.elapsed_s, 3) > 0 and saved["stages"]["counted"]["clips"] == 7


@pytest.mark.timeout(5)
def test_a_failed_run_writes_its_metrics_unless_it_read_nothing(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "metrics.json"
    with pytest.raises(StageError) as info:
        Pipeline([CountingSource(10)], [FailAt(4), Collect()], metrics_interval_s=0, metrics_path=path).run()
    saved = json.loads(path.read_text())
    assert saved["status"] == "failed" and saved["error"] == "fail: ValueError: bad frame 4"
    assert "stage 'fail' failed: ValueError: bad frame 4" in caplog.messages
    assert info.value.report.outputs == [str(path)]  # type: ignore[attr-defined]

    nothing = tmp_path / "nothing.json"
    with pytest.raises(StageError):
        Pipeline([CountingSource(10, fail_at=0)], [Collect()], metrics_interval_s=0, metrics_path=nothing).run()
    assert not nothing.exists()


def test_stage_metrics_fps_counts_frames_over_time_and_over_the_last_window() -> None:
    metrics = StageMetrics("s", link=LinkStats(sent=5, received=2, dropped=1))
    metrics.started -= 2.0
    metrics._last_time -= 1.0
    metrics.frames = 10
    whole = metrics.snapshot()
    assert 4.5 <= whole["fps"] <= 5.0  # 10 frames in 2 s
    assert whole["queue_depth"] == 2 and whole["dropped"] == 1
    window = metrics.snapshot(window=True)
    assert 9.0 <= window["fps"] <= 10.0  # 10 frames in the last 1 s
    metrics.frames = 12
    metrics._last_time -= 1.0
    assert 1.8 <= metrics.snapshot(window=True)["fps"] <= 2.0  # 2 more frames in the next 1 s
    metrics.times_ms.extend([1.0, 2.0, 3.0, 4.0, 100.0])
    snap = metrics.snapshot()
    assert snap["p50_ms"] == 3.0 and snap["p95_ms"] == 80.8


@pytest.mark.timeout(10)
def test_metrics_are_logged_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    class Counted(Collect):
        def metrics(self) -> dict[str, Any]:
            return {"clips": 7, "latency_ms": None, "tracks": 2}

    pipeline = Pipeline([CountingSource(30, interval_s=0.01)], [Counted(delay_s=0.001)], metrics_interval_s=0.05)
    with caplog.at_level(logging.INFO, logger="stream.runner"):
        pipeline.run()  # 0.3 s: several intervals
    lines = [m for m in caplog.messages if m.startswith("collect:")]
    assert lines[-1].endswith(", errors 0, queue 0, dropped 0, clips 7, tracks 2"), lines[-1]
    assert re.fullmatch(r"collect: \d+\.\d fps, p50 \d+\.\d ms, p95 \d+\.\d ms, .*", lines[-1]), lines[-1]
    gen = next(m for m in caplog.messages if m.startswith("gen:"))
    assert gen.endswith(" fps, p50 - ms, p95 - ms, errors 0"), gen


@pytest.mark.timeout(10)
def test_no_metrics_are_logged_with_an_interval_of_zero(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="stream.runner"):
        Pipeline([CountingSource(20, interval_s=0.005)], [Collect()], metrics_interval_s=0).run()
    assert not [m for m in caplog.messages if " fps, " in m]


# -- second pass: the mutants of the whole module ----------------------------------------------------


class Clocked(Collect):
    """A sink whose every frame takes exactly ``step_s`` on a fake ``time.perf_counter``."""

    def __init__(self, clock: list[float], step_s: float) -> None:
        super().__init__("clocked")
        self.clock, self.step_s = clock, step_s

    def process(self, packet: FramePacket) -> Outputs:
        self.clock[0] += self.step_s
        return super().process(packet)


@pytest.mark.timeout(5)
def test_processing_times_are_reported_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # only the runner reads perf_counter (it times each frame's processing)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    report = Pipeline([CountingSource(5)], [Clocked(clock, 0.004)], metrics_interval_s=0).run()
    assert report.stages["clocked"]["p50_ms"] == report.stages["clocked"]["p95_ms"] == 4.0


@pytest.mark.timeout(5)
def test_the_logged_frame_rate_is_over_the_last_interval(caplog: pytest.LogCaptureFixture) -> None:
    sink = Collect()
    pipeline = Pipeline([EventSource(10, hold=True)], [sink], metrics_interval_s=0.05)
    runner = threading.Thread(target=pipeline.run)
    with caplog.at_level(logging.INFO, logger="stream.runner"):
        runner.start()
        try:
            wait_until(lambda: len(sink.frames) == 10, 3, "the 10 frames at the sink")
            seen = len(caplog.messages)
            # nothing arrives after the 10 frames: an interval later the logged rate is 0
            wait_until(
                lambda: any(m.startswith("collect: 0.0 fps") for m in caplog.messages[seen:]), 3, "a rate of 0.0 fps"
            )
        finally:
            pipeline.stop()
            runner.join(3)
    assert not runner.is_alive()


class StuckWorkerStage(Collect):
    """A stage whose worker's job blocks until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.started = threading.Event()
        self.release = threading.Event()
        self.worker: LatestPerKey[int, int] = LatestPerKey(self._run, name="job")

    def _run(self, items: list[int]) -> list[int]:
        self.started.set()
        self.release.wait(10)
        return items

    def workers(self) -> Sequence[LatestPerKey[Any, Any]]:
        return [self.worker]

    def process(self, packet: FramePacket) -> Outputs:
        self.worker.submit(packet.source_id, packet.frame_idx)
        self.started.wait(2)
        return super().process(packet)


@pytest.mark.timeout(8)
def test_a_worker_still_busy_after_the_stage_ended_is_left_running_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("stream.runner.WORKER_JOIN_S", 1.0)
    stage = StuckWorkerStage()
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="stream.runner"):
            report = Pipeline([CountingSource(3)], [stage], metrics_interval_s=0, stop_timeout_s=NEVER_S).run()
        took = time.monotonic() - started
        assert report.status == "ok" and stage.closed and frames_of(stage) == [0, 1, 2]
        assert 1.0 <= took < 4.0  # waited WORKER_JOIN_S for the worker, not for its job
        assert "stage 'stuck': worker 'job' still busy after 1 s, leaving it" in caplog.messages
        assert any(t.name == "stuck-job" and t.daemon for t in threading.enumerate())  # it cannot delay the exit
    finally:
        stage.release.set()


class ThreadsSource(CountingSource):
    """Records, while it runs, the name and daemon flag of every thread of the process."""

    threads: dict[str, bool]

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        self.threads = {t.name: t.daemon for t in threading.enumerate()}
        yield from super().__iter__()


@pytest.mark.timeout(5)
def test_each_thread_of_a_run_is_named_after_its_element_and_cannot_hold_the_process_open() -> None:
    # the names are what a thread dump (py-spy dump, faulthandler) of a hung run shows
    source = ThreadsSource(2, name="cam")
    Pipeline([source], [Collect("first"), Collect("last")], metrics_interval_s=5).run()
    assert {name: source.threads.get(name) for name in ("source-cam", "stage-first", "stage-last", "metrics")} == {
        "source-cam": True,
        "stage-first": True,
        "stage-last": True,
        "metrics": True,
    }


@pytest.mark.timeout(5)
def test_the_metrics_file_is_indented_for_people_to_read(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    Pipeline([CountingSource(2)], [Collect()], metrics_interval_s=0, metrics_path=path).run()
    assert path.read_text().startswith('{\n  "status": "ok",\n  "elapsed_s": ')


@pytest.mark.timeout(5)
def test_a_metrics_file_that_cannot_be_written_at_the_end_is_logged_and_left_out_of_the_outputs(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    pipeline = Pipeline([CountingSource(3)], [Collect()], metrics_interval_s=0, metrics_path=folder / "metrics.json")
    folder.rmdir()  # a folder when the pipeline was built, a file when the run ends
    folder.write_text("")
    with caplog.at_level(logging.ERROR, logger="stream.runner"):
        report = pipeline.run()
    assert report.status == "ok" and report.outputs == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"cannot write {folder / 'metrics.json'}: "), errors


@pytest.mark.timeout(10)
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_runs_one_after_another_do_not_leak_open_files() -> None:
    # each run has its own ZeroMQ context (an I/O thread and its file descriptors), ended with the
    # run, not when the pipeline object is collected: the caller may keep it (its metrics, links)
    kept = [Pipeline([CountingSource(3)], [Collect("a"), Collect("b")], metrics_interval_s=0)]
    kept[0].run()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        kept.append(Pipeline([CountingSource(3)], [Collect("a"), Collect("b")], metrics_interval_s=0))
        kept[-1].run()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


class StuckSource(CountingSource):
    """Yields one frame, then hangs in a read that ignores the stop (until ``release`` is set)."""

    def __init__(self, name: str) -> None:
        super().__init__(1, name=name)
        self.release = threading.Event()

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        yield from super().__iter__()
        self.release.wait(10)


@pytest.mark.timeout(20)
def test_after_a_stop_hung_sources_are_given_up_at_twice_the_stop_timeout_and_abandoned_3_s_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 1 s steps with 0.9 s of slack: a loaded machine may wake a thread late, but a wrong
    # factor or constant (3x the timeout, 4 s later) is a whole step off
    timeout_s = 1.0
    slack = 0.9
    sources = [StuckSource(f"cam{k}") for k in range(3)]
    sink = Collect()
    pipeline = Pipeline(sources, [sink], metrics_interval_s=0, stop_timeout_s=timeout_s)
    result: list[RunReport] = []
    runner = threading.Thread(target=lambda: result.append(pipeline.run()))
    try:
        with caplog.at_level(logging.WARNING, logger="stream.runner"):
            runner.start()
            wait_until(lambda: len(sink.frames) == 3, 3, "a frame of each source at the sink")
            pipeline.stop()
            stopped = time.monotonic()
            # the sink stops waiting for the sources' end and finalises its output
            assert sink.finished.wait(3)
            assert 2 * timeout_s - 0.05 <= time.monotonic() - stopped < 2 * timeout_s + slack
            runner.join(5)
            took = time.monotonic() - stopped
            # then run() returns, leaving the hung sources behind (daemon threads: the process can exit)
            assert not runner.is_alive() and result[0].status == "ok"
            assert 2 * timeout_s + 3.0 - 0.05 <= took < 2 * timeout_s + 3.0 + slack
        assert "threads still running after stop, leaving them: source-cam0, source-cam1, source-cam2" in (
            caplog.messages
        )
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("source-cam"))
    finally:
        for source in sources:
            source.release.set()
        runner.join(5)


def test_stage_metrics_round_rates_to_hundredths_and_times_to_microseconds() -> None:
    metrics = StageMetrics("s")
    metrics.frames = 10
    metrics.started -= 3.0
    metrics._last_time -= 0.5
    assert metrics.snapshot()["fps"] == 3.33  # 10 frames in 3 s
    assert 19.9 <= metrics.snapshot(window=True)["fps"] <= 20.0  # 10 frames in the last 0.5 s
    quick = StageMetrics("quick")
    quick.frames = 10
    quick.started -= 0.5
    assert 19.9 <= quick.snapshot()["fps"] <= 20.0  # under a second is not rounded up to one
    metrics.times_ms.extend([1.23456, 2.0])
    snap = metrics.snapshot()
    assert (snap["p50_ms"], snap["p95_ms"]) == (1.617, 1.962)


@pytest.mark.timeout(5)
def test_a_stage_whose_counters_fail_is_logged_at_debug_level_by_name(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenMetrics(Collect):
        def metrics(self) -> dict[str, Any]:
            raise KeyError("not ready")

    with caplog.at_level(logging.DEBUG, logger="stream.runner"):
        report = Pipeline([CountingSource(2)], [BrokenMetrics("broken")], metrics_interval_s=0).run()
    assert report.stages["broken"]["frames"] == 2
    assert "metrics of broken failed: 'not ready'" in caplog.messages


def test_an_unwritable_metrics_path_is_refused_with_one_line_naming_it(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError) as info:
        Pipeline([CountingSource(1)], [Collect()], metrics_path=blocker / "out.json")
    assert str(info.value) == f"cannot write metrics {blocker / 'out.json'}: {blocker} is not a folder"


def test_the_defaults_log_metrics_every_5_s_make_the_first_error_fatal_and_drain_for_1_s() -> None:
    pipeline = Pipeline([CountingSource(1)], [Collect()])
    assert (pipeline.metrics_interval_s, pipeline.max_errors, pipeline.stop_timeout_s) == (5.0, 0, 1.0)


@pytest.mark.timeout(5)
def test_a_policy_per_link_is_kept_in_link_order_and_the_run_uses_it() -> None:
    latest = QueuePolicy("latest", 4)
    sink = Collect()
    pipeline = Pipeline([CountingSource(5)], [Collect("a"), sink], policies=[LOSSLESS, latest], metrics_interval_s=0)
    assert pipeline.policies == [LOSSLESS, latest]
    result: list[RunReport] = []
    runner = threading.Thread(target=lambda: result.append(pipeline.run()), daemon=True)
    runner.start()
    runner.join(3)
    if runner.is_alive():
        pipeline.stop()
        pytest.fail("the run did not end")
    assert result[0].status == "ok" and sink.finished.is_set()
    first = pipeline.stages[0]
    assert isinstance(first, Collect) and frames_of(first) == list(range(5))  # lossless
    got = frames_of(sink)  # latest: what the sink was too slow for is replaced, the last frame is kept
    assert got == sorted(set(got)) and got[-1] == 4
