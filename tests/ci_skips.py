"""Under ``CI=true`` a skipped test is a failed test, unless it needs hardware CI lacks.

CI (``.ci/run``) installs every optional thing the tests use (MMAction2 as the parity
reference, GStreamer's RTSP server, ffmpeg, opencv-doc, Xvfb), so a skip there means a
test silently did not run. The only skips kept are those whose reason says the test needs
a GPU / CUDA or TensorRT (see :func:`skip_allowed_in_ci`).

``tests/conftest.py`` imports the hooks below; other runs load them with ``-p tests.ci_skips``.
Deselection (``-m "not slow"``) is not a skip and is not affected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import Any

import pytest

_ALLOWED = re.compile(r"\b(gpus?|cuda|tensorrt)\b", re.IGNORECASE)


def strict_skips() -> bool:
    """True when the environment variable ``CI`` is ``true`` (any case)."""
    return os.environ.get("CI", "").lower() == "true"


def skip_allowed_in_ci(reason: str) -> bool:
    """Whether a skip with this reason may stay a skip under ``CI=true``.

    Only the hardware CI machines lack: a GPU (CUDA) or TensorRT, named as a word.
    """
    return bool(_ALLOWED.search(reason))


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_if_not_allowed(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not strict_skips():
        return
    reason = _skip_reason(report)
    if skip_allowed_in_ci(reason):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where only skips that need a GPU/CUDA or TensorRT are allowed: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Skips in setup (skipif marks, fixtures) and in the test body (``pytest.skip``, ``importorskip``)."""
    report = yield
    _fail_if_not_allowed(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Module-level skips (``importorskip`` at import time, ``skip(allow_module_level=True)``)."""
    report = yield
    _fail_if_not_allowed(report)
    return report
