"""Synthetic media for tests: clips, image folders, damaged files and a local RTSP server.

Everything here is deterministic and needs no camera, display or network:

* :func:`make_video` encodes a clip of moving coloured shapes plus a frame counter with
  PyAV, so every frame differs from its neighbours;
* :func:`make_image_folder` writes the same frames as numbered images (MMAction2's
  ``--use-frames`` layout);
* :func:`truncate` and :func:`corrupt` damage a file the way a crashed recorder or a bad
  disk would;
* :class:`RtspServer` serves an H.264 MP4 over RTSP on ``127.0.0.1`` with GStreamer's
  RTSP server (Debian's ``python3-gi`` + ``gir1.2-gst-rtsp-server-1.0``), run by the
  system Python as a child process that is always killed on exit.

The pytest fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import av
import cv2
import numpy as np

Pattern = Literal["shapes", "noise", "black"]

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
HOST = "127.0.0.1"  # the only address the test server ever binds or connects to
SERVING = "rtsp_server: serving"  # what tests/rtsp_server.py prints once it listens


@dataclass(frozen=True)
class VideoSpec:
    """What :func:`make_video` wrote.

    Attributes:
        path: the file.
        frames: number of frames encoded.
        fps: frame rate, as given.
        size: ``(width, height)`` in pixels.
        codec: encoder name (``h264`` is written by libx264).
    """

    path: Path
    frames: int
    fps: int
    size: tuple[int, int]
    codec: str = "h264"

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


# -- frames -----------------------------------------------------------------------------------


def render_frame(index: int, size: tuple[int, int] = (320, 240), pattern: Pattern = "shapes") -> np.ndarray:
    """Draw synthetic frame ``index`` as an ``H×W×3`` uint8 BGR image.

    Args:
        index: frame number; drives the motion and is printed on the frame.
        size: ``(width, height)``.
        pattern: ``shapes`` (moving circle and square on a grey gradient plus the frame
            number), ``noise`` (seeded random pixels, a worst case for encoders) or
            ``black``.

    Returns:
        The image; the same ``(index, size, pattern)`` always gives the same pixels.
    """
    width, height = size
    if pattern == "black":
        return np.zeros((height, width, 3), np.uint8)
    if pattern == "noise":
        return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if pattern != "shapes":
        raise ValueError(f"pattern: expected shapes, noise or black, got {pattern!r}")
    ramp = np.linspace(40, 120, width, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    radius = max(4, min(width, height) // 8)
    span_x = max(1, width - 2 * radius)
    cx = radius + (index * 7) % span_x
    cy = height // 2 + round(float(np.sin(index / 5.0)) * height / 4)
    cv2.circle(image, (cx, cy), radius, (0, 0, 255), thickness=-1)
    side = radius
    sx = (width - side - (index * 5) % max(1, width - side)) - 1
    sy = height // 5
    cv2.rectangle(image, (sx, sy), (sx + side, sy + side), (255, 160, 0), thickness=-1)
    scale = max(0.4, height / 240)
    cv2.putText(image, f"{index:04d}", (4, height - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)
    return image


def make_video(
    path: str | os.PathLike[str],
    *,
    frames: int = 48,
    fps: int = 24,
    size: tuple[int, int] = (320, 240),
    codec: str = "h264",
    pattern: Pattern = "shapes",
    gop: int | None = None,
) -> VideoSpec:
    """Encode a synthetic clip with PyAV.

    The container follows the file suffix (``.mp4``, ``.mkv``, ``.avi``, ``.ts``…). MP4s
    are written with ``movflags=faststart`` (index at the front), so a truncated copy
    still opens and decodes a prefix. H.264 uses libx264 ``ultrafast`` (no B-frames),
    which the RTSP server can stream as-is. Frame ``k`` is encoded at stream time
    ``k / fps`` (the muxer may pick a finer time base, e.g. ``1/12288`` for MP4).

    Args:
        path: where to write.
        frames: how many frames.
        fps: frame rate (integer, so timestamps are exact).
        size: ``(width, height)``; both even for yuv420p codecs.
        codec: PyAV encoder name, e.g. ``h264``, ``mpeg4``, ``mjpeg``.
        pattern: see :func:`render_frame`.
        gop: keyframe interval in frames (encoder default if None).

    Returns:
        What was written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    options = {"movflags": "faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), mode="w", options=options) as container:
        codec_options = {"preset": "ultrafast"} if codec in ("h264", "libx264") else {}
        stream = cast("av.VideoStream", container.add_stream(codec, rate=fps, options=codec_options))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        if gop is not None:
            stream.codec_context.gop_size = gop
        container.start_encoding()  # write the header even when no frame follows
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(render_frame(index, size, pattern), format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return VideoSpec(path, frames, fps, (width, height), codec)


def make_image_folder(
    directory: str | os.PathLike[str],
    frames: int = 8,
    size: tuple[int, int] = (320, 240),
    ext: str = "jpg",
    template: str | None = None,
    *,
    start: int = 1,
    pattern: Pattern = "shapes",
) -> list[Path]:
    """Write frames as numbered images, as MMAction2's rawframe folders are laid out.

    Args:
        directory: folder to write into (created if missing).
        frames: how many images.
        size: ``(width, height)``.
        ext: image format by extension (``jpg``, ``png``, ``bmp``…).
        template: file name template with one integer field; default ``img_{:05d}.<ext>``.
        start: number of the first file (MMAction2 starts at 1).
        pattern: see :func:`render_frame`; image ``k`` shows frame ``k`` (0-based).

    Returns:
        The written files, in frame order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    template = template or f"img_{{:05d}}.{ext}"
    paths = []
    for index in range(frames):
        path = directory / template.format(start + index)
        if not cv2.imwrite(str(path), render_frame(index, size, pattern)):
            raise OSError(f"cv2.imwrite could not write {path}")
        paths.append(path)
    return paths


def make_audio(path: str | os.PathLike[str], *, seconds: float = 0.5, rate: int = 16000) -> Path:
    """Write a file with a sine-tone audio stream and no video (``.wav``, ``.m4a``…)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "pcm_s16le" if path.suffix.lower() == ".wav" else "aac"
    with av.open(str(path), mode="w") as container:
        stream = cast("av.AudioStream", container.add_stream(codec, rate=rate, layout="mono"))
        samples = int(seconds * rate)
        tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
        chunk = 1024
        for start in range(0, samples, chunk):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + chunk], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# -- damage -----------------------------------------------------------------------------------


def truncate(path: str | os.PathLike[str], fraction: float, *, dest: str | os.PathLike[str] | None = None) -> Path:
    """Keep only the first ``fraction`` of a file's bytes, like a recording cut off mid-write.

    Args:
        path: the file.
        fraction: share of bytes kept, in ``[0, 1]``.
        dest: write the truncated copy here instead of truncating in place.

    Returns:
        The truncated file.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: expected a value in [0, 1], got {fraction}")
    path = Path(path)
    target = Path(dest) if dest is not None else path
    if target != path:
        shutil.copyfile(path, target)
    size = target.stat().st_size
    with open(target, "r+b") as f:
        f.truncate(int(size * fraction))
    return target


def strip_media_data(path: str | os.PathLike[str], *, dest: str | os.PathLike[str] | None = None) -> Path:
    """Cut an MP4 where its media data begins: the index promises frames, none are there.

    Needs an MP4 with its index first (``make_video`` writes those).

    Returns:
        The cut file.
    """
    path = Path(path)
    data = path.read_bytes()
    at = data.find(b"mdat")
    if at < 4 or data.find(b"moov") > at or data.find(b"moov") < 0:
        raise ValueError(f"{path}: expected an MP4 with its moov box before its mdat box")
    target = Path(dest) if dest is not None else path
    target.write_bytes(data[: at + 4])
    return target


def corrupt(
    path: str | os.PathLike[str], *, nbytes: int = 4096, seed: int = 0, dest: str | os.PathLike[str] | None = None
) -> Path:
    """Overwrite a file's first ``nbytes`` (its header and index) with seeded random bytes.

    Args:
        path: the file.
        nbytes: how many leading bytes to overwrite (capped at the file size).
        seed: random seed, so the damage is reproducible.
        dest: write the corrupted copy here instead of changing the file in place.

    Returns:
        The corrupted file.
    """
    path = Path(path)
    target = Path(dest) if dest is not None else path
    if target != path:
        shutil.copyfile(path, target)
    n = min(nbytes, target.stat().st_size)
    garbage = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    with open(target, "r+b") as f:
        f.write(garbage)
    return target


# -- RTSP server ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def rtsp_server_unavailable() -> str | None:
    """Why :class:`RtspServer` can't run here, or None when it can (result cached)."""
    global _RTSP_UNAVAILABLE
    if _RTSP_UNAVAILABLE is None:
        check = 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")'
        check += "; from gi.repository import Gst, GstRtspServer; Gst.init(None)"
        check += '; assert Gst.ElementFactory.find("rtph264pay") and Gst.ElementFactory.find("qtdemux")'
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            _RTSP_UNAVAILABLE = f"{SYSTEM_PYTHON} not found"
        else:
            try:
                proc = subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                _RTSP_UNAVAILABLE = "checking for GStreamer's RTSP server timed out"
            else:
                _RTSP_UNAVAILABLE = (
                    ""
                    if proc.returncode == 0
                    else "GStreamer RTSP server unavailable (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                    f"gstreamer1.0-plugins-good gstreamer1.0-plugins-bad): {proc.stderr.strip()[-300:]}"
                )
    return _RTSP_UNAVAILABLE or None


