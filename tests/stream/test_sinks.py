"""Sinks: video files decode with the right frames and timing, JSON lines and the results
feed arrive as written, the display refuses to start without a screen, and outputs stay
valid when a run stops early."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zmq

from stream.errors import ConfigError, DisplayUnavailable, SinkError, StageError
from stream.packet import Detections, FramePacket, Prediction, SourceEvent
from stream.runner import Pipeline
from stream.sinks import DisplaySink, JsonlSink, MultiSink, VideoWriterSink, ZmqPublisherSink
from stream.sinks import display as display_module
from stream.stage import Outputs, Source, Stage


def frame(
    i: int,
    *,
    pts: int | None = None,
    size: tuple[int, int] = (48, 64),
    time_base: Fraction = Fraction(1, 25),
    fps: float | None = 25.0,
    source_id: str = "cam",
    predictions: list[Prediction] | None = None,
) -> FramePacket:
    image = np.zeros((*size, 3), np.uint8)
    image[:, : (i * 7) % size[1]] = (40, 120, 200)  # a bar that grows, so frames differ
    image.flags.writeable = False
    meta: dict = {} if fps is None else {"fps": fps}
    return FramePacket(
        image, source_id, i, i if pts is None else pts, time_base, time.monotonic_ns(),
        detections=Detections([[1, 2, 10, 20]], [0.9], [0], [5]), predictions=predictions or [], meta=meta,
    )  # fmt: skip


def prediction(end_s: float = 1.0) -> Prediction:
    return Prediction([3, 1], [0.7, 0.2], ("waving", "clapping"), end_s - 1.0, end_s, time.monotonic_ns())


def probe(path: Path) -> tuple[int, tuple[int, int], list[float], float]:
    """Frames, (width, height), frame times and the stream's average rate of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        rate = float(stream.average_rate or 0)
    return len(frames), (frames[0].width, frames[0].height), [float(f.time) for f in frames], rate


def run_sink(sink: Stage, packets: list[FramePacket]) -> None:
    sink.setup()
    try:
        for p in packets:
            sink.process(p)
        sink.finish()
    finally:
        sink.close()


# -- video --------------------------------------------------------------------------------


def test_video_writer_frames_size_and_rate(tmp_path):
    path = tmp_path / "out.mp4"
    sink = VideoWriterSink(path)
    run_sink(sink, [frame(i) for i in range(30)])
    n, size, times, rate = probe(path)
    assert (n, size) == (30, (64, 48))
    assert rate == pytest.approx(25, rel=0.02)
    assert times[-1] == pytest.approx(29 / 25, abs=1e-3)
    assert sink.frames == 30


def test_video_writer_keeps_source_timing_across_dropped_frames(tmp_path):
    path = tmp_path / "dropped.mp4"
    kept = [i for i in range(40) if i % 4 != 1]  # a quarter dropped
    run_sink(VideoWriterSink(path), [frame(k, pts=100 + k) for k in kept])  # starts at pts 100
    n, _, times, _ = probe(path)
    assert n == len(kept)
    assert times == pytest.approx([k / 25 for k in kept], abs=1e-3)  # real timing, starting at 0


def test_video_writer_constant_rate_with_output_fps(tmp_path):
    path = tmp_path / "cfr.mp4"
    run_sink(VideoWriterSink(path, fps=10), [frame(k) for k in range(0, 40, 2)])
    n, _, times, rate = probe(path)
    assert n == 20 and rate == pytest.approx(10, rel=0.02)
    assert times == pytest.approx([i / 10 for i in range(20)], abs=1e-3)


def test_video_writer_derives_rate_from_timestamps(tmp_path):
    path = tmp_path / "derived.mp4"
    packets = [frame(i, pts=i * 40, time_base=Fraction(1, 1000), fps=None) for i in range(12)]
    run_sink(VideoWriterSink(path), packets)
    n, _, times, rate = probe(path)
    assert n == 12 and rate == pytest.approx(25, rel=0.02)
    assert times[-1] == pytest.approx(11 * 0.04, abs=1e-3)


def test_video_writer_timestamps_going_backwards_continue(tmp_path):
    path = tmp_path / "restart.mp4"
    packets = [frame(i) for i in range(5)] + [frame(5 + i, pts=i) for i in range(5)]  # source restarted
    run_sink(VideoWriterSink(path), packets)
    n, _, times, _ = probe(path)
    assert n == 10
    assert times == pytest.approx([i / 25 for i in range(10)], abs=1e-3)


