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
full engine would use, with the full engine's checks: ``precision='auto'`` first tries
INT8 where the backend does (OpenVINO on a CPU with int8 dot products): the frame engine
quantized on the frames of calibration clips (:mod:`engines.quantize`, the demo video or
``--calibration VIDEO``), the head in fp32, kept only if the pair's top-1 labels agree with
torch fp32 on the calibration video's held-out clips and the INT8 frame engine is faster
than the float one; then the backend's fast float precision (bf16 for OpenVINO on a CPU
with native bf16), kept for both parts only if the pair's top-1 labels agree with torch
fp32 on the same real-looking clips and with the same threshold as
:func:`engines.engine.build_engine`'s check; otherwise both parts fall back to fp32. In
fp32 the split is exact up to float rounding; in bf16 and INT8 the per-frame engine runs
other kernels than the full engine (one frame per row instead of all views at once; INT8
ranges calibrated on single frames), so its scores may differ from the full engine's at the
same precision by that precision's rounding (measured in ``docs/engines.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.clip_spec import ClipSpec
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
#: Frames per engine call when ``auto`` times the INT8 frame engine against the float one.
TIMING_FRAMES = 8


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
        auto_precision: With ``precision='auto'`` and a reduced float precision tried: the
            pair's check against torch fp32 (``tried``, ``top1_agreement``, ``kept``,
            ``samples``), also recorded in the tried engines' manifests
            (``validation.auto_precision``).
        auto_int8: With ``precision='auto'`` and INT8 tried: its check (agreement on the
            calibration video's held-out clips, ``ms_per_frame`` against the float pick's,
            ``kept``), also in the INT8 frame engine's manifest (``validation.auto_int8``).
    """

    frames: Engine
    head: Engine
    num_views: int
    channels: int
    auto_precision: dict[str, Any] | None = None
    auto_int8: dict[str, Any] | None = None

    @property
    def precision(self) -> str:
        """The frame engine's precision (the head's too, except with ``int8``: the head then runs fp32)."""
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
    clip: ClipSpec | None = None,
    calibration: str | Path | None = None,
) -> FrameReuseEngines:
    """Open the cached frame and head engines of a TSN model, or export, check and cache them.

    Args:
        model_cfg: The config's ``model`` section (after ``--cfg-options``).
        checkpoint: Its checkpoint.
        input_shape: The full model's per-sample input ``(V, 3, H, W)``.
        backend: ``onnxruntime`` or ``openvino`` (``auto`` picks).
        precision: ``'fp32'``; ``'bf16'`` / ``'fp16'`` where the backend offers them;
            ``'int8'``: the frame engine quantized (calibrated on the frames of clips cut from
            ``calibration`` with ``clip``), the head in fp32; or ``'auto'``: where the backend
            tries INT8 here (:meth:`Backend.auto_int8`) and a calibration video is at hand, the
            INT8 pair if its top-1 labels agree with torch fp32 on the held-out clips of the
            calibration video at least :data:`~engines.engine.AUTO_MIN_TOP1` of the time and its
            frame engine is faster than the float one; else the backend's fast float precision
            (:meth:`Backend.auto_precision`) for both engines if the pair's top-1 labels agree
            with torch fp32 on :data:`~engines.engine.AUTO_CHECK_SAMPLES` real-looking clips
            as often (the full engine's check); else fp32 for both. Each check is logged and
            kept in the tried engines' manifests, so a later start does not repeat it.
        num_threads: CPU threads for the backends.
        cache_dir: The engine cache's root (default :func:`engines.cache.cache_root`).
        trusted: Allow full unpickling of an old checkpoint.
        config_name: For error messages.
        clip: The model's clip spec (sampling, resize, crop): cuts INT8 calibration clips.
        calibration: Video whose clips calibrate INT8 (default: the demo video).

    Raises:
        ModelConfigError: The model does not qualify (:func:`reuse_refusal`), ``input_shape``
            is not ``(V, 3, H, W)``, or ``int8`` without a clip spec.
        CalibrationError: ``int8`` with a calibration video that is missing or unreadable.
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
    from engines.quantize import CalibrationSource, default_calibration_video

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
    if precision == "int8" and clip is None:
        raise ModelConfigError("frame reuse: precision int8 needs the config's test_pipeline to cut calibration clips")
    int8_first = (
        precision == "auto"
        and "int8" in cls.precisions
        and cls.auto_int8()
        and clip is not None
        and (calibration is not None or default_calibration_video().is_file())
    )
    source = CalibrationSource.resolve(calibration) if precision == "int8" or int8_first else None
    model, ckpt = build_recognizer(model_cfg, checkpoint, config_name=config_name, trusted=trusted)
    per_frame, head = split_model(model)
    tsn: Any = model.cls_head
    channels, num_classes = int(tsn.in_channels), int(tsn.num_classes)
    classes = ckpt.classes if ckpt is not None else None
    key = (repr(to_plain(dict(model_cfg))), file_sha256(Path(checkpoint)), repr(shape), REUSE_VERSION)
    clips: dict[str, np.ndarray] = {}

    def calibration_clips_once() -> tuple[np.ndarray, np.ndarray]:
        """The calibration and held-out clips of ``source`` (decoded once, when first needed)."""
        if not clips:
            from engines.quantize import calibration_clips

            if source is None or clip is None:  # set together with int8 above; never reached otherwise
                raise ModelConfigError("frame reuse: int8 calibration needs a calibration video and a clip spec")
            clips["calib"], clips["held_out"] = calibration_clips(source, clip, shape)
        return clips["calib"], clips["held_out"]

    def open_pair(at: str) -> FrameReuseEngines:
        rng = np.random.default_rng(0)
        head_at = "fp32" if at == "int8" else at  # the head is one fc over pooled features: nothing to gain

        def build_frames(out_dir: Path) -> Engine:
            frames_in = None
            if at == "int8":
                frames_in = calibration_clips_once()[0].reshape(-1, 3, height, width)
            return build_graph_engine(
                per_frame, inputs=[TensorSpec(FRAMES, (FRAMES, 3, height, width), layout="NCHW")],
                outputs=[TensorSpec(FEATURES, (FRAMES, channels))],
                example={FRAMES: rng.standard_normal((2, 3, height, width)).astype(np.float32)},
                check={FRAMES: rng.standard_normal((3, 3, height, width)).astype(np.float32)},
                out_dir=out_dir, backend=name, model_type="TSNFrameFeatures", num_classes=channels,
                num_threads=num_threads, precision=at, calibration=frames_in,
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
                num_classes=num_classes, class_names=classes, num_threads=num_threads, atol=1e-5, precision=head_at,
            )  # fmt: skip

        common: dict[str, Any] = {"backend": name, "num_threads": num_threads, "cache_dir": cache_dir}
        frames_key = (*key, f"calibration={source.key()}") if at == "int8" and source is not None else key
        frames = cached_graph_engine("tsn-frames", frames_key, build_frames, precision=at, **common)
        try:
            head_engine = cached_graph_engine("tsn-head", key, build_head, precision=head_at, **common)
        except BaseException:
            frames.close()
            raise
        return FrameReuseEngines(frames, head_engine, views, channels)

    if precision != "auto":
        return open_pair(precision)
    int8_check: dict[str, Any] | None = None
    if int8_first:
        attempt = _try_int8_pair(open_pair, tried, model, calibration_clips_once, demo=calibration is None)
        if isinstance(attempt, FrameReuseEngines):
            return attempt
        int8_check = attempt
    pair = open_pair(tried)
    pair.auto_int8 = int8_check
    if tried == "fp32":
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
    fallback.auto_int8 = int8_check
    return fallback


def _try_int8_pair(
    open_pair: Callable[[str], FrameReuseEngines],
    float_pick: str,
    model: Any,
    calibration_clips: Callable[[], tuple[np.ndarray, np.ndarray]],
    *,
    demo: bool,
) -> FrameReuseEngines | dict[str, Any] | None:
    """``auto``'s INT8 attempt: the INT8 pair if its check (recorded, or run now) keeps it, else the check.

    Returns None where the demo video cannot calibrate (logged; a calibration video the user
    gave must work, so its errors propagate).
    """
    from engines.quantize import CalibrationError

    try:
        pair = open_pair("int8")
    except CalibrationError as exc:
        if not demo:
            raise
        log.warning("frame reuse: precision 'auto': int8 not tried (%s); trying %s", exc, float_pick)
        return None
    float_pair: FrameReuseEngines | None = None
    try:
        check = pair.frames.manifest.validation.get("auto_int8")
        if not isinstance(check, dict) or "kept" not in check:
            float_pair = open_pair(float_pick)
            check = _check_int8_pair(pair, float_pair, model, calibration_clips()[1])
            pair.frames.manifest.validation["auto_int8"] = check
            pair.frames.manifest.save(pair.frames.engine_dir)
        else:
            log.info("frame reuse: int8 checked before (%s): %s", pair.frames.engine_dir.name, check)
    except BaseException:
        pair.close()
        raise
    finally:
        if float_pair is not None:
            float_pair.close()
    if check["kept"]:
        pair.auto_int8 = check
        return pair
    pair.close()
    return check


def _ms_per_frame(pair: FrameReuseEngines, frames: np.ndarray, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per frame of the frame engine on ``frames`` (after a warm-up run)."""
    from engines.engine import best_seconds

    return 1e3 * best_seconds(lambda: pair.features(frames), repeats) / len(frames)


def _check_int8_pair(
    pair: FrameReuseEngines, float_pair: FrameReuseEngines, model: Any, held_out: np.ndarray
) -> dict[str, Any]:
    """``auto``'s INT8 check of the pair, as the full engine's: top-1 vs torch fp32 on held-out clips, and speed.

    The held-out clips are windows of the calibration video that calibration did not use.
    INT8 is kept if the pair's top-1 labels agree with torch fp32 on at least
    :data:`~engines.engine.AUTO_MIN_TOP1` of them and its frame engine runs faster than
    ``float_pair``'s (timed on the same frames, one engine call per batch of
    :data:`TIMING_FRAMES`).
    """
    from engines import engine as engine_module
    from engines.export import DeployModel, torch_scores

    count, views = len(held_out), pair.num_views
    reference = torch_scores(DeployModel(model, "NCHW").eval(), held_out)
    frames = held_out.reshape(count * views, *held_out.shape[2:])
    scores = pair.scores(pair.features(frames).reshape(count, views, pair.channels))
    result = engine_module.compare(reference, scores)
    agreement = result["top1_agreement"]
    check: dict[str, Any] = {"tried": "int8", **result, "samples": count, "versus": float_pair.precision}
    reason = engine_module.int8_disagreement(agreement, count)
    if reason is None:
        timing = frames[:TIMING_FRAMES]
        int8_ms, float_ms = _ms_per_frame(pair, timing), _ms_per_frame(float_pair, timing)
        check.update(ms_per_frame=round(int8_ms, 3), versus_ms_per_frame=round(float_ms, 3))
        reason = engine_module.int8_not_faster(int8_ms, float_ms, float_pair.precision, "frame")
    check["kept"] = reason is None
    if reason is None:
        log.info("frame reuse: precision 'auto': int8 kept (%s)", check)
    else:
        check["reason"] = reason
        log.warning("frame reuse: precision 'auto': int8 not kept, %s; trying %s", reason, float_pair.precision)
    return check


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
