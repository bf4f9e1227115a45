"""NetworkSource behaviour that mutation testing found unchecked (docs/mutation.md).

A local HTTP server plays the camera: request ``n`` is answered as its script says (the
whole clip, which a live source then sees end, an HTTP error, an audio-only file, or the
clip and then silence). Everything is asserted as a user sees it: the events with their
messages and data, the frames with their index and stream time, and the one-line errors.
"""

from __future__ import annotations

import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from stream.errors import ConfigError, SourceError, SourceNotFound, SourceTimeout
from stream.packet import FramePacket, SourceEvent
from stream.sources import Backoff, NetworkSource, redact_url
from stream.sources.file import VideoInfo
from tests.media import HOST, free_port, make_audio, make_video

pytestmark = pytest.mark.timeout(30)

FRAMES = 6  # frames of the served clip, 24 fps, 64x48 H.264 in MPEG-TS (90 kHz clock)
ONE_FRAME = 90_000 // 24
BACKOFF = Backoff(initial_s=0.1, factor=3.0, max_s=0.5)  # 0.1, 0.3, 0.5, 0.5 ...


class Camera:
    """An HTTP camera answering request ``n`` with ``script[n]`` (then 503 for ever).

    Script entries: the name of a body in ``bodies`` (``clip``; ``twice``, the clip twice
    over, its timestamps starting again halfway; ``slow``, a 1 fps clip; ``long``, 2 s of
    video; ``mkv``, the clip in Matroska (a 1 ms clock); ``with_sound``, video and audio;
    ``audio``, a file without video), ``stall`` (``long`` as the first half of a longer
    answer, then nothing until the test ends), or an HTTP status code.
    """

    def __init__(self, bodies: dict[str, bytes], script: list[str | int]) -> None:
        self.bodies, self.script = bodies, list(script)
        self.requests: list[float] = []  # time.monotonic() of each request
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()  # ends the stalled answers
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.requests.append(time.monotonic())
                camera.headers.append(dict(self.headers))
                n = len(camera.requests) - 1
                step = camera.script[n] if n < len(camera.script) else 503
                if isinstance(step, int):
                    self.send_error(step)
                    return
                body = camera.bodies["long" if step == "stall" else step]
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Content-Length", str(2 * len(body) if step == "stall" else len(body)))
                self.end_headers()
                self.wfile.write(body)
                if step == "stall":  # promised more than sent: the client waits for the rest
                    self.wfile.flush()
                    camera.release.wait(20)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/cam.ts", credentials: str = "") -> str:
        return f"http://{credentials}{HOST}:{self.server.server_address[1]}{path}"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("camera")
    clip = make_video(folder / "clip.ts", frames=FRAMES, size=(64, 48)).path.read_bytes()
    slow = make_video(folder / "slow.ts", frames=3, fps=1, size=(64, 48)).path.read_bytes()
    long = make_video(folder / "long.ts", frames=48, size=(64, 48)).path.read_bytes()
    mkv = make_video(folder / "clip.mkv", frames=FRAMES, size=(64, 48)).path.read_bytes()
    audio = make_audio(folder / "tone.m4a").read_bytes()
    bodies = {"clip": clip, "twice": clip + clip, "slow": slow, "long": long, "mkv": mkv, "audio": audio}
    return {**bodies, "with_sound": camera_with_microphone(folder / "with_sound.ts")}


