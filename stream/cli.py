"""Shared plumbing of the command-line entry points: logging, flags, error reporting.

Every entry point runs its job through :func:`run_main`, which turns the project's
errors into one clear line on stderr and an exit code, never a traceback:

* 0 — done (also after Ctrl-C: outputs are closed and valid);
* 1 — a stage failed while running (the message names it);
* 2 — bad input: a missing file, an unreachable camera, a wrong config key…
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from stream.errors import ActionStreamError, StageError, StreamError
from stream.runner import Pipeline, RunReport
from stream.stage import Source, Stage
from stream.transport import LOSSLESS, QueuePolicy

log = logging.getLogger("stream")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # Third-party libraries are noisy at INFO.
    for name in ("mmengine", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags every entry point shares."""
    parser.add_argument("--metrics", metavar="FILE.json", help="write per-stage metrics (fps, p50/p95, drops) here")
    parser.add_argument("--metrics-interval", type=float, default=5.0, metavar="S", help="log metrics every S seconds")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def add_drawing_args(parser: argparse.ArgumentParser) -> None:
    """MMAction2's drawing flags."""
    parser.add_argument("--font-scale", type=float, default=None, help="label font scale (default: from frame height)")
    parser.add_argument("--font-color", default="white", help="label colour: a name, #rrggbb or b,g,r")


def policies_for(stages: Sequence[Stage], live: bool) -> list[QueuePolicy]:
    """Link policies of a chain: lossless for files; each stage's ``live_policy`` for live sources."""
    return [s.live_policy if live else LOSSLESS for s in stages]


def run_with_outputs(
    sources: Sequence[Source],
    stages: list[Stage],
    args: argparse.Namespace,
    *,
    live: bool,
    window: str,
    include_frames: str,
) -> RunReport:
    """Append the usual outputs (``--out-file``, ``--events``, ``--show``) and run the pipeline.

    Returns:
        The run's report.
    """
    from stream.sinks import DisplaySink, JsonlSink, VideoWriterSink

    stages = list(stages)
    if args.out_file:
        stages.append(VideoWriterSink(args.out_file, fps=args.output_fps))
    if args.events:
        stages.append(JsonlSink(args.events, include_frames=include_frames))  # type: ignore[arg-type]
    display = None
    if args.show:
        display = DisplaySink(window, fps_cap=args.drawing_fps)
        stages.append(display)
    pipeline = Pipeline(
        sources,
        stages,
        policies=policies_for(stages, live),
        metrics_interval_s=args.metrics_interval,
        metrics_path=args.metrics,
        max_frames=args.max_frames,
    )
    if display is not None:
        display.on_quit = pipeline.stop
    return pipeline.run()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_main(job: Callable[[], int]) -> int:
    """Run a job and map errors to exit codes with a one-line message.

    SIGTERM (``kill``, ``docker stop``, systemd) stops the job as Ctrl-C does: sources stop,
    queued frames are drained and every output is closed valid.

    Returns:
        The process exit code.
    """
    from engines.errors import EngineError

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return job()
    except StageError as exc:
        cause = exc.__cause__
        if isinstance(cause, (StreamError, EngineError)) and cause.user_error:
            print(f"error: {cause}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ActionStreamError as exc:  # StreamError, EngineError and core's ConfigError / OutputError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.user_error else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_OK
