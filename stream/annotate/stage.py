"""The stage that draws annotators onto frames.

:class:`AnnotateStage` copies the frame once (images are read-only after crossing a
link), runs its annotators in order on the copy and passes the packet on with
``packet.image`` replaced by the annotated copy. The original pixels are not kept: the
wire carries one image per packet, and doubling every frame's bytes would cost every
later link. A stage that needs the clean frame (a raw recording, say) goes *before*
the annotate stage; sinks pass packets through, so they can sit anywhere in the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream.annotate.base import Annotator
from stream.annotate.boxes import BoxAnnotator
from stream.annotate.labels import LabelAnnotator
from stream.annotate.overlay import OverlayAnnotator
from stream.annotate.skeleton import SkeletonAnnotator
from stream.annotate.style import ColorLike
from stream.errors import ConfigError
from stream.packet import FramePacket
from stream.stage import Outputs, Stage
from stream.transport import LIVE_RECORDING


class AnnotateStage(Stage):
    """Runs annotators on a copy of each frame.

    Args:
        annotators: drawn in order (later ones on top).
        name: stage name; defaults to ``AnnotateStage``.

    Raises:
        ConfigError: If an element of ``annotators`` has no ``annotate`` method.
    """

    live_policy = LIVE_RECORDING  # drawing is cheap: absorb bursts

    def __init__(self, annotators: Sequence[Annotator], *, name: str | None = None) -> None:
        super().__init__(name)
        for annotator in annotators:
            if not callable(getattr(annotator, "annotate", None)):
                raise ConfigError(f"annotators: expected objects with an annotate() method, got {annotator!r}")
        self.annotators = list(annotators)

    def process(self, packet: FramePacket) -> Outputs:
        if not self.annotators:
            return packet
        image = np.array(packet.image, copy=True, order="C")
        for annotator in self.annotators:
            image = annotator.annotate(image, packet)
        packet.image = image
        return packet


def default_annotators(
    *,
    font_scale: float | None = None,
    font_color: ColorLike = "white",
    threshold: float = 0.0,
    top_k: int = 5,
    boxes: bool = True,
    skeletons: bool = True,
    overlay: bool = True,
) -> list[Annotator]:
    """The usual set, named after MMAction2's demo flags: boxes, skeletons, labels, status line.

    Args:
        font_scale: ``--font-scale``; None scales with the frame height.
        font_color: ``--font-color``.
        threshold: ``--threshold``: labels scoring below it are hidden.
        top_k: labels shown per prediction.
        boxes, skeletons, overlay: include those annotators.
    """
    out: list[Annotator] = []
    if boxes:
        out.append(BoxAnnotator(font_scale=font_scale))
    if skeletons:
        out.append(SkeletonAnnotator())
    out.append(LabelAnnotator(top_k=top_k, threshold=threshold, font_scale=font_scale, font_color=font_color))
    if overlay:
        out.append(OverlayAnnotator(font_scale=font_scale, font_color=font_color))
    return out
