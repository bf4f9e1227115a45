"""The two model interfaces of the people pipeline, and the COCO-17 keypoint layout.

A person detector finds every person of each frame; a pose estimator adds keypoints to
the people it is given. Both are batched over frames so that an implementation can put
the crops or tiles of several frames into one inference call. Any class with these
methods plugs in behind :class:`detectors.stages.DetectStage` /
:class:`detectors.stages.PoseStage` (the zero-download BlazePose pair today; mmdet /
mmpose checkpoints and compiled RTMDet / RTMPose engines later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from stream.packet import Detections

#: COCO-17 keypoint names, in the order of ``Detections.keypoints``' second axis.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

#: COCO's class id of "person" (mmdet's ``--det-cat-id`` default).
PERSON_LABEL = 0


def person_class(classes: Sequence[str] | None, num_classes: int, cat_id: int | None, model: str) -> int:
    """The class id a detector keeps as people: ``cat_id`` if given, else the class named "person".

    Args:
        classes: the checkpoint's class names (``meta['dataset_meta']['classes']``), if recorded.
        num_classes: how many classes the model's head scores.
        cat_id: ``--det-cat-id`` (None: find the class named "person"; COCO's 0 when unnamed).
        model: what to name in errors (the config / checkpoint).

    Raises:
        DetectorConfigError: If ``cat_id`` is out of range, or it is not given and the
            checkpoint names its classes without a "person" (naming them and the flag to pass).
    """
    from detectors.errors import DetectorConfigError

    if cat_id is not None:
        if not 0 <= cat_id < num_classes:
            raise DetectorConfigError(
                f"--det-cat-id {cat_id}: {model} scores {num_classes} classes (ids 0-{num_classes - 1})"
            )
        return cat_id
    if not classes:
        return PERSON_LABEL  # unnamed classes: COCO's order, as MMAction2's demos assume
    names = [str(name).lower() for name in classes]
    if "person" in names:
        return names.index("person")
    shown = ", ".join(f"{i}: {name}" for i, name in enumerate(classes[:12])) + (", ..." if len(classes) > 12 else "")
    raise DetectorConfigError(
        f"{model} has no class named 'person' ({shown}); pass --det-cat-id with the id of the class to track as people"
    )


@runtime_checkable
class PersonDetector(Protocol):
    """Finds people: one :class:`Detections` per image (boxes, scores, labels; no track ids)."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect the people of each ``H×W×3`` uint8 BGR image.

        Returns:
            One :class:`Detections` per image, in order; ``labels`` hold the class id
            (:data:`PERSON_LABEL` for people).
        """
        ...

    def close(self) -> None:
        """Release the model."""
        ...


@runtime_checkable
class PoseEstimator(Protocol):
    """Adds keypoints to people found by a detector."""

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        """Estimate the keypoints of every row of ``detections[i]`` in ``images[i]``.

        Returns:
            One :class:`Detections` per image with the same rows in the same order (boxes,
            scores, track ids unchanged) and ``keypoints (N, 17, 3)`` ``[x, y, score]`` in
            image pixels, COCO-17 order.
        """
        ...

    def close(self) -> None:
        """Release the model."""
        ...