@pytest.mark.parametrize(("size", "expected"), [((47, 63), (64, 48)), ((31, 64), (64, 32)), ((48, 21), (22, 48))])
def test_video_writer_pads_odd_sizes(tmp_path, size, expected):
    path = tmp_path / "odd.mp4"
    run_sink(VideoWriterSink(path), [frame(i, size=size) for i in range(5)])
    n, got, _, _ = probe(path)
    assert (n, got) == (5, expected)


def test_video_writer_resizes_to_the_first_size(tmp_path):
    path = tmp_path / "resized.mp4"
    packets = [frame(i) for i in range(4)] + [frame(4 + i, size=(96, 128)) for i in range(4)]
    run_sink(VideoWriterSink(path), packets)
    assert probe(path)[:2] == (8, (64, 48))


def test_video_writer_per_source_files(tmp_path):
    sink = VideoWriterSink(tmp_path / "out.mp4", per_source=True)
    run_sink(sink, [frame(i, source_id=sid) for i in range(6) for sid in ("cam/0", "cam/1")])
    assert sorted(p.name for p in sink.paths.values()) == ["out-cam_0.mp4", "out-cam_1.mp4"]
    for path in sink.paths.values():
        assert probe(path)[0] == 6
    single = VideoWriterSink(tmp_path / "single.mp4")
    run_sink(single, [frame(i, source_id=sid) for i in range(6) for sid in ("a", "b")])
    assert probe(tmp_path / "single.mp4")[0] == 6  # only the first source


def test_video_writer_unwritable_path_fails_at_setup(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "out.mp4"  # a folder that is a file
    sink = VideoWriterSink(path)
    with pytest.raises(SinkError, match=str(path)) as info:
        sink.setup()
    assert isinstance(info.value, OSError)
    sink.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"path": "out.nosuchformat"}, "extension"), ({"codec": "nosuchcodec"}, "nosuchcodec"),
     ({"codec": "aac"}, "not a video"), ({"pix_fmt": "nope"}, "pix_fmt")],
)  # fmt: skip
def test_video_writer_setup_errors(tmp_path, kwargs, match):
    path = tmp_path / kwargs.pop("path", "out.mp4")
    with pytest.raises(SinkError, match=match):
        VideoWriterSink(path, **kwargs).setup()


