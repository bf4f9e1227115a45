"""Drawing results onto frames: one annotator class per kind of result, and the stage running them.

Each annotator takes its style in ``__init__`` and has one method,
``annotate(image, packet) -> image``, drawing in place on a writable BGR image::

    stage = AnnotateStage([BoxAnnotator(), SkeletonAnnotator(), LabelAnnotator(font_color="white")])
"""

from stream.annotate.base import Annotator
from stream.annotate.boxes import BoxAnnotator
from stream.annotate.labels import LabelAnnotator
from stream.annotate.overlay import OverlayAnnotator, format_time
from stream.annotate.skeleton import COCO_SKELETON, SkeletonAnnotator
from stream.annotate.stage import AnnotateStage, default_annotators
from stream.annotate.style import COLORS, PALETTE, Color, ColorLike, TextStyle, auto_font_scale

__all__ = [
    "COCO_SKELETON",
    "COLORS",
    "PALETTE",
    "AnnotateStage",
    "Annotator",
    "BoxAnnotator",
    "Color",
    "ColorLike",
    "LabelAnnotator",
    "OverlayAnnotator",
    "SkeletonAnnotator",
    "TextStyle",
    "auto_font_scale",
    "default_annotators",
    "format_time",
]
