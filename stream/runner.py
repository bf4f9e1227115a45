"""The stage runner: threads, sockets, start-up order, end-of-stream, errors, metrics.

``Pipeline(sources, stages).run()`` runs each source and each stage in its own thread,
linked by ZeroMQ PUSH/PULL sockets (``inproc://`` by default). All sources feed the
first stage; each stage feeds the next. The runner, not the stages, owns

* end-of-stream: every thread sends :class:`EndOfStream` downstream in ``finally``,
  so a crashed stage never leaves the others waiting;
* errors: an exception in a stage stops the pipeline and ``run()`` raises
  :class:`StageError` naming the stage (after downstream stages flushed what they had;
  the stages before it drop what they hold at once, since nothing would read it);
* shutdown: :meth:`Pipeline.stop` (or Ctrl-C / SIGTERM) stops the sources at once; the
  other stages get ``stop_timeout_s`` to drain, then drop what is left and finish. A
  second Ctrl-C drops what is queued at once, but the sinks still finalise their files
  (encoder flushed, MP4 index written, plots complete): ``run()`` never returns while a
  stage is writing its outputs. Further Ctrl-Cs are ignored (``kill -9`` abandons them);
* metrics: frames/s, processing time p50/p95, queue depth and drops per stage, logged
  every ``metrics_interval_s`` and returned (and optionally written as JSON) at the end.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from core.files import check_writable
from core.files import write_text as write_text_atomic
from stream.errors import ConfigError, OutputError, StageError
from stream.packet import EndOfStream, FramePacket, SourceEvent
from stream.stage import Source, Stage, as_outputs
from stream.transport import LOSSLESS, POLL_MS, LinkStats, QueuePolicy, Receiver, Sender
from stream.worker import LatestPerKey

log = logging.getLogger(__name__)
_ids = itertools.count()
_TIMING_WINDOW = 2048  # processing times kept per stage for percentiles
#: Seconds the runner waits for a stage's worker to finish its current job after the stage finished.
WORKER_JOIN_S = 10.0


def _remote(address: str) -> bool:
    """Whether a link leaves the process's memory (ipc/tcp), where a disconnect loses queued messages."""
    return not address.startswith("inproc://")


@dataclass
class StageMetrics:
    """Counters of one source or stage. Updated by its thread, read by the monitor."""

    name: str
    link: LinkStats | None = None  # the link this stage reads from (None for sources)
    extra: Callable[[], dict[str, Any]] | None = None  # the stage's own counters
    frames: int = 0
    errors: int = 0
    times_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=_TIMING_WINDOW))
    started: float = field(default_factory=time.monotonic)
    _last_frames: int = 0
    _last_time: float = field(default_factory=time.monotonic)

    def snapshot(self, *, window: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        times = np.fromiter(self.times_ms, dtype=np.float64) if self.times_ms else np.zeros(0)
        if window:
            fps = (self.frames - self._last_frames) / max(now - self._last_time, 1e-9)
            self._last_frames, self._last_time = self.frames, now
        else:
            fps = self.frames / max(now - self.started, 1e-9)
        out: dict[str, Any] = {
            "frames": self.frames,
            "fps": round(fps, 2),
            "p50_ms": round(float(np.percentile(times, 50)), 3) if len(times) else None,
            "p95_ms": round(float(np.percentile(times, 95)), 3) if len(times) else None,
            "errors": self.errors,
        }
        if self.link is not None:
            out["queue_depth"] = self.link.depth
            out["dropped"] = self.link.dropped
        if self.extra is not None:
            try:
                out.update(self.extra())
            except Exception as exc:  # metrics must never break a run
                log.debug("metrics of %s failed: %s", self.name, exc)
        return out


@dataclass
class RunReport:
    """What a run did: ``status`` is ``ok``, ``interrupted`` or ``failed``.

    ``outputs`` lists the files the stages put in place (complete and valid), as reported
    by each stage's ``written`` attribute; an output missing from it was not written.
    """

    status: str
    elapsed_s: float
    stages: dict[str, dict[str, Any]]
    error: str | None = None
    outputs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "elapsed_s": round(self.elapsed_s, 3),
            "error": self.error,
            "outputs": self.outputs,
            "stages": self.stages,
        }


