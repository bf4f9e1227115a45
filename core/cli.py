"""The one exit-code contract of every command line (``stream.*``, ``engines.*``).

:func:`run_main` runs a job and turns what it raises into one line on stderr and an exit
code, never a traceback:

* 0 — done;
* 1 — a failure while running (a stage crashed; the message names the stage);
* 2 — bad input: a missing or unreadable file, a wrong flag or config key, an unreachable
  camera, a checkpoint that does not fit (:attr:`ActionStreamError.user_error`, or an
  ``OSError`` such as a permission error on an output);
* 130 — interrupted (Ctrl-C, or SIGTERM as ``docker stop`` / systemd send it): outputs are
  closed and valid, as far as the run got.

A job returns :data:`EXIT_INTERRUPTED` itself when its pipeline was interrupted and stopped
gracefully; an interrupt that reaches :func:`run_main` is mapped to the same code.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
import typing
from collections.abc import Callable

from core.errors import ActionStreamError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

QUIET_LIBRARIES = ("mmengine", "matplotlib", "PIL")


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """INFO logging on stderr (DEBUG with ``-v``, WARNING with ``-q``); noisy libraries at WARNING."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def one_line(message: object) -> str:
    """A message on one line, whatever it holds."""
    return " ".join(str(message).split())


def exit_code_of(exc: BaseException) -> tuple[int, str]:
    """The exit code and the message for an error that ended a job."""
    if isinstance(exc, ActionStreamError):
        if exc.user_error:
            return EXIT_BAD_INPUT, one_line(exc)
        cause = exc.__cause__
        if isinstance(cause, ActionStreamError) and cause.user_error:
            return EXIT_BAD_INPUT, one_line(cause)  # bad input found while running, e.g. a corrupt frame
        return EXIT_FAILED, one_line(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return EXIT_BAD_INPUT, one_line(f"{exc.strerror or exc}{where}")
    raise exc


def run_main(job: Callable[[], int], prog: str | None = None) -> int:
    """Run ``job`` under the exit-code contract of this module.

    SIGTERM stops the job as Ctrl-C does: sources stop, queued frames are drained and every
    output is closed valid.

    Args:
        job: The work; returns its exit code.
        prog: Prefix of the error line (e.g. ``python -m engines.build``); default ``error:``.

    Returns:
        The process exit code.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    before = set(threading.enumerate())
    code = _run_job(job, prog)
    _exit_past_stuck_threads(code, before)
    return code


def _run_job(job: Callable[[], int], prog: str | None) -> int:
    prefix = f"{prog}: error:" if prog else "error:"
    try:
        return job()
    except KeyboardInterrupt:
        print(f"{prog + ': ' if prog else ''}interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ActionStreamError, OSError) as exc:
        code, message = exit_code_of(exc)
        print(f"{prefix} {message}", file=sys.stderr)
        return code


#: Thread name prefixes of the runner's stage and source threads.
RUNNER_THREADS = ("stage-", "source-")
#: Packages whose ``python -m`` commands may leave past stuck threads.
COMMAND_PACKAGES = ("stream.", "engines.")


def _exit_past_stuck_threads(code: int, before: set[threading.Thread]) -> None:
    """Leave with ``os._exit`` when the runner had to abandon stage threads stuck in native code.

    Such threads (a network read that never returns, an engine call that hangs) were given up
    on only after every output was finalised or abandoned (see ``Pipeline._wait``); letting
    the interpreter shut down under them can abort the process (``terminate called without an
    active exception``, exit code 134) instead of returning ``code``. Only in a command
    (``python -m stream.…``), never when a job runs inside another program (tests).
    """
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is None or not str(main_spec.name).startswith(COMMAND_PACKAGES):
        return
    stuck = [
        t.name for t in threading.enumerate() if t not in before and t.is_alive() and t.name.startswith(RUNNER_THREADS)
    ]
    if stuck and threading.current_thread() is threading.main_thread():
        logging.getLogger("stream").warning("leaving %d stuck thread(s): %s", len(stuck), ", ".join(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ------------------------------------------------------------------ argparse types


def number(
    *, minimum: float | None = None, above: float | None = None, maximum: float | None = None
) -> Callable[[str], float]:
    """argparse type: a finite float within the bounds (``above`` is exclusive)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum:g}, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"expected a number > {above:g}, got {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"expected a number <= {maximum:g}, got {text!r}")
        return value

    return parse


def integer(*, minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: an int within the bounds."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
        return value

    return parse


#: argparse type: a finite number > 0.
positive = number(above=0)
#: argparse type: a score between 0 and 1.
score = number(minimum=0, maximum=1)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``prog: error: argument --x: ...``), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see --help)\n")