def camera_with_microphone(path: Path) -> bytes:
    """An MPEG-TS with an H.264 stream (6 frames, 24 fps) and an AAC stream, as IP cameras send."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("h264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono")
        for k in range(FRAMES):
            image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * k, np.uint8), format="bgr24")
            image.pts = k
            container.mux(video.encode(image))
        for start in range(0, 8192, 1024):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
            samples.sample_rate, samples.pts = 16000, start
            container.mux(sound.encode(samples))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))
    return path.read_bytes()


@pytest.fixture
def camera(media: dict[str, bytes]) -> Iterator[Camera]:
    """A camera with an empty script; tests set ``camera.script`` before connecting."""
    cam = Camera(media, [])
    cam.thread.start()
    yield cam
    cam.release.set()
    cam.server.shutdown()
    cam.server.server_close()


def read(source: NetworkSource, *, until: int | None = None) -> list[FramePacket | SourceEvent]:
    """Everything the source yields (up to the ``until``-th disconnect), then close it."""
    items: list[FramePacket | SourceEvent] = []
    source.setup()
    try:
        for item in source:
            items.append(item)
            if (
                until is not None
                and sum(isinstance(i, SourceEvent) and i.kind == "disconnected" for i in items) >= until
            ):
                break
    finally:
        source.close()
    return items


def events(items: list[FramePacket | SourceEvent]) -> list[SourceEvent]:
    return [i for i in items if isinstance(i, SourceEvent)]


def frames(items: list[FramePacket | SourceEvent]) -> list[FramePacket]:
    return [i for i in items if isinstance(i, FramePacket)]


# -- Backoff ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_s": -1}, "backoff: expected delays >= 0, got initial_s=-1, max_s=10.0"),
        ({"max_s": -0.5}, "backoff: expected delays >= 0, got initial_s=0.5, max_s=-0.5"),
        ({"factor": 0.5}, "backoff factor: expected >= 1, got 0.5"),
        ({"jitter": 1}, r"backoff jitter: expected a value in \[0, 1\), got 1"),
        ({"jitter": -0.1}, r"backoff jitter: expected a value in \[0, 1\), got -0.1"),
    ],
)
def test_backoff_refuses_bad_settings_in_one_line(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        Backoff(**kwargs)


def test_backoff_accepts_its_limits() -> None:
    assert Backoff(initial_s=0, max_s=0, factor=1, jitter=0).delay(3) == 0
    assert [Backoff(initial_s=0.2, factor=1, max_s=5).delay(n) for n in (1, 2, 5)] == [0.2, 0.2, 0.2]
    assert 0 < Backoff(initial_s=1, max_s=1, jitter=0.999).delay(1) < 2


def test_backoff_jitter_scatters_the_capped_delay_both_ways() -> None:
    random.seed(1234)
    backoff = Backoff(initial_s=1.0, factor=10.0, max_s=2.0, jitter=0.5)  # attempt 3: capped at 2 s
    delays = [backoff.delay(3) for _ in range(300)]
    assert all(1.0 <= d <= 3.0 for d in delays)
    assert min(delays) < 1.2 and max(delays) > 2.8  # spread over the whole band, both sides of 2 s
    assert sum(delays) / len(delays) == pytest.approx(2.0, abs=0.15)


# -- URLs and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:secret@[fe80::1]:554/live?token=abc#x", "rtsp://[fe80::1]:554/live"),
        ("rtsp://admin:secret@[::1]/live", "rtsp://[::1]/live"),
        ("rtsp://cam.local:99999/live", "rtsp://cam.local/live"),  # an impossible port is left out
        ("https://user@cam.local/a/b.m3u8?sig=1", "https://cam.local/a/b.m3u8"),
        ("rtsp://user:pw@/live", "rtsp:///live"),  # no host: nothing made up
    ],
)
def test_redact_url_drops_credentials_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"url": "ftp://127.0.0.1/x"},
            "network source: expected a URL starting with rtsp://, rtsps://, http://, https://",
        ),
        ({"read_timeout_s": 0}, "timeouts: expected > 0 s, got open_timeout_s=5.0, read_timeout_s=0"),
        ({"open_timeout_s": -1}, "timeouts: expected > 0 s, got open_timeout_s=-1, read_timeout_s=5.0"),
        ({"open_timeout_s": 0}, "timeouts: expected > 0 s, got open_timeout_s=0, read_timeout_s=5.0"),
        ({"rtsp_transport": "sctp"}, "rtsp_transport: expected tcp or udp, got 'sctp'"),
        ({"max_reconnects": -1}, r"max_reconnects: expected >= 0 or None \(forever\), got -1"),
    ],
)
def test_bad_settings_are_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    kwargs = {"url": "rtsp://127.0.0.1:9/cam", **kwargs}
    with pytest.raises(ConfigError, match=f"^{message}$"):
        NetworkSource(**kwargs)  # type: ignore[arg-type]


def test_settings_at_their_limits_are_accepted() -> None:
    source = NetworkSource("RTSP://u:p@127.0.0.1:9/cam", rtsp_transport="udp", max_reconnects=0, source_id="door")
    assert source.source_id == "door" and source.display_url == "rtsp://127.0.0.1:9/cam"
    assert source.info is None  # nothing known before the first connection
    assert NetworkSource("rtsps://127.0.0.1/cam", open_timeout_s=0.01, read_timeout_s=0.01).source_id == (
        "rtsps://127.0.0.1/cam"
    )


# -- connecting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        (404, SourceNotFound, "{url}: the server has no stream at this path (404); check the URL's path"),
        (401, SourceError, "{url}: access denied (Server returned 401 Unauthorized (authorization failed)); "
         "check the user name and password in the URL"),
        (403, SourceError, "{url}: access denied (Server returned 403 Forbidden (access denied)); "
         "check the user name and password in the URL"),
        (503, SourceError, "cannot open {url}: Server returned 5XX Server Error reply; "
         "check the URL and that it serves video"),
        ("audio", SourceError, "{url} has no video stream (streams found: audio)"),
    ],
)  # fmt: skip
def test_fail_fast_errors_name_the_url_without_credentials(
    camera: Camera, step: str | int, error: type[Exception], message: str
) -> None:
    camera.script = [step]
    source = NetworkSource(camera.url(credentials="admin:hunter2@"), fail_fast=True, open_timeout_s=3)
    with pytest.raises(error) as info:
        source.setup()
    source.close()
    assert type(info.value) is error
    assert str(info.value) == message.format(url=camera.url())


@pytest.mark.parametrize("path", ["/401/cam.ts", "/cam404.ts"])
def test_a_server_error_is_not_mistaken_for_a_status_in_the_url(camera: Camera, path: str) -> None:
    # the status comes from the server's answer: a port or path holding "401" / "404" (a random
    # port such as 46401 did) must not turn a 503 into "access denied" or "no stream at this path"
    camera.script = [503]
    source = NetworkSource(camera.url(path), fail_fast=True, open_timeout_s=3)
    with pytest.raises(SourceError) as info:
        source.setup()
    source.close()
    assert type(info.value) is SourceError
    assert str(info.value) == (
        f"cannot open {camera.url(path)}: Server returned 5XX Server Error reply; "
        "check the URL and that it serves video"
    )


def test_refused_connection_says_what_to_check() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    source = NetworkSource(url, fail_fast=True, open_timeout_s=2)
    with pytest.raises(SourceError) as info:
        source.setup()
    assert (
        str(info.value) == f"cannot connect to {url}: connection refused; check the host, port and that the server runs"
    )


def test_setup_connects_only_with_fail_fast_and_only_once(camera: Camera) -> None:
    camera.script = ["clip", "clip"]
    lazy = NetworkSource(camera.url())
    lazy.setup()
    assert camera.requests == []  # the first connection is made by iterating
    lazy.close()
    eager = NetworkSource(camera.url(), fail_fast=True)
    eager.setup()
    eager.setup()
    assert len(camera.requests) == 1
    eager.close()


def test_options_reach_the_server(camera: Camera) -> None:
    camera.script = ["clip"]
    source = NetworkSource(camera.url(), reconnect_on_eof=False, options={"user_agent": "door-cam-test/1"})
    assert len(frames(read(source))) == FRAMES
    assert camera.headers[0]["User-Agent"] == "door-cam-test/1"


# -- events and frames over drops -------------------------------------------------------------


def test_a_finite_stream_ends_without_reconnecting(camera: Camera) -> None:
    camera.script = ["clip"]
    source = NetworkSource(camera.url(), reconnect_on_eof=False)
    items = read(source)
    assert [e.kind for e in events(items)] == ["opened"]
    got = frames(items)
    assert [f.frame_idx for f in got] == list(range(FRAMES))
    assert [f.pts for f in got] == [k * ONE_FRAME for k in range(FRAMES)]
    assert all(f.time_base == Fraction(1, 90_000) and f.image.shape == (48, 64, 3) for f in got)
    assert len(camera.requests) == 1
    assert source.info == VideoInfo(64, 48, Fraction(24), None, None, Fraction(1, 90_000), "h264")


def test_end_of_a_live_stream_is_a_drop_and_zero_reconnects_gives_up_at_once(camera: Camera) -> None:
    camera.script = ["clip"]
    url = camera.url()
    items = read(NetworkSource(camera.url(credentials="u:pw@"), max_reconnects=0, backoff=BACKOFF))
    got = [(e.kind, e.message, e.data) for e in events(items)]
    assert got == [
        ("opened", f"{url}: opened (64x48 h264)", {"url": url, "connections": 1}),
        ("disconnected", f"{url}: end of stream", {"url": url, "reason": "end of stream"}),
        ("gave_up", f"{url}: giving up after 0 failed reconnect attempts (end of stream)",
         {"url": url, "attempts": 0, "reason": "end of stream"}),
    ]  # fmt: skip
    assert all(e.source_id == url for e in events(items))
    assert len(frames(items)) == FRAMES and len(camera.requests) == 1


def test_reconnect_events_say_attempt_delay_and_connection(camera: Camera, caplog: pytest.LogCaptureFixture) -> None:
    camera.script = ["clip", 503, "clip"]
    url = camera.url()
    caplog.set_level(logging.INFO, logger="stream.sources.network")
    started = time.time()
    items = read(NetworkSource(url, backoff=BACKOFF, max_reconnects=None), until=2)
    assert all(started <= e.wall_time <= time.time() for e in events(items))
    got = [(e.kind, e.message, e.data) for e in events(items)]
    assert got == [
        ("opened", f"{url}: opened (64x48 h264)", {"url": url, "connections": 1}),
        ("disconnected", f"{url}: end of stream", {"url": url, "reason": "end of stream"}),
        ("reconnecting", f"{url}: reconnect attempt 1 in 0.1s", {"url": url, "attempt": 1, "delay_s": 0.1}),
        ("reconnecting", f"{url}: reconnect attempt 2 in 0.3s", {"url": url, "attempt": 2, "delay_s": 0.3}),
        ("connected", f"{url}: reconnected (64x48 h264)", {"url": url, "connections": 2}),
        ("disconnected", f"{url}: end of stream", {"url": url, "reason": "end of stream"}),
    ]
    assert [f.frame_idx for f in frames(items)] == list(range(2 * FRAMES))
    # what an operator reads in the log
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"connected to {url} (64x48 h264)"),
        ("WARNING", f"{url} dropped: end of stream"),
        (
            "WARNING",
            f"cannot open {url}: Server returned 5XX Server Error reply; check the URL and that it serves video",
        ),
        ("INFO", f"connected to {url} (64x48 h264)"),
        ("WARNING", f"{url} dropped: end of stream"),
    ]


def test_gave_up_names_the_attempts_and_the_last_reason(camera: Camera) -> None:
    camera.script = ["clip"]  # then 503 for ever
    url = camera.url()
    items = read(NetworkSource(url, backoff=BACKOFF, max_reconnects=2))
    kinds = [e.kind for e in events(items)]
    assert kinds == ["opened", "disconnected", "reconnecting", "reconnecting", "gave_up"]
    reason = f"cannot open {url}: Server returned 5XX Server Error reply; check the URL and that it serves video"
    gave_up = events(items)[-1]
    assert gave_up.message == f"{url}: giving up after 2 failed reconnect attempts ({reason})"
    assert gave_up.data == {"url": url, "attempts": 2, "reason": reason}
    assert len(camera.requests) == 3


def test_a_first_connection_that_fails_is_an_error_then_opened_when_it_works(camera: Camera) -> None:
    camera.script = [404, "clip"]
    url = camera.url()
    items = read(NetworkSource(url, backoff=BACKOFF, max_reconnects=3), until=1)
    reason = f"{url}: the server has no stream at this path (404); check the URL's path"
    got = [(e.kind, e.message, e.data) for e in events(items)]
    assert got[:3] == [
        ("error", reason, {"url": url, "reason": reason}),
        ("reconnecting", f"{url}: reconnect attempt 1 in 0.1s", {"url": url, "attempt": 1, "delay_s": 0.1}),
        ("opened", f"{url}: opened (64x48 h264)", {"url": url, "connections": 1}),
    ]
    assert [f.frame_idx for f in frames(items)] == list(range(FRAMES))


def test_stream_time_continues_by_the_wall_clock_gap_after_a_reconnect(camera: Camera) -> None:
    camera.script = ["clip", 503, 503, "clip"]  # about 0.4 s without frames
    items = read(NetworkSource(camera.url(), backoff=BACKOFF), until=2)
    got = frames(items)
    assert len(got) == 2 * FRAMES
    first, second = got[:FRAMES], got[FRAMES:]
    # within a connection: the stream's own timestamps, one frame apart
    for part in (first, second):
        assert [b.pts - a.pts for a, b in itertools.pairwise(part)] == [ONE_FRAME] * (FRAMES - 1)
    # across the drop: the wall-clock time between receiving the two frames
    gap_s = float((second[0].pts - first[-1].pts) * second[0].time_base)
    wall_s = (second[0].capture_ns - first[-1].capture_ns) / 1e9
    assert wall_s > 0.35
    assert gap_s == pytest.approx(wall_s, abs=0.002)


def test_closing_while_reading_ends_the_stream_without_a_drop_event(camera: Camera) -> None:
    camera.script = ["clip"]
    source = NetworkSource(camera.url(), backoff=BACKOFF)
    items: list[FramePacket | SourceEvent] = []
    for item in source:
        items.append(item)
        if isinstance(item, FramePacket):
            source.close()
    assert [type(i).__name__ for i in items] == ["SourceEvent", "FramePacket"]
    assert len(camera.requests) == 1


def test_silence_is_a_drop_named_by_the_read_timeout(camera: Camera) -> None:
    camera.script = ["stall"]
    url = camera.url()
    started = time.monotonic()
    items = read(NetworkSource(url, read_timeout_s=0.5, max_reconnects=0), until=1)
    assert time.monotonic() - started < 5
    drop = events(items)[-1]
    assert (drop.kind, drop.message, drop.data) == (
        "disconnected", f"{url}: no data for 0.5s", {"url": url, "reason": "no data for 0.5s"}
    )  # fmt: skip


def test_a_quick_reconnect_continues_one_frame_on(camera: Camera) -> None:
    camera.script = ["slow", "slow"]  # 1 fps: the reconnect takes far less than a frame
    items = read(NetworkSource(camera.url(), backoff=Backoff(initial_s=0)), until=2)
    got = frames(items)
    assert len(got) == 6 and (got[3].capture_ns - got[2].capture_ns) / 1e9 < 0.9
    assert [f.pts for f in got] == [k * 90_000 for k in range(6)]  # no gap, no overlap at the seam


def test_timestamps_that_restart_within_a_connection_still_increase(
    camera: Camera, caplog: pytest.LogCaptureFixture
) -> None:
    camera.script = ["twice"]
    with caplog.at_level(logging.DEBUG, logger="stream.sources.network"):
        items = read(NetworkSource(camera.url(), reconnect_on_eof=False))
    pts = [f.pts for f in frames(items)]
    assert len(pts) == 2 * FRAMES
    last = (FRAMES - 1) * ONE_FRAME
    assert pts[:FRAMES] == [k * ONE_FRAME for k in range(FRAMES)]
    assert pts[FRAMES:] == [last + k for k in range(1, FRAMES + 1)]  # nudged one tick on
    nudged = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert nudged[0] == f"{camera.url()}: pts 0 not after {last}; nudged"
    assert len(nudged) == FRAMES


class FakeRtspCamera:
    """Answers OPTIONS and DESCRIBE like a camera, records the SETUP request and refuses it."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.transports: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.listener.getsockname()[1]}/cam"

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        buffer = b""
        sdp = (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"
        )
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                method, *lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines if ": " in line)
                cseq = headers.get("CSeq", "0")
                if method.startswith("OPTIONS"):
                    answer = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                elif method.startswith("DESCRIBE"):
                    answer = (
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
                    )
                else:
                    self.transports.append(headers.get("Transport", ""))
                    answer = f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n"
                conn.sendall(answer.encode())


