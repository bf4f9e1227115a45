"""Waiting for something to happen, with a deadline, instead of sleeping a fixed time.

A fixed ``time.sleep`` is either too short on a loaded machine (the test fails) or too long
everywhere else (the suite is slow). :func:`wait_until` polls until the thing happened and
fails with what it was waiting for when it did not happen in time.

Example::

    records = wait_until(lambda: read_records(health), 30, "a health record for each camera")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Args:
        predicate: Checked at once, then every ``interval_s`` seconds. An exception it
            raises ends the wait (e.g. "the process under test exited").
        timeout_s: How long to wait before failing the test.
        what: What the test waits for, as words; the failure message names it.
        interval_s: Seconds between checks.

    Returns:
        The predicate's first truthy value.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}", pytrace=False)
        time.sleep(interval_s)


def jsonl_records(dest: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines output, while it is written or once it is in place.

    Outputs are written to a hidden ``.NAME.partial-PID-N.EXT`` beside ``dest`` and renamed
    in place when the run ends (``core/files.py``); this reads whichever exists now. A line
    still being written is left out.
    """
    stem, _, ext = dest.name.rpartition(".")
    paths = [dest] if dest.exists() else sorted(dest.parent.glob(f".{stem}.partial-*.{ext}"))
    records = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # renamed into place between the glob and the read
            return jsonl_records(dest) if dest.exists() else []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