@pytest.mark.parametrize("kwargs", [{"fps": 0}, {"fps": float("nan")}, {"crf": 99}, {"bitrate": -1}])
def test_video_writer_rejects_bad_config(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        VideoWriterSink(tmp_path / "x.mp4", **kwargs)


def test_video_writer_close_without_finish_leaves_a_valid_file(tmp_path):
    path = tmp_path / "crashed.mp4"
    sink = VideoWriterSink(path)
    sink.setup()
    for i in range(7):
        sink.process(frame(i))
    sink.close()  # what the runner does when a stage fails
    sink.close()  # idempotent
    assert probe(path)[0] == 7


def test_video_writer_folder_blocked_after_setup(tmp_path):
    folder = tmp_path / "gone"
    sink = VideoWriterSink(folder / "out.mp4")
    sink.setup()
    assert not folder.exists()  # setup creates nothing
    folder.write_text("a file where the folder should be")
    for i in range(2):  # the same error again, without retrying or piling frames up
        with pytest.raises(SinkError, match=r"cannot open .*out\.mp4"):
            sink.process(frame(i))
    sink.close()


def test_video_writer_single_frame_and_no_frames(tmp_path):
    one = tmp_path / "one.mp4"
    run_sink(VideoWriterSink(one), [frame(0, fps=None)])  # rate unknown: the default is used
    assert probe(one)[0] == 1
    none = tmp_path / "none.mp4"
    run_sink(VideoWriterSink(none), [])
    assert not none.exists()


def test_video_writer_fragmented_mp4(tmp_path):
    path = tmp_path / "frag.mp4"
    run_sink(VideoWriterSink(path, fragmented=True), [frame(i) for i in range(10)])
    assert probe(path)[0] == 10


# -- partial output when the run stops early -----------------------------------------------


class BreakingSource(Source):
    """Yields ``n`` frames, then fails like a camera that was unplugged."""

    def __init__(self, n: int) -> None:
        super().__init__("cam")
        self.n = n

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        yield SourceEvent("cam", "opened", "synthetic", time.time())
        for i in range(self.n):
            yield frame(i)
        raise OSError("camera unplugged")


def test_outputs_stay_valid_when_the_source_fails(tmp_path):
    video, jsonl = tmp_path / "partial.mp4", tmp_path / "partial.jsonl"
    sinks = [VideoWriterSink(video), JsonlSink(jsonl, include_frames="all")]
    pipeline = Pipeline([BreakingSource(12)], sinks, metrics_interval_s=0)
    with pytest.raises(StageError, match="camera unplugged"):
        pipeline.run()
    n, size, _, _ = probe(video)
    assert (n, size) == (12, (64, 48))
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records[0]["type"] == "event" and records[0]["kind"] == "opened"
    assert [r["frame_idx"] for r in records[1:]] == list(range(12))


class Boom(Stage):
    def process(self, packet: FramePacket) -> Outputs:
        if packet.frame_idx == 5:
            raise RuntimeError("model crashed")
        return packet


def test_video_valid_when_a_stage_upstream_fails(tmp_path):
    video = tmp_path / "upstream.mp4"
    pipeline = Pipeline([BreakingSource(50)], [Boom(), VideoWriterSink(video)], metrics_interval_s=0)
    with pytest.raises(StageError, match="model crashed"):
        pipeline.run()
    assert probe(video)[0] == 5


# -- JSON lines ----------------------------------------------------------------------------


def test_jsonl_lines_are_flushed_as_written(tmp_path):
    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path)
    sink.setup()
    try:
        assert sink.on_event(SourceEvent("cam", "connected", "rtsp up", 12.5)) is not None
        for i in range(5):
            p = frame(i, predictions=[prediction(i / 25)] if i % 2 == 0 else None)
            assert sink.process(p) is p  # passes through
        assert not path.exists()  # renamed into place only when complete
        partial = sink.writing_path
        assert partial is not None and partial.parent == path.parent and partial.name.startswith(".results.")
        lines = partial.read_text().splitlines()  # read while the sink is still open
    finally:
        sink.close()
    assert path.read_text().splitlines() == lines and not partial.exists()
    records = [json.loads(line) for line in lines]
    assert [r["type"] for r in records] == ["event", "frame", "frame", "frame"]
    assert records[0] == {"type": "event", "source_id": "cam", "kind": "connected", "message": "rtsp up",
                          "wall_time": 12.5}  # fmt: skip
    first = records[1]
    assert first["frame_idx"] == 0 and first["source_id"] == "cam" and first["detections"] == 1
    assert first["predictions"][0]["labels"] == ["waving", "clapping"]
    assert first["meta"] == {"fps": 25.0} and "boxes" not in first


def test_jsonl_append_is_a_live_log_that_keeps_what_was_there(tmp_path):
    path = tmp_path / "monitor.jsonl"
    quiet = JsonlSink(path, append=True)  # a run that produces nothing creates nothing
    quiet.setup()
    quiet.close()
    assert not path.exists() and quiet.written == []
    path.write_text('{"type": "event", "kind": "earlier run"}\n')
    sink = JsonlSink(path, append=True)
    sink.setup()
    try:
        sink.on_event(SourceEvent("cam", "connected", "rtsp up", 1.0))
        live = path.read_text().splitlines()  # visible in place while the run goes on
    finally:
        sink.close()
    assert [json.loads(line)["kind"] for line in live] == ["earlier run", "connected"]
    assert path.read_text().splitlines() == live and sink.written == [path]
    with pytest.raises(SinkError, match="after close"):
        sink.on_event(SourceEvent("cam", "closed", "", 2.0))


@pytest.mark.parametrize(("include", "lines"), [("all", 4), ("predictions", 1), ("none", 0)])
def test_jsonl_include_frames(tmp_path, include, lines):
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path, include_frames=include, include_boxes=True)
    run_sink(sink, [frame(0, predictions=[prediction()]), frame(1), frame(2), frame(3)])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == lines
    if records:
        assert records[0]["boxes"] == [{"xyxy": [1.0, 2.0, 10.0, 20.0], "score": 0.9, "label": 0, "track_id": 5}]


