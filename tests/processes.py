"""Starting the project's commands as child processes that Ctrl-C can reach."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any


def _default_sigint() -> None:
    # A shell runs background jobs with SIGINT ignored, and children inherit that; Python
    # then never raises KeyboardInterrupt. Tests that send SIGINT must not depend on how
    # the test run itself was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    """``subprocess.Popen(cmd, text=True, stdout/stderr=PIPE, **kwargs)`` with SIGINT at its default."""
    return subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint, **kwargs
    )


def interrupt(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 30) -> tuple[str, str]:
    """Send ``sig`` and wait for the process to end; kill it (and fail) if it does not in time.

    Returns:
        Its stdout and stderr.
    """
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not stop within {timeout} s of signal {sig}:\n{err[-3000:]}") from None


class Watched:
    """A child process whose stderr is read as it comes, so a test can act on observed progress.

    Example::

        with Watched([sys.executable, "-m", "stream.play", ...], env=env) as proc:
            proc.wait_for("writing ")          # the log line, not a fixed sleep
            proc.send(signal.SIGINT)
            rc, err = proc.finish()
    """

    def __init__(self, cmd: Sequence[str], **kwargs: Any) -> None:
        import threading

        self.proc = spawn(cmd, **kwargs)
        self._text = ""
        self._cond = threading.Condition()
        self._done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read(1):
            with self._cond:
                self._text += chunk
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._text

    def wait_for(self, needle: str | Callable[[str], bool], timeout: float = 60) -> None:
        """Wait until stderr contains ``needle`` (or ``needle(stderr)`` is true); fail after ``timeout``."""
        import time

        test = (lambda text: needle in text) if isinstance(needle, str) else needle
        deadline = time.monotonic() + timeout
        with self._cond:
            while not test(self._text):
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    self.proc.kill()
                    raise AssertionError(f"{needle!r} never appeared (exit {self.proc.poll()}):\n{self._text[-3000:]}")
                self._cond.wait(left)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the process to end; kill it (and fail) if it does not in time.

        Returns:
            Its exit code and its whole stderr.
        """
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.proc.args} did not end within {timeout} s:\n{self.stderr[-3000:]}") from None
        self._reader.join(timeout=10)
        return rc, self.stderr

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
