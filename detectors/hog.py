"""OpenCV's built-in people detector: HOG features and Dalal & Triggs' linear SVM.

Zero download: the SVM's coefficients are compiled into OpenCV
(``cv2.HOGDescriptor_getDefaultPeopleDetector()``). Since OpenCV 5 the HOG descriptor is
in the contrib build only, so the project depends on ``opencv-contrib-python`` (the same
version as ``opencv-python``, whose files it replaces).

The 64×128 window holds a 96-pixel person, so the frame is scaled by ``96 / min_height``
first (1.28 for the default 75 px: small pedestrians as in vtest.avi are found), unless
that would make its longer side exceed ``max_side`` pixels: the cost grows with the scaled
area, so large frames (1080p cameras, where people are taller anyway) are scaled down to
``max_side`` instead and the smallest person found grows accordingly. Scores are the SVM margin through a logistic
function (margin 0 → 0.5, 1 → 0.73, 2 → 0.88).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from detectors.base import PERSON_LABEL
from detectors.blazepose import nms
from detectors.errors import DetectorConfigError, ModelNotAvailable
from stream.packet import Detections

#: The fraction of a HOG window's width / height that is margin around the person, per side
#: (OpenCV's peopledetect sample trims the same).
_TRIM_X, _TRIM_Y = 0.15, 0.05


def hog_available() -> bool:
    """Whether this OpenCV build has the HOG people detector (the contrib build does)."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def _contrib_hint() -> str:
    return (
        f"OpenCV {cv2.__version__} here has no HOG people detector (OpenCV 5 keeps it in the contrib build): "
        f"pip install --force-reinstall --no-deps opencv-contrib-python=={cv2.__version__}.*, "
        "or use --detector blazepose"
    )


class HogPeopleDetector:
    """Pedestrian detection with OpenCV's HOG + linear SVM people detector.

    Args:
        score_thr: detections scoring below this are dropped (``--det-score-thr``).
        min_height: height in pixels of the smallest people to find (smaller: slower).
        max_side: the scaled frame's longer side is at most this many pixels (bounds the cost).
        scale: step between the detector's pyramid levels (smaller: more levels, slower).
        win_stride: window step in pixels (a multiple of 8).
        nms_iou: boxes overlapping a better one by more than this IoU are merged away.
        device, backend: accepted for the common detector interface; HOG runs on the CPU
            with OpenCV (``cpu`` / ``auto`` / ``opencv``).

    Raises:
        DetectorConfigError: If an argument is out of range.
        ModelNotAvailable: If this OpenCV build lacks HOG (the message says what to install).
    """

    name = "hog"

    def __init__(
        self,
        *,
        score_thr: float = 0.6,
        min_height: float = 75.0,
        max_side: int = 1024,
        scale: float = 1.1,
        win_stride: int = 8,
        nms_iou: float = 0.4,
        device: str = "cpu",
        backend: str = "auto",
    ) -> None:
        if not 0.0 <= score_thr < 1.0:
            raise DetectorConfigError(f"score_thr: expected 0 <= score_thr < 1, got {score_thr}")
        if not 24 <= min_height <= 1000:
            raise DetectorConfigError(f"min_height: expected 24..1000 pixels, got {min_height}")
        if max_side < 128:
            raise DetectorConfigError(f"max_side: expected >= 128 pixels, got {max_side}")
        if not 1.0 < scale <= 2.0:
            raise DetectorConfigError(f"scale: expected 1 < scale <= 2, got {scale}")
        if win_stride < 8 or win_stride % 8:
            raise DetectorConfigError(f"win_stride: expected a multiple of 8, got {win_stride}")
        if device.lower() != "cpu":
            raise DetectorConfigError(f"device {device!r}: the HOG detector runs on the CPU only ('cpu')")
        if backend not in ("auto", "opencv"):
            raise DetectorConfigError(f"backend {backend!r}: the HOG detector runs on OpenCV ('opencv' or 'auto')")
        if not hog_available():
            raise ModelNotAvailable(_contrib_hint())
        self.score_thr = score_thr
        self.min_height = min_height
        self.max_side = max_side
        self.scale = scale
        self.win_stride = win_stride
        self.nms_iou = nms_iou
        self._min_margin = float(np.log(max(score_thr, 1e-6) / (1.0 - score_thr)))
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]

    def scale_for(self, height: int, width: int) -> float:
        """The factor a ``height × width`` frame is scaled by before the HOG scan."""
        return min(96.0 / self.min_height, self.max_side / max(height, width, 1))

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        factor = self.scale_for(h, w)
        if h * factor < 128 or w * factor < 64:
            return Detections.empty()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # same detections on vtest.avi, ~15% faster than colour
        big = gray if factor == 1.0 else cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        found, weights = self._hog.detectMultiScale(
            big, hitThreshold=self._min_margin, winStride=(self.win_stride, self.win_stride), scale=self.scale
        )
        if len(found) == 0:
            return Detections.empty()
        rects = np.asarray(found, np.float32).reshape(-1, 4) / factor
        margins = np.asarray(weights, np.float32).reshape(-1)
        x, y, bw, bh = rects.T
        boxes = np.stack([x + _TRIM_X * bw, y + _TRIM_Y * bh, x + (1 - _TRIM_X) * bw, y + (1 - _TRIM_Y) * bh], axis=1)
        scores = 1.0 / (1.0 + np.exp(-margins))
        keep = scores >= self.score_thr
        boxes, scores = boxes[keep], scores[keep]
        keep = nms(boxes, scores, self.nms_iou)
        boxes, scores = boxes[keep], scores[keep]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections(boxes, scores, np.full(len(boxes), PERSON_LABEL, np.int64))

    def close(self) -> None:
        """Nothing to release."""
