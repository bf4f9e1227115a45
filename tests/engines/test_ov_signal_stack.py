"""OpenVINO engines released in any order or thread leave Ctrl-C / SIGTERM handling intact.

OpenVINO's CPU plugin replaces the signal stack of the thread that first loads it and unmaps
it when its Core is destroyed. With one Core per engine, engines released out of order or in
another thread (a pipeline stage, the garbage collector) left the main thread's signal stack
unmapped: the next Ctrl-C killed the process with a segmentation fault instead of running the
handler (the test suite itself died this way, always in the runner's signal tests, after the
engine tests had come and gone). The backends now share one Core that lives as long as the
process (:func:`engines.backends.ov.shared_core`). The scenario runs in a child process, so a
regression fails this test instead of killing the test run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCENARIO = textwrap.dedent(
    """
    import gc, os, signal, sys, threading
    import numpy as np
    import openvino as ov
    from openvino import opset8 as ops

    from engines.backends import InputSpec
    from engines.backends.ov import OpenVinoBackend, shared_core

    folder = sys.argv[1]
    x = ops.parameter([-1, 4], np.float32, name="x")
    ov.save_model(ov.Model([ops.relu(x)], [x], "tiny"), folder + "/model.xml")
    spec = InputSpec("x", "NC", (None, 4))

    first = OpenVinoBackend(folder + "/model.xml", spec)
    second = OpenVinoBackend(folder + "/model.xml", spec)
    assert first.core is second.core is shared_core()
    ones = np.ones((2, 4), np.float32)
    assert np.array_equal(first.infer(ones), ones) and np.array_equal(second.infer(-ones), 0 * ones)
    # released out of order, the first in another thread: the pattern that used to unmap
    # the main thread's signal stack
    box = [first]
    del first
    releaser = threading.Thread(target=box.clear)
    releaser.start()
    releaser.join()
    del second
    gc.collect()

    handled = []
    signal.signal(signal.SIGINT, lambda signum, frame: handled.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    print("handled", sorted(handled))
    """
)


@pytest.mark.timeout(60)
def test_signals_are_handled_after_engines_are_released_in_any_order_and_thread(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCENARIO, str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode != -signal.SIGSEGV, f"the signals crashed the process:\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"handled {sorted([int(signal.SIGINT), int(signal.SIGTERM)])}"
