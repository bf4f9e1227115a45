"""The annotator interface: one class per kind of drawing, one method."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from stream.packet import FramePacket


class Annotator(ABC):
    """Draws one kind of result onto a frame.

    Style goes into ``__init__``; :meth:`annotate` draws in place on the writable BGR
    image it is given (normally a copy made by :class:`~stream.annotate.AnnotateStage`)
    and returns it. Given a read-only or non-contiguous image it draws on a copy and
    returns that instead, so always use the return value.
    """

    @abstractmethod
    def annotate(self, image: np.ndarray, packet: FramePacket) -> np.ndarray:
        """Draw this annotator's part of ``packet`` onto ``image`` and return the image."""
