"""``--show`` in a real X server (Xvfb): the window appears, and 'q' or closing it ends the run cleanly.

The rest of the display tests (tests/stream/test_sinks.py) replace OpenCV's GUI calls;
these run OpenCV's own Qt window, as a user sees it. The window is titled after the
command (``stream.play``) and is the only one on the test's private display.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MediaFactory
from tests.processes import Watched
from tests.waiting import jsonl_records, wait_until
from tests.x11 import Xvfb, close_window, find_window, press_key, x11_tools_missing

ROOT = Path(__file__).resolve().parents[2]
TITLE = "stream.play"
FRAMES = 240  # 10 s played in real time: the run only ends early if the user stops it


@pytest.fixture
def xvfb() -> Iterator[Xvfb]:
    reason = x11_tools_missing()
    if reason:
        pytest.skip(reason)
    with Xvfb() as server:
        yield server


@pytest.mark.timeout(90)
@pytest.mark.parametrize("action", ["quit-key", "escape", "close-window"])
def test_show_opens_a_window_and_the_user_ends_the_run(
    xvfb: Xvfb, media: MediaFactory, tmp_path: Path, action: str
) -> None:
    clip = media.video("long.mp4", frames=FRAMES, fps=24)
    events = tmp_path / "frames.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DISPLAY": xvfb.display}
    env.pop("WAYLAND_DISPLAY", None)
    cmd = [sys.executable, "-m", "stream.play", str(clip.path), "--realtime", "--show", "--events", str(events)]
    with Watched(cmd, cwd=ROOT, env=env) as proc:

        def running_window() -> int | None:
            if proc.proc.poll() is not None:
                raise AssertionError(f"stream.play exited with {proc.proc.returncode}:\n{proc.stderr[-3000:]}")
            return find_window(xvfb, TITLE)

        window = wait_until(running_window, 30, f"a window titled {TITLE!r} on {xvfb.display}")
        wait_until(lambda: len(jsonl_records(events)) >= 5, 30, "5 frames shown")
        asked = time.monotonic()
        if action == "close-window":
            close_window(xvfb, window)
        else:
            press_key(xvfb, window, {"quit-key": "q", "escape": "Escape"}[action])
        code, err = proc.finish(timeout=20)
    assert code == 0, err  # a user's stop is a clean end, not a failure
    assert "quit requested" in err and "ok:" in err, err
    assert time.monotonic() - asked < 10, err  # well before the clip's 10 s ran out
    shown = len(jsonl_records(events))
    assert 5 <= shown < FRAMES, err
    assert find_window(xvfb, TITLE) is None  # the window went away with the run
