"""Person boxes, coloured per track id, with optional ``#id class score`` text."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from stream.annotate.base import Annotator
from stream.annotate.style import PALETTE, Color, ColorLike, TextStyle, draw_text, palette_color, text_size, writable
from stream.errors import ConfigError
from stream.packet import FramePacket


class BoxAnnotator(Annotator):
    """Detection boxes.

    The colour of a box is ``color`` when given, else the palette colour of its track id
    (so a person keeps a colour across frames), else of its class label.

    Args:
        thickness: box line width in pixels.
        color: one colour for every box, or None to colour by track id / class.
        palette: colours cycled through by track id / class.
        show_labels: draw a text tag above each box.
        show_scores: include the detection score in the tag.
        class_names: names of class ids, for the tag; None leaves the class out.
        min_score: boxes scoring below this are not drawn.
        font_scale: tag font scale; None scales with the frame height.
        font_color: tag text colour; the tag's background is the box colour.

    Raises:
        ConfigError: If an argument is out of range or a colour is unknown.
    """

    def __init__(
        self,
        *,
        thickness: int = 2,
        color: ColorLike | None = None,
        palette: Sequence[ColorLike] | None = None,
        show_labels: bool = True,
        show_scores: bool = True,
        class_names: Sequence[str] | None = None,
        min_score: float = 0.0,
        font_scale: float | None = None,
        font_color: ColorLike = "white",
    ) -> None:
        if thickness < 1:
            raise ConfigError(f"thickness: expected >= 1, got {thickness}")
        self.thickness = thickness
        self.color = None if color is None else Color.parse(color)
        self.palette = PALETTE if not palette else tuple(Color.parse(c) for c in palette)
        self.show_labels = show_labels
        self.show_scores = show_scores
        self.class_names = None if class_names is None else tuple(class_names)
        self.min_score = min_score
        self.font_scale = font_scale
        self.font_color = Color.parse(font_color)

    def box_color(self, label: int, track_id: int | None) -> Color:
        """Colour of a box with this class ``label`` and ``track_id``."""
        if self.color is not None:
            return self.color
        return palette_color(track_id if track_id is not None else label, self.palette)

    def tag(self, label: int, score: float, track_id: int | None) -> str:
        """The text drawn above a box."""
        parts = []
        if track_id is not None:
            parts.append(f"#{track_id}")
        if self.class_names is not None:
            parts.append(self.class_names[label] if 0 <= label < len(self.class_names) else str(label))
        if self.show_scores:
            parts.append(f"{score:.2f}")
        return " ".join(parts)

    def annotate(self, image: np.ndarray, packet: FramePacket) -> np.ndarray:
        image = writable(image)
        detections = packet.detections
        if detections is None or len(detections) == 0:
            return image
        h, w = image.shape[:2]
        track_ids = detections.track_ids
        for i in range(len(detections)):
            score = float(detections.scores[i])
            if score < self.min_score:
                continue
            x1, y1, x2, y2 = (round(float(v)) for v in detections.xyxy[i])
            x1, x2 = max(0, min(w - 1, x1)), max(0, min(w - 1, x2))
            y1, y2 = max(0, min(h - 1, y1)), max(0, min(h - 1, y2))
            label = int(detections.labels[i])
            track_id = None if track_ids is None else int(track_ids[i])
            color = self.box_color(label, track_id)
            cv2.rectangle(image, (x1, y1), (x2, y2), color.bgr, self.thickness, cv2.LINE_AA)
            if not self.show_labels:
                continue
            text = self.tag(label, score, track_id)
            if not text:
                continue
            style = TextStyle(
                font_scale=self.font_scale, color=self.font_color, background=color, background_alpha=1.0, padding=3
            )
            _, tag_h = text_size(text, style, h)
            ty = y1 - tag_h if y1 - tag_h >= 0 else y1  # above the box, or inside when no room
            draw_text(image, text, x1, ty, style)
        return image
