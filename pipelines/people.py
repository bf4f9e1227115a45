"""The people graph: detect → track → pose → draw, as a list of stages.

:func:`people_stages` builds it from :class:`PeopleParams`; the entry point
``python -m stream.people`` only parses flags into the params and runs the stages with the
shared output sinks. Nothing is loaded here: the models are built in the stages' ``setup()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from detectors.errors import DetectorConfigError, ModelNotAvailable
from detectors.registry import DEFAULT_DETECTOR, DEFAULT_POSE_ESTIMATOR, build_detector, build_pose_estimator
from detectors.stages import DetectStage, PoseStage, TrackStage
from detectors.tracking import PersonTracker
from stream.annotate import AnnotateStage, Annotator, BoxAnnotator, OverlayAnnotator, SkeletonAnnotator
from stream.stage import Stage


@dataclass(frozen=True)
class PeopleParams:
    """What the people graph does; the flags of ``python -m stream.people``.

    Attributes:
        detector: registered person detector (:data:`detectors.registry.DETECTORS`).
        pose: registered pose estimator, or None for boxes and tracks only (``--no-pose``).
        det_score_thr: drop detections scoring below this (``--det-score-thr``).
        det_cat_id: the detector class id of people (``--det-cat-id``; None: the class named
            "person" of an mmdet checkpoint, 0 for the built-in detectors).
        det_interval: detect every N frames; tracks are carried in between (``--det-interval``).
        track: give people track ids (and track events).
        lost_timeout_s: a track ends after this many stream seconds without a detection.
        device, backend: where the models run (``--device``, ``--backend``).
        precision: the compiled engines' precision (``rtmdet`` / ``yolox`` / ``rtmpose``;
            ``--precision`` of ``stream.people``): ``auto`` keeps the backend's fast precision
            only where the results stay fp32's (:mod:`detectors.precision`), ``fp32``, or
            ``bf16`` / ``fp16`` unchecked. The built-in and mm-API models take ``auto`` only.
        draw: add the annotators (boxes with ids, skeletons coloured per track, status line).
        pose_every_frame: estimate keypoints on every frame (skeleton recognition needs the
            motion between detection frames) instead of carrying them with the box.
        font_scale, font_color: drawing flags.
        det_config, det_checkpoint: the mmdet config + checkpoint of ``rtmdet`` / ``yolox`` / ``mmdet``.
        pose_config, pose_checkpoint: the mmpose config + checkpoint of ``rtmpose`` / ``mmpose``.
    """

    detector: str = DEFAULT_DETECTOR
    pose: str | None = DEFAULT_POSE_ESTIMATOR
    det_score_thr: float | None = None
    det_cat_id: int | None = None
    det_interval: int = 5
    track: bool = True
    lost_timeout_s: float = 2.0
    device: str = "cpu"
    backend: str = "auto"
    precision: str = "auto"
    draw: bool = True
    pose_every_frame: bool = False
    font_scale: float | None = None
    font_color: str = "white"
    det_config: str | None = None
    det_checkpoint: str | None = None
    pose_config: str | None = None
    pose_checkpoint: str | None = None


#: ByteTrack's thresholds for the built-in detectors' scores; a lower ``--det-score-thr`` lowers them.
TRACK_ACTIVATION_THR = 0.6
TRACK_HIGH_THR = 0.7


def people_stages(params: PeopleParams) -> list[Stage]:
    """The stages of the people graph, in order.

    Raises:
        ModelNotAvailable: If mmdet / mmpose configs or checkpoints are asked for.
        DetectorConfigError: If a model name or parameter is wrong (checked before any
            model is loaded).
    """
    compiled = params.detector in ("rtmdet", "yolox", "mmdet")  # detectors built from an mmdet config + checkpoint
    compiled_pose = params.pose in ("rtmpose", "mmpose")  # pose models built from an mmpose config + checkpoint
    mm = {
        "--det-config": None if compiled else params.det_config,
        "--det-checkpoint": None if compiled else params.det_checkpoint,
        "--pose-config": None if compiled_pose or params.pose is None else params.pose_config,
        "--pose-checkpoint": None if compiled_pose or params.pose is None else params.pose_checkpoint,
    }
    given = [flag for flag, value in mm.items() if value]
    if given:
        raise ModelNotAvailable(
            f"{', '.join(given)}: the built-in models (--detector {params.detector}, --pose {params.pose}) take no "
            "config or checkpoint; pass --detector rtmdet / yolox / mmdet with --det-config and --det-checkpoint, "
            "--pose rtmpose / mmpose with --pose-config and --pose-checkpoint"
        )
    if params.det_cat_id not in (None, 0) and not compiled:
        raise DetectorConfigError(
            f"--det-cat-id {params.det_cat_id}: the built-in detectors find people only (class id 0)"
        )
    if params.det_interval < 1:
        raise DetectorConfigError(f"--det-interval: expected >= 1 frame, got {params.det_interval}")
    _check_precision(params, compiled=params.detector in ("rtmdet", "yolox"), compiled_pose=params.pose == "rtmpose")
    det_kwargs: dict[str, object] = {"device": params.device}
    if compiled:
        det_kwargs.update(config=params.det_config, checkpoint=params.det_checkpoint, cat_id=params.det_cat_id)
        det_kwargs["backend"] = params.backend
        if params.detector != "mmdet":
            det_kwargs["precision"] = params.precision
    else:
        if params.backend not in ("auto", "openvino"):
            raise DetectorConfigError(f"--backend {params.backend}: the built-in models run on 'openvino' (or 'auto')")
        if params.device.lower() != "cpu" and (params.detector == "hog" or params.device.lower().startswith("cuda")):
            raise DetectorConfigError(
                f"--device {params.device}: the built-in models run on the CPU ('cpu'; BlazePose also on OpenVINO "
                "devices)"
            )
        if params.detector != "hog":  # HOG always runs on OpenCV
            det_kwargs["backend"] = params.backend
    if params.det_score_thr is not None:
        det_kwargs["score_thr"] = params.det_score_thr
    _check_names(params)
    stages: list[Stage] = [
        DetectStage(partial(build_detector, params.detector, **det_kwargs), interval=params.det_interval)
    ]
    if params.track:
        track_kwargs: dict[str, Any] = {"lost_timeout_s": params.lost_timeout_s}
        if params.det_score_thr is not None:  # people above --det-score-thr start and keep tracks
            track_kwargs["activation_thr"] = min(TRACK_ACTIVATION_THR, params.det_score_thr)
            track_kwargs["high_thr"] = min(TRACK_HIGH_THR, params.det_score_thr)
        stages.append(TrackStage(partial(PersonTracker, **track_kwargs)))
    if params.pose is not None:
        pose_kwargs: dict[str, object] = {"device": params.device}
        if compiled_pose:
            pose_kwargs.update(config=params.pose_config, checkpoint=params.pose_checkpoint)
        if params.pose != "mmpose":  # mmpose's API picks its own runtime
            # BlazePose runs on OpenVINO: another --backend (meant for a compiled detector) leaves it on 'auto'.
            builtin_backend = params.backend if params.backend in ("auto", "openvino") else "auto"
            pose_kwargs["backend"] = params.backend if compiled_pose else builtin_backend
        if params.pose == "rtmpose":
            pose_kwargs["precision"] = params.precision
        stages.append(
            PoseStage(partial(build_pose_estimator, params.pose, **pose_kwargs), every_frame=params.pose_every_frame)
        )
    if params.draw:
        stages.append(AnnotateStage(people_annotators(font_scale=params.font_scale, font_color=params.font_color)))
    return stages


def _check_precision(params: PeopleParams, *, compiled: bool, compiled_pose: bool) -> None:
    from engines.graph import GRAPH_PRECISIONS

    if params.precision not in GRAPH_PRECISIONS:
        raise DetectorConfigError(f"--precision {params.precision}: expected one of {', '.join(GRAPH_PRECISIONS)}")
    if params.precision != "auto" and not (compiled or compiled_pose):
        models = [f"--detector {params.detector}"] + ([f"--pose {params.pose}"] if params.pose else [])
        verb = "run as they are" if len(models) > 1 else "runs as it is"
        raise DetectorConfigError(
            f"--precision {params.precision}: only the compiled engines take a precision (--detector rtmdet / "
            f"yolox, --pose rtmpose); {' and '.join(models)} {verb}: leave --precision at auto"
        )


def _check_names(params: PeopleParams) -> None:
    from detectors.registry import DETECTORS, POSE_ESTIMATORS

    if params.detector not in DETECTORS:
        build_detector(params.detector)  # raises, listing the valid names
    if params.pose is not None and params.pose not in POSE_ESTIMATORS:
        build_pose_estimator(params.pose)


def people_annotators(*, font_scale: float | None = None, font_color: str = "white") -> list[Annotator]:
    """Boxes tagged ``#id score`` and skeletons in the colour of their track, plus the status line."""
    return [
        BoxAnnotator(font_scale=font_scale, font_color=font_color),
        SkeletonAnnotator(color_by_track=True),
        OverlayAnnotator(font_scale=font_scale, font_color=font_color),
    ]
