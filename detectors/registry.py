"""Person detectors and pose estimators by name: plain dicts, one per family.

``build_detector("hog", score_thr=0.6)`` / ``build_pose_estimator("blazepose")``; an unknown
name raises :class:`~detectors.errors.DetectorConfigError` listing the valid ones. A new
model registers a factory (any callable returning an object with the
:class:`~detectors.base.PersonDetector` / :class:`~detectors.base.PoseEstimator` methods).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from detectors.base import PersonDetector, PoseEstimator
from detectors.errors import DetectorConfigError

log = logging.getLogger(__name__)


def _hog(**kwargs: Any) -> PersonDetector:
    from detectors.hog import HogPeopleDetector

    return HogPeopleDetector(**kwargs)


def _blazepose_detector(**kwargs: Any) -> PersonDetector:
    from detectors.blazepose import BlazePoseDetector

    return BlazePoseDetector(**kwargs)


def _rtmdet(**kwargs: Any) -> PersonDetector:
    from detectors.rtmdet import RTMDetDetector

    return RTMDetDetector(**kwargs)


def _yolox(**kwargs: Any) -> PersonDetector:
    from detectors.yolox import YOLOXDetector

    return YOLOXDetector(**kwargs)


def _mmdet(**kwargs: Any) -> PersonDetector:
    from detectors.mmdet_api import MMDetDetector

    return MMDetDetector(**kwargs)


def _blazepose_estimator(**kwargs: Any) -> PoseEstimator:
    from detectors.blazepose import BlazePoseEstimator

    return BlazePoseEstimator(**kwargs)


def _rtmpose_estimator(**kwargs: Any) -> PoseEstimator:
    from detectors.rtmpose import RTMPoseEstimator

    return RTMPoseEstimator(**kwargs)


def _mmpose_estimator(**kwargs: Any) -> PoseEstimator:
    from detectors.mmpose_api import MMPoseEstimator

    return MMPoseEstimator(**kwargs)


#: Person detectors. ``hog`` finds whole pedestrians from ~75 px tall (street and CCTV
#: footage); ``blazepose`` finds people close to the camera (webcams, sports close-ups);
#: ``rtmdet`` / ``yolox`` run an mmdet RTMDet / YOLOX config + checkpoint as a compiled
#: engine; ``mmdet`` runs any mmdet 3.x config + checkpoint through mmdet itself.
DETECTORS: dict[str, Callable[..., PersonDetector]] = {
    "hog": _hog,
    "blazepose": _blazepose_detector,
    "rtmdet": _rtmdet,
    "yolox": _yolox,
    "mmdet": _mmdet,
}

#: Pose estimators (COCO-17 keypoints on each detected person). ``rtmpose`` (``config=``,
#: ``checkpoint=``) compiles an mmpose RTMPose checkpoint into an ONNX Runtime / OpenVINO
#: engine; ``mmpose`` runs any mmpose top-down config + checkpoint through mmpose itself.
POSE_ESTIMATORS: dict[str, Callable[..., PoseEstimator]] = {
    "blazepose": _blazepose_estimator,
    "rtmpose": _rtmpose_estimator,
    "mmpose": _mmpose_estimator,
}

DEFAULT_DETECTOR = "hog"
DEFAULT_POSE_ESTIMATOR = "blazepose"


def _lookup(family: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[..., Any]:
    factory = family.get(name)
    if factory is None:
        raise DetectorConfigError(f"unknown {kind} {name!r}: expected one of {', '.join(sorted(family))}")
    return factory


def build_detector(name: str = DEFAULT_DETECTOR, **kwargs: Any) -> PersonDetector:
    """The person detector registered as ``name``, built with ``kwargs``.

    Raises:
        DetectorConfigError: If ``name`` is unknown (the message lists the valid names) or an
            argument is invalid.
    """
    return _lookup(DETECTORS, "person detector", name)(**kwargs)


def build_pose_estimator(name: str = DEFAULT_POSE_ESTIMATOR, **kwargs: Any) -> PoseEstimator:
    """The pose estimator registered as ``name``, built with ``kwargs``.

    Raises:
        DetectorConfigError: If ``name`` is unknown (the message lists the valid names) or an
            argument is invalid.
    """
    return _lookup(POSE_ESTIMATORS, "pose estimator", name)(**kwargs)