def test_jsonl_people_lists_every_row_with_its_keypoints(tmp_path):
    path = tmp_path / "p.jsonl"
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[1, :, :2], keypoints[1, :, 2] = 7.5, 0.25
    people = frame(0)
    people.detections = Detections(
        np.array([[1, 2, 10, 20], [5, 5, 30, 40]]), np.array([0.9, 0.5]), np.zeros(2), np.array([3, 8]),
        keypoints=keypoints,
    )  # fmt: skip
    boxes_only = frame(1)
    boxes_only.detections = Detections(np.array([[1, 2, 10, 20]]), np.array([0.9]), np.zeros(1))
    nobody = frame(2)
    nobody.detections = None
    run_sink(JsonlSink(path, include_frames="people"), [people, boxes_only, nobody])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [len(r["people"]) for r in records] == [2, 1, 0]
    second = records[0]["people"][1]
    assert second["track_id"] == 8 and second["box"] == [5.0, 5.0, 30.0, 40.0] and second["score"] == 0.5
    assert len(second["keypoints"]) == 17 and second["keypoints"][0] == [7.5, 7.5, 0.25]
    assert records[0]["poses"] == 2
    assert records[1]["people"][0]["track_id"] is None and records[1]["people"][0]["keypoints"] is None


def test_jsonl_errors(tmp_path):
    with pytest.raises(ConfigError, match="include_frames"):
        JsonlSink(tmp_path / "x.jsonl", include_frames="some")  # type: ignore[arg-type]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SinkError, match="a-file"):
        JsonlSink(blocker / "x.jsonl").setup()


# -- ZeroMQ publisher -----------------------------------------------------------------------


def test_publisher_reaches_a_subscriber():
    sink = ZmqPublisherSink("tcp://127.0.0.1:*", include_frames="all")
    sink.setup()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        assert sink.endpoint is not None
        sub.connect(sink.endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"results")
        # slow joiner: publish until the subscription has reached the publisher
        deadline = time.monotonic() + 5
        while not sub.poll(50):
            assert time.monotonic() < deadline, "subscriber never received anything"
            sink.process(frame(0))
        while sub.poll(50):  # drop the warm-up messages
            sub.recv_multipart()
        sink.on_event(SourceEvent("cam", "disconnected", "timeout", 1.0))
        assert sink.process(frame(7, predictions=[prediction()])) is not None
        got = []
        while len(got) < 2 and sub.poll(2000):
            got.append(sub.recv_multipart())
    finally:
        sub.close()
        ctx.term()
        sink.close()
    assert [topic for topic, _ in got] == [b"results", b"results"]
    event, result = (json.loads(payload) for _, payload in got)
    assert event["type"] == "event" and event["kind"] == "disconnected"
    assert result["frame_idx"] == 7 and result["predictions"][0]["labels"][0] == "waving"


def test_publisher_bind_error_names_the_address():
    first = ZmqPublisherSink("tcp://127.0.0.1:*")
    first.setup()
    try:
        taken = first.endpoint
        assert taken is not None
        second = ZmqPublisherSink(taken)
        with pytest.raises(SinkError, match=taken.replace(".", r"\.")):
            second.setup()
        second.close()
    finally:
        first.close()
    with pytest.raises(SinkError, match="not-an-address"):
        ZmqPublisherSink("not-an-address").setup()


# -- display ------------------------------------------------------------------------------


def test_display_without_display_raises(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sink = DisplaySink()
    with pytest.raises(DisplayUnavailable, match="no display found; drop --show or use --out-file") as info:
        sink.setup()
    assert isinstance(info.value, SinkError)
    sink.close()


def test_display_with_a_dead_x_server_raises(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":97")  # nothing listens there
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(display_module, "gui_framework", lambda: "QT5")
    with pytest.raises(DisplayUnavailable, match="no X server answers on DISPLAY=:97"):
        DisplaySink().setup()


def test_display_without_gui_support_raises(monkeypatch):
    monkeypatch.setattr(display_module, "gui_framework", lambda: "")
    with pytest.raises(DisplayUnavailable, match="without GUI support"):
        DisplaySink().setup()


class FakeHighGui:
    """Stands in for cv2's window functions."""

    def __init__(self, keys: list[int], visible: list[float] | None = None) -> None:
        self.keys = keys
        self.visible = visible or []
        self.shown: list[tuple[str, int]] = []
        self.destroyed: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cv2 = display_module.cv2
        monkeypatch.setattr(display_module, "display_problem", lambda: None)
        monkeypatch.setattr(cv2, "namedWindow", lambda name, flags=0: None)
        monkeypatch.setattr(cv2, "imshow", lambda name, image: self.shown.append((name, int(image[0, 0, 0]))))
        monkeypatch.setattr(cv2, "waitKey", lambda delay=0: self.keys.pop(0) if self.keys else -1)
        monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: self.visible.pop(0) if self.visible else 1.0)
        monkeypatch.setattr(cv2, "destroyWindow", lambda name: self.destroyed.append(name))


