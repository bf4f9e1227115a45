"""What mmdet's single-stage detectors share here: test pipeline, NMS, config reading, engine cache.

:class:`EngineDetector` is the frame of :class:`detectors.rtmdet.RTMDetDetector` and
:class:`detectors.yolox.YOLOXDetector`: it reads an mmdet config and checkpoint, builds our
torch model with mmdet's keys, exports it once to an ONNX Runtime / OpenVINO engine cached in
``$ACTION_STREAM_CACHE/engines`` (keyed by the model config, the checkpoint's hash, backend,
device, input size and precision), runs mmdet's test pipeline in numpy (:func:`letterbox`,
:func:`normalise`) and keeps the rows of class ``cat_id`` scoring above ``score_thr``. A
subclass names its model type, declares the engine's outputs and post-processes one image's
outputs as mmdet's head does (:func:`batched_nms` is mmcv's). With ``precision='auto'`` (the
default) OpenVINO runs bf16 where the CPU has it natively and the boxes stay fp32's
(:mod:`detectors.precision`), else fp32.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from detectors.base import PERSON_LABEL, person_class
from detectors.errors import DetectorConfigError
from stream.packet import Detections

log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------------------ config


def find_transform(pipeline: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    """The first transform of type ``kind`` (registry scope prefixes ignored), or ``None``."""
    return next((t for t in pipeline if str(t.get("type", "")).split(".")[-1] == kind), None)


def input_settings(cfg: Any, model_name: str = "RTMDet") -> tuple[tuple[int, int], int]:
    """``((width, height), pad value)`` of the config's test pipeline (``Resize`` / ``Pad``); 640×640, 114 by default.

    ``Pad(size=...)`` gives the size; ``Pad(pad_to_square=True)`` after a square keep-ratio
    ``Resize`` gives the resize scale (the long side is resized to it); ``size_divisor``
    rounds up.

    Raises:
        DetectorConfigError: For a pipeline whose resize does not keep the ratio, or that pads
            to a square after a non-square resize (the input size would vary per image).
    """
    pipeline = cfg.get("test_pipeline") or (cfg.get("test_dataloader") or {}).get("dataset", {}).get("pipeline") or []
    resize, pad = find_transform(pipeline, "Resize"), find_transform(pipeline, "Pad")
    size = (640, 640)
    if resize is not None:
        if not resize.get("keep_ratio", False):
            raise DetectorConfigError(f"test_pipeline: Resize must keep the ratio (keep_ratio=True), as {model_name}'s")
        size = tuple(int(v) for v in resize["scale"])  # type: ignore[assignment]
    pad_val = 114
    if pad is not None:
        if pad.get("pad_to_square", False) and pad.get("size") is None and size[0] != size[1]:
            raise DetectorConfigError(f"test_pipeline: Pad(pad_to_square=True) needs a square Resize scale, got {size}")
        size = tuple(int(v) for v in pad.get("size") or size)  # type: ignore[assignment]
        divisor = int(pad.get("size_divisor") or 1)
        size = tuple(-(-v // divisor) * divisor for v in size)  # type: ignore[assignment]
        val = pad.get("pad_val", {"img": 114})
        val = val.get("img", 0) if isinstance(val, Mapping) else val
        pad_val = int(val[0] if isinstance(val, (list, tuple)) else val)
    return size, pad_val


# ---------------------------------------------------------------------------- detector


class EngineDetector(ABC):
    """People from an mmdet single-stage detector's config + checkpoint, run as an ONNX Runtime / OpenVINO engine.

    Subclasses set :attr:`name` (the registry name), :attr:`model_type` (``model.type`` of the
    config), :attr:`example_config`, :attr:`default_test_cfg`, and implement
    :meth:`output_specs` and :meth:`postprocess_one`.

    Args:
        config: An mmdet config of the subclass's model type.
        checkpoint: The matching mmdet checkpoint (``state_dict`` + ``meta``).
        score_thr: Keep rows scoring above this (``--det-score-thr``, default 0.5 as MMAction2's demos).
        cat_id: Class id kept (``--det-cat-id``); None: the checkpoint's class named "person"
            (COCO's 0 when the checkpoint names no classes).
        device: ``cpu``.
        backend: ``auto`` (OpenVINO on x86, else ONNX Runtime), ``onnxruntime`` or ``openvino``.
        num_threads: CPU threads of the backend.
        cache_dir: Where engines are cached (default :func:`engines.cache.cache_root`).
        precision: ``auto`` (the backend's fast precision if its boxes agree with fp32 on the
            check frames, see :mod:`detectors.precision`; else fp32), ``fp32``, or ``bf16`` /
            ``fp16`` unchecked (OpenVINO).

    Raises:
        DetectorConfigError: A missing or unfitting config / checkpoint (one line naming the
            file and what to do), or an argument out of range.
    """

    name: ClassVar[str] = ""
    model_type: ClassVar[str] = ""
    example_config: ClassVar[str] = ""
    default_test_cfg: ClassVar[Mapping[str, Any]] = {}

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
        precision: str = "auto",
    ) -> None:
        from engines.cache import resolve_device
        from engines.errors import EngineError
        from engines.graph import GRAPH_PRECISIONS

        if config is None or checkpoint is None:
            raise DetectorConfigError(
                f"--detector {self.name} needs --det-config (e.g. {self.example_config}) "
                "and --det-checkpoint (the matching mmdet checkpoint, see docs/people.md)"
            )
        if not 0.0 <= score_thr < 1.0:
            raise DetectorConfigError(f"score_thr: expected 0 <= score_thr < 1, got {score_thr}")
        if precision not in GRAPH_PRECISIONS:
            raise DetectorConfigError(f"precision: expected one of {', '.join(GRAPH_PRECISIONS)}, got {precision!r}")
        self.config, self.checkpoint = Path(config), Path(checkpoint)
        for what, path in (("--det-config", self.config), ("--det-checkpoint", self.checkpoint)):
            if not path.is_file():
                raise DetectorConfigError(
                    f"{what} {path}: no such file; pass an mmdet {self.model_type} config / checkpoint"
                )
        try:
            backend_name, dev = resolve_device(backend, device)
        except EngineError as exc:
            raise DetectorConfigError(str(exc)) from exc
        if dev.kind != "cpu" or backend_name not in ("onnxruntime", "openvino"):
            raise DetectorConfigError(
                f"--backend {backend_name} / --device {dev}: {self.model_type} runs on the CPU with onnxruntime "
                "or openvino"
            )
        self.score_thr = score_thr
        self._load(backend_name, num_threads, cache_dir, precision)
        model = f"{self.checkpoint.name} ({self.config.name})"
        self.cat_id = person_class(self.classes, self._num_classes, cat_id, model)

    # -- subclass hooks

    @abstractmethod
    def output_specs(self, model: Any, input_hw: tuple[int, int]) -> list[Any]:
        """The engine's output :class:`~engines.tensors.TensorSpec` list, in the model's return order."""

    @abstractmethod
    def postprocess_one(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float], test_cfg: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's boxes ``(K, 4)``, scores ``(K,)``, labels ``(K,)`` in original-image pixels, as mmdet's."""

    @abstractmethod
    def candidates(
        self, outputs: Mapping[str, np.ndarray], scale_factor: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every prior's box ``(N, 4)`` in original-image pixels and its best class's score ``(N,)``, before NMS.

        What :meth:`agree` compares between precisions.
        """

    def setup(self, model: Any) -> None:
        """Called once the model is built and loaded, before the engine is (e.g. to make priors)."""

    # -- the frame

    def _load(self, backend: str, num_threads: int | None, cache_dir: str | Path | None, precision: str) -> None:
        from engines.checkpoint import load_checkpoint
        from engines.config import read_config, to_plain
        from engines.errors import EngineError
        from engines.models import build

        try:
            cfg = read_config(self.config)
            model_cfg = to_plain(cfg.model)
        except (EngineError, OSError, SyntaxError, AttributeError, KeyError) as exc:
            raise DetectorConfigError(f"--det-config {self.config}: cannot read it as an mmdet config ({exc})") from exc
        if model_cfg.get("type") != self.model_type:
            raise DetectorConfigError(
                f"--det-config {self.config}: model.type is {model_cfg.get('type')!r}, --detector {self.name} needs "
                f"{self.model_type!r} (use --detector mmdet for other mmdet models)"
            )
        plain = to_plain(cfg._cfg_dict) if hasattr(cfg, "_cfg_dict") else cfg
        self.size, self.pad_val = input_settings(plain, self.model_type)
        try:
            model: Any = build(model_cfg, where="model").eval()
            ckpt = load_checkpoint(model, self.checkpoint, config_name=self.config)
        except EngineError as exc:
            raise DetectorConfigError(
                f"--det-checkpoint {self.checkpoint} does not fit {self.config.name}: {exc}; "
                "pass the checkpoint trained with this config"
            ) from exc
        divisor = int(getattr(model, "pad_size_divisor", 1) or 1)
        self.size = tuple(-(-v // divisor) * divisor for v in self.size)  # type: ignore[assignment]
        self.classes = ckpt.classes
        self._num_classes = int(model.num_classes)
        self.mean, self.std, self.bgr_to_rgb = model.mean, model.std, model.bgr_to_rgb
        self.test_cfg = {**self.default_test_cfg, **dict(model.test_cfg)}
        self.setup(model)
        w, h = self.size
        self.engine = cached_engine(
            model, model_cfg, self.checkpoint, backend, (h, w), num_threads, cache_dir,
            name=self.name, model_type=self.model_type, outputs=self.output_specs(model, (h, w)),
            precision=precision, agree=self.agree,
        )  # fmt: skip
        self.precision = str(self.engine.manifest.precision)

    def agree(self, fp32: Any, reduced: Any, frames: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        """Whether the ``reduced``-precision engine gives ``fp32``'s boxes on the check frames.

        Each frame's :data:`~detectors.precision.TOP_K` best candidates (:meth:`candidates`)
        must agree within :data:`~detectors.precision.BOX_TOL_PX` px and
        :data:`~detectors.precision.SCORE_TOL`.

        Args:
            fp32: The fp32 engine.
            reduced: The same engine at the reduced precision.
            frames: Frames to compare on (default :func:`detectors.precision.check_frames`).

        Returns:
            ``kept``, the worst ``box_px`` / ``score`` differences and the ``frames`` compared
            (or ``reason`` when there is nothing to compare on).
        """
        from detectors import precision as check

        tried = str(getattr(reduced.backend, "precision", "reduced"))  # its manifest still says fp32
        frames = check.check_frames() if frames is None else frames
        if not frames:
            why = f"no check frames ({check.CHECK_VIDEO} is missing: apt-get install opencv-doc)"
            return check.verdict({"tried": tried, "kept": False, "reason": why}, self.name)
        worst_box = worst_score = 0.0
        for frame in frames:
            padded, factor = letterbox(frame, self.size, self.pad_val)
            feeds = {"inputs": normalise([padded], self.mean, self.std, self.bgr_to_rgb)}
            ref = self.candidates({k: v[0] for k, v in fp32.run(feeds).items()}, factor)
            got = self.candidates({k: v[0] for k, v in reduced.run(feeds).items()}, factor)
            box, score = check.compare_boxes(*ref, *got)
            worst_box, worst_score = max(worst_box, box), max(worst_score, score)
        kept = worst_box <= check.BOX_TOL_PX and worst_score <= check.SCORE_TOL
        result: dict[str, Any] = {
            "kept": kept, "box_px": round(worst_box, 4), "score": round(worst_score, 5), "frames": len(frames),
            "top_k": check.TOP_K, "box_tol_px": check.BOX_TOL_PX, "score_tol": check.SCORE_TOL,
        }  # fmt: skip
        if not kept:
            result["reason"] = (
                f"boxes differ from fp32 by up to {worst_box:.3g} px (tolerance {check.BOX_TOL_PX}), "
                f"scores by {worst_score:.3g} ({check.SCORE_TOL})"
            )
        return check.verdict({"tried": tried, **result}, self.name)

    def run(self, images: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], list[tuple[float, float]]]:
        """The engine's named outputs for a batch of images, and the images' scale factors."""
        padded, factors = [], []
        for image in images:
            p, f = letterbox(image, self.size, self.pad_val)
            padded.append(p)
            factors.append(f)
        return self.engine.run({"inputs": normalise(padded, self.mean, self.std, self.bgr_to_rgb)}), factors

    def detect_all(self, images: Sequence[np.ndarray], score_thr: float | None = None) -> list[Detections]:
        """Every class's boxes as mmdet's ``inference_detector`` gives them (``test_cfg.score_thr`` or higher).

        NMS only lets a box suppress lower-scored ones, so with ``max(test_cfg.score_thr,
        score_thr)`` as the threshold the boxes above ``score_thr`` are exactly mmdet's, faster.
        """
        if not len(images):
            return []
        outputs, factors = self.run(images)
        cfg = dict(self.test_cfg)
        if score_thr is not None:
            cfg["score_thr"] = max(float(cfg.get("score_thr", 0.0)), score_thr)
        results = []
        for i, f in enumerate(factors):
            boxes, sc, labels = self.postprocess_one({k: v[i] for k, v in outputs.items()}, f, cfg)
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


def cached_engine(
    model: Any,
    model_cfg: Mapping[str, Any],
    checkpoint: Path,
    backend: str,
    input_hw: tuple[int, int],
    num_threads: int | None,
    cache_dir: str | Path | None,
    *,
    name: str,
    model_type: str,
    outputs: Sequence[Any],
    precision: str = "fp32",
    agree: Any = None,
) -> Any:
    """Open the cached engine for this model + checkpoint, or export, check and cache it.

    ``precision='auto'`` builds fp32 and keeps the backend's fast precision if ``agree(fp32,
    reduced)`` passes (:func:`engines.graph.try_reduced_precision`); on a backend without one it
    is fp32 (the same cache entry).
    """
    from engines.cache import cached_graph_engine
    from engines.checkpoint import file_sha256
    from engines.graph import build_graph_engine, resolve_graph_precision, try_reduced_precision
    from engines.tensors import TensorSpec

    h, w = input_hw
    inputs = [TensorSpec("inputs", ("batch", 3, h, w), layout="NCHW")]
    rng = np.random.default_rng(0)
    example = {"inputs": rng.standard_normal((1, 3, h, w)).astype(np.float32)}
    check = {"inputs": rng.standard_normal((2, 3, h, w)).astype(np.float32)}

    precision, tried = resolve_graph_precision(precision, backend)

    def build(out_dir: Path) -> Any:
        engine = build_graph_engine(
            model, inputs=inputs, outputs=outputs, example=example, check=check, out_dir=out_dir, backend=backend,
            model_type=model_type, num_classes=model.num_classes, atol=1e-3, num_threads=num_threads,
            precision="fp32" if precision == "auto" else precision,
        )  # fmt: skip
        if tried is not None and agree is not None:
            try_reduced_precision(engine, tried, agree)
        return engine

    key = (repr(model_cfg), file_sha256(checkpoint), repr(input_hw), f"{name}-1")
    return cached_graph_engine(
        name, key, build, backend=backend, num_threads=num_threads, cache_dir=cache_dir, precision=precision
    )
