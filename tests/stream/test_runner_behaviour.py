"""The runner ends every run: several sources all drain, a failing middle stage stops it quickly.

A hang here would otherwise show only as pytest's global 300 s timeout; each test has its
own short one.
"""

from __future__ import annotations

import time

import pytest

from stream.errors import StageError
from stream.runner import Pipeline
from tests.stream.helpers import Collect, CountingSource, FailAt

LENGTHS = {"short": 5, "mid": 40, "long": 120}


def sources() -> list[CountingSource]:
    # The longest source is also the slowest, so it is still sending when the others have ended.
    return [
        CountingSource(LENGTHS["short"], name="short"),
        CountingSource(LENGTHS["mid"], name="mid", interval_s=0.001),
        CountingSource(LENGTHS["long"], name="long", interval_s=0.002),
    ]


@pytest.mark.timeout(20)
def test_every_frame_of_every_source_reaches_the_sink() -> None:
    sink = Collect()
    started = time.monotonic()
    report = Pipeline(sources(), [Collect("middle"), sink], metrics_interval_s=0).run()
    assert time.monotonic() - started < 10
    for name, n in LENGTHS.items():
        assert [i for s, i in sink.frames if s == name] == list(range(n)), name
    assert report.status == "ok" and sink.finished.is_set() and sink.closed


@pytest.mark.timeout(20)
def test_a_failing_middle_stage_ends_the_run_and_the_sink_gets_its_end() -> None:
    sink = Collect()
    source_list = sources()
    started = time.monotonic()
    with pytest.raises(StageError, match="stage 'fail' failed: ValueError: bad frame 3"):
        Pipeline(source_list, [Collect("first"), FailAt(3), sink], metrics_interval_s=0).run()
    assert time.monotonic() - started < 5
    assert sink.finished.is_set() and sink.closed  # end-of-stream reached the sink: it finalised
    assert all(source.closed for source in source_list)
    assert all(i < 3 for _, i in sink.frames)  # nothing after the failing frame
