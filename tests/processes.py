"""Starting the project's commands as child processes that Ctrl-C can reach."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
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
