"""``precision='auto'`` for the detector and pose engines: a reduced precision only where it keeps fp32's results.

On a CPU that computes bf16 natively (AVX-512 BF16 or AMX), OpenVINO runs these models
about twice as fast in bf16 as in fp32, but bf16 keeps 8 bits of mantissa. As the
recognizers do (``engines/engine.py``: top-1 labels), a detector or pose engine built with
``precision='auto'`` is first built and checked in fp32, then opened a second time in the
backend's fast precision and compared with itself in fp32 on the task's own terms, on real
frames of opencv-doc's ``vtest.avi`` (:data:`CHECK_VIDEO`, frames :data:`CHECK_FRAME_INDICES`):

* detectors (:func:`compare_boxes`): the :data:`TOP_K` highest-scoring candidate boxes of each
  frame (every prior's box and best score, before NMS, in frame pixels) must stay within
  :data:`BOX_TOL_PX` pixel and :data:`SCORE_TOL` in score;
* pose models (:func:`compare_keypoints`): every keypoint of every person HOG finds on those
  frames must stay within :data:`KEYPOINT_TOL_PX` pixel.

The reduced precision is kept only if every frame passes; otherwise the engine stays fp32 and
a warning says why. Without the check frames (no ``opencv-doc``) nothing can be checked, so
the engine stays fp32. The figures go into the engine's manifest
(``validation.auto_precision``), and the cached engine opens at the kept precision from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: Footage the check runs on (Debian's ``opencv-doc``: 768×576 pedestrians).
CHECK_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
#: Frames of it that are compared (people near and far, crossing, partly hidden).
CHECK_FRAME_INDICES = (0, 100, 200, 300)
#: Detector candidates compared per frame (the best-scoring priors of the fp32 engine).
TOP_K = 100
#: Largest accepted box coordinate difference, frame pixels.
BOX_TOL_PX = 1.0
#: Largest accepted score difference.
SCORE_TOL = 1e-2
#: Largest accepted keypoint difference, frame pixels.
KEYPOINT_TOL_PX = 1.0


def check_frames(video: str | Path = CHECK_VIDEO, indices: Sequence[int] = CHECK_FRAME_INDICES) -> list[np.ndarray]:
    """The check frames (``H×W×3`` uint8 BGR), or ``[]`` where the video cannot be read."""
    path = Path(video)
    if not path.is_file():
        return []
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        index, wanted = 0, sorted(set(indices))
        while wanted:
            ok, frame = cap.read()
            if not ok:
                break
            if index == wanted[0]:
                frames.append(frame)
                wanted.pop(0)
            index += 1
    finally:
        cap.release()
    return frames


def check_people(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Person boxes ``(N, 4)`` float32 of each frame as the built-in HOG detector finds them (``[]`` without HOG)."""
    from detectors.errors import DetectorError
    from detectors.hog import HogPeopleDetector

    try:
        hog = HogPeopleDetector()
    except DetectorError as exc:
        log.warning("precision 'auto': no HOG detector to find people for the pose check (%s)", exc)
        return []
    try:
        return [d.xyxy.astype(np.float32) for d in hog.detect(list(frames))]
    finally:
        hog.close()


def compare_boxes(
    ref_boxes: np.ndarray, ref_scores: np.ndarray, boxes: np.ndarray, scores: np.ndarray, top_k: int = TOP_K
) -> tuple[float, float]:
    """Worst box (px) and score differences over the ``top_k`` best candidates of the reference.

    Args:
        ref_boxes: ``(N, 4)`` every candidate's box from the fp32 engine, frame pixels.
        ref_scores: ``(N,)`` their scores.
        boxes: ``(N, 4)`` the same candidates from the reduced-precision engine.
        scores: ``(N,)`` their scores.
        top_k: How many of the reference's best candidates are compared.

    Returns:
        ``(max |box difference|, max |score difference|)`` over those candidates.
    """
    if ref_boxes.shape != boxes.shape or ref_scores.shape != scores.shape:
        raise ValueError(f"compare_boxes: shapes differ: {ref_boxes.shape} / {boxes.shape}")
    if not len(ref_scores):
        return 0.0, 0.0
    best = np.argsort(-ref_scores, kind="stable")[:top_k]
    box_diff = np.abs(ref_boxes[best].astype(np.float64) - boxes[best]).max()
    score_diff = np.abs(ref_scores[best].astype(np.float64) - scores[best]).max()
    return float(box_diff), float(score_diff)


def compare_keypoints(ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """Worst keypoint distance (px, per axis) and share of keypoints beyond :data:`KEYPOINT_TOL_PX`.

    Args:
        ref: ``(N, K, 2+)`` keypoints ``[x, y, ...]`` of the fp32 engine.
        got: The same people's keypoints from the reduced-precision engine.
    """
    if ref.shape != got.shape:
        raise ValueError(f"compare_keypoints: shapes differ: {ref.shape} / {got.shape}")
    if not ref.size:
        return 0.0, 0.0
    diff = np.abs(ref[..., :2].astype(np.float64) - got[..., :2]).max(axis=-1)
    return float(diff.max()), float(np.mean(diff > KEYPOINT_TOL_PX))


def verdict(result: dict[str, Any], what: str) -> dict[str, Any]:
    """Log and return ``result`` (which holds ``kept`` and ``tried``) of the check of ``what``."""
    if result["kept"]:
        log.info("precision 'auto': %s keeps %s (%s)", what, result["tried"], result)
    else:
        log.warning("precision 'auto': %s stays fp32: %s", what, result.get("reason", result))
    return result
