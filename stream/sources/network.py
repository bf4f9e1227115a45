"""Network streams (RTSP, HTTP) read with PyAV, with reconnects.

:class:`NetworkSource` opens ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URLs
(RTSP over TCP by default), with an open timeout and a read timeout. When the stream
drops (server gone, network down, no data for ``read_timeout_s``) it yields
``SourceEvent('disconnected')`` and reconnects with exponential backoff, yielding
``reconnecting`` before each attempt and ``connected`` on success, until
``max_reconnects`` attempts in a row failed (then ``gave_up`` and the iterator ends).

Stream time never jumps back: after a reconnect, ``pts`` are offset so the first new
frame comes after the last old one by the wall-clock time that passed (at least one
frame). ``frame_idx`` keeps counting and ``capture_ns`` is when the frame was received.
Credentials in the URL never appear in ``source_id``, events or logs.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import av
import av.error

from stream.errors import ConfigError, SourceError, SourceNotFound, SourceTimeout
from stream.packet import EventKind, FramePacket, SourceEvent
from stream.sources.file import VideoInfo, ffmpeg_reason, stream_fps, to_bgr
from stream.stage import Output, Source

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "http", "https")
_DEFAULT_TIME_BASE = Fraction(1, 90_000)  # RTP's video clock


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between reconnect attempts.

    Attempt ``n`` (1-based) waits ``min(initial_s * factor**(n-1), max_s)``, then scaled by a
    random factor in ``[1 - jitter, 1 + jitter]``.

    Attributes:
        initial_s: wait before the first attempt.
        factor: growth per attempt (>= 1).
        max_s: longest wait.
        jitter: relative randomisation in ``[0, 1)``, so many clients don't retry in lockstep.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < 0:
            raise ConfigError(f"backoff: expected delays >= 0, got initial_s={self.initial_s}, max_s={self.max_s}")
        if self.factor < 1:
            raise ConfigError(f"backoff factor: expected >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"backoff jitter: expected a value in [0, 1), got {self.jitter}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        base = min(self.initial_s * self.factor ** max(0, attempt - 1), self.max_s)
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return base


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` of a URL: no user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


class NetworkSource(Source):
    """A live RTSP or HTTP video stream that reconnects when it drops.

    Args:
        url: ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URL.
        source_id: stream name in packets; default the URL without credentials or query.
        open_timeout_s: how long connecting may take.
        read_timeout_s: how long the stream may stay silent before it counts as dropped.
        rtsp_transport: ``tcp`` (default, no packet loss) or ``udp``.
        backoff: waits between reconnect attempts.
        max_reconnects: reconnect attempts in a row before giving up; None retries forever,
            0 never reconnects.
        fail_fast: if the first connection fails, raise from :meth:`setup` instead of
            retrying (the CLI uses this so a wrong URL is a clear error at start-up).
        reconnect_on_eof: treat the end of the stream as a drop (live streams never end on
            purpose); False ends the iterator at end of stream (finite HTTP files).
        options: extra FFmpeg options passed to ``av.open``.

    Attributes:
        info: what the stream says about its video (set on the first connection).
        url: the URL as given (may hold credentials; never logged).
    """

    live = True

    def __init__(
        self,
        url: str,
        *,
        source_id: str | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        rtsp_transport: str = "tcp",
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
        fail_fast: bool = False,
        reconnect_on_eof: bool = True,
        options: dict[str, str] | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(f"network source: expected a URL starting with {', '.join(s + '://' for s in SCHEMES)}")
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ConfigError(
                f"timeouts: expected > 0 s, got open_timeout_s={open_timeout_s}, read_timeout_s={read_timeout_s}"
            )
        if rtsp_transport not in ("tcp", "udp"):
            raise ConfigError(f"rtsp_transport: expected tcp or udp, got {rtsp_transport!r}")
        if max_reconnects is not None and max_reconnects < 0:
            raise ConfigError(f"max_reconnects: expected >= 0 or None (forever), got {max_reconnects}")
        self.url = url
        self.display_url = redact_url(url)
        super().__init__(source_id or self.display_url)
        self.scheme = scheme
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.rtsp_transport = rtsp_transport
        self.backoff = backoff or Backoff()
        self.max_reconnects = max_reconnects
        self.fail_fast = fail_fast
        self.reconnect_on_eof = reconnect_on_eof
        self.options = dict(options or {})
        self.info: VideoInfo | None = None
        self._container: Any = None
        self._io = threading.Lock()  # held while PyAV blocks, so close() from another thread never races it
        # stream-time continuity across connections
        self._time_base: Fraction | None = None
        self._last_pts: int | None = None
        self._last_ns: int | None = None
        self._offset: int | None = None  # added to this connection's pts; None until its first timestamp
        self._connections = 0
        self._announced = False  # the current connection's opened/connected event was yielded
        self._frame_idx = 0

    # -- lifecycle ------------------------------------------------------------------------

    def setup(self) -> None:
        """With ``fail_fast``, connect now so that a bad URL fails at start-up.

        Raises:
            SourceTimeout: If the server does not answer within ``open_timeout_s``.
            SourceNotFound: If the server has no stream at that path.
            SourceError: If the connection is refused or the stream is unusable.
        """
        if self.fail_fast and self._container is None and self._connections == 0:
            with self._io:
                self._connect()

    def __iter__(self) -> Iterator[Output]:
        """Yield frames and connection events until closed, given up, or (optionally) end of stream."""
        attempts = 0  # reconnect attempts since the last good connection
        retrying = False  # the first connection failed or a connection dropped
        lost = ""  # why, while retrying
        while not self.stop_event.is_set():
            if self._container is None:
                if retrying:
                    if self.max_reconnects is not None and attempts >= self.max_reconnects:
                        yield self._event(
                            "gave_up",
                            f"{self.display_url}: giving up after {attempts} failed reconnect attempts ({lost})",
                            attempts=attempts,
                            reason=lost,
                        )
                        return
                    attempts += 1
                    delay = self.backoff.delay(attempts)
                    yield self._event(
                        "reconnecting",
                        f"{self.display_url}: reconnect attempt {attempts} in {delay:.1f}s",
                        attempt=attempts,
                        delay_s=round(delay, 3),
                    )
                    if self.stop_event.wait(delay):
                        return
                try:
                    with self._io:
                        if self.stop_event.is_set():
                            return
                        self._connect()
                except SourceError as exc:
                    log.warning("%s", exc)
                    if not retrying:  # the very first connection failed
                        yield self._event("error", str(exc), reason=str(exc))
                    retrying, lost = True, str(exc)
                    continue
                attempts, retrying = 0, False
            if not self._announced:
                self._announced = True
                first = self._connections == 1
                info = self.info
                size = f"{info.width}x{info.height} {info.codec}" if info else "video"
                yield self._event(
                    "opened" if first else "connected",
                    f"{self.display_url}: {'opened' if first else 'reconnected'} ({size})",
                    connections=self._connections,
                )
            reason = yield from self._read()
            if self.stop_event.is_set() or reason is None:
                return
            retrying, lost = True, reason
            yield self._event("disconnected", f"{self.display_url}: {reason}", reason=reason)

    def close(self) -> None:
        """Stop (also cuts a backoff wait short) and disconnect; safe from any thread, and twice."""
        self.stop_event.set()
        if self._io.acquire(blocking=False):
            try:
                self._disconnect()
            finally:
                self._io.release()
        # else: the iterating thread is inside PyAV; it disconnects when the call returns (<= read timeout)

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> None:
        options = {"rtsp_transport": self.rtsp_transport} if self.scheme.startswith("rtsp") else {}
        options.update(self.options)
        started = time.monotonic()
        try:
            container = av.open(self.url, options=options, timeout=(self.open_timeout_s, self.read_timeout_s))
        except av.error.FFmpegError as exc:
            raise self._open_error(exc, time.monotonic() - started) from exc
        except OSError as exc:
            raise SourceError(f"cannot connect to {self.display_url}: {exc}; check the URL and the network") from exc
        if not container.streams.video:
            kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["none"]
            container.close()
            raise SourceError(f"{self.display_url} has no video stream (streams found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self._container = container
        self._connections += 1
        self._offset = None
        self._announced = False
        time_base = Fraction(stream.time_base) if stream.time_base else _DEFAULT_TIME_BASE
        if self._time_base is None:
            self._time_base = time_base
        ctx = stream.codec_context
        self.info = VideoInfo(
            width=int(ctx.width),
            height=int(ctx.height),
            fps=stream_fps(stream),
            frames=None,
            duration_s=None,
            time_base=self._time_base,
            codec=ctx.name,
        )
        log.info("connected to %s (%dx%d %s)", self.display_url, ctx.width, ctx.height, ctx.name)

    def _open_error(self, exc: av.error.FFmpegError, elapsed: float) -> SourceError:
        where = self.display_url
        reason = ffmpeg_reason(exc)
        if isinstance(exc, (av.error.TimeoutError, av.error.ExitError)) or elapsed >= self.open_timeout_s * 0.95:
            return SourceTimeout(
                f"no answer from {where} within {self.open_timeout_s:g}s ({reason}); "
                "check that the camera or server is up and reachable"
            )
        if isinstance(exc, av.error.HTTPNotFoundError) or "404" in reason:  # not str(exc): it holds the URL
            return SourceNotFound(f"{where}: the server has no stream at this path (404); check the URL's path")
        if isinstance(exc, (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)) or "401" in reason:
            return SourceError(f"{where}: access denied ({reason}); check the user name and password in the URL")
        if isinstance(exc, av.error.ConnectionRefusedError):
            return SourceError(
                f"cannot connect to {where}: connection refused; check the host, port and that the server runs"
            )
        return SourceError(f"cannot open {where}: {reason}; check the URL and that it serves video")

    def _disconnect(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except av.error.FFmpegError as exc:
                log.debug("closing %s: %s", self.display_url, exc)

    # -- reading --------------------------------------------------------------------------

    def _read(self) -> Generator[Output, None, str | None]:
        """Frames of the current connection; returns why it dropped (None: clean end, no reconnect)."""
        container = self._container
        stream = container.streams.video[0]
        frames = container.decode(stream)
        reason: str | None
        try:
            while True:
                with self._io:
                    if self.stop_event.is_set():
                        return "closed"
                    try:
                        frame = next(frames)
                    except StopIteration:
                        reason = "end of stream" if self.reconnect_on_eof else None
                        break
                    except (av.error.TimeoutError, av.error.ExitError):
                        reason = f"no data for {self.read_timeout_s:g}s"
                        break
                    except (av.error.FFmpegError, OSError) as exc:
                        reason = f"stream error: {ffmpeg_reason(exc)}"
                        break
                    image = to_bgr(frame)
                received_ns = time.monotonic_ns()
                pts = self._stream_pts(frame, stream, received_ns)
                time_base = self._time_base or _DEFAULT_TIME_BASE
                yield FramePacket(image, self.source_id, self._next_idx(), pts, time_base, received_ns)
        finally:
            with self._io:
                self._disconnect()
        if reason is not None:
            log.warning("%s dropped: %s", self.display_url, reason)
        return reason

    def _next_idx(self) -> int:
        idx = self._frame_idx
        self._frame_idx += 1
        return idx

    def _stream_pts(self, frame: av.VideoFrame, stream: Any, received_ns: int) -> int:
        """This frame's pts in the source's time base, increasing across reconnects."""
        time_base = self._time_base or _DEFAULT_TIME_BASE
        fps = stream_fps(stream)
        one_frame = max(1, round(1 / (fps * time_base))) if fps else 1
        wall = 0 if self._last_ns is None else round((received_ns - self._last_ns) / 1e9 / time_base)
        raw: int | None = None
        if frame.pts is not None:
            frame_tb = Fraction(frame.time_base) if frame.time_base else time_base
            raw = round(frame.pts * frame_tb / time_base) if frame_tb != time_base else int(frame.pts)
        if self._last_pts is None:  # the source's very first frame
            pts = raw if raw is not None else 0
            if raw is not None:
                self._offset = 0
        elif raw is None:
            pts = self._last_pts + max(1, wall)
        else:
            if self._offset is None:  # first timestamp of this connection: continue after the last frame
                self._offset = self._last_pts + max(one_frame, wall) - raw
            pts = raw + self._offset
            if pts <= self._last_pts:
                log.debug("%s: pts %d not after %d; nudged", self.display_url, pts, self._last_pts)
                pts = self._last_pts + 1
        self._last_pts = pts
        self._last_ns = received_ns
        return pts

    def _event(self, kind: EventKind, message: str, **data: Any) -> SourceEvent:
        return SourceEvent(self.source_id, kind, message, time.time(), {"url": self.display_url, **data})
