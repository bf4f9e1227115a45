"""RTMDet person detection from an mmdet config + checkpoint, run as a compiled engine.

The frame (config, checkpoint, engine cache, test pipeline, person filter) is
:class:`detectors.mmdet_common.EngineDetector`'s. The network
(:class:`engines.models.rtmdet.RTMDet`) is exported once to ONNX and run by ONNX Runtime or
OpenVINO on the CPU; the engine is cached in ``$ACTION_STREAM_CACHE/engines``, keyed by the
model config, the checkpoint's hash, backend, device and input size. Around
it, this module does what mmdet's test path does, in numpy:

1. **test pipeline** (:func:`letterbox`): ``Resize(scale=(640, 640), keep_ratio=True)`` —
   scale ``min(640 / long side, 640 / short side)``, sizes rounded as mmcv's ``imrescale``,
   bilinear — then ``Pad(size=(640, 640), pad_val=114)`` at the bottom / right;
2. **data preprocessor**: optional BGR→RGB, ``(x - mean) / std``, NCHW float32;
3. **post-processing** (:func:`postprocess`, mmdet's ``_predict_by_feat_single`` and
   ``_bbox_post_process``): point priors (``MlvlPointGenerator``, offset 0), per level the
   ``nms_pre`` best (prior, class) pairs scoring above ``score_thr``, ``distance2bbox``
   clipped to the padded input, rescaled to the original image, boxes without area dropped
   (``min_bbox_size``), class-wise NMS (mmcv's ``batched_nms``: IoU > ``iou_threshold``
   suppresses), the best ``max_per_img``.

Then rows of class ``cat_id`` (the class named person; COCO's 0) scoring above ``score_thr`` (MMAction2's
demos' ``--det-cat-id`` / ``--det-score-thr``) are kept. Since NMS only lets a box suppress
lower-scored ones, post-processing with ``max(test_cfg.score_thr, score_thr)`` as the
threshold keeps exactly mmdet's boxes above ``score_thr``, faster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.errors import DetectorConfigError
from detectors.mmdet_common import (  # re-exported: RTMDet's helpers were born here
    EngineDetector,
    batched_nms,
    grid_priors,
    input_settings,
    letterbox,
    nms,
    normalise,
)

__all__ = [
    "DEFAULT_TEST_CFG", "RTMDetDetector", "batched_nms", "grid_priors", "input_settings", "letterbox", "nms",
    "normalise", "postprocess",
]  # fmt: skip

#: mmdet's RTMDet ``test_cfg`` (configs/rtmdet/rtmdet_l_8xb32-300e_coco.py).
DEFAULT_TEST_CFG: Mapping[str, Any] = {
    "nms_pre": 30000, "min_bbox_size": 0, "score_thr": 0.001, "nms": {"type": "nms", "iou_threshold": 0.65},
    "max_per_img": 300,
}  # fmt: skip


def postprocess(
    scores: np.ndarray,
    distances: np.ndarray,
    priors: np.ndarray,
    counts: Sequence[int],
    input_hw: tuple[int, int],
    scale_factor: tuple[float, float],
    test_cfg: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's boxes ``(K, 4)``, scores ``(K,)`` and labels ``(K,)`` in original-image pixels, as mmdet's.

    Args:
        scores: ``(N, C)`` sigmoid scores of every prior.
        distances: ``(N, 4)`` left, top, right, bottom distances.
        priors: ``(N, 2)`` prior points (:func:`grid_priors`).
        counts: Priors per level.
        input_hw: The network input's height and width (boxes are clipped to it, as mmdet's
            ``img_shape`` after ``Pad``).
        scale_factor: ``(w_scale, h_scale)`` of :func:`letterbox`.
        test_cfg: mmdet's ``test_cfg`` (``nms_pre``, ``score_thr``, ``min_bbox_size``, ``nms``, ``max_per_img``).
    """
    nms_pre = int(test_cfg.get("nms_pre", -1))
    score_thr = float(test_cfg.get("score_thr", 0.0))
    idx_parts, label_parts, score_parts = [], [], []
    start = 0
    for n in counts:
        level = scores[start : start + n]
        rows, cols = np.nonzero(level > score_thr)
        vals = level[rows, cols]
        order = np.argsort(-vals, kind="stable")
        if nms_pre > 0:
            order = order[:nms_pre]
        idx_parts.append(rows[order] + start)
        label_parts.append(cols[order])
        score_parts.append(vals[order])
        start += n
    idx = np.concatenate(idx_parts)
    labels = np.concatenate(label_parts).astype(np.int64)
    kept_scores = np.concatenate(score_parts).astype(np.float32)
    pts, dist = priors[idx], distances[idx]
    boxes = np.concatenate([pts - dist[:, :2], pts + dist[:, 2:]], axis=1).astype(np.float32)
    h, w = input_hw
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    ws, hs = scale_factor
    boxes = boxes * np.asarray([1 / ws, 1 / hs, 1 / ws, 1 / hs], np.float32)
    min_size = test_cfg.get("min_bbox_size", -1)
    if min_size is not None and min_size >= 0:
        ok = (boxes[:, 2] - boxes[:, 0] > min_size) & (boxes[:, 3] - boxes[:, 1] > min_size)
        boxes, kept_scores, labels = boxes[ok], kept_scores[ok], labels[ok]
    nms_cfg = dict(test_cfg.get("nms") or {})
    if nms_cfg and len(boxes):
        if nms_cfg.get("type", "nms") != "nms":
            raise DetectorConfigError(f"test_cfg.nms.type: only 'nms' is supported, got {nms_cfg.get('type')!r}")
        keep = batched_nms(boxes, kept_scores, labels, float(nms_cfg.get("iou_threshold", 0.5)))
        max_per_img = int(test_cfg.get("max_per_img", -1))
        keep = keep[:max_per_img] if max_per_img > 0 else keep
        boxes, kept_scores, labels = boxes[keep], kept_scores[keep], labels[keep]
    return boxes, kept_scores, labels


