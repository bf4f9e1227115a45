"""Local cameras read with OpenCV.

:class:`WebcamSource` opens ``cv2.VideoCapture`` by index (``0``) or device path
(``/dev/video0``), optionally asking for a frame size and rate. Timestamps come from the
camera (``CAP_PROP_POS_MSEC``) while they are sane (positive and increasing), else from
the capture clock; either way ``pts`` is in microseconds (``time_base = 1/1_000_000``),
counted from the first frame, and strictly increasing.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import re
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import cv2

from stream.errors import ConfigError, SourceError, SourceNotFound
from stream.packet import FramePacket, SourceEvent
from stream.sources.file import VideoInfo
from stream.stage import Output, Source

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1_000_000)
#: Failed reads in a row after which the camera counts as unplugged.
MAX_READ_FAILURES = 10
_DEVICE_PATH = re.compile(r"^/dev/video(\d+)$")


def list_cameras() -> list[str]:
    """Video devices present on this machine (``/dev/video*`` on Linux; empty elsewhere)."""
    found = glob.glob("/dev/video*")
    return sorted(found, key=lambda p: int(m.group(1)) if (m := _DEVICE_PATH.match(p)) else 1 << 30)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own stderr warnings while probing devices (we raise clear errors instead)."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None:
        yield
        return
    previous = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_api.setLogLevel(previous)


class WebcamSource(Source):
    """Frames of a local camera.

    Args:
        device: camera index (``0``, ``"0"``) or device path (``"/dev/video0"``).
        width, height: frame size to ask the camera for (its default if None).
        fps: frame rate to ask the camera for (its default if None).
        source_id: stream name in packets; default ``camera<N>``.
        backend: OpenCV capture API, e.g. ``cv2.CAP_V4L2``; any if None.

    Attributes:
        info: the size and rate the camera actually delivers (set by :meth:`setup`).
    """

    live = True

    def __init__(
        self,
        device: int | str = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        source_id: str | None = None,
        backend: int | None = None,
    ) -> None:
        self.index, self.device = self._parse_device(device)
        for name, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and value <= 0:
                raise ConfigError(f"camera {name}: expected a positive number or None, got {value}")
        default_id = f"camera{self.index}" if self.index is not None else str(device)
        super().__init__(source_id or default_id)
        self.width, self.height, self.fps = width, height, fps
        self.backend = cv2.CAP_ANY if backend is None else backend
        self.info: VideoInfo | None = None
        self._capture: Any = None
        self._io = threading.Lock()

    @staticmethod
    def _parse_device(device: int | str) -> tuple[int | None, str]:
        if isinstance(device, bool):
            raise ConfigError(f"camera: expected an index or a /dev/videoN path, got {device!r}")
        index: int
        if isinstance(device, int):
            index = device
        elif isinstance(device, str) and device.strip().isdigit():
            index = int(device)
        elif isinstance(device, str) and (m := _DEVICE_PATH.match(device.strip())):
            index = int(m.group(1))
        elif isinstance(device, str) and device.startswith("/dev/"):
            return None, device
        else:
            raise ConfigError(f"camera: expected an index (0, 1, …) or a /dev/videoN path, got {device!r}")
        if index < 0:
            raise ConfigError(f"camera index: expected >= 0, got {index}")
        return index, f"/dev/video{index}"

    def _describe(self) -> str:
        return f"index {self.index}" if self.index is not None else self.device

    def setup(self) -> None:
        """Open the camera and apply the requested size and rate.

        Raises:
            SourceNotFound: If there is no camera at that index or path.
            SourceError: If the camera exists but can't be opened or delivers no frame.
        """
        if self._capture is not None:
            return
        found = list_cameras()
        target: int | str = self.index if self.index is not None else self.device
        with _quiet_opencv():
            try:
                capture = cv2.VideoCapture(target, self.backend)
            except cv2.error as exc:
                raise SourceError(f"cannot open camera {self._describe()}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            listed = ", ".join(found) if found else "none"
            hint = "pass --source FILE or an RTSP URL"
            if found and self.device in found:
                raise SourceError(
                    f"camera {self._describe()} exists but cannot be opened (busy, or no permission "
                    f"to read {self.device}?); {hint}"
                )
            raise SourceNotFound(f"no camera at {self._describe()} (found {listed}); {hint}")
        if self.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        rate = Fraction(fps).limit_denominator(1001) if fps and 0 < fps <= 1000 else None
        if (self.width and width != self.width) or (self.height and height != self.height):
            log.warning(
                "camera %s: asked for %sx%s, got %dx%d", self._describe(), self.width, self.height, width, height
            )
        if self.fps and rate and abs(float(rate) - self.fps) > 0.5:
            log.warning("camera %s: asked for %s fps, got %.2f", self._describe(), self.fps, float(rate))
        self.info = VideoInfo(width, height, rate, None, None, TIME_BASE, "camera")
        self._capture = capture
        log.info("opened camera %s: %dx%d at %s fps", self._describe(), width, height, f"{fps:.2f}" if rate else "?")

    def __iter__(self) -> Iterator[Output]:
        """Yield frames until closed or the camera stops delivering (then a ``disconnected`` event)."""
        self.setup()
        capture = self._capture
        frame_idx = 0
        failures = 0
        camera_clock = True  # use CAP_PROP_POS_MSEC while it is sane
        first_ms: float | None = None
        first_ns: int | None = None
        last_pts = -1
        try:
            while not self.stop_event.is_set():
                with self._io:
                    if self.stop_event.is_set() or self._capture is None:
                        return
                    ok, image = capture.read()
                    pos_ms = capture.get(cv2.CAP_PROP_POS_MSEC) if ok else 0.0
                received_ns = time.monotonic_ns()
                if not ok or image is None:
                    failures += 1
                    if failures >= MAX_READ_FAILURES:
                        yield SourceEvent(
                            self.source_id,
                            "disconnected",
                            f"camera {self._describe()} stopped delivering frames ({failures} failed reads)",
                            time.time(),
                            {"device": self.device},
                        )
                        return
                    self.stop_event.wait(0.05)
                    continue
                failures = 0
                if first_ns is None:
                    first_ns = received_ns
                if camera_clock and first_ms is None:
                    camera_clock = pos_ms > 0
                    first_ms = pos_ms
                pts = -1
                if camera_clock and first_ms is not None:
                    pts = round((pos_ms - first_ms) * 1000)
                    if pts <= last_pts and frame_idx > 0:
                        log.info("camera %s: its timestamps stopped increasing; using the capture clock", self.device)
                        camera_clock = False
                        first_ns = received_ns - (last_pts + 1) * 1000  # continue from the last pts
                if not camera_clock:
                    pts = (received_ns - first_ns) // 1000
                pts = max(pts, last_pts + 1)
                last_pts = pts
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                elif image.shape[2] == 4:
                    image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
                yield FramePacket(image, self.source_id, frame_idx, pts, TIME_BASE, received_ns)
                frame_idx += 1
        finally:
            with self._io:
                self._release()

    def close(self) -> None:
        """Stop and release the camera; safe from any thread, and twice."""
        self.stop_event.set()
        if self._io.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._io.release()

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            try:
                capture.release()
            except cv2.error as exc:
                log.debug("releasing camera %s: %s", self.device, exc)
