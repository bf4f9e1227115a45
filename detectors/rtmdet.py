"""RTMDet person detection from an mmdet config + checkpoint, run as a compiled engine.

The network (:class:`engines.models.rtmdet.RTMDet`) is exported once to ONNX and run by ONNX
Runtime or OpenVINO on the CPU; the engine is cached in ``$ACTION_STREAM_CACHE/engines``,
keyed by the model config, the checkpoint's hash, backend, device and input size. Around
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

Then rows of class ``cat_id`` (COCO's person, 0) scoring above ``score_thr`` (MMAction2's
demos' ``--det-cat-id`` / ``--det-score-thr``) are kept. Since NMS only lets a box suppress
lower-scored ones, post-processing with ``max(test_cfg.score_thr, score_thr)`` as the
threshold keeps exactly mmdet's boxes above ``score_thr``, faster.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.base import PERSON_LABEL, person_class
from detectors.errors import DetectorConfigError
from stream.packet import Detections

log = logging.getLogger(__name__)

#: mmdet's RTMDet ``test_cfg`` (configs/rtmdet/rtmdet_l_8xb32-300e_coco.py).
DEFAULT_TEST_CFG: Mapping[str, Any] = {
    "nms_pre": 30000, "min_bbox_size": 0, "score_thr": 0.001, "nms": {"type": "nms", "iou_threshold": 0.65},
    "max_per_img": 300,
}  # fmt: skip


# ------------------------------------------------------------------------ test pipeline


def letterbox(
    image: np.ndarray, size: tuple[int, int] = (640, 640), pad_val: int = 114
) -> tuple[np.ndarray, tuple[float, float]]:
    """mmdet's ``Resize(scale=size, keep_ratio=True)`` then ``Pad(size=size)``.

    Args:
        image: ``H×W×3`` uint8.
        size: ``(width, height)`` of the network input.
        pad_val: Value of the padded pixels.

    Returns:
        The padded ``size[1]×size[0]×3`` image and mmdet's ``scale_factor`` ``(w_scale, h_scale)``
        (new size over old, per axis).
    """
    h, w = image.shape[:2]
    scale = min(max(size) / max(h, w), min(size) / min(h, w))
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    out = np.full((max(size[1], new_h), max(size[0], new_w), 3), pad_val, np.uint8)
    out[:new_h, :new_w] = resized
    return out, (new_w / w, new_h / h)


def normalise(
    padded: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float], bgr_to_rgb: bool
) -> np.ndarray:
    """mmdet's ``DetDataPreprocessor``: ``(x - mean) / std`` as an ``N×3×H×W`` float32 batch."""
    batch = np.stack(padded).astype(np.float32)
    if bgr_to_rgb:
        batch = batch[..., ::-1]
    batch = ((batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------- post-processing


def grid_priors(height: int, width: int, strides: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """``MlvlPointGenerator(offset=0)`` priors ``(N, 2)`` ``[x, y]`` for an input, and priors per level."""
    points, counts = [], []
    for s in strides:
        fh, fw = -(-height // s), -(-width // s)
        xx, yy = np.meshgrid(np.arange(fw, dtype=np.float32) * s, np.arange(fh, dtype=np.float32) * s)
        points.append(np.stack([xx.ravel(), yy.ravel()], axis=1))
        counts.append(fh * fw)
    return np.concatenate(points), counts


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS as mmcv's (offset 0): indices kept, best first; IoU > threshold suppresses."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS by mmcv's offset trick (each class's boxes moved apart); kept indices, best first."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    offsets = labels.astype(np.float32) * (boxes.max() + np.float32(1))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


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


# ------------------------------------------------------------------------------ config


def _find(pipeline: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((t for t in pipeline if str(t.get("type", "")).split(".")[-1] == kind), None)


def input_settings(cfg: Any) -> tuple[tuple[int, int], int]:
    """``((width, height), pad value)`` of the config's test pipeline (``Resize`` / ``Pad``); 640×640, 114 by default.

    Raises:
        DetectorConfigError: For a pipeline whose resize does not keep the ratio.
    """
    pipeline = cfg.get("test_pipeline") or (cfg.get("test_dataloader") or {}).get("dataset", {}).get("pipeline") or []
    resize, pad = _find(pipeline, "Resize"), _find(pipeline, "Pad")
    size = (640, 640)
    if resize is not None:
        if not resize.get("keep_ratio", False):
            raise DetectorConfigError("test_pipeline: Resize must keep the ratio (keep_ratio=True), as RTMDet's")
        size = tuple(int(v) for v in resize["scale"])  # type: ignore[assignment]
    pad_val = 114
    if pad is not None:
        size = tuple(int(v) for v in pad.get("size", size))  # type: ignore[assignment]
        val = pad.get("pad_val", {"img": 114})
        val = val.get("img", 0) if isinstance(val, Mapping) else val
        pad_val = int(val[0] if isinstance(val, (list, tuple)) else val)
    return size, pad_val


# ---------------------------------------------------------------------------- detector


class RTMDetDetector:
    """People from an mmdet RTMDet config + checkpoint, run as an ONNX Runtime / OpenVINO engine.

    Args:
        config: An mmdet RTMDet config (``model=dict(type='RTMDet', ...)``), e.g.
            ``configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py``.
        checkpoint: The matching mmdet checkpoint (``state_dict`` + ``meta``).
        score_thr: Keep rows scoring above this (``--det-score-thr``, default 0.5 as MMAction2's demos).
        cat_id: Class id kept (``--det-cat-id``); None: the checkpoint's class named "person"
            (COCO's 0 when the checkpoint names no classes).
        device: ``cpu``.
        backend: ``auto`` (OpenVINO on x86, else ONNX Runtime), ``onnxruntime`` or ``openvino``.
        num_threads: CPU threads of the backend.
        cache_dir: Where engines are cached (default :func:`engines.cache.cache_root`).

    Raises:
        DetectorConfigError: A missing or unfitting config / checkpoint (one line naming the
            file and what to do), or an argument out of range.
    """

    name = "rtmdet"

    def __init__(
        self,
        *,
        config: str | Path | None = None,
        checkpoint: str | Path | None = None,
        score_thr: float = 0.5,
        cat_id: int | None = None,
        device: str = "cpu",
        backend: str = "auto",
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        from engines.cache import resolve_device
        from engines.errors import EngineError

        if config is None or checkpoint is None:
            raise DetectorConfigError(
                "--detector rtmdet needs --det-config (e.g. configs/detection/rtmdet/rtmdet_tiny_8xb32-300e_coco.py) "
                "and --det-checkpoint (the matching mmdet checkpoint, see docs/people.md)"
            )
        if not 0.0 <= score_thr < 1.0:
            raise DetectorConfigError(f"score_thr: expected 0 <= score_thr < 1, got {score_thr}")
        self.config, self.checkpoint = Path(config), Path(checkpoint)
        for what, path in (("--det-config", self.config), ("--det-checkpoint", self.checkpoint)):
            if not path.is_file():
                raise DetectorConfigError(f"{what} {path}: no such file; pass an mmdet RTMDet config / checkpoint")
        try:
            backend_name, dev = resolve_device(backend, device)
        except EngineError as exc:
            raise DetectorConfigError(str(exc)) from exc
        if dev.kind != "cpu" or backend_name not in ("onnxruntime", "openvino"):
            raise DetectorConfigError(
                f"--backend {backend_name} / --device {dev}: RTMDet runs on the CPU with onnxruntime or openvino"
            )
        self.score_thr = score_thr
        self._load(backend_name, num_threads, cache_dir)
        num_classes = int(self._num_classes)
        self.cat_id = person_class(self.classes, num_classes, cat_id, f"{self.checkpoint.name} ({self.config.name})")

    def _load(self, backend: str, num_threads: int | None, cache_dir: str | Path | None) -> None:
        import torch

        from engines.checkpoint import load_checkpoint
        from engines.config import read_config, to_plain
        from engines.errors import EngineError
        from engines.models import build

        try:
            cfg = read_config(self.config)
            model_cfg = to_plain(cfg.model)
        except (EngineError, OSError, SyntaxError, AttributeError, KeyError) as exc:
            raise DetectorConfigError(f"--det-config {self.config}: cannot read it as an mmdet config ({exc})") from exc
        if model_cfg.get("type") != "RTMDet":
            raise DetectorConfigError(
                f"--det-config {self.config}: model.type is {model_cfg.get('type')!r}, --detector rtmdet needs "
                "'RTMDet' (use --detector mmdet for other mmdet models)"
            )
        self.size, self.pad_val = input_settings(to_plain(cfg._cfg_dict) if hasattr(cfg, "_cfg_dict") else cfg)
        try:
            model: Any = build(model_cfg, where="model").eval()
            ckpt = load_checkpoint(model, self.checkpoint, config_name=self.config)
        except EngineError as exc:
            raise DetectorConfigError(
                f"--det-checkpoint {self.checkpoint} does not fit {self.config.name}: {exc}; "
                "pass the checkpoint trained with this config"
            ) from exc
        self.classes = ckpt.classes
        self._num_classes = model.bbox_head.num_classes
        self.mean, self.std, self.bgr_to_rgb = model.mean, model.std, model.bgr_to_rgb
        self.test_cfg = {**DEFAULT_TEST_CFG, **dict(model.test_cfg)}
        w, h = self.size
        self.priors, self.counts = grid_priors(h, w, model.strides)
        self.engine = _cached_engine(model, model_cfg, self.checkpoint, backend, (h, w), num_threads, cache_dir)
        self._torch = torch

    def raw(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
        """The engine's ``scores`` / ``distances`` for a batch of images, and their scale factors."""
        padded, factors = [], []
        for image in images:
            p, f = letterbox(image, self.size, self.pad_val)
            padded.append(p)
            factors.append(f)
        out = self.engine.run({"inputs": normalise(padded, self.mean, self.std, self.bgr_to_rgb)})
        return out["scores"], out["distances"], factors

    def detect_all(self, images: Sequence[np.ndarray], score_thr: float | None = None) -> list[Detections]:
        """Every class's boxes as mmdet's ``inference_detector`` gives them (``test_cfg.score_thr`` or higher)."""
        if not len(images):
            return []
        scores, distances, factors = self.raw(images)
        cfg = dict(self.test_cfg)
        if score_thr is not None:
            cfg["score_thr"] = max(float(cfg.get("score_thr", 0.0)), score_thr)
        results = []
        for s, d, f in zip(scores, distances, factors, strict=True):
            boxes, sc, labels = postprocess(s, d, self.priors, self.counts, (self.size[1], self.size[0]), f, cfg)
            results.append(Detections(boxes, sc, labels))
        return results

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image, dets in zip(images, self.detect_all(images, self.score_thr), strict=True):
            keep = (dets.labels == self.cat_id) & (dets.scores > self.score_thr)
            people = dets[keep]
            h, w = image.shape[:2]
            xyxy = people.xyxy.copy()
            xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, w)
            xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, h)
            out.append(Detections(xyxy, people.scores, np.full(len(xyxy), PERSON_LABEL, np.int64)))
        return out

    def close(self) -> None:
        self.engine.close()


def _cached_engine(
    model: Any,
    model_cfg: Mapping[str, Any],
    checkpoint: Path,
    backend: str,
    input_hw: tuple[int, int],
    num_threads: int | None,
    cache_dir: str | Path | None,
) -> Any:
    """Open the cached engine for this model + checkpoint, or export, check and cache it."""
    import hashlib

    from engines.cache import ENGINE_FORMAT, cache_root
    from engines.checkpoint import file_sha256
    from engines.engine import load_engine
    from engines.graph import build_graph_engine
    from engines.tensors import TensorSpec

    digest = hashlib.sha256()
    for part in (repr(model_cfg), file_sha256(checkpoint), backend, repr(input_hw), str(ENGINE_FORMAT), "rtmdet-1"):
        digest.update(part.encode() + b"\0")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    out = root / f"rtmdet-{backend}-fp32-{digest.hexdigest()[:16]}"
    if (out / "manifest.json").is_file():
        try:
            return load_engine(out, backend, num_threads=num_threads)
        except Exception as exc:  # a broken cache entry is rebuilt, never fatal
            log.warning("cached engine %s is unusable (%s); rebuilding", out, exc)
    h, w = input_hw
    n, c = sum(-(-h // s) * -(-w // s) for s in model.strides), model.num_classes
    inputs = [TensorSpec("inputs", ("batch", 3, h, w), layout="NCHW")]
    outputs = [TensorSpec("scores", ("batch", n, c)), TensorSpec("distances", ("batch", n, 4))]
    rng = np.random.default_rng(0)
    example = {"inputs": rng.standard_normal((1, 3, h, w)).astype(np.float32)}
    check = {"inputs": rng.standard_normal((2, 3, h, w)).astype(np.float32)}
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=root))
    log.info("building the %s RTMDet engine (cached in %s)", backend, out)
    try:
        engine = build_graph_engine(
            model, inputs=inputs, outputs=outputs, example=example, check=check, out_dir=tmp, backend=backend,
            model_type="RTMDet", num_classes=c, atol=1e-3, num_threads=num_threads,
        )  # fmt: skip
        engine.close()
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_engine(out, backend, num_threads=num_threads)
