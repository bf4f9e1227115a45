"""Runner-owned stage workers: newest item per key, batches across keys, failures fail the stage."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from stream.errors import StageError
from stream.packet import FramePacket
from stream.runner import Pipeline
from stream.stage import Outputs, Stage
from stream.worker import LatestPerKey
from tests.stream.helpers import Collect, CountingSource


def test_newest_item_per_key_wins_and_drops_are_counted() -> None:
    release = threading.Event()
    seen: list[list[str]] = []

    def run(items: list[str]) -> list[str]:
        release.wait(5)
        seen.append(items)
        return [f"done {i}" for i in items]

    worker: LatestPerKey[str, str] = LatestPerKey(run, max_batch=4)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    worker.submit("a", "a1")
    thread.start()
    deadline = time.monotonic() + 5
    while worker.pending() and not worker._busy and time.monotonic() < deadline:  # a1 taken into a batch
        time.sleep(0.005)
    assert not worker.submit("a", "a2")  # a1 is running: a2 waits
    assert worker.submit("a", "a3")  # a2 not started: replaced by the newer a3
    worker.submit("b", "b1")
    release.set()
    deadline = time.monotonic() + 5
    while worker.done < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    worker.wake()
    thread.join(5)
    assert seen == [["a1"], ["a3", "b1"]]  # the newest of a, batched with b
    assert worker.dropped == 1
    assert worker.take("a") == ["done a1", "done a3"] and worker.take("a") == []
    assert worker.take("b") == ["done b1"]


class WorkerStage(Stage):
    """Submits every frame to a worker that fails on the first frame at or after ``fail_at``."""

    def __init__(self, fail_at: int | None) -> None:
        super().__init__("infer")
        self.fail_at = fail_at
        self.worker: LatestPerKey[int, int] = LatestPerKey(self._run, name="job")
        self.results: list[int] = []

    def _run(self, items: list[int]) -> list[int]:
        if self.fail_at is not None and max(items) >= self.fail_at:
            raise RuntimeError(f"engine broke on frame {max(items)}")
        return [i * 10 for i in items]

    def workers(self) -> Sequence[LatestPerKey[int, int]]:
        return (self.worker,)

    def process(self, packet: FramePacket) -> Outputs:
        self.worker.submit(packet.source_id, packet.frame_idx)
        self.results += self.worker.take(packet.source_id)
        return packet


@pytest.mark.timeout(30)
def test_a_failing_worker_fails_its_stage_within_seconds() -> None:
    sink = Collect()
    start = time.monotonic()
    with pytest.raises(StageError, match="stage 'infer' failed: RuntimeError: engine broke on frame"):
        Pipeline([CountingSource(None)], [WorkerStage(fail_at=5), sink], metrics_interval_s=0).run()
    assert time.monotonic() - start < 10
    assert sink.finished.is_set() and sink.closed


@pytest.mark.timeout(30)
def test_worker_results_reach_the_stage_and_its_thread_ends() -> None:
    stage = WorkerStage(fail_at=None)
    before = {t.name for t in threading.enumerate()}
    Pipeline([CountingSource(200)], [stage, Collect()], metrics_interval_s=0).run()
    assert stage.results and all(r % 10 == 0 for r in stage.results)
    assert stage.worker.done == len(stage.results) + len(stage.worker.take("gen"))
    leftover = {t.name for t in threading.enumerate()} - before
    assert not any(name.startswith("infer-") for name in leftover), leftover
