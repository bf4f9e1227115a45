"""Background work of a stage whose thread, errors and drop-stale policy the runner owns.

A stage that must not hold frames back while a slow job runs (live inference: the display
keeps flowing while the model works) hands the job to a :class:`LatestPerKey` worker it
lists in :meth:`~stream.stage.Stage.workers`. The runner starts one thread per worker after
the stage's ``setup()``, stops and joins it after ``finish()``, and treats an exception in
it as a failure of the stage (the pipeline stops; ``run()`` raises ``StageError`` naming the
stage). The stage only submits items and takes results:

* :meth:`LatestPerKey.submit` keeps the newest item per key (a camera, a person): an item not
  yet started when a newer one of its key arrives is dropped and counted (stale clips);
* the thread takes up to ``max_batch`` items of different keys at once and runs them in one
  call (one engine batch for several cameras);
* :meth:`LatestPerKey.take` hands a key's finished results to the stage.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Seconds the worker thread waits for work before checking for a stop.
IDLE_WAIT_S = 0.1


class LatestPerKey(Generic[T, R]):
    """Runs ``fn`` on the newest submitted item of each key, in batches, in a runner-owned thread.

    Args:
        fn: ``fn(items) -> results``, one result per item, in order.
        max_batch: Most items per call.
        name: For thread names and logs.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 1, name: str = "worker") -> None:
        self.fn = fn
        self.max_batch = max(1, int(max_batch))
        self.name = name
        self._cond = threading.Condition()
        self._mailbox: dict[Hashable, T] = {}
        self._results: defaultdict[Hashable, list[R]] = defaultdict(list)
        self._busy = False
        #: Items replaced by a newer one of their key before they were started.
        self.dropped = 0
        #: Items run.
        self.done = 0

    # ------------------------------------------------------------------ stage side

    def submit(self, key: Hashable, item: T) -> bool:
        """Queue ``item`` as the newest of ``key``. Returns True if it replaced an unstarted one."""
        with self._cond:
            replaced = key in self._mailbox
            if replaced:
                self.dropped += 1
            self._mailbox[key] = item
            self._cond.notify()
        return replaced

    def take(self, key: Hashable) -> list[R]:
        """The finished results of ``key`` since the last call (oldest first)."""
        with self._cond:
            return self._results.pop(key, [])

    def pending(self) -> int:
        """Items waiting or running."""
        with self._cond:
            return len(self._mailbox) + int(self._busy)

    # ------------------------------------------------------------------ runner side

    def serve(self, stop: threading.Event) -> None:
        """Run batches until ``stop`` is set; an exception of ``fn`` propagates to the runner."""
        while True:
            with self._cond:
                while not self._mailbox and not stop.is_set():
                    self._cond.wait(IDLE_WAIT_S)
                if stop.is_set():
                    return
                keys = list(self._mailbox)[: self.max_batch]
                items = [self._mailbox.pop(k) for k in keys]
                self._busy = True
            try:
                results = self.fn(items)
            finally:
                with self._cond:
                    self._busy = False
            if len(results) != len(items):
                raise RuntimeError(f"worker {self.name!r}: {len(items)} items gave {len(results)} results")
            with self._cond:
                for key, result in zip(keys, results, strict=True):
                    self._results[key].append(result)
                self.done += len(items)

    def wake(self) -> None:
        """Wake the thread (after its stop event was set)."""
        with self._cond:
            self._cond.notify_all()
