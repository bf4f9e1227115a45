"""Reconnects over several drops: the waits follow the backoff and start over after a success.

A local HTTP server plays the camera: each request is answered as the script says, with
the whole clip (the connection then ends, which a live source treats as a drop) or with
503 (a failed reconnect). It records when each request came, so the test measures the
waits the source really made, not only the delays it announced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stream.packet import FramePacket, SourceEvent
from stream.sources import Backoff, NetworkSource
from tests.media import HOST, make_video

BACKOFF = Backoff(initial_s=0.1, factor=3.0, max_s=0.5)  # 0.1, 0.3, 0.5, 0.5 ...
# Serve, drop; fail three times, serve, drop; fail once, serve, drop.
SCRIPT = ["serve", "fail", "fail", "fail", "serve", "fail", "serve"]


class ScriptedCamera:
    """An HTTP server answering request ``n`` with ``script[n]`` (then 503 for ever)."""

    def __init__(self, clip: bytes, script: list[str]) -> None:
        self.clip, self.script = clip, list(script)
        self.requests: list[float] = []  # time.monotonic() of each request
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.requests.append(time.monotonic())
                n = len(camera.requests) - 1
                if n < len(camera.script) and camera.script[n] == "serve":
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp2t")
                    self.send_header("Content-Length", str(len(camera.clip)))
                    self.end_headers()
                    self.wfile.write(camera.clip)
                else:
                    self.send_error(503, "camera rebooting")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/cam.ts"


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[ScriptedCamera]:
    clip = make_video(tmp_path / "clip.ts", frames=6, size=(64, 48))
    cam = ScriptedCamera(clip.path.read_bytes(), SCRIPT)
    cam.thread.start()
    yield cam
    cam.server.shutdown()
    cam.server.server_close()


@pytest.mark.timeout(30)
def test_waits_follow_the_backoff_and_start_over_after_each_success(camera: ScriptedCamera) -> None:
    source = NetworkSource(camera.url, open_timeout_s=3, read_timeout_s=3, backoff=BACKOFF, max_reconnects=None)
    source.setup()
    events: list[tuple[float, SourceEvent]] = []
    frames = 0
    try:
        for item in source:
            if isinstance(item, FramePacket):
                frames += 1
                continue
            assert isinstance(item, SourceEvent)
            events.append((time.monotonic(), item))
            if item.kind == "disconnected" and sum(e.kind == "disconnected" for _, e in events) == 3:
                break
    finally:
        source.close()

    kinds = [e.kind for _, e in events]
    assert kinds == [
        "opened", "disconnected",
        "reconnecting", "reconnecting", "reconnecting", "reconnecting", "connected", "disconnected",
        "reconnecting", "reconnecting", "connected", "disconnected",
    ]  # fmt: skip
    assert frames == 3 * 6
    reconnecting = [(t, e) for t, e in events if e.kind == "reconnecting"]
    assert [e.data["attempt"] for _, e in reconnecting] == [1, 2, 3, 4, 1, 2]  # counted from 1 after a success
    expected = [0.1, 0.3, 0.5, 0.5, 0.1, 0.3]
    assert [e.data["delay_s"] for _, e in reconnecting] == pytest.approx(expected)
    # Request k+1 is the attempt announced by the k-th reconnecting event: the real wait.
    assert len(camera.requests) == len(SCRIPT)
    waits = [request - announced for (announced, _), request in zip(reconnecting, camera.requests[1:], strict=True)]
    for wait, delay in zip(waits, expected, strict=True):
        assert delay - 0.01 <= wait <= delay + 0.4, f"waited {[round(w, 3) for w in waits]}, expected {expected}"