# ---------------------------------------------------------------------------- detector


class RTMDetDetector(EngineDetector):
    """People from an mmdet RTMDet config + checkpoint, run as an ONNX Runtime / OpenVINO engine.

    Args:
        config: An mmdet RTMDet config (``model=dict(type='RTMDet', ...)``), e.g.
            ``configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py``.
        checkpoint: The matching mmdet checkpoint (``state_dict`` + ``meta``).
        score_thr: Keep rows scoring above this (``--det-score-thr``, default 0.5 as MMAction2's demos).
        cat_id: Class id kept (``--det-cat-id``); None: the checkpoint's class named "person".
        device: ``cpu``.
        backend: ``auto`` (OpenVINO on x86, else ONNX Runtime), ``onnxruntime`` or ``openvino``.
        num_threads: CPU threads of the backend.
        cache_dir: Where engines are cached (default :func:`engines.cache.cache_root`).
        precision: ``auto`` (bf16 on OpenVINO where the CPU has it and the boxes stay fp32's,
            :mod:`detectors.precision`), ``fp32``, or ``bf16`` / ``fp16`` unchecked.

    Raises:
        DetectorConfigError: A missing or unfitting config / checkpoint (one line naming the
            file and what to do), or an argument out of range.
    """

    name = "rtmdet"
    model_type = "RTMDet"
    example_config = "configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
    default_test_cfg = DEFAULT_TEST_CFG

    def setup(self, model: Any) -> None:
        w, h = self.size
        self.priors, self.counts = grid_priors(h, w, model.strides)

    def output_specs(self, model: Any, input_hw: tuple[int, int]) -> list[Any]:
        from engines.tensors import TensorSpec

        h, w = input_hw
        n, c = sum(-(-h // s) * -(-w // s) for s in model.strides), model.num_classes
        return [TensorSpec("scores", ("batch", n, c)), TensorSpec("distances", ("batch", n, 4))]

    def postprocess_one(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float], test_cfg: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        input_hw = (self.size[1], self.size[0])
        return postprocess(
            outputs["scores"], outputs["distances"], self.priors, self.counts, input_hw, scale_factor, test_cfg
        )

    def candidates(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        dist = outputs["distances"]
        boxes = np.concatenate([self.priors - dist[:, :2], self.priors + dist[:, 2:]], axis=1)
        w, h = self.size
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        ws, hs = scale_factor
        boxes = boxes / np.asarray([ws, hs, ws, hs], np.float32)
        return boxes.astype(np.float32), outputs["scores"].max(axis=1).astype(np.float32)

    def raw(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
        """The engine's ``scores`` / ``distances`` for a batch of images, and their scale factors."""
        out, factors = self.run(images)
        return out["scores"], out["distances"], factors
