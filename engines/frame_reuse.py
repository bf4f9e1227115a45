"""Frame-level reuse for TSN-style 2D recognizers: a per-frame engine and a head engine.

Overlapping windows (``stream.long_video --stride 0.5``, ``stream.webcam`` with a small
``--predict-stepsize``) share frames. In a TSN recognizer every frame goes through the
backbone on its own and the segments meet only in the head, after a spatial average:
MMAction2 1.2's ``Recognizer2D`` reshapes ``(N, V, C, H, W)`` to ``(N·V, C, H, W)`` for the
backbone, and ``TSNHead.forward`` then pools each view (``AdaptiveAvgPool2d(1)``), averages
the ``V = num_crops × num_clips × clip_len`` views of a sample (``AvgConsensus(dim=1)``),
applies dropout (identity at test time) and ``fc_cls``; ``average_clip`` finally sees one
row per sample (softmax for ``'prob'``, the raw scores for ``'score'`` / ``None``). So the
model splits exactly into

* the **frame engine**: ``frames (frames, 3, H, W)`` → ``features (frames, C)`` (backbone +
  the head's spatial pool), computed once per frame and cached by the pipeline, and
* the **head engine**: ``features (batch, V, C)`` → ``scores (batch, num_classes)``
  (consensus, ``fc_cls``, clip averaging),

whose composition gives the full model's scores up to float rounding (≤ 1e-5 in fp32).

:func:`reuse_refusal` decides from the model config which families qualify: a
``Recognizer2D`` with a ``ResNet`` backbone (no temporal operation), no neck and a
``TSNHead`` with ``spatial_type='avg'`` and ``AvgConsensus(dim=1)``. TSM (``ResNetTSM``:
its temporal shift mixes neighbouring segments inside the backbone), 3D recognizers (a
clip is one input), other heads (``TSMHead`` folds segments after ``fc_cls`` and may
pool temporally) and ``fcn_test`` do not. The engines are built and cached like the
AVA and skeleton engines (:func:`engines.cache.cached_graph_engine`), at the precision the
full engine would use: ``precision='auto'`` tries the backend's fast precision (bf16 for
OpenVINO on a CPU with native bf16) and keeps it for the pair only if the pair's top-1
labels agree with torch fp32 on the same real-looking clips and with the same threshold as
:func:`engines.engine.build_engine`'s check; otherwise both parts fall back to fp32. In
fp32 the split is exact up to float rounding; in bf16 the per-frame engine runs other
kernels (batch 1) than the full engine (all views at once), so its scores may differ from
the full bf16 engine's by bf16 rounding (measured in ``docs/engines.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.engine import Engine
from engines.errors import ModelConfigError
from engines.tensors import TensorSpec

log = logging.getLogger(__name__)

FRAMES = "frames"
FEATURES = "features"
SCORES = "scores"
#: Bump when the split or the graphs change: cached engines of older versions are not reused.
REUSE_VERSION = "frame-reuse-1"
#: Backbones without any operation across frames.
FRAME_BACKBONES = ("ResNet",)
#: Backends that run graph engines (named tensors).
REUSE_BACKENDS = ("onnxruntime", "openvino")


def reuse_refusal(model_cfg: Mapping[str, Any]) -> str | None:
    """Why per-frame features of this model cannot be reused across windows; None if they can.

    Args:
        model_cfg: The config's ``model`` section (after ``--cfg-options``).

    Returns:
        None for a TSN-style model (see the module docstring), else a one-line reason.
    """
    kind = model_cfg.get("type")
    if kind != "Recognizer2D":
        return f"{kind} scores a clip as a whole; only Recognizer2D (TSN) scores frames one by one"
    if model_cfg.get("neck") is not None:
        return "the model has a neck between backbone and head"
    backbone = model_cfg.get("backbone") or {}
    backbone_type = backbone.get("type")
    if backbone_type == "ResNetTSM":
        return "ResNetTSM (TSM): its temporal shift mixes neighbouring segments inside the backbone"
    if backbone_type not in FRAME_BACKBONES:
        return f"backbone {backbone_type!r} is not known to be per-frame (supported: {', '.join(FRAME_BACKBONES)})"
    head = model_cfg.get("cls_head") or {}
    if head.get("type") != "TSNHead":
        return f"head {head.get('type')!r}: only TSNHead averages the frames' pooled features before its fc"
    if head.get("spatial_type", "avg") != "avg":
        return f"TSNHead.spatial_type {head.get('spatial_type')!r}: only 'avg' pools each frame on its own"
    consensus = head.get("consensus") or {"type": "AvgConsensus", "dim": 1}
    if consensus.get("type") != "AvgConsensus" or int(consensus.get("dim", 1)) != 1:
        return f"TSNHead.consensus {dict(consensus)!r}: only AvgConsensus over the segments (dim=1)"
    if (model_cfg.get("test_cfg") or {}).get("fcn_test", False):
        return "test_cfg.fcn_test: fully-convolutional testing"
    return None


def split_model(model: Any) -> tuple[Any, Any]:
    """The per-frame part and the head part of a TSN recognizer (see the module docstring).

    Raises:
        ModelConfigError: If ``model`` is not a TSN-style ``Recognizer2D``.
    """
    from torch import Tensor, nn

    from engines.models.heads import TSNHead
    from engines.models.recognizers import Recognizer2D

    head = getattr(model, "cls_head", None)
    if not isinstance(model, Recognizer2D) or not isinstance(head, TSNHead) or head.avg_pool is None:
        raise ModelConfigError(
            f"split_model: expected a Recognizer2D with a pooling TSNHead, got {type(model).__name__}"
        )
    tsn: TSNHead = head
    pool: nn.Module = head.avg_pool

    class FrameFeatures(nn.Module):
        """``(frames, 3, H, W)`` → pooled ``(frames, C)``: the backbone and the head's spatial pool."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = model.backbone
            self.avg_pool = pool

        def forward(self, frames: Tensor) -> Tensor:
            return self.avg_pool(self.backbone(frames)).flatten(1)

    class ClipHead(nn.Module):
        """``(batch, V, C)`` pooled features → ``(batch, num_classes)`` scores, as ``TSNHead`` + ``average_clip``."""

        def __init__(self) -> None:
            super().__init__()
            self.consensus = tsn.consensus
            self.fc_cls = tsn.fc_cls

        def forward(self, features: Tensor) -> Tensor:
            x = self.consensus(features).squeeze(1)  # the mean over the views; dropout is off at test time
            return model._fold_clips(self.fc_cls(x), 1)

    return FrameFeatures().eval(), ClipHead().eval()


