"""Drawing style shared by the annotators: colours, palettes, font sizes and text boxes.

Colours are BGR, as OpenCV draws them. :meth:`Color.parse` accepts what a config or a
command line gives: a name (``white``, ``red``, ... as MMAction2's ``--font-color``), a
``#rrggbb`` hex string, a ``"b,g,r"`` string or a ``(b, g, r)`` tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from stream.errors import ConfigError

#: Named colours, BGR. MMAction2/mmcv's names plus a few common ones.
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (0, 0, 255),
    "green": (0, 255, 0),
    "blue": (255, 0, 0),
    "yellow": (0, 255, 255),
    "cyan": (255, 255, 0),
    "magenta": (255, 0, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "orange": (0, 165, 255),
    "purple": (128, 0, 128),
    "pink": (203, 192, 255),
}

FONT = cv2.FONT_HERSHEY_SIMPLEX
LINE_TYPE = cv2.LINE_AA
#: Frame height at which the automatic font scale is 1.0 (about 22 px high text).
REFERENCE_HEIGHT = 720
MIN_FONT_SCALE = 0.35


@dataclass(frozen=True)
class Color:
    """A BGR colour with 0..255 channels."""

    b: int
    g: int
    r: int

    def __post_init__(self) -> None:
        for channel in (self.b, self.g, self.r):
            if not isinstance(channel, (int, np.integer)) or isinstance(channel, bool) or not 0 <= channel <= 255:
                raise ConfigError(f"colour channels: expected integers in 0..255, got {(self.b, self.g, self.r)}")

    @property
    def bgr(self) -> tuple[int, int, int]:
        """The colour as OpenCV wants it."""
        return (int(self.b), int(self.g), int(self.r))

    def as_hex(self) -> str:
        return f"#{self.r:02x}{self.g:02x}{self.b:02x}"

    @classmethod
    def from_hex(cls, text: str) -> Color:
        """Parse ``#rrggbb`` (or ``#rgb``).

        Raises:
            ConfigError: If ``text`` is not a hex colour.
        """
        digits = text.strip().removeprefix("#")
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        try:
            if len(digits) != 6:
                raise ValueError
            r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            raise ConfigError(f"colour {text!r}: expected '#rrggbb'") from None
        return cls(b, g, r)

    @classmethod
    def parse(cls, value: ColorLike) -> Color:
        """Turn a name, ``#rrggbb``, ``"b,g,r"`` or ``(b, g, r)`` into a :class:`Color`.

        Raises:
            ConfigError: If the value is none of these; the message lists the valid names.
        """
        if isinstance(value, Color):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in COLORS:
                return cls(*COLORS[text])
            if text.startswith("#"):
                return cls.from_hex(text)
            if "," in text:
                try:
                    return cls.parse(tuple(int(part) for part in text.split(",")))
                except ValueError:
                    pass
            raise ConfigError(
                f"unknown colour {value!r}: expected one of {', '.join(sorted(COLORS))}, "
                "'#rrggbb', 'b,g,r' or a (b, g, r) tuple"
            )
        if isinstance(value, (Sequence, np.ndarray)) and len(value) == 3:
            if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in value):
                raise ConfigError(f"colour channels: expected integers in 0..255, got {tuple(value)}")
            b, g, r = (int(c) for c in value)
            return cls(b, g, r)
        raise ConfigError(f"colour: expected a name, '#rrggbb' or a (b, g, r) tuple, got {value!r}")


ColorLike = Color | str | Sequence[int]

#: Distinct colours for track ids and class ids (BGR), cycled.
PALETTE: tuple[Color, ...] = tuple(
    Color.from_hex(h)
    for h in (
        "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
        "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3",
    )
)  # fmt: skip


def palette_color(index: int, palette: Sequence[Color] = PALETTE) -> Color:
    """The palette colour of a track or class id (ids cycle through the palette)."""
    return palette[int(index) % len(palette)]


def auto_font_scale(height: int) -> float:
    """Font scale relative to the frame height: 1.0 at 720 lines, never below 0.35."""
    return max(MIN_FONT_SCALE, height / REFERENCE_HEIGHT)


def auto_thickness(font_scale: float) -> int:
    """Stroke width that keeps text legible at ``font_scale``."""
    return max(1, round(font_scale * 1.5))


def writable(image: np.ndarray) -> np.ndarray:
    """``image`` itself if OpenCV can draw on it in place, else a writable contiguous copy."""
    if image.flags.writeable and image.flags.c_contiguous:
        return image
    return np.array(image, copy=True, order="C")


@dataclass(frozen=True)
class TextStyle:
    """How a block of text is drawn.

    Attributes:
        font_scale: OpenCV font scale; None scales with the frame height (:func:`auto_font_scale`).
        color: text colour.
        thickness: stroke width; None derives it from the font scale.
        background: colour of the box behind the text, or None for no box.
        background_alpha: opacity of that box (1 is opaque).
        padding: pixels between the text and the box edge, at font scale 1.
    """

    font_scale: float | None = None
    color: Color = Color(255, 255, 255)
    thickness: int | None = None
    background: Color | None = Color(0, 0, 0)
    background_alpha: float = 0.6
    padding: int = 6

    def __post_init__(self) -> None:
        if self.font_scale is not None and not self.font_scale > 0:
            raise ConfigError(f"font_scale: expected a positive number, got {self.font_scale}")
        if self.thickness is not None and self.thickness < 1:
            raise ConfigError(f"thickness: expected >= 1, got {self.thickness}")
        if not 0.0 <= self.background_alpha <= 1.0:
            raise ConfigError(f"background_alpha: expected 0..1, got {self.background_alpha}")

    def resolve(self, height: int) -> tuple[float, int, int]:
        """Font scale, thickness and padding for a frame ``height`` pixels high."""
        scale = self.font_scale if self.font_scale is not None else auto_font_scale(height)
        thickness = self.thickness if self.thickness is not None else auto_thickness(scale)
        return scale, thickness, max(1, round(self.padding * scale))

    def line_height(self, height: int) -> int:
        """Height of one text line including its box, for stacking lines."""
        scale, thickness, pad = self.resolve(height)
        (_, text_h), baseline = cv2.getTextSize("Ag", FONT, scale, thickness)
        return text_h + baseline + 2 * pad


def fill_rect(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, color: Color, alpha: float) -> None:
    """Fill a rectangle (clipped to the image), blended with ``alpha`` opacity."""
    h, w = image.shape[:2]
    x1, x2 = max(0, x1), min(w, x2)
    y1, y2 = max(0, y1), min(h, y2)
    if x2 <= x1 or y2 <= y1 or alpha <= 0:
        return
    if alpha >= 1:
        image[y1:y2, x1:x2] = color.bgr
        return
    roi = image[y1:y2, x1:x2]
    solid = np.empty_like(roi)
    solid[:] = color.bgr
    image[y1:y2, x1:x2] = cv2.addWeighted(roi, 1.0 - alpha, solid, alpha, 0.0)


def draw_text(image: np.ndarray, text: str, x: int, y: int, style: TextStyle) -> tuple[int, int]:
    """Draw ``text`` with its box's top-left corner at ``(x, y)``.

    Returns:
        The box's width and height in pixels.
    """
    scale, thickness, pad = style.resolve(image.shape[0])
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    if style.background is not None:
        fill_rect(image, x, y, x + box_w, y + box_h, style.background, style.background_alpha)
    cv2.putText(image, text, (x + pad, y + pad + text_h), FONT, scale, style.color.bgr, thickness, LINE_TYPE)
    return box_w, box_h


def text_size(text: str, style: TextStyle, height: int) -> tuple[int, int]:
    """Width and height of the box :func:`draw_text` would draw for ``text``."""
    scale, thickness, pad = style.resolve(height)
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return text_w + 2 * pad, text_h + baseline + 2 * pad
