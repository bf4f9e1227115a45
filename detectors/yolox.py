"""YOLOX person detection from an mmdet config + checkpoint, run as a compiled engine.

The frame (config, checkpoint, engine cache, person filter) is
:class:`detectors.mmdet_common.EngineDetector`'s, as for RTMDet; the network is
:class:`engines.models.yolox.YOLOX`. Around it, this module does what mmdet's YOLOX test
path does, in numpy:

1. **test pipeline** (:func:`~detectors.mmdet_common.letterbox`): ``Resize(scale=(s, s),
   keep_ratio=True)`` (416 for YOLOX-tiny / nano, 640 for s / m / l / x), then
   ``Pad(pad_to_square=True, pad_val=114)`` at the bottom / right — an ``s×s`` input, a
   multiple of the data preprocessor's ``pad_size_divisor`` (32);
2. **data preprocessor**: YOLOX's configs set no ``mean`` / ``std`` and no ``bgr_to_rgb``,
   so the network sees the raw 0-255 BGR pixels as float32 (NCHW);
3. **post-processing** (:func:`postprocess`, mmdet's ``YOLOXHead.predict_by_feat`` and
   ``_bbox_post_process``): each prior's best class (sigmoid) times its objectness
   (sigmoid) is its score, kept when ``>= score_thr``; boxes decoded from the point priors
   (``MlvlPointGenerator``, offset 0: centre ``d_xy * stride + prior``, size
   ``exp(d_wh) * stride``), divided by the scale factor (not clipped), then class-wise NMS
   (mmcv's ``batched_nms``, IoU > ``iou_threshold`` suppresses). YOLOX's ``test_cfg`` has no
   ``nms_pre`` / ``max_per_img`` and mmdet applies none; a ``max_per_img`` there is honoured.

Then rows of class ``cat_id`` (the class named person; COCO's 0) scoring above ``score_thr`` are kept, as
for RTMDet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors.errors import DetectorConfigError
from detectors.mmdet_common import EngineDetector, batched_nms, grid_priors

#: mmdet's YOLOX ``test_cfg`` (configs/yolox/yolox_s_8xb8-300e_coco.py).
DEFAULT_TEST_CFG: Mapping[str, Any] = {"score_thr": 0.01, "nms": {"type": "nms", "iou_threshold": 0.65}}


def prior_strides(counts: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """The stride of every prior ``(N,)`` float32, level by level."""
    return np.concatenate([np.full(n, s, np.float32) for n, s in zip(counts, strides, strict=True)])


def decode(priors: np.ndarray, strides: np.ndarray, bbox_preds: np.ndarray) -> np.ndarray:
    """mmdet's ``YOLOXHead._bbox_decode``: ``(N, 4)`` deltas → ``x1, y1, x2, y2`` in input pixels (float32)."""
    s = strides[:, None]
    xys = bbox_preds[:, :2] * s + priors
    whs = np.exp(bbox_preds[:, 2:]) * s
    return np.concatenate([xys - whs / 2, xys + whs / 2], axis=1).astype(np.float32)


def postprocess(
    scores: np.ndarray,
    objectness: np.ndarray,
    bbox_preds: np.ndarray,
    priors: np.ndarray,
    strides: np.ndarray,
    scale_factor: tuple[float, float],
    test_cfg: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's boxes ``(K, 4)``, scores ``(K,)`` and labels ``(K,)`` in original-image pixels, as mmdet's.

    Args:
        scores: ``(N, C)`` sigmoid class scores of every prior.
        objectness: ``(N,)`` sigmoid objectness.
        bbox_preds: ``(N, 4)`` raw box deltas.
        priors: ``(N, 2)`` prior points (:func:`~detectors.mmdet_common.grid_priors`).
        strides: ``(N,)`` stride of each prior (:func:`prior_strides`).
        scale_factor: ``(w_scale, h_scale)`` of :func:`~detectors.mmdet_common.letterbox`.
        test_cfg: mmdet's ``test_cfg`` (``score_thr``, ``nms``, optional ``max_per_img``).

    Raises:
        DetectorConfigError: For an NMS type other than ``nms``.
    """
    labels = np.argmax(scores, axis=1)
    best = np.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
    product = (best * objectness).astype(np.float32)
    keep = product >= float(test_cfg.get("score_thr", 0.0))
    boxes = decode(priors[keep], strides[keep], bbox_preds[keep])
    kept_scores, labels = product[keep], labels[keep].astype(np.int64)
    ws, hs = scale_factor
    boxes = (boxes / np.asarray([ws, hs, ws, hs], np.float32)).astype(np.float32)
    nms_cfg = dict(test_cfg.get("nms") or {})
    if nms_cfg and len(boxes):
        if nms_cfg.get("type", "nms") != "nms":
            raise DetectorConfigError(f"test_cfg.nms.type: only 'nms' is supported, got {nms_cfg.get('type')!r}")
        order = batched_nms(boxes, kept_scores, labels, float(nms_cfg.get("iou_threshold", 0.5)))
        max_per_img = int(test_cfg.get("max_per_img", -1))
        order = order[:max_per_img] if max_per_img > 0 else order
        boxes, kept_scores, labels = boxes[order], kept_scores[order], labels[order]
    return boxes, kept_scores, labels


class YOLOXDetector(EngineDetector):
    """People from an mmdet YOLOX config + checkpoint, run as an ONNX Runtime / OpenVINO engine.

    Args:
        config: An mmdet YOLOX config (``model=dict(type='YOLOX', ...)``), e.g.
            ``configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py``.
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

    name = "yolox"
    model_type = "YOLOX"
    example_config = "configs/detection/yolox/yolox_tiny_8xb8-300e_coco.py"
    default_test_cfg = DEFAULT_TEST_CFG

    def setup(self, model: Any) -> None:
        w, h = self.size
        self.priors, counts = grid_priors(h, w, model.strides)
        self.strides = prior_strides(counts, model.strides)

    def output_specs(self, model: Any, input_hw: tuple[int, int]) -> list[Any]:
        from engines.tensors import TensorSpec

        h, w = input_hw
        n, c = sum(-(-h // s) * -(-w // s) for s in model.strides), model.num_classes
        return [
            TensorSpec("scores", ("batch", n, c)),
            TensorSpec("objectness", ("batch", n)),
            TensorSpec("bbox_preds", ("batch", n, 4)),
        ]

    def candidates(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = outputs["scores"].max(axis=1) * outputs["objectness"]
        ws, hs = scale_factor
        boxes = decode(self.priors, self.strides, outputs["bbox_preds"]) / np.asarray([ws, hs, ws, hs], np.float32)
        return boxes.astype(np.float32), scores.astype(np.float32)

    def postprocess_one(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float], test_cfg: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return postprocess(
            outputs["scores"], outputs["objectness"], outputs["bbox_preds"], self.priors, self.strides,
            scale_factor, test_cfg,
        )  # fmt: skip
