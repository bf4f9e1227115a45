"""Status line: frame index, stream time, measured fps and latencies.

``#123 | 00:04.920 | 24.8 fps | latency 85 ms | label 420 ms``

* frame index and stream time (``mm:ss.mmm``, from the frame's ``pts``);
* fps: frames annotated per second of wall time, over a sliding window of frames;
* latency: end-to-end, from the frame's ``capture_ns`` to now (when it is drawn);
* label: capture-to-label latency, from the ``capture_ns`` of the newest frame of the
  latest prediction's clip to the moment that prediction reached this annotator. It is
  measured on the frame that carries the prediction and shown until the next one.

Latencies compare ``time.monotonic_ns()`` readings, so they are only meaningful when
capture and annotation run on the same machine.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from stream.annotate.base import Annotator
from stream.annotate.style import Color, ColorLike, TextStyle, draw_text, text_size, writable
from stream.errors import ConfigError
from stream.packet import FramePacket

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def format_time(seconds: float) -> str:
    """``mm:ss.mmm`` (minutes keep counting past 59), with a sign when negative."""
    sign = "-" if seconds < 0 else ""
    ms = round(abs(seconds) * 1000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{sign}{minutes:02d}:{secs:02d}.{ms:03d}"


class OverlayAnnotator(Annotator):
    """A one-line status overlay in a corner of the frame.

    Args:
        show_frame, show_time, show_fps, show_latency: which fields to draw (latency
            covers both the end-to-end and the capture-to-label latency).
        fps_window: number of recent frames the fps is measured over.
        corner: where the line goes.
        font_scale: OpenCV font scale; None scales with the frame height.
        font_color: text colour.
        background: colour of the box behind the text, or None.
        background_alpha: opacity of that box.
        margin: distance in pixels from the frame's edges.
        clock: monotonic clock in ns (``time.monotonic_ns``); replaceable for tests.

    Raises:
        ConfigError: If an argument is out of range or a colour is unknown.
    """

    def __init__(
        self,
        *,
        show_frame: bool = True,
        show_time: bool = True,
        show_fps: bool = True,
        show_latency: bool = True,
        fps_window: int = 30,
        corner: Corner = "bottom-left",
        font_scale: float | None = None,
        font_color: ColorLike = "white",
        background: ColorLike | None = "black",
        background_alpha: float = 0.6,
        margin: int = 8,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if fps_window < 2:
            raise ConfigError(f"fps_window: expected >= 2 frames, got {fps_window}")
        if corner not in _CORNERS:
            raise ConfigError(f"corner: expected one of {', '.join(_CORNERS)}, got {corner!r}")
        self.show_frame, self.show_time, self.show_fps, self.show_latency = (
            show_frame, show_time, show_fps, show_latency,
        )  # fmt: skip
        self.fps_window = fps_window
        self.corner = corner
        self.margin = margin
        self.clock = clock
        self.style = TextStyle(
            font_scale=font_scale,
            color=Color.parse(font_color),
            background=None if background is None else Color.parse(background),
            background_alpha=background_alpha,
        )
        self._times: dict[str, collections.deque[int]] = {}
        self._label_ms: dict[str, float] = {}

    def fps(self, source_id: str) -> float | None:
        """Frames per second over the last ``fps_window`` frames of ``source_id``, if measurable."""
        times = self._times.get(source_id)
        if not times or len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) * 1e9 / (times[-1] - times[0])

    def text(self, packet: FramePacket) -> str:
        """Update the measurements with ``packet`` and return its status line."""
        now = self.clock()
        times = self._times.setdefault(packet.source_id, collections.deque(maxlen=self.fps_window))
        times.append(now)
        if packet.predictions:
            newest = max(p.capture_ns for p in packet.predictions)
            self._label_ms[packet.source_id] = (now - newest) / 1e6
        fields = []
        if self.show_frame:
            fields.append(f"#{packet.frame_idx}")
        if self.show_time:
            fields.append(format_time(packet.time_s))
        if self.show_fps:
            fps = self.fps(packet.source_id)
            fields.append("-- fps" if fps is None else f"{fps:.1f} fps")
        if self.show_latency:
            fields.append(f"latency {(now - packet.capture_ns) / 1e6:.0f} ms")
            label_ms = self._label_ms.get(packet.source_id)
            if label_ms is not None:
                fields.append(f"label {label_ms:.0f} ms")
        return " | ".join(fields)

    def annotate(self, image: np.ndarray, packet: FramePacket) -> np.ndarray:
        image = writable(image)
        text = self.text(packet)
        if not text:
            return image
        h, w = image.shape[:2]
        box_w, box_h = text_size(text, self.style, h)
        x = self.margin if self.corner.endswith("left") else max(0, w - self.margin - box_w)
        y = self.margin if self.corner.startswith("top") else max(0, h - self.margin - box_h)
        draw_text(image, text, x, y, self.style)
        return image
