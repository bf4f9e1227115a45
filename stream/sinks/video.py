"""Video file output: H.264 MP4 (or any PyAV container/codec) written as frames arrive.

Timing:

* without ``fps`` (no ``--output-fps``) each frame keeps its source timestamp, rescaled
  to a 90 kHz clock and shifted so the file starts at 0. A stream with dropped frames
  therefore plays back at real speed (variable frame rate). The nominal rate given to
  the encoder is the source's: ``packet.meta["fps"]`` or, failing that, the spacing of
  the first two timestamps. Timestamps that go backwards (a source that restarted)
  continue one frame after the last one written.
* with ``fps`` the file is constant-rate: frame ``n`` is shown at ``n / fps``, as in
  MMAction2's demos (the playback speed changes when ``fps`` differs from the source).

Frames are written at the size of the first frame: later frames of another size are
resized to it, and odd widths/heights are padded by one pixel (edge replicated) because
``yuv420p`` needs even sizes.

Files are written whole or not at all (:mod:`core.files`): frames go to a hidden file
beside the destination (``.NAME.partial-PID-N.mp4``), which is finalised (encoder
flushed, MP4 index written) and renamed into place in ``finish()``, or in ``close()``
when the pipeline failed before ``finish()``: a run that stops early leaves a valid file
with every frame that reached the sink. A sink that received no frame (the input could
not be opened) writes nothing, and an existing file of that name stays as it was, as it
does when finalising fails. A killed process (``kill -9``) leaves the destination
untouched and its frames in the hidden file, an MP4 without its index unless
``fragmented=True``: a fragmented MP4 stays playable even then, at the cost of slightly
larger files and slower seeking in some players.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np

from core.files import AtomicFile, check_writable
from stream.errors import ConfigError, OutputError, SinkError
from stream.packet import FramePacket
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING

log = logging.getLogger(__name__)

CLOCK_RATE = 90_000  # output time base for source timestamps (the MPEG clock)
DEFAULT_FPS = Fraction(25)  # nominal rate when neither meta nor timestamps tell
_X264_LIKE = ("libx264", "libx265", "libx264rgb")
#: Fragmented MP4: a fragment per keyframe and at least every second, flushed to disk as
#: written, so a killed process leaves a file that plays up to its last second or so.
FRAGMENTED_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "1000000",
    "flush_packets": "1",
}


def as_rate(fps: float | Fraction | int, what: str = "fps") -> Fraction:
    """A frame rate as a fraction (``29.97`` → ``2997/100``).

    Raises:
        ConfigError: If ``fps`` is not a positive finite number.
    """
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected a positive number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what}: expected a positive number, got {fps!r}")
    return fps if isinstance(fps, Fraction) else Fraction(value).limit_denominator(1001)


def _safe(source_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", source_id).strip("._") or "source"


#: The lowest ``bitrate`` (bits/s) the encoder takes: libx264 sets its rate in whole kbit/s.
MIN_BITRATE = 1000


class _Writer:
    """One output file; opened on its first frame."""

    def __init__(self, sink: VideoWriterSink, path: Path) -> None:
        self.sink = sink
        self.path = path
        self.file = AtomicFile(path)  # frames go to its hidden temporary name until close()
        self.written = False  # renamed into place
        self.container: av.container.OutputContainer | None = None
        self.stream: av.video.stream.VideoStream | None = None
        self.pending: list[FramePacket] = []
        self.raw_size = (0, 0)  # (h, w) of the first frame, set when the file is opened
        self.frames = 0
        self.resized = False
        self.closed = False
        self.failed: SinkError | None = None  # the file could not be opened
        # source-timestamp mode
        self.frame_ticks = 0
        self.first_ticks: int | None = None
        self.offset = 0
        self.last_pts: int | None = None

    # -- writing --------------------------------------------------------------------------

    def write(self, packet: FramePacket) -> None:
        if self.failed is not None:
            raise self.failed
        if self.closed:
            return
        if self.stream is None:
            self.pending.append(packet)
            rate = self._rate()
            if rate is None:
                return
            try:
                self._open(rate)
            except SinkError as exc:
                self.failed, self.pending = exc, []  # no retry per frame, no frames piling up
                raise
            pending, self.pending = self.pending, []
            for p in pending:
                self._encode(p)
            return
        self._encode(packet)

    def _rate(self, *, final: bool = False) -> Fraction | None:
        """The output's frame rate, or None while the pending frames cannot tell yet."""
        if self.sink.fps is not None:
            return self.sink.fps
        first = self.pending[0]
        meta_fps = first.meta.get("fps")
        if meta_fps is not None:
            try:
                return as_rate(meta_fps, "packet meta 'fps'")  # type: ignore[arg-type]
            except ConfigError as exc:
                log.warning("%s: %s; deriving the rate from timestamps", self.path, exc)
        if len(self.pending) >= 2:
            delta = self.pending[1].time_s - first.time_s
            if delta > 0:
                return as_rate(1.0 / delta)
        if final or len(self.pending) >= 8:
            log.warning("%s: source frame rate unknown, assuming %s fps", self.path, DEFAULT_FPS)
            return DEFAULT_FPS
        return None

    def _open(self, rate: Fraction) -> None:
        sink = self.sink
        first = self.pending[0]
        h, w = first.image.shape[:2]
        self.raw_size = (h, w)
        options = FRAGMENTED_OPTIONS if sink.fragmented else {}
        container: av.container.OutputContainer | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.file.path), "w", format=sink.format_name, options=options)
            stream = container.add_stream(sink.codec, rate=rate)
            if not isinstance(stream, av.video.stream.VideoStream):
                raise ValueError(f"codec {sink.codec!r} is not a video encoder")
            stream.width, stream.height = w + w % 2, h + h % 2
            stream.pix_fmt = sink.pix_fmt
            if sink.fps is None:
                stream.codec_context.time_base = Fraction(1, CLOCK_RATE)
                self.frame_ticks = max(1, round(CLOCK_RATE / rate))
            else:
                stream.codec_context.time_base = 1 / rate
            codec_options: dict[str, object] = {}
            if sink.fragmented:  # a keyframe every second: a killed recording loses at most that
                codec_options["g"] = str(max(1, round(rate)))
            if sink.codec in _X264_LIKE:
                codec_options["preset"] = sink.preset
                if sink.bitrate is None:
                    codec_options["crf"] = str(sink.crf)
            if sink.bitrate is not None:
                stream.bit_rate = sink.bitrate
            codec_options.update(sink.options)
            stream.options = codec_options
            container.start_encoding()  # open the file and the encoder now, so errors surface here
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if container is not None:
                with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                    container.close()
            self.file.discard()
            raise SinkError(f"cannot open {self.path} for writing video: {exc}") from exc
        self.container, self.stream = container, stream
        log.info("writing %s: %dx%d %s at %s fps (%s)", self.path, stream.width, stream.height, sink.codec,
                 f"{float(rate):.3f}".rstrip("0").rstrip("."),
                 "source timestamps" if sink.fps is None else "constant rate")  # fmt: skip
        if sink.fragmented:
            log.info("recording into %s (fragmented: playable even if the process is killed); "
                     "renamed to %s when the run ends", self.file.path, self.path.name)  # fmt: skip

    def _pts(self, packet: FramePacket) -> int:
        if self.sink.fps is not None:
            return self.frames
        ticks = round(packet.pts * packet.time_base * CLOCK_RATE)
        if self.first_ticks is None:
            self.first_ticks = ticks
        pts = ticks - self.first_ticks + self.offset
        if self.last_pts is not None and pts <= self.last_pts:
            # timestamps repeated or went backwards (source restarted): continue one frame on
            self.offset += self.last_pts + self.frame_ticks - pts
            pts = self.last_pts + self.frame_ticks
        self.last_pts = pts
        return pts

    def _image(self, image: np.ndarray) -> np.ndarray:
        h, w = self.raw_size
        if image.shape[:2] != (h, w):
            if not self.resized:
                log.warning("%s: frame size changed from %dx%d to %dx%d; resizing to the first",
                            self.path, w, h, image.shape[1], image.shape[0])  # fmt: skip
                self.resized = True
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if h % 2 or w % 2:
            image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(image)

    def _encode(self, packet: FramePacket) -> None:
        stream, container = self.stream, self.container
        if stream is None or container is None:
            raise SinkError(f"{self.path}: frame written before the file was opened or after it was closed")
        image = self._image(packet.image)
        if stream.pix_fmt == "yuv420p":
            # OpenCV's SIMD BGR -> I420 (BT.601, limited range, as swscale's default) is ~8x
            # faster than letting the encoder convert bgr24 with swscale.
            i420 = cast("np.ndarray[Any, np.dtype[np.uint8]]", cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420))
            frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._pts(packet)
        frame.time_base = stream.codec_context.time_base
        try:
            for out in stream.encode(frame):
                container.mux(out)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(f"cannot write video to {self.path}: {exc}") from exc
        self.frames += 1

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Encode what is pending, flush the encoder, write the index and rename the file into place.

        Nothing is renamed when no frame was written or finalising failed: the temporary
        file is removed and an existing file at :attr:`path` stays as it was. Idempotent.

        Raises:
            SinkError: If flushing or finalising the file fails.
        """
        if self.closed:
            return
        complete = False
        try:
            if self.stream is None and self.pending and self.failed is None:
                self._open(self._rate(final=True) or DEFAULT_FPS)
                pending, self.pending = self.pending, []
                for p in pending:
                    self._encode(p)
            if self.stream is not None and self.container is not None:
                try:
                    for out in self.stream.encode(None):
                        self.container.mux(out)
                except (av.error.FFmpegError, OSError, ValueError) as exc:
                    raise SinkError(f"cannot flush video to {self.path}: {exc}") from exc
            complete = True
        finally:
            self.closed = True
            container, self.container = self.container, None
            if container is not None:
                try:
                    container.close()
                except (av.error.FFmpegError, OSError, ValueError) as exc:
                    complete = False
                    raise SinkError(f"cannot finalise {self.path}: {exc}") from exc
                finally:
                    if not (complete and self.frames):
                        self.file.discard()
            else:
                self.file.discard()
        if self.frames:
            try:
                self.file.commit()
            except OutputError as exc:
                raise SinkError(str(exc)) from exc
            self.written = True
            log.info("wrote %d frames to %s", self.frames, self.path)


class VideoWriterSink(Stage):
    """Encodes frames into a video file (H.264 MP4 by default); passes packets on unchanged.

    Args:
        path: output file (``--out-file``); the extension picks the container. Parent
            folders are created.
        fps: output frame rate (``--output-fps``) for a constant-rate file; None keeps
            the source timestamps (see the module docstring).
        codec: PyAV/FFmpeg encoder name.
        crf: constant rate factor for libx264/libx265 (lower is better quality), used
            when ``bitrate`` is None.
        bitrate: target bit rate in bits/s instead of ``crf``.
        preset: libx264/libx265 speed preset.
        pix_fmt: pixel format of the encoded video.
        per_source: one file per source: ``path`` may contain ``{source_id}``, otherwise
            ``-<source_id>`` is added before the extension. When False, frames of any
            source other than the first one seen are skipped (with a warning).
        fragmented: write a fragmented MP4 (fragments of at most a second, a keyframe every
            second), readable even if the process is killed (``--fragmented``).
        options: extra encoder options (FFmpeg ``AVOption`` names → values).
        name: stage name; defaults to ``VideoWriterSink``.

    Raises:
        ConfigError: If a number is out of range.
    """

    live_policy = LIVE_RECORDING

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | Fraction | None = None,
        codec: str = "libx264",
        crf: int = 23,
        bitrate: int | None = None,
        preset: str = "veryfast",
        pix_fmt: str = "yuv420p",
        per_source: bool = False,
        fragmented: bool = False,
        options: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if not 0 <= crf <= 63:
            raise ConfigError(f"crf: expected 0..63, got {crf}")
        if bitrate is not None and bitrate < MIN_BITRATE:
            # libx264 counts in kbit/s: under 1000 bits/s its first frame fails with a generic error
            raise ConfigError(f"bitrate: expected at least {MIN_BITRATE} bits/s (1 kbit/s), got {bitrate}")
        self.path = Path(path)
        self.fps = None if fps is None else as_rate(fps, "fps")
        self.codec = codec
        self.crf = crf
        self.bitrate = bitrate
        self.preset = preset
        self.pix_fmt = pix_fmt
        self.per_source = per_source
        self.fragmented = fragmented
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self._writers: dict[str, _Writer] = {}
        self._skipped: set[str] = set()
        self.format_name: str | None = None  # the container format, from the extension (setup)
        self._ready = False  # setup() succeeded
        self._closed = False

    @property
    def frames(self) -> int:
        """Frames written so far, over all files."""
        return sum(w.frames for w in self._writers.values())

    @property
    def paths(self) -> dict[str, Path]:
        """The file of each source seen so far."""
        return {sid: w.path for sid, w in self._writers.items()}

    @property
    def written(self) -> list[Path]:
        """The files put in place so far (complete and valid)."""
        return [w.path for w in self._writers.values() if w.written]

    def path_for(self, source_id: str) -> Path:
        """The file ``source_id``'s frames go to."""
        if not self.per_source:
            return self.path
        if "{source_id}" in str(self.path):
            return Path(str(self.path).replace("{source_id}", _safe(source_id)))
        return self.path.with_name(f"{self.path.stem}-{_safe(source_id)}{self.path.suffix}")

    def setup(self) -> None:
        """Check the encoder, the container format and that the path is writable.

        Creates nothing: the file (and its folder) appear with the first frame.

        Raises:
            SinkError: If the encoder or pixel format is unknown, the extension names no
                container format, or the file (folder with ``per_source``) cannot be written.
        """
        try:
            codec = av.codec.Codec(self.codec, "w")
        except ValueError:
            raise SinkError(f"video codec {self.codec!r} is not available in this PyAV/FFmpeg build") from None
        if codec.type != "video":
            raise SinkError(f"codec {self.codec!r} is not a video encoder")
        try:
            av.VideoFormat(self.pix_fmt)
        except ValueError:
            raise SinkError(f"pix_fmt {self.pix_fmt!r} is not a pixel format") from None
        probe_path = self.path_for("probe")
        try:
            probe = av.open(str(probe_path), "w")  # guesses the format; creates no file
        except ValueError:
            raise SinkError(
                f"cannot tell the container format of {self.path} from its extension (use .mp4, .mkv, .avi...)"
            ) from None
        self.format_name = probe.format.name
        probe.close()
        try:
            check_writable(probe_path if self.per_source else self.path, "video")
        except OutputError as exc:
            raise SinkError(str(exc)) from exc
        self._ready = True

    def process(self, packet: FramePacket) -> Outputs:
        writer = self._writers.get(packet.source_id)
        if writer is None:
            if not self.per_source and self._writers:
                if packet.source_id not in self._skipped:
                    self._skipped.add(packet.source_id)
                    first = next(iter(self._writers))
                    log.warning("%s: writing only source %r; frames of %r are skipped (use per_source=True)",
                                self.path, first, packet.source_id)  # fmt: skip
                return packet
            writer = self._writers[packet.source_id] = _Writer(self, self.path_for(packet.source_id))
        writer.write(packet)
        return packet

    def finish(self) -> Outputs:
        self._close_all()
        return None

    def close(self) -> None:
        self._close_all()

    def _close_all(self) -> None:
        error: SinkError | None = None
        for writer in self._writers.values():
            try:
                writer.close()
            except SinkError as exc:
                log.error("%s", exc)
                error = error or exc
        if not self._writers and self._ready and not self._closed:
            log.warning("%s: no frames arrived, no video written", self.path)
        self._closed = True
        if error is not None:
            raise error
