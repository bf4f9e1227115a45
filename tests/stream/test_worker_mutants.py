"""LatestPerKey behaviour that mutation testing found unchecked (docs/mutation.md).

Each test drives the worker the way the runner does: ``serve(stop)`` on a thread, items
submitted by the stage, results taken per key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from stream.worker import IDLE_WAIT_S, LatestPerKey

pytestmark = pytest.mark.timeout(30)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@contextmanager
def serving(worker: LatestPerKey) -> Iterator[threading.Thread]:
    """Runs ``worker.serve`` on a thread; stops and joins it on exit."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        worker.wake()
        thread.join(5)


@pytest.mark.parametrize(
    ("max_batch", "batches"),
    [(None, [["a"], ["b"], ["c"]]), (0, [["a"], ["b"], ["c"]]), (1, [["a"], ["b"], ["c"]]), (2, [["a", "b"], ["c"]])],
)
def test_each_call_gets_at_most_max_batch_items_and_one_by_default(
    max_batch: int | None, batches: list[list[str]]
) -> None:
    seen: list[list[str]] = []

    def run(items: list[str]) -> list[str]:
        seen.append(list(items))
        return items

    worker: LatestPerKey[str, str] = LatestPerKey(run) if max_batch is None else LatestPerKey(run, max_batch=max_batch)
    for key in "abc":
        worker.submit(key, key)
    with serving(worker):
        _wait_for(lambda: worker.done == 3)
    assert seen == batches


def test_a_fresh_worker_has_nothing_pending_and_drops_count_every_replaced_item() -> None:
    worker: LatestPerKey[int, int] = LatestPerKey(lambda items: items)
    assert worker.pending() == 0
    assert [worker.submit("cam", i) for i in range(4)] == [False, True, True, True]
    assert worker.dropped == 3
    assert worker.pending() == 1


def test_pending_counts_the_running_batch_until_it_finishes() -> None:
    started, release = threading.Event(), threading.Event()

    def run(items: list[str]) -> list[str]:
        started.set()
        release.wait(5)
        return items

    worker: LatestPerKey[str, str] = LatestPerKey(run)
    worker.submit("a", "a1")
    with serving(worker):
        assert started.wait(5)
        assert worker.pending() == 1  # a1 is running
        worker.submit("b", "b1")
        assert worker.pending() == 2  # a1 running, b1 waiting
        release.set()
        _wait_for(lambda: worker.done == 2)
        assert worker.pending() == 0
    assert worker.take("a") == ["a1"] and worker.take("b") == ["b1"]


def test_the_thread_notices_its_stop_event_without_being_woken() -> None:
    worker: LatestPerKey[int, int] = LatestPerKey(lambda items: items)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    time.sleep(IDLE_WAIT_S)  # the thread is waiting for work
    stop.set()  # no wake(): the idle wait must time out on its own
    thread.join(IDLE_WAIT_S * 20)
    alive = thread.is_alive()
    worker.wake()
    thread.join(5)
    assert not alive


@pytest.mark.parametrize(("kwargs", "name"), [({}, "'worker'"), ({"name": "pose"}, "'pose'")])
def test_a_function_returning_the_wrong_number_of_results_names_the_worker(kwargs: dict, name: str) -> None:
    worker: LatestPerKey[int, int] = LatestPerKey(lambda items: [], **kwargs)
    worker.submit("cam", 1)
    with pytest.raises(RuntimeError, match=f"^worker {name}: 1 items gave 0 results$"):
        worker.serve(threading.Event())
    assert worker.pending() == 0  # the failed batch is no longer counted as running