class Pipeline:
    """Sources feeding a chain of stages, each in its own thread.

    Args:
        sources: one or more sources; all feed the first stage.
        stages: processing stages and sinks, in order.
        policies: queue policy per link (link ``i`` feeds ``stages[i]``), or one policy for
            all links. Default: lossless for file sources, each stage's ``live_policy`` when any
            source is live.
        addresses: ZeroMQ address per link; default ``inproc://`` addresses. A tcp address with a
            wildcard port (``tcp://127.0.0.1:*``) gets a free port when the run starts.
        metrics_interval_s: how often per-stage metrics are logged (0 disables the log).
        metrics_path: where to write the final metrics JSON, if anywhere (checked now,
            written atomically at the end, also after a failure, but not when the run failed
            before reading a frame: a bad input writes nothing).
        max_errors: frames a stage may fail on (each dropped and counted) before its error
            becomes fatal; 0 makes the first error fatal.
        stop_timeout_s: after a stop, how long stages may drain before dropping what is left.
        max_frames: end each source after this many frames (``--max-frames``), whatever its kind.

    Raises:
        ConfigError: For an invalid combination of arguments.
        OutputError: If ``metrics_path`` cannot be written.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        stages: Sequence[Stage],
        *,
        policies: QueuePolicy | Sequence[QueuePolicy] | None = None,
        addresses: Sequence[str] | None = None,
        metrics_interval_s: float = 5.0,
        metrics_path: str | Path | None = None,
        max_errors: int = 0,
        stop_timeout_s: float = 1.0,
        max_frames: int | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames: expected a positive number of frames, got {max_frames}")
        self.max_frames = max_frames
        if not sources:
            raise ConfigError("a pipeline needs at least one source")
        if not stages:
            raise ConfigError("a pipeline needs at least one stage after its sources")
        names = [s.name for s in sources] + [s.name for s in stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"pipeline element names must be unique, repeated: {', '.join(dupes)}")
        self.sources = list(sources)
        self.stages = list(stages)
        n_links = len(self.stages)
        if policies is None:
            live = any(s.live for s in self.sources)
            self.policies = [s.live_policy if live else LOSSLESS for s in self.stages]
        elif isinstance(policies, QueuePolicy):
            self.policies = [policies] * n_links
        else:
            if len(policies) != n_links:
                raise ConfigError(f"expected {n_links} queue policies (one per stage), got {len(policies)}")
            self.policies = list(policies)
        pid = next(_ids)
        self.addresses = list(addresses) if addresses else [f"inproc://pipeline{pid}-link{i}" for i in range(n_links)]
        if len(self.addresses) != n_links:
            raise ConfigError(f"expected {n_links} link addresses (one per stage), got {len(self.addresses)}")
        self.links = [LinkStats() for _ in range(n_links)]
        self.metrics = {s.name: StageMetrics(s.name) for s in self.sources}
        for i, stage in enumerate(self.stages):
            self.metrics[stage.name] = StageMetrics(stage.name, link=self.links[i], extra=stage.metrics)
        self.metrics_interval_s = metrics_interval_s
        self.metrics_path = Path(metrics_path) if metrics_path else None
        if self.metrics_path is not None:
            check_writable(self.metrics_path, "metrics")
        self.max_errors = max_errors
        self.stop_timeout_s = stop_timeout_s
        self._ctx = zmq.Context()
        self._stop = threading.Event()
        self._stop_time: float | None = None
        self._abort = threading.Event()  # stages stop waiting for upstream and finish
        self._hurry = threading.Event()  # second interrupt: drop what is queued at once
        self._lock = threading.RLock()  # RLock: a signal handler may run while the main thread holds it
        self._failure: tuple[str, BaseException] | None = None
        self._stage_index = {stage.name: i for i, stage in enumerate(self.stages)}
        self._failed_stage: int | None = None  # the first stage, in chain order, that failed
        self._interrupted = False
        self._interrupts = 0
        self._finishing: set[str] = set()  # threads finalising their outputs (never abandoned)
        self._bound = [threading.Event() for _ in range(n_links)]

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the pipeline to stop: sources stop now, stages drain then finish."""
        with self._lock:
            if self._stop_time is None:
                self._stop_time = time.monotonic()
            self._stop.set()
        for source in self.sources:
            event = getattr(source, "stop_event", None)
            if event is not None:
                event.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def interrupt(self) -> None:
        """Ctrl-C / SIGTERM: the first stops the pipeline (stages drain, then finish); the second
        drops what is queued at once (outputs are still finalised); later ones are ignored.

        Safe to call from a signal handler: it never raises and returns at once.
        """
        self._interrupts += 1
        if self._interrupts == 1:
            self._interrupted = True
            log.info("interrupted: stopping (press Ctrl-C again to drop queued frames)")
            self.stop()
        elif self._interrupts == 2:
            self._hurry.set()
            log.warning("second interrupt: dropping queued frames; closing the outputs (kill -9 to abandon them)")
        else:
            log.warning("still closing the outputs; kill -9 abandons them")

    def _fail(self, name: str, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = (name, exc)
            index = self._stage_index.get(name)  # None for a source
            if index is not None and (self._failed_stage is None or index < self._failed_stage):
                self._failed_stage = index
        log.error("stage %r failed: %s: %s", name, type(exc).__name__, exc)
        self.stop()

    # -- threads ---------------------------------------------------------------------------

    def _run_source(self, source: Source) -> None:
        metrics = self.metrics[source.name]
        self._bound[0].wait()
        sender = self._sender(0)
        error: str | None = None
        try:
            source.setup()
            for item in source:
                if self._stop.is_set():
                    break
                sender.send(item)
                if isinstance(item, FramePacket):
                    metrics.frames += 1
                    if self.max_frames is not None and metrics.frames >= self.max_frames:
                        break
        except Exception as exc:  # the runner is the error boundary of every stage
            error = f"{type(exc).__name__}: {exc}"
            self._fail(source.name, exc)
        finally:
            try:
                source.close()
            except Exception as exc:
                log.warning("closing source %r failed: %s", source.name, exc)
            self._end(sender, 0, EndOfStream(source.source_id, error=error))

    def _run_stage(self, index: int, stage: Stage) -> None:
        metrics = self.metrics[stage.name]
        address = self.addresses[index]
        receiver = Receiver(
            self._ctx, address, self.policies[index], self.links[index], bind=True, acknowledging=_remote(address)
        )
        self.addresses[index] = receiver.address  # the port bound for a wildcard (tcp://127.0.0.1:*)
        self._bound[index].set()
        sender: Sender | None = None
        if index + 1 < len(self.stages):
            self._bound[index + 1].wait()
            sender = self._sender(index + 1)
        expected_eos = len(self.sources) if index == 0 else 1
        upstream_error: str | None = None
        error: str | None = None
        failed = False
        worker_stop = threading.Event()
        workers: list[tuple[LatestPerKey[Any, Any], threading.Thread]] = []
        try:
            stage.setup()
            for worker in stage.workers():
                thread = threading.Thread(
                    target=self._run_worker, args=(stage, worker, worker_stop), name=f"{stage.name}-{worker.name}",
                    daemon=True,
                )  # fmt: skip
                thread.start()
                workers.append((worker, thread))
            eos = 0
            while eos < expected_eos:
                packet = receiver.recv(POLL_MS)
                if packet is None:
                    if self._abort.is_set():
                        log.warning("stage %r: upstream did not finish in time, closing", stage.name)
                        break
                    continue
                if isinstance(packet, EndOfStream):
                    eos += 1
                    upstream_error = upstream_error or packet.error
                    continue
                if isinstance(packet, SourceEvent):
                    outputs = as_outputs(stage.on_event(packet))
                elif self._draining_over() or self._feeds_failed_stage(index) or self._failed_stage == index:
                    # (the last: this stage's worker failed; the stage itself raised otherwise)
                    self.links[index].add(dropped=1)
                    continue
                else:
                    outputs = self._process(stage, metrics, packet)
                self._send_outputs(index, sender, outputs)
            self._finishing.add(threading.current_thread().name)
            self._send_outputs(index, sender, as_outputs(stage.finish()))
        except Exception as exc:
            failed = True
            error = f"{type(exc).__name__}: {exc}"
            self._fail(stage.name, exc)
        finally:
            self._stop_workers(stage, workers, worker_stop)
            if self._failure is not None and self._failure[0] == stage.name and error is None:
                error = f"{type(self._failure[1]).__name__}: {self._failure[1]}"  # its worker failed
            self._finishing.add(threading.current_thread().name)
            stage.stream_error = error or upstream_error
            try:
                stage.close()
            except Exception as exc:
                if not failed:
                    error = f"{type(exc).__name__}: {exc}"
                    self._fail(stage.name, exc)
            if sender is not None:
                self._end(sender, index + 1, EndOfStream(stage.name, error=error or upstream_error))
            receiver.close()

    def _sender(self, link: int) -> Sender:
        """A sender into ``link``; over ipc/tcp it learns when its end-of-stream was read (:meth:`_end`)."""
        address = self.addresses[link]
        return Sender(
            self._ctx, address, self.policies[link], self.links[link], stop=self._stop, acknowledged=_remote(address)
        )

    def _end(self, sender: Sender, link: int, eos: EndOfStream) -> None:
        """Send end-of-stream into ``link`` and close the sender.

        Over ipc/tcp, libzmq discards what a receiver still holds from a sender that disconnects,
        so the sender first waits until the receiving stage has read its end-of-stream (or the
        pipeline stops); otherwise the tail of the stream and its end could be lost, and the
        receiving stage would wait for that end forever.
        """
        if sender.send(eos) and _remote(self.addresses[link]):
            sender.wait_acknowledged(math.inf)
        sender.close()

    def _run_worker(self, stage: Stage, worker: LatestPerKey[Any, Any], stop: threading.Event) -> None:
        try:
            worker.serve(stop)
        except Exception as exc:  # a stage's worker fails the stage, as the stage itself would
            self._fail(stage.name, exc)

    def _stop_workers(
        self, stage: Stage, workers: list[tuple[LatestPerKey[Any, Any], threading.Thread]], stop: threading.Event
    ) -> None:
        stop.set()
        for worker, thread in workers:
            worker.wake()
            thread.join(timeout=WORKER_JOIN_S)
            if thread.is_alive():
                log.warning(
                    "stage %r: worker %r still busy after %.0f s, leaving it", stage.name, worker.name, WORKER_JOIN_S
                )

    def _process(self, stage: Stage, metrics: StageMetrics, packet: FramePacket) -> list[Any]:
        start = time.perf_counter()
        try:
            outputs = as_outputs(stage.process(packet))
        except Exception as exc:
            metrics.errors += 1
            if metrics.errors > self.max_errors:
                raise
            log.warning(
                "stage %r dropped frame %d of %r: %s: %s (%d of %d tolerated errors)",
                stage.name, packet.frame_idx, packet.source_id, type(exc).__name__, exc,
                metrics.errors, self.max_errors,
            )  # fmt: skip
            return []
        metrics.times_ms.append((time.perf_counter() - start) * 1e3)
        metrics.frames += 1
        return outputs

    def _feeds_failed_stage(self, index: int) -> bool:
        """Whether a stage after ``index`` failed: what ``index`` makes can no longer be used."""
        failed = self._failed_stage
        return failed is not None and index < failed

    def _send_outputs(self, index: int, sender: Sender | None, outputs: list[Any]) -> None:
        """Pass a stage's outputs on, unless it has no next stage or a stage after it failed.

        A failed stage reads nothing more: each send to it would wait until it gives up.
        """
        if sender is None or self._feeds_failed_stage(index):
            return
        for out in outputs:
            sender.send(out)

    def _draining_over(self) -> bool:
        if self._hurry.is_set():
            return True
        stop_time = self._stop_time
        return stop_time is not None and time.monotonic() - stop_time > self.stop_timeout_s

    def _monitor(self) -> None:
        while not self._monitor_done.wait(self.metrics_interval_s):
            for name, m in self.metrics.items():
                s = m.snapshot(window=True)
                extra = f", queue {s['queue_depth']}, dropped {s['dropped']}" if "queue_depth" in s else ""
                known = {"frames", "fps", "p50_ms", "p95_ms", "errors", "queue_depth", "dropped"}
                extra += "".join(f", {k} {v}" for k, v in s.items() if k not in known and v is not None)
                p50 = "-" if s["p50_ms"] is None else f"{s['p50_ms']:.1f}"
                p95 = "-" if s["p95_ms"] is None else f"{s['p95_ms']:.1f}"
                log.info(
                    "%s: %.1f fps, p50 %s ms, p95 %s ms, errors %d%s", name, s["fps"], p50, p95, s["errors"], extra
                )

    # -- run -------------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Run until every source ends, a stage fails, or :meth:`stop` / Ctrl-C.

        Returns:
            The run's report (also written to ``metrics_path`` if set).

        Raises:
            StageError: If a source or stage failed; its ``report`` attribute holds the report.
        """
        with self._signals_stop_the_pipeline():
            return self._run()

    @contextlib.contextmanager
    def _signals_stop_the_pipeline(self) -> Iterator[None]:
        """While running in the main thread, Ctrl-C and SIGTERM call :meth:`interrupt`.

        A handler that only sets flags cannot be interrupted half-way, unlike a
        ``KeyboardInterrupt`` raised wherever the main thread happens to be (two Ctrl-Cs
        50 ms apart used to escape the wait and end the process under its threads). A
        signal ignored when the run starts (a background job's SIGINT) stays ignored.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[signal.Signals, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if handler is signal.SIG_IGN or handler is None:  # ignored, or a handler Python cannot restore
                continue
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: self.interrupt())
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> RunReport:
        started = time.monotonic()
        threads = [
            threading.Thread(target=self._run_stage, args=(i, s), name=f"stage-{s.name}", daemon=True)
            for i, s in enumerate(self.stages)
        ]
        threads += [
            threading.Thread(target=self._run_source, args=(s,), name=f"source-{s.name}", daemon=True)
            for s in self.sources
        ]
        self._monitor_done = threading.Event()
        monitor = threading.Thread(target=self._monitor, name="metrics", daemon=True)
        if self.metrics_interval_s > 0:
            monitor.start()
        for t in threads:
            t.start()
        self._wait(threads)
        self._monitor_done.set()
        if all(not t.is_alive() for t in threads):
            self._ctx.term()
        report = self._report(started)
        read = sum(self.metrics[s.name].frames for s in self.sources)
        if self.metrics_path is not None and not (self._failure is not None and read == 0):
            try:
                write_text_atomic(self.metrics_path, json.dumps(report.to_json(), indent=2))
            except OutputError as write_error:
                log.error("%s", write_error)
            else:
                report.outputs.append(str(self.metrics_path))
        if self._failure is not None:
            name, exc = self._failure
            err = StageError(name, f"{type(exc).__name__}: {exc}")
            err.report = report  # type: ignore[attr-defined]
            raise err from exc
        return report

    def _wait(self, threads: list[threading.Thread]) -> None:
        """Wait for every thread; after a stop, abandon only threads stuck outside finish/close.

        A stage finalising its outputs is always waited for (a slow disk, a big plot), so
        ``run()`` returns only once every output is complete or known not to be written.
        """
        while any(t.is_alive() for t in threads):
            try:
                for t in threads:
                    t.join(timeout=0.05)
                if self._stop_time is None:
                    continue
                since = time.monotonic() - self._stop_time
                if since > 2 * self.stop_timeout_s:
                    self._abort.set()
                if since > 2 * self.stop_timeout_s + 3.0:
                    alive = [t.name for t in threads if t.is_alive()]
                    if alive and not any(name in self._finishing for name in alive):
                        log.warning("threads still running after stop, leaving them: %s", ", ".join(alive))
                        return
            except KeyboardInterrupt:  # a handler of the caller's raised it (not the main thread's own)
                self.interrupt()

    def _report(self, started: float) -> RunReport:
        status = "failed" if self._failure else "interrupted" if self._interrupted else "ok"
        error = None
        if self._failure is not None:
            name, exc = self._failure
            error = f"{name}: {type(exc).__name__}: {exc}"
        stages = {name: m.snapshot() for name, m in self.metrics.items()}
        outputs = [str(path) for stage in self.stages for path in getattr(stage, "written", ())]
        return RunReport(
            status=status, elapsed_s=time.monotonic() - started, stages=stages, error=error, outputs=outputs
        )
