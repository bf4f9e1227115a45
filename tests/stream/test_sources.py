"""Sources: files, RTSP streams (against a local GStreamer server), cameras, image folders, dispatch."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stream.errors import ConfigError, SourceError, SourceNotFound, SourceTimeout
from stream.packet import FramePacket, SourceEvent
from stream.sources import (
    SOURCES,
    Backoff,
    FileSource,
    ImageFolderSource,
    NetworkSource,
    WebcamSource,
    detect_kind,
    open_source,
    redact_url,
)
from stream.sources import webcam as webcam_module
from stream.stage import Source
from tests.conftest import MediaFactory
from tests.media import RtspServer, VideoSpec, free_port, make_audio, render_frame, strip_media_data

FAST_BACKOFF = Backoff(initial_s=0.05, factor=2.0, max_s=0.2)


def read_all(source: Source, limit: int | None = None) -> list[FramePacket | SourceEvent]:
    """setup → iterate (up to ``limit`` items) → close, as the runner does."""
    source.setup()
    items: list[FramePacket | SourceEvent] = []
    try:
        for item in source:
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
    finally:
        source.close()
    return items


def frames_of(items: list[FramePacket | SourceEvent]) -> list[FramePacket]:
    return [i for i in items if isinstance(i, FramePacket)]


def events_of(items: list[FramePacket | SourceEvent]) -> list[SourceEvent]:
    return [i for i in items if isinstance(i, SourceEvent)]


# -- files ------------------------------------------------------------------------------------


def test_file_frames_pts_and_info(sample_video: VideoSpec) -> None:
    source = FileSource(sample_video.path)
    items = read_all(source)
    frames = frames_of(items)
    assert not events_of(items)
    assert len(frames) == sample_video.frames
    assert [f.frame_idx for f in frames] == list(range(sample_video.frames))
    assert source.source_id == "sample"
    assert not source.live

    info = source.info
    assert info is not None
    assert (info.width, info.height) == sample_video.size
    assert info.fps == Fraction(sample_video.fps) and info.fps_float == pytest.approx(sample_video.fps)
    assert info.frames == sample_video.frames
    assert info.duration_s == pytest.approx(sample_video.duration_s, abs=0.05)
    assert info.codec == "h264"

    with av.open(str(sample_video.path)) as container:
        stream = container.streams.video[0]
        reference = [(f.pts, Fraction(f.time_base)) for f in container.decode(stream)]
    assert [(f.pts, f.time_base) for f in frames] == reference
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    for k, frame in enumerate(frames):
        assert frame.time_s == pytest.approx(k / sample_video.fps, abs=1e-3)
        assert frame.image.shape == (sample_video.height, sample_video.width, 3)
        assert frame.image.dtype == np.uint8
    # decoded pixels match what was encoded (lossy, so loosely)
    expected = render_frame(5, sample_video.size).astype(np.int16)
    assert np.abs(frames[5].image.astype(np.int16) - expected).mean() < 12


def test_file_max_frames(sample_video: VideoSpec) -> None:
    frames = frames_of(read_all(FileSource(sample_video.path, max_frames=10)))
    assert [f.frame_idx for f in frames] == list(range(10))


def test_file_without_timestamps_gets_synthesised_pts(media: MediaFactory) -> None:
    clip = media.video("raw.h264", frames=10)  # an elementary stream: no container timestamps
    with av.open(str(clip.path)) as container:
        raw = [(f.pts, f.duration) for f in container.decode(video=0)]
    assert all(pts is None for pts, _ in raw)
    frames = frames_of(read_all(FileSource(clip.path)))
    step = raw[0][1]
    assert [f.pts for f in frames] == [k * step for k in range(10)]


def test_file_realtime_pacing(media: MediaFactory) -> None:
    clip = media.video(frames=13, fps=24, size=(64, 48))  # 12 frame intervals = 0.5 s
    source = FileSource(clip.path, realtime=True)
    assert source.live
    started = time.monotonic()
    frames = frames_of(read_all(source))
    elapsed = time.monotonic() - started
    assert len(frames) == 13
    assert 0.45 <= elapsed < 1.5
    gaps = np.diff([f.capture_ns for f in frames]) / 1e9
    assert gaps.mean() == pytest.approx(1 / 24, abs=0.01)


def test_file_realtime_close_interrupts(media: MediaFactory) -> None:
    clip = media.video(frames=48, fps=2, size=(64, 48))  # 24 s of stream time
    source = FileSource(clip.path, realtime=True)
    source.setup()
    threading.Timer(0.3, source.close).start()
    started = time.monotonic()
    frames = frames_of(list(source))
    assert time.monotonic() - started < 1.5
    assert 1 <= len(frames) <= 2


def test_file_truncated_yields_prefix_and_error_event(sample_video: VideoSpec, media: MediaFactory) -> None:
    cut = media.truncated(sample_video.path, 0.5)
    items = read_all(FileSource(cut))
    frames, events = frames_of(items), events_of(items)
    assert 5 <= len(frames) < sample_video.frames
    assert [f.frame_idx for f in frames] == list(range(len(frames)))
    assert items[-1] is events[-1]
    assert len(events) == 1 and events[0].kind == "error"
    assert cut.name in events[0].message
    assert events[0].data["path"] == str(cut)


def _not_a_video(media: MediaFactory, sample: VideoSpec) -> Path:
    return media.file("notes.mp4", "these are not the frames you are looking for\n" * 50)


BAD_FILES = {
    "missing": (lambda m, s: m.path("missing.mp4"), SourceNotFound, "not found: .*missing.mp4"),
    "empty": (lambda m, s: m.file("empty.mp4"), SourceError, "empty.mp4: the file is empty"),
    "not a video": (_not_a_video, SourceError, "notes.mp4: not a video"),
    "corrupt header": (lambda m, s: m.corrupted(s.path), SourceError, "sample_corrupt.mp4: not a video.*damaged"),
    "no video stream": (lambda m, s: make_audio(m.path("tone.m4a")), SourceError, "tone.m4a has no video stream"),
    "zero frames": (
        lambda m, s: strip_media_data(s.path, dest=m.path("hollow.mp4")),
        SourceError,
        "hollow.mp4: its video stream holds no frames",
    ),
    "a folder": (lambda m, s: m.image_folder(frames=1), SourceError, "frames is a directory"),
}


@pytest.mark.parametrize("case", ["good", *BAD_FILES])
def test_file_open_errors(case: str, sample_video: VideoSpec, media: MediaFactory) -> None:
    if case == "good":
        source = FileSource(sample_video.path)
        source.setup()
        source.close()
        return
    make, error, message = BAD_FILES[case]
    path = make(media, sample_video)
    source = FileSource(path)
    with pytest.raises(error, match=message):
        source.setup()
    source.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_frames": 0}, "max_frames: expected a positive"), ({"threads": -1}, "threads: expected >= 0")],
)
def test_file_bad_options(kwargs: dict, message: str, sample_video: VideoSpec) -> None:
    with pytest.raises(ConfigError, match=message):
        FileSource(sample_video.path, **kwargs)


def test_file_in_pipeline(sample_video: VideoSpec) -> None:
    from stream.runner import Pipeline
    from stream.stage import Stage

    class Collect(Stage):
        def __init__(self) -> None:
            super().__init__("collect")
            self.pts: list[int] = []

        def process(self, packet: FramePacket) -> None:
            self.pts.append(packet.pts)

    sink = Collect()
    report = Pipeline([FileSource(sample_video.path, max_frames=20)], [sink], metrics_interval_s=0).run()
    assert report.status == "ok"
    assert len(sink.pts) == 20 and sink.pts == sorted(sink.pts)


# -- network ----------------------------------------------------------------------------------


def test_redact_url() -> None:
    assert redact_url("rtsp://admin:secret@10.0.0.5:554/stream1?token=abc") == "rtsp://10.0.0.5:554/stream1"
    assert redact_url("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
    source = NetworkSource("rtsp://user:pw@127.0.0.1:9/cam")
    assert source.source_id == "rtsp://127.0.0.1:9/cam"
    assert source.live


def test_backoff_delays() -> None:
    backoff = Backoff(initial_s=0.5, factor=2.0, max_s=3.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = Backoff(initial_s=1.0, factor=1.0, max_s=1.0, jitter=0.2)
    assert all(0.8 <= jittered.delay(1) <= 1.2 for _ in range(50))
    with pytest.raises(ConfigError, match="factor"):
        Backoff(factor=0.5)


def test_network_reads_frames(rtsp_server: RtspServer) -> None:
    source = NetworkSource(rtsp_server.url, fail_fast=True, open_timeout_s=5, read_timeout_s=3)
    source.setup()
    items = read_all(source, limit=61)  # more than the 48-frame file: the server loops it
    events, frames = events_of(items), frames_of(items)
    assert events[0].kind == "opened"
    assert len(frames) == 60
    assert [f.frame_idx for f in frames] == list(range(60))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert frames[0].image.shape == (240, 320, 3)
    assert source.info is not None and (source.info.width, source.info.height) == (320, 240)
    # about 1/24 s per frame in stream time, also across the server's loop point
    steps = np.diff([f.time_s for f in frames[5:]])
    assert np.median(steps) == pytest.approx(1 / 24, abs=0.005)
    assert steps.max() < 0.2


def test_network_reconnects_after_server_restart(rtsp_server: RtspServer) -> None:
    source = NetworkSource(
        rtsp_server.url, open_timeout_s=3, read_timeout_s=2, backoff=FAST_BACKOFF, max_reconnects=None
    )
    source.setup()
    kinds: list[str] = []
    before: list[FramePacket] = []
    after: list[FramePacket] = []
    try:
        for item in source:
            if isinstance(item, SourceEvent):
                kinds.append(item.kind)
                if item.kind == "reconnecting" and item.data["attempt"] == 2:
                    rtsp_server.start()  # the first attempt found the port closed
                continue
            (after if "connected" in kinds else before).append(item)
            if len(before) == 10 and not kinds.count("disconnected"):
                rtsp_server.stop()
            if len(after) == 10:
                break
    finally:
        source.close()
    assert kinds[:5] == ["opened", "disconnected", "reconnecting", "reconnecting", "connected"], kinds
    assert len(before) >= 10 and len(after) == 10
    frames = before + after
    assert [f.frame_idx for f in frames] == list(range(len(frames)))
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert after[0].time_s > before[-1].time_s


def test_network_gives_up_after_max_reconnects(rtsp_server: RtspServer) -> None:
    source = NetworkSource(rtsp_server.url, open_timeout_s=2, read_timeout_s=2, backoff=FAST_BACKOFF, max_reconnects=2)
    source.setup()
    kinds: list[str] = []
    frames = 0
    started = None
    try:
        for item in source:
            if isinstance(item, SourceEvent):
                kinds.append(item.kind)
                continue
            frames += 1
            if frames == 5:
                rtsp_server.stop()
                started = time.monotonic()
    finally:
        source.close()
    assert kinds == ["opened", "disconnected", "reconnecting", "reconnecting", "gave_up"]
    assert started is not None and time.monotonic() - started < 5


def test_network_read_timeout_counts_as_disconnect(rtsp_server: RtspServer) -> None:
    source = NetworkSource(rtsp_server.url, open_timeout_s=2, read_timeout_s=1, backoff=FAST_BACKOFF, max_reconnects=0)
    source.setup()
    kinds: list[str] = []
    paused_at = None
    try:
        for item in source:
            if isinstance(item, SourceEvent):
                kinds.append(item.kind)
                if item.kind == "disconnected":
                    assert "no data" in item.message
                continue
            if paused_at is None:
                rtsp_server.pause()
                paused_at = time.monotonic()
    finally:
        rtsp_server.resume()
        source.close()
    assert kinds == ["opened", "disconnected", "gave_up"]
    assert paused_at is not None and time.monotonic() - paused_at < 6


def test_network_fail_fast_refused() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    source = NetworkSource(url, fail_fast=True, open_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"127\.0\.0\.1.*refused"):
        source.setup()
    assert time.monotonic() - started < 2.5
    source.close()


def test_network_fail_fast_silent_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP handshake, never says a word
        url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/cam"
        source = NetworkSource(url, fail_fast=True, open_timeout_s=1, read_timeout_s=1)
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match=r"no answer from rtsp://127\.0\.0\.1.*within 1s"):
            source.setup()
        assert time.monotonic() - started < 3
        source.close()


def test_network_first_connection_failure_without_fail_fast() -> None:
    source = NetworkSource(f"rtsp://127.0.0.1:{free_port()}/cam", backoff=FAST_BACKOFF, max_reconnects=1)
    kinds = [e.kind for e in events_of(read_all(source))]
    assert kinds == ["error", "reconnecting", "gave_up"]


def test_network_close_interrupts_backoff() -> None:
    source = NetworkSource(f"rtsp://127.0.0.1:{free_port()}/cam", backoff=Backoff(initial_s=30, max_s=30))
    threading.Timer(0.3, source.close).start()
    started = time.monotonic()
    kinds = [e.kind for e in events_of(list(source))]
    assert time.monotonic() - started < 2
    assert kinds == ["error", "reconnecting"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "expected a URL starting with rtsp://"),
        ({"open_timeout_s": 0}, "timeouts: expected > 0"),
        ({"rtsp_transport": "sctp"}, "rtsp_transport"),
        ({"max_reconnects": -1}, "max_reconnects"),
    ],
)
def test_network_bad_options(kwargs: dict, message: str) -> None:
    kwargs = {"url": "rtsp://127.0.0.1:9/cam", **kwargs}
    with pytest.raises(ConfigError, match=message):
        NetworkSource(**kwargs)


# -- webcam -----------------------------------------------------------------------------------


def test_webcam_unknown_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webcam_module, "list_cameras", lambda: [])
    source = WebcamSource(3)
    assert source.source_id == "camera3" and source.live
    with pytest.raises(SourceNotFound, match=r"no camera at index 3 \(found none\); pass --source FILE or an RTSP URL"):
        source.setup()
    with pytest.raises(SourceNotFound, match="no camera at index 7"):
        WebcamSource("/dev/video7").setup()


class FakeCapture:
    """Stands in for ``cv2.VideoCapture``: a few frames with camera timestamps, then nothing."""

    def __init__(self, msec: list[float]) -> None:
        self.msec = msec
        self.read_count = 0
        self.released = False

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        import cv2

        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.msec[self.read_count - 1]
        return {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48, cv2.CAP_PROP_FPS: 30}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.read_count >= len(self.msec):
            return False, None
        self.read_count += 1
        return True, np.full((48, 64, 3), self.read_count, np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize(
    ("msec", "camera_clock"),
    [([1000.0, 1033.0, 1066.0, 1100.0], True), ([0.0, 0.0, 0.0, 0.0], False), ([500.0, 533.0, 533.0, 600.0], False)],
)
def test_webcam_timestamps(monkeypatch: pytest.MonkeyPatch, msec: list[float], camera_clock: bool) -> None:
    capture = FakeCapture(msec)
    monkeypatch.setattr(webcam_module.cv2, "VideoCapture", lambda *args: capture)
    monkeypatch.setattr(webcam_module, "MAX_READ_FAILURES", 2)
    source = WebcamSource(0, width=64, height=48)
    items = read_all(source)
    frames, events = frames_of(items), events_of(items)
    assert [e.kind for e in events] == ["disconnected"]
    assert len(frames) == 4 and capture.released
    assert source.info is not None and (source.info.width, source.info.height, source.info.fps) == (64, 48, 30)
    pts = [f.pts for f in frames]
    assert pts[0] == 0 and all(b > a for a, b in itertools.pairwise(pts))
    assert frames[0].time_base == Fraction(1, 1_000_000)
    if camera_clock:
        assert pts == [0, 33_000, 66_000, 100_000]


# -- image folders ----------------------------------------------------------------------------


def test_images_natural_order_and_pts(media: MediaFactory) -> None:
    folder = media.path("shots")
    folder.mkdir()
    for n in (10, 2, 1, 33):
        media.file(f"shots/img_{n}.png", b"")
    from tests.media import make_image_folder

    make_image_folder(folder, frames=4, ext="png", template="img_{}.png", start=1)  # img_1 … img_4
    names = [p.name for p in ImageFolderSource(folder)._list()]
    assert names == ["img_1.png", "img_2.png", "img_3.png", "img_4.png", "img_10.png", "img_33.png"]


def test_images_frames(image_folder: Path) -> None:
    source = ImageFolderSource(image_folder, fps=25)
    items = read_all(source)
    frames = frames_of(items)
    assert not events_of(items)
    assert len(frames) == 12
    assert [f.pts for f in frames] == list(range(12))
    assert frames[0].time_base == Fraction(1, 25)
    assert frames[4].time_s == pytest.approx(4 / 25)
    assert source.source_id == "frames"
    assert source.info is not None and (source.info.width, source.info.height, source.info.frames) == (320, 240, 12)
    expected = render_frame(3, (320, 240)).astype(np.int16)
    assert np.abs(frames[3].image.astype(np.int16) - expected).mean() < 12


def test_images_default_fps_and_template(image_folder: Path) -> None:
    (image_folder / "notes.txt").write_text("ignored")
    (image_folder / "thumb.jpg").write_bytes((image_folder / "img_00001.jpg").read_bytes())
    source = ImageFolderSource(image_folder, template="img_{:05d}.jpg", max_frames=5)
    frames = frames_of(read_all(source))
    assert len(frames) == 5 and frames[0].time_base == Fraction(1, 30)
    assert [p.name for p in source.files][:2] == ["img_00001.jpg", "img_00002.jpg"]
    assert len(source.files) == 12  # thumb.jpg does not match the template


def test_images_bad_image_skipped(image_folder: Path) -> None:
    (image_folder / "img_00004.jpg").write_bytes(b"not a jpeg")
    items = read_all(ImageFolderSource(image_folder))
    frames, events = frames_of(items), events_of(items)
    assert len(frames) == 11
    assert [e.kind for e in events] == ["error"] and "img_00004.jpg" in events[0].message
    assert [f.frame_idx for f in frames] == list(range(11))
    assert 3 not in [f.pts for f in frames]  # stream time keeps its place


def test_images_realtime(media: MediaFactory) -> None:
    folder = media.image_folder(frames=6, size=(32, 24))
    source = ImageFolderSource(folder, fps=20, realtime=True)
    assert source.live
    started = time.monotonic()
    assert len(frames_of(read_all(source))) == 6
    assert 0.2 <= time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        (lambda m: m.path("nowhere"), SourceNotFound, "image folder not found: .*nowhere"),
        (lambda m: m.path("empty").mkdir() or m.path("empty"), SourceError, r"no images \(.jpg"),
        (lambda m: m.image_folder(frames=2), None, None),
    ],
)
def test_images_open_errors(setup, error, message, media: MediaFactory) -> None:  # type: ignore[no-untyped-def]
    source = ImageFolderSource(setup(media))
    if error is None:
        source.setup()
        return
    with pytest.raises(error, match=message):
        source.setup()


def test_images_template_errors(media: MediaFactory) -> None:
    folder = media.image_folder(frames=2)
    with pytest.raises(SourceError, match=r"no files named like 'frame_\{:04d\}.jpg'"):
        ImageFolderSource(folder, template="frame_{:04d}.jpg").setup()
    with pytest.raises(ConfigError, match="exactly one integer field"):
        ImageFolderSource(folder, template="img.jpg")


# -- dispatch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("VIDEO", "file"),
        ("FOLDER", "images"),
        ("rtsp://user:pw@127.0.0.1:8554/cam", "rtsp"),
        ("rtsps://127.0.0.1/cam", "rtsp"),
        ("http://127.0.0.1:8080/video.mjpg", "rtsp"),
        ("https://127.0.0.1/live.m3u8", "rtsp"),
        ("0", "webcam"),
        (2, "webcam"),
        ("/dev/video1", "webcam"),
    ],
)
def test_open_source_dispatch(spec: str | int, kind: str, sample_video: VideoSpec, image_folder: Path) -> None:
    spec = {"VIDEO": str(sample_video.path), "FOLDER": str(image_folder)}.get(spec, spec)  # type: ignore[arg-type]
    assert detect_kind(spec) == kind
    source = open_source(spec)
    assert isinstance(source, SOURCES[kind])


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("/no/such/clip.mp4", SourceNotFound, "no such file or folder: /no/such/clip.mp4"),
        ("ftp://127.0.0.1/clip.mp4", ConfigError, "unsupported URL scheme ftp://"),
    ],
)
def test_open_source_errors(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        open_source(spec)


def test_open_source_options(sample_video: VideoSpec, image_folder: Path) -> None:
    source = open_source(sample_video.path, realtime=True, source_id="cam-a", max_frames=3)
    assert isinstance(source, FileSource)
    assert source.live and source.source_id == "cam-a" and source.max_frames == 3
    images = open_source(image_folder, fps=12)
    assert isinstance(images, ImageFolderSource) and images.fps == 12
    stream = open_source("rtsp://127.0.0.1:9/cam", fail_fast=True, max_reconnects=3)
    assert isinstance(stream, NetworkSource) and stream.fail_fast and stream.max_reconnects == 3
    with pytest.raises(ConfigError, match=r"unknown option.*bogus.*valid: .*max_frames"):
        open_source(sample_video.path, bogus=1)
    with pytest.raises(ConfigError, match="unknown source kind 'tape'; valid kinds: file, images, rtsp, webcam"):
        open_source(sample_video.path, kind="tape")
    forced = open_source(sample_video.path, kind="file")
    assert isinstance(forced, FileSource)
