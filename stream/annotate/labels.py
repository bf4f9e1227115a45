"""Action labels: the top-k classes with their scores, as MMAction2's demos draw them.

Whole-frame predictions (``track_id is None``) are drawn as a stack of
``"name: score"`` lines at the top-left corner; per-person predictions (``track_id``
set) are drawn inside that person's box when the frame's detections carry the track.

A recogniser attaches a prediction to one frame per clip, so the annotator remembers the
latest prediction of each source (and each track) and keeps drawing it on the following
frames until a newer one arrives, or until ``hold_s`` seconds of stream time passed.
"""

from __future__ import annotations

import collections

import numpy as np

from stream.annotate.base import Annotator
from stream.annotate.style import Color, ColorLike, TextStyle, draw_text, writable
from stream.errors import ConfigError
from stream.packet import FramePacket, Prediction

_MAX_TRACKS = 1024  # remembered per-track predictions (oldest forgotten first)


class LabelAnnotator(Annotator):
    """Top-k action labels with scores.

    Args:
        top_k: at most this many labels per prediction.
        threshold: labels scoring below this are hidden (MMAction2's ``--threshold``).
        font_scale: OpenCV font scale (``--font-scale``); None scales with the frame height.
        font_color: text colour (``--font-color``): a name, ``#rrggbb`` or ``(b, g, r)``.
        thickness: text stroke width; None derives it from the font scale.
        background: colour of the box behind each line for readability, or None.
        background_alpha: opacity of that box.
        text_format: format of one line, with ``{name}`` and ``{score}`` fields.
        hold_s: stream seconds a prediction stays on screen without a newer one;
            None keeps it until replaced.
        margin: distance in pixels of the first line from the top-left corner.
        waiting_text: shown until the source's first prediction arrives (MMAction2's
            "Preparing action recognition ..."), or None.
        waiting_color: colour of ``waiting_text`` (``--msg-color``).

    Raises:
        ConfigError: If an argument is out of range or a colour is unknown.
    """

    def __init__(
        self,
        *,
        top_k: int = 5,
        threshold: float = 0.0,
        font_scale: float | None = None,
        font_color: ColorLike = "white",
        thickness: int | None = None,
        background: ColorLike | None = "black",
        background_alpha: float = 0.6,
        text_format: str = "{name}: {score:.2f}",
        hold_s: float | None = None,
        margin: int = 8,
        waiting_text: str | None = None,
        waiting_color: ColorLike = "gray",
    ) -> None:
        if top_k < 1:
            raise ConfigError(f"top_k: expected >= 1, got {top_k}")
        if hold_s is not None and hold_s < 0:
            raise ConfigError(f"hold_s: expected >= 0 or None, got {hold_s}")
        try:
            text_format.format(name="x", score=0.5)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"text_format {text_format!r}: expected {{name}} and {{score}} fields ({exc})") from None
        self.top_k = top_k
        self.threshold = threshold
        self.text_format = text_format
        self.hold_s = hold_s
        self.margin = margin
        self.waiting_text = waiting_text
        self.waiting_style = TextStyle(
            font_scale=font_scale,
            color=Color.parse(waiting_color),
            thickness=thickness,
            background=None if background is None else Color.parse(background),
            background_alpha=background_alpha,
        )
        self.style = TextStyle(
            font_scale=font_scale,
            color=Color.parse(font_color),
            thickness=thickness,
            background=None if background is None else Color.parse(background),
            background_alpha=background_alpha,
        )
        # (source_id, track_id, multi_label) -> (prediction, stream time it arrived): a person may
        # have a single-label prediction (skeleton recognition) and a multi-label one (AVA) at once
        self._latest: collections.OrderedDict[tuple[str, int | None, bool], tuple[Prediction, float]] = (
            collections.OrderedDict()
        )

    def lines(self, prediction: Prediction) -> list[str]:
        """The text lines drawn for ``prediction`` (top-k, above the threshold)."""
        out = []
        for name, score in zip(prediction.names[: self.top_k], prediction.scores[: self.top_k], strict=True):
            if score >= self.threshold:
                out.append(self.text_format.format(name=name, score=float(score)))
        return out

    def annotate(self, image: np.ndarray, packet: FramePacket) -> np.ndarray:
        image = writable(image)
        now = packet.time_s
        for prediction in packet.predictions:
            key = (packet.source_id, prediction.track_id, prediction.multi_label)
            self._latest[key] = (prediction, now)
            self._latest.move_to_end(key)
        while len(self._latest) > _MAX_TRACKS:
            self._latest.popitem(last=False)

        frame_predictions = self._current(packet.source_id, None, now)
        if frame_predictions:
            y = self.margin
            for line in [line for p in frame_predictions for line in self.lines(p)]:
                _, box_h = draw_text(image, line, self.margin, y, self.style)
                y += box_h
                if y >= image.shape[0]:
                    break
        elif self.waiting_text:
            draw_text(image, self.waiting_text, self.margin, self.margin, self.waiting_style)

        detections = packet.detections
        if detections is not None and detections.track_ids is not None and len(detections):
            for box, track_id in zip(detections.xyxy, detections.track_ids, strict=True):
                track_predictions = self._current(packet.source_id, int(track_id), now)
                x, y = int(max(0.0, box[0])) + 2, int(max(0.0, box[1])) + 2
                for line in [line for p in track_predictions for line in self.lines(p)]:
                    _, box_h = draw_text(image, line, x, y, self.style)
                    y += box_h
        return image

    def _current(self, source_id: str, track_id: int | None, now: float) -> list[Prediction]:
        """The predictions on screen for a source (``track_id`` None) or a person: single-label first."""
        out = []
        for multi_label in (False, True):
            entry = self._latest.get((source_id, track_id, multi_label))
            if entry is None:
                continue
            prediction, arrived = entry
            if self.hold_s is None or abs(now - arrived) <= self.hold_s:
                out.append(prediction)
        return out