@pytest.mark.parametrize(
    ("kwargs", "transport"),
    [
        ({}, "RTP/AVP/TCP;"),
        ({"rtsp_transport": "udp"}, "RTP/AVP/UDP;"),
        ({"options": {"rtsp_transport": "udp"}}, "RTP/AVP/UDP;"),
    ],
)
def test_rtsp_asks_the_camera_for_tcp_unless_told_otherwise(kwargs: dict[str, object], transport: str) -> None:
    camera = FakeRtspCamera()
    source = NetworkSource(camera.url, fail_fast=True, open_timeout_s=3, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SourceError):
        source.setup()  # the fake camera refuses every transport
    source.close()
    camera.listener.close()
    assert len(camera.transports) == 1 and camera.transports[0].startswith(transport), camera.transports


def test_close_from_another_thread_returns_at_once_while_a_read_blocks(camera: Camera) -> None:
    camera.script = ["stall"]  # most of 48 frames at once, then silence
    source = NetworkSource(camera.url(), read_timeout_s=1, backoff=BACKOFF)
    items: list[FramePacket | SourceEvent] = []
    waiting = threading.Event()

    def consume() -> None:
        for item in source:
            items.append(item)
            if len(frames(items)) == 44:  # all that came at once: the next read waits for data
                waiting.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert waiting.wait(10), f"44 frames never came: {len(frames(items))} did"
    started = time.monotonic()
    source.close()  # the reader is inside PyAV, waiting for data that never comes
    assert time.monotonic() - started < 0.2
    reader.join(5)
    assert not reader.is_alive()
    assert [e.kind for e in events(items)] == ["opened"]  # stopped: no drop, no reconnect