def test_display_quit_key_calls_on_quit_once(monkeypatch):
    gui = FakeHighGui(keys=[-1, ord("a"), ord("q"), 27])
    gui.install(monkeypatch)
    quits = []
    sink = DisplaySink("demo", on_quit=lambda: quits.append(1))
    sink.setup()
    outputs = [sink.process(frame(i)) for i in range(6)]
    sink.close()
    assert all(o is not None for o in outputs)  # frames pass through, also after quitting
    assert quits == [1] and sink.quit_requested.is_set()
    assert len(gui.shown) == 3  # nothing shown after the quit
    assert gui.destroyed == ["demo"]


def test_display_closing_the_window_requests_quit(monkeypatch):
    gui = FakeHighGui(keys=[], visible=[-1.0, 1.0, 1.0, 0.0])  # -1 before the window shows, closed on frame 3
    gui.install(monkeypatch)
    sink = DisplaySink("demo")
    sink.setup()
    for i in range(6):
        sink.process(frame(i))
    sink.close()
    assert sink.quit_requested.is_set() and len(gui.shown) == 4


def test_display_window_per_source_and_fps_cap(monkeypatch):
    gui = FakeHighGui(keys=[])
    gui.install(monkeypatch)
    sink = DisplaySink("demo", fps_cap=50)
    sink.setup()
    start = time.monotonic()
    for i in range(6):
        sink.process(frame(i, source_id="a" if i % 2 == 0 else "b"))
    elapsed = time.monotonic() - start
    sink.close()
    assert {name for name, _ in gui.shown} == {"demo", "demo [b]"}
    assert sorted(gui.destroyed) == ["demo", "demo [b]"]
    assert sink.shown == 6
    with pytest.raises(ConfigError, match="fps_cap"):
        DisplaySink(fps_cap=0)
    assert elapsed < 2  # the fake waitKey does not sleep: pacing is only a wait hint


# -- several sinks in one stage --------------------------------------------------------------


class Recorder(Stage):
    def __init__(self, name: str, log: list[str], fail_close: bool = False) -> None:
        super().__init__(name)
        self.log, self.fail_close = log, fail_close

    def process(self, packet: FramePacket) -> Outputs:
        self.log.append(f"{self.name}:{packet.frame_idx}")
        return packet

    def close(self) -> None:
        self.log.append(f"{self.name}:closed")
        if self.fail_close:
            raise OSError("close failed")


def test_multisink_feeds_members_in_order_and_closes_all(tmp_path):
    log: list[str] = []
    jsonl = tmp_path / "m.jsonl"
    multi = MultiSink([Recorder("a", log, fail_close=True), JsonlSink(jsonl, include_frames="all"), Recorder("b", log)])
    multi.setup()
    outputs = [multi.process(frame(i)) for i in range(2)]
    multi.finish()
    with pytest.raises(OSError, match="close failed"):
        multi.close()
    assert log == ["a:0", "b:0", "a:1", "b:1", "a:closed", "b:closed"]
    assert all(len(o) == 1 for o in outputs)  # type: ignore[arg-type]
    assert len(jsonl.read_text().splitlines()) == 2
    with pytest.raises(ConfigError):
        MultiSink([])


class FrameSource(Source):
    def __init__(self, n: int) -> None:
        super().__init__("cam")
        self.n = n

    def __iter__(self) -> Iterator[FramePacket | SourceEvent]:
        for i in range(self.n):
            yield frame(i, size=(96, 128), predictions=[prediction(i / 25)] if i % 4 == 0 else None)


def test_annotated_frames_reach_the_file_through_the_runner(tmp_path):
    from stream.annotate import AnnotateStage, default_annotators

    raw, annotated = tmp_path / "raw.mp4", tmp_path / "annotated.mp4"
    stages = [VideoWriterSink(raw, name="raw"), AnnotateStage(default_annotators()), VideoWriterSink(annotated)]
    report = Pipeline([FrameSource(10)], stages, metrics_interval_s=0).run()
    assert report.status == "ok"
    with av.open(str(raw)) as a, av.open(str(annotated)) as b:
        pairs = list(zip(a.decode(video=0), b.decode(video=0), strict=True))
    assert len(pairs) == 10
    for fa, fb in pairs:
        diff = np.abs(fa.to_ndarray(format="bgr24").astype(int) - fb.to_ndarray(format="bgr24").astype(int))
        assert diff[:20, :60].max() > 60  # the label at the top-left