_RTSP_UNAVAILABLE: str | None = None


class RtspServer:
    """A local RTSP server streaming an H.264 MP4 in a loop, as a context manager.

    Runs ``/usr/bin/python3 tests/rtsp_server.py`` (GStreamer's RTSP server) bound to
    ``127.0.0.1``. Each client gets its own playback of the file from the start, looped
    forever, so clients can connect, drop and reconnect any number of times. The child
    process is killed on :meth:`stop`, on leaving the ``with`` block and on garbage
    collection.

    Example::

        with RtspServer(make_video(tmp_path / "clip.mp4").path) as server:
            source = NetworkSource(server.url)
            server.restart()  # same port; connected clients see a disconnect

    Args:
        video_path: an MP4 with an H.264 stream (e.g. from :func:`make_video`).
        port: TCP port; a free one if None.
        mount: path of the stream on the server.
        start_timeout_s: how long :meth:`start` waits for the port to accept connections.
    """

    def __init__(
        self,
        video_path: str | os.PathLike[str],
        port: int | None = None,
        *,
        mount: str = "/cam",
        start_timeout_s: float = 20.0,
    ) -> None:
        self.video_path = Path(video_path)
        if not self.video_path.is_file():
            raise FileNotFoundError(f"RtspServer: no video at {self.video_path}")
        self._auto_port = port is None
        self.port = port or free_port()
        self.mount = mount if mount.startswith("/") else "/" + mount
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._bound_once = False  # after the first start the port is ours: restart() keeps it
        self._log_file = tempfile.NamedTemporaryFile(prefix="rtsp_server_", suffix=".log", delete=False)
        self.log_path = Path(self._log_file.name)

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}{self.mount}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's stdout/stderr, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def start(self) -> RtspServer:
        """Start the server and wait until its port accepts connections.

        Raises:
            RuntimeError: If the server exits or does not listen within ``start_timeout_s``.
        """
        if self.running:
            return self
        reason = rtsp_server_unavailable()
        if reason:
            raise RuntimeError(reason)
        for attempt in range(3):
            try:
                return self._start()
            except RuntimeError:
                # someone took the auto-picked port between picking and binding: pick another
                if not self._auto_port or self._bound_once or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _start(self) -> RtspServer:
        cmd = [
            SYSTEM_PYTHON,
            str(RTSP_SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--file",
            str(self.video_path.resolve()),
            "--mount",
            self.mount,
            "--parent-pid",
            str(os.getpid()),
        ]
        log_start = self.log_path.stat().st_size
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"RTSP server exited with code {code} at start-up:\n{self.log_tail()}")
            if self._log_since(log_start).find(SERVING) >= 0 and port_open(self.port):
                self._bound_once = True
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"RTSP server did not listen on port {self.port} within {self.start_timeout_s}s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Kill the server (SIGTERM, then SIGKILL) and wait until its port is closed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> RtspServer:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but no data flows."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and delete its log."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGCONT)  # a paused process can't handle SIGTERM
        self.stop()
        self._log_file.close()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
