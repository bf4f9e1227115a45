"""Pose skeletons: keypoints above a score threshold and the edges between them.

Keypoints are rows of the frame's :class:`~stream.packet.Detections` (``keypoints (N, K, 3)``,
``[x, y, score]``), so each skeleton belongs to the box and track id of its row.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from stream.annotate.base import Annotator
from stream.annotate.style import PALETTE, Color, ColorLike, palette_color, writable
from stream.errors import ConfigError
from stream.packet import FramePacket

#: COCO-17 skeleton edges (0-based keypoint indices), as MMPose draws them.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

#: COCO-17 keypoints on the person's left side; the right side is the mirror set.
COCO_LEFT = frozenset({1, 3, 5, 7, 9, 11, 13, 15})
COCO_RIGHT = frozenset({2, 4, 6, 8, 10, 12, 14, 16})

LEFT_COLOR = Color(0, 255, 0)
RIGHT_COLOR = Color(0, 128, 255)
CENTER_COLOR = Color(255, 153, 51)


def _side_color(points: Sequence[int]) -> Color:
    if all(p in COCO_LEFT for p in points):
        return LEFT_COLOR
    if all(p in COCO_RIGHT for p in points):
        return RIGHT_COLOR
    return CENTER_COLOR


class SkeletonAnnotator(Annotator):
    """Keypoints and skeleton edges of every person in ``packet.detections.keypoints``.

    By default left limbs are green, right limbs orange and the rest blue (MMPose's
    look); ``color`` draws everything in one colour; ``color_by_track`` draws each
    tracked person in the palette colour of its track id (the colour
    :class:`~stream.annotate.BoxAnnotator` gives its box). Edges that name a keypoint the
    poses do not have are skipped, so other keypoint layouts still get their points.

    Args:
        edges: pairs of keypoint indices to join; COCO-17 by default.
        kpt_threshold: keypoints scoring below this are neither drawn nor joined.
        radius: keypoint radius in pixels; None scales with the frame height.
        thickness: edge width in pixels; None scales with the frame height.
        color: one colour for points and edges, or None for left/right/centre colours.
        color_by_track: colour a tracked person's skeleton by its track id (rows without a
            track id keep the left/right colours).
        palette: colours cycled through by track id.

    Raises:
        ConfigError: If an edge is malformed or a colour is unknown.
    """

    def __init__(
        self,
        *,
        edges: Sequence[tuple[int, int]] = COCO_SKELETON,
        kpt_threshold: float = 0.3,
        radius: int | None = None,
        thickness: int | None = None,
        color: ColorLike | None = None,
        color_by_track: bool = False,
        palette: Sequence[ColorLike] | None = None,
    ) -> None:
        checked = []
        for edge in edges:
            if len(edge) != 2 or any(int(k) < 0 for k in edge):
                raise ConfigError(f"skeleton edges: expected pairs of keypoint indices >= 0, got {edge!r}")
            checked.append((int(edge[0]), int(edge[1])))
        self.edges = tuple(checked)
        self.kpt_threshold = kpt_threshold
        self.radius = radius
        self.thickness = thickness
        self.color = None if color is None else Color.parse(color)
        self.color_by_track = color_by_track
        self.palette = PALETTE if not palette else tuple(Color.parse(c) for c in palette)

    def annotate(self, image: np.ndarray, packet: FramePacket) -> np.ndarray:
        image = writable(image)
        detections = packet.detections
        if detections is None or detections.keypoints is None or len(detections) == 0:
            return image
        keypoints, scores = detections.keypoints[..., :2], detections.keypoints[..., 2]
        track_ids = detections.track_ids if self.color_by_track else None
        h = image.shape[0]
        radius = self.radius if self.radius is not None else max(2, round(h / 240))
        thickness = self.thickness if self.thickness is not None else max(1, round(h / 360))
        n_kpts = keypoints.shape[1]
        edges = [(a, b) for a, b in self.edges if a < n_kpts and b < n_kpts]
        finite = np.isfinite(keypoints).all(axis=2)
        visible = (scores >= self.kpt_threshold) & finite
        points = np.clip(np.round(np.where(finite[..., None], keypoints, 0)), -1e6, 1e6).astype(np.int64)
        for person in range(len(detections)):
            person_color = self.color
            if person_color is None and track_ids is not None:
                person_color = palette_color(int(track_ids[person]), self.palette)
            for a, b in edges:
                if visible[person, a] and visible[person, b]:
                    color = person_color or _side_color((a, b))
                    pa, pb = points[person, a], points[person, b]
                    cv2.line(
                        image, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), color.bgr, thickness, cv2.LINE_AA
                    )
            for k in np.flatnonzero(visible[person]):
                color = person_color or _side_color((int(k),))
                p = points[person, k]
                cv2.circle(image, (int(p[0]), int(p[1])), radius, color.bgr, -1, cv2.LINE_AA)
        return image