@dataclass
class FrameReuseEngines:
    """The two engines of a split TSN model.

    Attributes:
        frames: ``frames (frames, 3, H, W)`` → ``features (frames, C)``.
        head: ``features (batch, V, C)`` → ``scores (batch, num_classes)``.
        num_views: ``V``, the views of one sample.
        channels: ``C``, the pooled feature size.
        auto_precision: With ``precision='auto'`` and a reduced precision tried: the pair's
            check against torch fp32 (``tried``, ``top1_agreement``, ``kept``, ``samples``),
            also recorded in the tried engines' manifests (``validation.auto_precision``).
    """

    frames: Engine
    head: Engine
    num_views: int
    channels: int
    auto_precision: dict[str, Any] | None = None

    @property
    def precision(self) -> str:
        """The precision both engines run at."""
        return str(self.frames.manifest.precision)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """Pooled features ``(n, C)`` of normalised frames ``(n, 3, H, W)``."""
        return np.asarray(self.frames.run({FRAMES: np.ascontiguousarray(frames, np.float32)})[FEATURES], np.float32)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class scores ``(batch, num_classes)`` of per-sample features ``(batch, V, C)``."""
        return np.asarray(self.head.run({FEATURES: np.ascontiguousarray(features, np.float32)})[SCORES], np.float32)

    def close(self) -> None:
        """Release both engines."""
        self.frames.close()
        self.head.close()


def build_reuse_engines(
    model_cfg: Mapping[str, Any],
    checkpoint: str | Path,
    input_shape: Sequence[int],
    *,
    backend: str = "onnxruntime",
    precision: str = "fp32",
    num_threads: int | None = None,
    cache_dir: str | Path | None = None,
    trusted: bool = False,
    config_name: str | Path | None = None,
) -> FrameReuseEngines:
    """Open the cached frame and head engines of a TSN model, or export, check and cache them.

    Args:
        model_cfg: The config's ``model`` section (after ``--cfg-options``).
        checkpoint: Its checkpoint.
        input_shape: The full model's per-sample input ``(V, 3, H, W)``.
        backend: ``onnxruntime`` or ``openvino`` (``auto`` picks).
        precision: ``'fp32'``; ``'bf16'`` / ``'fp16'`` where the backend offers them; or
            ``'auto'``: the backend's fast precision (:meth:`Backend.auto_precision`) for both
            engines if the pair's top-1 labels agree with torch fp32 on
            :data:`~engines.engine.AUTO_CHECK_SAMPLES` real-looking clips at least
            :data:`~engines.engine.AUTO_MIN_TOP1` of the time (the full engine's check), else
            fp32 for both (logged; the check is kept in the tried engines' manifests, so a
            later start does not repeat it).
        num_threads: CPU threads for the backends.
        cache_dir: The engine cache's root (default :func:`engines.cache.cache_root`).
        trusted: Allow full unpickling of an old checkpoint.
        config_name: For error messages.

    Raises:
        ModelConfigError: The model does not qualify (:func:`reuse_refusal`), or ``input_shape``
            is not ``(V, 3, H, W)``.
        CheckpointError: The checkpoint cannot be read or does not fit.
        ExportError: An fp32 engine disagrees with torch.
        BackendUnavailable: The backend is not installed.
        BackendOptionError: The backend does not offer ``precision``.
    """
    import torch

    from engines.backends import BackendOptions, backend_class, resolve_backend
    from engines.cache import cached_graph_engine
    from engines.checkpoint import file_sha256
    from engines.config import to_plain
    from engines.export import build_recognizer
    from engines.graph import build_graph_engine

    reason = reuse_refusal(model_cfg)
    if reason is not None:
        raise ModelConfigError(f"frame reuse: {reason}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 4 or shape[1] != 3:
        raise ModelConfigError(f"frame reuse: expected a (V, 3, H, W) input shape, got {shape}")
    views, _, height, width = shape
    name = resolve_backend(backend)
    cls = backend_class(name)
    tried = cls.auto_precision() if precision == "auto" else precision
    cls.check_options(BackendOptions(precision=tried))
    model, ckpt = build_recognizer(model_cfg, checkpoint, config_name=config_name, trusted=trusted)
    per_frame, head = split_model(model)
    tsn: Any = model.cls_head
    channels, num_classes = int(tsn.in_channels), int(tsn.num_classes)
    classes = ckpt.classes if ckpt is not None else None
    key = (repr(to_plain(dict(model_cfg))), file_sha256(Path(checkpoint)), repr(shape), REUSE_VERSION)

    def open_pair(at: str) -> FrameReuseEngines:
        rng = np.random.default_rng(0)

        def build_frames(out_dir: Path) -> Engine:
            return build_graph_engine(
                per_frame, inputs=[TensorSpec(FRAMES, (FRAMES, 3, height, width), layout="NCHW")],
                outputs=[TensorSpec(FEATURES, (FRAMES, channels))],
                example={FRAMES: rng.standard_normal((2, 3, height, width)).astype(np.float32)},
                check={FRAMES: rng.standard_normal((3, 3, height, width)).astype(np.float32)},
                out_dir=out_dir, backend=name, model_type="TSNFrameFeatures", num_classes=channels,
                num_threads=num_threads, precision=at,
            )  # fmt: skip

        def build_head(out_dir: Path) -> Engine:
            with torch.no_grad():  # features as the frame part gives them: non-negative (after ReLU), pooled
                feats = per_frame(
                    torch.from_numpy(rng.standard_normal((3 * views, 3, height, width)).astype(np.float32))
                )
            example = feats.numpy().reshape(3, views, channels)
            return build_graph_engine(
                head, inputs=[TensorSpec(FEATURES, ("batch", views, channels))],
                outputs=[TensorSpec(SCORES, ("batch", num_classes))], example={FEATURES: example[:1]},
                check={FEATURES: example}, out_dir=out_dir, backend=name, model_type="TSNClipHead",
                num_classes=num_classes, class_names=classes, num_threads=num_threads, atol=1e-5, precision=at,
            )  # fmt: skip

        common: dict[str, Any] = {"backend": name, "num_threads": num_threads, "cache_dir": cache_dir, "precision": at}
        frames = cached_graph_engine("tsn-frames", key, build_frames, **common)
        try:
            head_engine = cached_graph_engine("tsn-head", key, build_head, **common)
        except BaseException:
            frames.close()
            raise
        return FrameReuseEngines(frames, head_engine, views, channels)

    pair = open_pair(tried)
    if precision != "auto" or tried == "fp32":
        return pair
    try:
        check = pair.frames.manifest.validation.get("auto_precision")
        if not isinstance(check, dict) or check.get("tried") != tried:
            check = _check_pair(pair, model, shape)
            for engine in (pair.frames, pair.head):
                engine.manifest.validation["auto_precision"] = check
                engine.manifest.save(engine.engine_dir)
        else:
            log.info("frame reuse: %s checked before (%s): %s", tried, pair.frames.engine_dir.name, check)
    except BaseException:
        pair.close()
        raise
    pair.auto_precision = check
    if check["kept"]:
        return pair
    pair.close()
    fallback = open_pair("fp32")
    fallback.auto_precision = check
    return fallback


def _check_pair(pair: FrameReuseEngines, model: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """The full engine's ``precision='auto'`` check, for the frame + head pair; logs a fallback."""
    from engines import engine as engine_module
    from engines.export import DeployModel, model_mean_std, sample_inputs, torch_scores

    samples = engine_module.AUTO_CHECK_SAMPLES
    mean, std = model_mean_std(model)
    batch = sample_inputs(shape, samples, mean=mean, std=std, normalize=True, seed=3)  # build_engine's clips
    reference = torch_scores(DeployModel(model, "NCHW").eval(), batch)
    views, channels = pair.num_views, pair.channels
    features = pair.features(batch.reshape(samples * views, *shape[1:])).reshape(samples, views, channels)
    scores = pair.scores(features)
    result = engine_module.compare(reference, scores)
    agreement = result["top1_agreement"]
    tried = pair.precision
    kept = agreement >= engine_module.AUTO_MIN_TOP1
    if not kept:
        log.warning(
            "precision 'auto': %s agrees with torch fp32 on top-1 for %.0f%% of %d clips (< %.0f%%); using fp32",
            tried, 100 * agreement, samples, 100 * engine_module.AUTO_MIN_TOP1,
        )  # fmt: skip
    log.info("frame reuse %s vs torch fp32: %s", tried, result)
    return {"tried": tried, "top1_agreement": agreement, "kept": kept, "samples": samples,
            "max_abs_diff": result["max_abs_diff"]}  # fmt: skip


__all__ = [
    "FEATURES",
    "FRAMES",
    "FRAME_BACKBONES",
    "REUSE_BACKENDS",
    "SCORES",
    "FrameReuseEngines",
    "build_reuse_engines",
    "reuse_refusal",
    "split_model",
]