def test_a_silent_rtsp_server_is_a_timeout_that_says_what_to_check() -> None:
    with socket.create_server((HOST, 0)) as listener:  # accepts the TCP handshake, never says a word
        url = f"rtsp://{HOST}:{listener.getsockname()[1]}/cam"
        source = NetworkSource(url, fail_fast=True, open_timeout_s=1, read_timeout_s=1)
        started = time.monotonic()
        with pytest.raises(SourceTimeout) as info:
            source.setup()
        assert time.monotonic() - started < 3
    assert str(info.value) == (
        f"no answer from {url} within 1s (Invalid data found when processing input); "
        "check that the camera or server is up and reachable"
    )


def test_jittered_delays_are_announced_to_the_millisecond(camera: Camera) -> None:
    camera.script = ["clip"]  # then 503 for ever
    random.seed(20261206)
    source = NetworkSource(camera.url(), backoff=Backoff(initial_s=0.05, factor=1, jitter=0.5), max_reconnects=3)
    announced = [e for e in events(read(source)) if e.kind == "reconnecting"]
    assert len(announced) == 3
    for event in announced:
        delay = event.data["delay_s"]
        assert 0.025 <= delay <= 0.075 and delay == round(delay, 3)
        assert event.message.endswith(f"reconnect attempt {event.data['attempt']} in {delay:.1f}s")
    assert len({e.data["delay_s"] for e in announced}) > 1  # jittered


