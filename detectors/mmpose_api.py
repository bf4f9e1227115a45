"""Any mmpose 1.x top-down model through mmpose's own API (``init_model`` / ``inference_topdown``).

For models this project does not compile (HRNet-w32, MMAction2's demos' default pose model,
ViTPose, …): mmpose builds the model from its config, loads the checkpoint and runs its own
test pipeline; each frame's people go through ``inference_topdown`` in one batch. Needs the
``mm`` extra (``bash tools/install_mm.sh``); RTMPose runs without it as a compiled engine
(:mod:`detectors.rtmpose`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.errors import DetectorConfigError, LibraryMissing
from stream.packet import Detections

INSTALL_HINT = "install the mm extra with `bash tools/install_mm.sh`"


def import_mmpose_apis() -> Any:
    """``mmpose.apis``, or :class:`LibraryMissing` naming the install script."""
    try:
        import mmpose.apis as apis
    except ImportError as exc:
        raise LibraryMissing(
            f"the 'mmpose' pose estimator runs mmpose's own API, which is not installed here ({exc}); {INSTALL_HINT}"
        ) from exc
    return apis


class MMPoseEstimator:
    """A top-down mmpose model (config + checkpoint) run by mmpose.

    Args:
        config: mmpose config file.
        checkpoint: mmpose checkpoint file.
        device: torch device (``cpu``, ``cuda:0``).
        cfg_options: Overrides of the config.

    Raises:
        LibraryMissing: mmpose is not installed (the message names ``tools/install_mm.sh``).
        DetectorConfigError: The config file is missing.
        CheckpointError: The checkpoint file is missing.
    """

    name = "mmpose"

    def __init__(
        self,
        config: str | Path,
        checkpoint: str | Path,
        *,
        device: str = "cpu",
        cfg_options: Mapping[str, Any] | None = None,
    ) -> None:
        from engines.errors import CheckpointError

        config, checkpoint = Path(config), Path(checkpoint)
        if not config.is_file():
            raise DetectorConfigError(f"pose config {config}: no such file; pass an mmpose top-down config")
        if not checkpoint.is_file():
            raise CheckpointError(f"checkpoint {checkpoint}: no such file; pass the mmpose checkpoint of {config.name}")
        self._apis = import_mmpose_apis()
        self._model = self._apis.init_model(
            str(config), str(checkpoint), device=device, cfg_options=dict(cfg_options) if cfg_options else None
        )
        names = (getattr(self._model, "dataset_meta", None) or {}).get("keypoint_id2name") or {}
        self.num_keypoints = len(names) or 17

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(N, K, 2)`` and scores ``(N, K)`` of ``boxes`` (x1 y1 x2 y2) in one image."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, self.num_keypoints, 2), np.float32), np.zeros((0, self.num_keypoints), np.float32)
        results = self._apis.inference_topdown(self._model, image, boxes, bbox_format="xyxy")
        keypoints = np.stack([r.pred_instances.keypoints[0] for r in results]).astype(np.float32)
        scores = np.stack([r.pred_instances.keypoint_scores[0] for r in results]).astype(np.float32)
        return keypoints, scores

    def estimate(self, images: Sequence[np.ndarray], detections: Sequence[Detections]) -> list[Detections]:
        if len(images) != len(detections):
            raise DetectorConfigError(
                f"estimate: expected one Detections per image, got {len(detections)} for {len(images)}"
            )
        out = []
        for image, dets in zip(images, detections, strict=True):
            keypoints, scores = self.predict(image, dets.xyxy)
            rows = np.concatenate([keypoints, scores[..., None]], axis=-1).astype(np.float32)
            out.append(Detections(dets.xyxy, dets.scores, dets.labels, dets.track_ids, dict(dets.data), rows))
        return out

    def close(self) -> None:
        self._model = None
