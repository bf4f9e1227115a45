import json
import threading
import time

import pytest

from stream.errors import ConfigError, StageError
from stream.runner import Pipeline
from stream.transport import QueuePolicy
from tests.stream.helpers import Collect, CountingSource, FailAt

# Runner faults must end the run, not hang it: a hang is a failure within 30 s.
pytestmark = pytest.mark.timeout(30)


def test_frames_flow_in_order_and_metrics_are_written(tmp_path) -> None:
    sink = Collect()
    path = tmp_path / "metrics.json"
    report = Pipeline([CountingSource(50)], [Collect("middle"), sink], metrics_interval_s=0, metrics_path=path).run()
    assert [i for _, i in sink.frames] == list(range(50))
    assert sink.finished.is_set() and sink.closed
    assert report.status == "ok"
    saved = json.loads(path.read_text())
    assert saved["stages"]["middle"]["frames"] == 50 and saved["stages"]["gen"]["frames"] == 50
    assert saved["stages"]["collect"]["dropped"] == 0 and saved["stages"]["collect"]["p95_ms"] is not None


def test_a_crashing_stage_stops_the_pipeline_and_names_itself() -> None:
    sink = Collect()
    start = time.monotonic()
    with pytest.raises(StageError, match="stage 'fail' failed: ValueError: bad frame 10") as info:
        Pipeline([CountingSource(None)], [FailAt(10), sink], metrics_interval_s=0).run()
    assert time.monotonic() - start < 5
    # Downstream got end-of-stream and flushed what it had (partial outputs stay valid).
    assert sink.finished.is_set() and sink.closed
    assert [i for _, i in sink.frames] == list(range(10))
    assert info.value.stage == "fail" and info.value.report.status == "failed"  # type: ignore[attr-defined]


def test_a_crashing_source_ends_the_stream_with_an_error() -> None:
    source = CountingSource(100, fail_at=5)
    sink = Collect()
    with pytest.raises(StageError, match="source broke at frame 5"):
        Pipeline([source], [sink], metrics_interval_s=0).run()
    assert len(sink.frames) == 5 and sink.finished.is_set() and source.closed


def test_setup_failure_is_fatal_and_does_not_hang() -> None:
    class BadSetup(Collect):
        def setup(self) -> None:
            raise FileNotFoundError("model.onnx not found")

    with pytest.raises(StageError, match=r"model\.onnx not found"):
        Pipeline([CountingSource(None)], [BadSetup("bad"), Collect()], metrics_interval_s=0, stop_timeout_s=0.2).run()


def test_tolerated_errors_drop_frames_and_are_counted() -> None:
    sink = Collect()
    report = Pipeline([CountingSource(20)], [FailAt(3), sink], metrics_interval_s=0, max_errors=1).run()
    assert [i for _, i in sink.frames] == [i for i in range(20) if i != 3]
    assert report.stages["fail"]["errors"] == 1


def test_stop_ends_an_endless_source_within_a_second() -> None:
    sink = Collect(delay_s=0.01)
    pipeline = Pipeline([CountingSource(None, interval_s=0.001)], [sink], metrics_interval_s=0)
    threading.Timer(0.3, pipeline.stop).start()
    start = time.monotonic()
    report = pipeline.run()
    assert time.monotonic() - start < 0.3 + 1.5
    assert report.status == "ok" and sink.finished.is_set() and len(sink.frames) > 5


def test_several_sources_fan_in_and_all_must_end() -> None:
    sink = Collect()
    sources = [CountingSource(30, name="a"), CountingSource(20, name="b", interval_s=0.002)]
    Pipeline(sources, [sink], metrics_interval_s=0).run()
    assert sorted(i for s, i in sink.frames if s == "a") == list(range(30))
    assert sorted(i for s, i in sink.frames if s == "b") == list(range(20))
    # each source's frames stay in order
    assert [i for s, i in sink.frames if s == "b"] == list(range(20))


def test_live_source_with_slow_consumer_drops_instead_of_lagging() -> None:
    # 200 frames/s into a 20 frames/s stage: a lossless queue would lag by ever more frames.
    sink = Collect(delay_s=0.05)
    source = CountingSource(100, interval_s=0.005, live=True)
    report = Pipeline([source], [sink], metrics_interval_s=0).run()
    seen = [i for _, i in sink.frames]
    assert report.stages["collect"]["dropped"] > 50
    assert len(seen) + report.stages["collect"]["dropped"] == 100
    assert seen == sorted(seen) and seen[-1] == 99  # the newest frame is never the one dropped


def test_file_source_with_slow_consumer_is_lossless() -> None:
    sink = Collect(delay_s=0.002)
    report = Pipeline([CountingSource(100)], [sink], metrics_interval_s=0).run()
    assert len(sink.frames) == 100 and report.stages["collect"]["dropped"] == 0


def test_latest_policy_for_display() -> None:
    sink = Collect(delay_s=0.03)
    Pipeline(
        [CountingSource(60, interval_s=0.002)], [sink], policies=QueuePolicy("latest", 1), metrics_interval_s=0
    ).run()
    assert 0 < len(sink.frames) < 30 and sink.frames[-1][1] == 59


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sources": [], "stages": [Collect()]}, "at least one source"),
        ({"sources": [CountingSource(1)], "stages": []}, "at least one stage"),
        ({"sources": [CountingSource(1)], "stages": [Collect(), Collect()]}, "unique"),
        ({"sources": [CountingSource(1)], "stages": [Collect()], "policies": [QueuePolicy()] * 2}, "1 queue policies"),
    ],
)
def test_invalid_pipelines(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Pipeline(**kwargs)
