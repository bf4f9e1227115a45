"""JsonlSink, line by line: the exact lines each ``include_frames`` mode writes, stdout, append
mode, and what happens to the destination when a write, the close or the rename fails (it is
written whole or not at all, and an existing file is never truncated: docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.errors import SinkError
from stream.packet import Detections, FramePacket, Prediction, SourceEvent
from stream.sinks import JsonlSink

OLD = '{"type":"event","kind":"earlier run"}\n'


def frame(i: int, *, predicted: bool = False, detections: Detections | None = None) -> FramePacket:
    image = np.zeros((4, 6, 3), np.uint8)
    predictions = [Prediction([3, 1], [0.75, 0.25], ("waving", "clapping"), 0.0, 0.4, 99)] if predicted else []
    return FramePacket(image, "cam", i, 2 * i, Fraction(1, 50), 1000 + i, detections=detections,
                       predictions=predictions, meta={"fps": 25.0})  # fmt: skip


def boxes() -> Detections:
    return Detections(np.array([[1, 2, 10, 20]]), np.array([0.5]), np.array([2]), np.array([7]))


EVENT = SourceEvent("cam", "connected", "rtsp up", 12.5)
EVENT_LINE = '{"type":"event","source_id":"cam","kind":"connected","message":"rtsp up","wall_time":12.5}'
PREDICTION = (
    '"predictions":[{"labels":["waving","clapping"],"label_ids":[3,1],"scores":[0.75,0.25],'
    '"start_s":0.0,"end_s":0.4,"capture_ns":99,"track_id":null}]'
)


def line(i: int, *, predicted: bool = False, detections: int = 0, extra: str = "") -> str:
    return (
        f'{{"type":"frame","source_id":"cam","frame_idx":{i},"pts":{2 * i},"time_s":{round(0.04 * i, 6)!r},'
        f'"capture_ns":{1000 + i},"detections":{detections},"poses":0,'
        + (PREDICTION if predicted else '"predictions":[]')
        + extra
        + ',"meta":{"fps":25.0}}'
    )


def run(sink: JsonlSink, *items: FramePacket | SourceEvent) -> None:
    sink.setup()
    try:
        for item in items:
            if isinstance(item, SourceEvent):
                assert sink.on_event(item) is item
            else:
                assert sink.process(item) is item
        assert sink.finish() is None
    finally:
        sink.close()


class FailingFile:
    """A text file whose ``write`` (from the ``fail_at``-th call) or ``close`` fails like a full disk."""

    def __init__(self, file: Any, fail_at: int | None = None, fail_close: bool = False) -> None:
        self.file, self.fail_at, self.fail_close, self.calls = file, fail_at, fail_close, 0

    def write(self, text: str) -> int:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.file.write(text))

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        if self.fail_close:
            raise OSError(errno.EIO, "Input/output error")


# -- the lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        ("predictions", [EVENT_LINE, line(1, predicted=True)]),
        ("all", [EVENT_LINE, line(0), line(1, predicted=True), line(2, detections=1)]),
        ("none", [EVENT_LINE]),
    ],
)
def test_each_mode_writes_exactly_these_lines(tmp_path: Path, include: Any, expected: list[str]) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path, include_frames=include)
    run(sink, EVENT, frame(0), frame(1, predicted=True), frame(2, detections=boxes()))
    assert path.read_text() == "".join(f"{t}\n" for t in expected)
    assert sink.lines == len(expected) and sink.written == [path]


def test_boxes_and_people_are_added_only_when_asked(tmp_path: Path) -> None:
    box = ',"boxes":[{"xyxy":[1.0,2.0,10.0,20.0],"score":0.5,"label":2,"track_id":7}]'
    person = ',"people":[{"track_id":7,"box":[1.0,2.0,10.0,20.0],"score":0.5,"keypoints":null}]'
    for include, include_boxes, extra in [
        ("all", True, box),
        ("people", False, person),
        ("people", True, box + person),
        ("all", False, ""),
    ]:
        path = tmp_path / f"{include}-{include_boxes}.jsonl"
        run(JsonlSink(path, include_frames=include, include_boxes=include_boxes), frame(0, detections=boxes()))
        assert path.read_text() == line(0, detections=1, extra=extra) + "\n", (include, include_boxes)


def test_event_data_is_part_of_its_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    run(JsonlSink(path), SourceEvent("cam", "track_lost", "", 3.0, data={"track_id": 4}))
    assert json.loads(path.read_text()) == {"type": "event", "source_id": "cam", "kind": "track_lost",
                                            "message": "", "wall_time": 3.0, "data": {"track_id": 4}}  # fmt: skip


def test_dash_writes_to_stdout_and_leaves_it_open(capsys: pytest.CaptureFixture[str]) -> None:
    sink = JsonlSink("-", include_frames="all")
    assert sink.path == "-"
    sink.setup()
    assert sink.writing_path is None
    sink.on_event(EVENT)
    sink.process(frame(0))
    sink.finish()
    sink.close()
    print("still open")
    assert capsys.readouterr().out == f"{EVENT_LINE}\n{line(0)}\nstill open\n"
    assert sink.written == [] and sink.lines == 2 and not Path("-").exists()


# -- whole or not at all -----------------------------------------------------------------------


def test_lines_go_to_a_hidden_file_that_finish_puts_in_place(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "deep" / "er" / "r.jsonl"  # parent folders are created
    sink = JsonlSink(path)
    assert sink.writing_path is None
    sink.setup()
    hidden = sink.writing_path
    assert hidden is not None and hidden.parent == path.parent and hidden.name.startswith(".r.partial-")
    sink.on_event(EVENT)
    assert hidden.read_text() == EVENT_LINE + "\n" and not path.exists()
    with caplog.at_level(logging.INFO, logger="stream.sinks.jsonl"):
        sink.finish()
    assert path.read_text() == EVENT_LINE + "\n" and not hidden.exists() and sink.written == [path]
    assert sink.writing_path is None
    assert f"wrote 1 result lines to {path}" in caplog.messages
    sink.close()  # a second close does nothing
    assert sink.written == [path] and path.read_text() == EVENT_LINE + "\n"
    with pytest.raises(SinkError, match=r"^JsonlSink: write\(\) before setup\(\) or after close\(\)$"):
        sink.on_event(EVENT)


def test_a_run_that_received_nothing_keeps_the_old_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(OLD)
    sink = JsonlSink(path)
    with caplog.at_level(logging.WARNING, logger="stream.sinks.jsonl"):
        run(sink)
    assert path.read_text() == OLD and sink.written == [] and sorted(tmp_path.iterdir()) == [path]
    assert caplog.messages == [f"{path}: nothing arrived, no results written"]


def test_frames_that_get_no_line_still_replace_the_old_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(OLD)
    sink = JsonlSink(path, include_frames="none")
    with caplog.at_level(logging.WARNING, logger="stream.sinks.jsonl"):
        run(sink, frame(0), frame(1, predicted=True))
    assert path.read_text() == "" and sink.written == [path] and sink.lines == 0
    assert caplog.messages == []


def test_a_failed_write_keeps_the_old_file_whole(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(OLD)
    sink = JsonlSink(path, include_frames="all")
    sink.setup()
    sink._file = FailingFile(sink._file, fail_at=2)
    sink.on_event(EVENT)
    with pytest.raises(SinkError) as info:
        sink.process(frame(0))
    assert str(info.value) == f"cannot write results to {path}: [Errno 28] No space left on device"
    assert sink.lines == 1
    with caplog.at_level(logging.WARNING, logger="stream.sinks.jsonl"):
        sink.close()
    assert path.read_text() == OLD and sink.written == [] and sorted(tmp_path.iterdir()) == [path]
    assert caplog.messages == []


def test_a_failed_close_keeps_the_old_file_whole(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(OLD)
    sink = JsonlSink(path)
    sink.setup()
    sink._file = FailingFile(sink._file, fail_close=True)
    sink.on_event(EVENT)
    with caplog.at_level(logging.WARNING, logger="stream.sinks.jsonl"):
        sink.close()
    assert path.read_text() == OLD and sink.written == [] and sorted(tmp_path.iterdir()) == [path]
    assert caplog.messages == [f"closing {path} failed: [Errno 5] Input/output error"]


def test_a_failed_rename_is_one_sink_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path)
    sink.setup()
    sink.on_event(EVENT)
    path.mkdir()  # something took the name while the run went on
    with pytest.raises(SinkError) as info:
        sink.finish()
    assert str(info.value) == f"cannot write {path}: Is a directory"
    assert sink.written == [] and sorted(tmp_path.iterdir()) == [path] and not any(path.iterdir())


def test_setup_errors_are_sink_errors_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(SinkError) as info:
        JsonlSink(folder).setup()
    assert str(info.value) == f"results {folder} is a folder; expected a file path"

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("stream.sinks.jsonl.open", refuse, raising=False)
    path = tmp_path / "r.jsonl"
    with pytest.raises(SinkError) as info:
        JsonlSink(path).setup()
    assert str(info.value) == f"cannot write results to {path}: Too many open files"


# -- append ------------------------------------------------------------------------------------


def test_append_adds_lines_in_place_as_they_come(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(OLD)
    sink = JsonlSink(path, append=True, include_frames="all")
    sink.setup()
    assert sink.writing_path is None  # opened by the first line
    sink.on_event(EVENT)
    assert sink.writing_path == path and path.read_text() == OLD + EVENT_LINE + "\n"
    sink.process(frame(0))
    sink.finish()
    sink.close()
    assert path.read_text() == OLD + f"{EVENT_LINE}\n{line(0)}\n"
    assert sink.written == [path] and sink.lines == 2 and sorted(tmp_path.iterdir()) == [path]


def test_append_with_frames_but_no_lines_touches_nothing_and_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, append=True, include_frames="none")
    run(sink, frame(0))
    assert not path.exists() and sink.written == []


def test_append_that_cannot_open_its_file_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path, append=True)
    sink.setup()
    path.mkdir()  # the name became a folder after setup
    with pytest.raises(SinkError) as info:
        sink.on_event(EVENT)
    assert str(info.value) == f"cannot write results to {path}: Is a directory"
    with pytest.raises(SinkError, match=r"before setup\(\) or after close\(\)"):
        sink.on_event(EVENT)
    sink.close()
    assert sink.lines == 0 and path.is_dir()


def test_write_before_setup_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(str(path), name="results")
    assert sink.name == "results" and sink.path == path and isinstance(sink.path, Path)
    with pytest.raises(SinkError, match=r"^results: write\(\) before setup\(\) or after close\(\)$"):
        sink.on_event(EVENT)
    assert not path.exists() and sink.lines == 0