def test_frames_carry_the_source_id(camera: Camera) -> None:
    camera.script = ["clip", "clip"]
    got = frames(read(NetworkSource(camera.url(credentials="u:pw@"), reconnect_on_eof=False)))
    assert {f.source_id for f in got} == {camera.url()}
    got = frames(read(NetworkSource(camera.url(), source_id="door", reconnect_on_eof=False)))
    assert {f.source_id for f in got} == {"door"} and len(got) == FRAMES


def test_the_first_connections_clock_is_kept_after_reconnecting_to_another(camera: Camera) -> None:
    camera.script = ["mkv", "clip"]  # Matroska's 1 ms clock, then MPEG-TS's 90 kHz one
    got = frames(read(NetworkSource(camera.url(), backoff=Backoff(initial_s=0)), until=2))
    assert len(got) == 2 * FRAMES
    assert {f.time_base for f in got} == {Fraction(1, 1000)}
    assert [f.pts for f in got[:FRAMES]] == [0, 42, 83, 125, 167, 208]
    second = [f.pts - got[FRAMES].pts for f in got[FRAMES:]]
    assert second == [round(k * 1000 / 24) for k in range(FRAMES)]  # 90 kHz ticks rescaled to ms
    assert got[FRAMES].pts - got[FRAMES - 1].pts >= 42  # at least a frame on


