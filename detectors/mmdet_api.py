"""Any mmdet 3.x detector, run by mmdet itself (``mmdet.apis.init_detector`` / ``inference_detector``).

For models this project does not compile (Faster R-CNN, DINO, ...): the boxes are exactly
mmdet's. mmdet is an optional dependency (``bash tools/install_mm.sh``); without it the
detector refuses to start with that command in its one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import PERSON_LABEL, person_class
from detectors.errors import DetectorConfigError, LibraryMissing
from stream.packet import Detections

INSTALL_HINT = "mmdet is not installed: bash tools/install_mm.sh (or use --detector rtmdet for RTMDet configs)"


class MMDetDetector:
    """People from any mmdet 3.x config + checkpoint through mmdet's own inference API.

    Args:
        config: mmdet config file.
        checkpoint: Its checkpoint.
        score_thr: Keep rows scoring above this (``--det-score-thr``, default 0.5 as MMAction2's demos).
        cat_id: Class id kept (``--det-cat-id``); None: the class named "person" (COCO's 0 when unnamed).
        device: torch device (``cpu``, ``cuda:0``).
        backend: ``auto`` or ``torch`` (mmdet runs in torch).

    Raises:
        LibraryMissing: mmdet is not installed (the message names ``bash tools/install_mm.sh``).
        DetectorConfigError: A missing file or a bad argument.
    """

    name = "mmdet"

    def __init__(
        self,
        *,
        config: str | Path | None = None,
        checkpoint: str | Path | None = None,
        score_thr: float = 0.5,
        cat_id: int | None = None,
        device: str = "cpu",
        backend: str = "auto",
    ) -> None:
        if config is None or checkpoint is None:
            raise DetectorConfigError("--detector mmdet needs --det-config and --det-checkpoint (an mmdet 3.x model)")
        if not 0.0 <= score_thr < 1.0:
            raise DetectorConfigError(f"score_thr: expected 0 <= score_thr < 1, got {score_thr}")
        if backend not in ("auto", "torch"):
            raise DetectorConfigError(f"--backend {backend}: --detector mmdet runs in torch ('auto' or 'torch')")
        for what, path in (("--det-config", Path(config)), ("--det-checkpoint", Path(checkpoint))):
            if not path.is_file():
                raise DetectorConfigError(f"{what} {path}: no such file")
        try:
            from mmdet.apis import inference_detector, init_detector
        except ImportError as exc:
            raise LibraryMissing(INSTALL_HINT) from exc
        self._infer = inference_detector
        self.model: Any = init_detector(str(config), str(checkpoint), device=device)
        self.score_thr = score_thr
        meta = getattr(self.model, "dataset_meta", None) or {}
        head = getattr(self.model, "bbox_head", None) or getattr(
            getattr(self.model, "roi_head", None), "bbox_head", None
        )
        num_classes = int(getattr(head, "num_classes", len(meta.get("classes") or ()) or 80))
        self.cat_id = person_class(
            meta.get("classes"), num_classes, cat_id, f"{Path(checkpoint).name} ({Path(config).name})"
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not len(images):
            return []
        out = []
        for result in self._infer(self.model, list(images)):
            inst = result.pred_instances
            boxes = inst.bboxes.cpu().numpy().astype(np.float32)
            scores = inst.scores.cpu().numpy().astype(np.float32)
            labels = inst.labels.cpu().numpy()
            keep = (labels == self.cat_id) & (scores > self.score_thr)
            out.append(Detections(boxes[keep], scores[keep], np.full(int(keep.sum()), PERSON_LABEL, np.int64)))
        return out

    def close(self) -> None:
        self.model = None