def test_a_camera_that_also_sends_sound_gives_its_video_frames(camera: Camera) -> None:
    camera.script = ["with_sound"]
    got = frames(read(NetworkSource(camera.url(), reconnect_on_eof=False)))
    assert [f.frame_idx for f in got] == list(range(FRAMES))
    assert all(f.image.shape == (48, 64, 3) for f in got)
    assert [f.pts - got[0].pts for f in got] == [k * ONE_FRAME for k in range(FRAMES)]
    assert got[0].pts > 0  # stream time starts where the camera's clock is, not at 0


def test_a_reconnect_to_a_clock_that_starts_elsewhere_still_continues_by_the_gap(camera: Camera) -> None:
    camera.script = ["clip", 503, "with_sound"]  # the second stream's clock starts at 1/12 s, not 0
    got = frames(read(NetworkSource(camera.url(), backoff=BACKOFF), until=2))
    assert len(got) == 2 * FRAMES
    gap_s = float((got[FRAMES].pts - got[FRAMES - 1].pts) * got[FRAMES].time_base)
    wall_s = (got[FRAMES].capture_ns - got[FRAMES - 1].capture_ns) / 1e9
    assert gap_s == pytest.approx(wall_s, abs=0.002)
    assert [f.pts - got[FRAMES].pts for f in got[FRAMES:]] == [k * ONE_FRAME for k in range(FRAMES)]
