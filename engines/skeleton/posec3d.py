"""PoseC3D engines: a skeleton config + checkpoint → a cached engine scoring people's keypoint windows.

A PoseC3D config (``configs/skeleton/posec3d/``) holds a ``Recognizer3D`` (SlowOnly-R50 on
heatmap volumes) and MMAction2's skeleton ``test_pipeline``. :func:`build_posec3d_engine` loads
both, loads the checkpoint (model-zoo layout, keys checked), exports the recognizer with one
named input ``heatmaps`` ``(batch, views, K, T, H, W)`` and one output ``scores``
``(batch, num_classes)`` — the views folded by the head's ``average_clips`` (``prob``: mean
softmax, ``score``: mean logits), as MMAction2's ``Recognizer3D.predict`` does — and caches the
engine (:func:`engines.cache.cached_graph_engine`)::

    rec = build_posec3d_engine("configs/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py",
                               "posec3d_ntu60.pth", backend="onnxruntime")
    scores = rec.predict([PersonWindow(kp, kp_score, (480, 640)) for kp, kp_score in windows])  # (N, 60)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.engine import Engine
from engines.errors import InputShapeError, ModelConfigError
from engines.skeleton.transforms import HEATMAP_FORMAT, SkeletonPipeline
from engines.tensors import TensorSpec

logger = logging.getLogger(__name__)

#: The engine's input and output names.
INPUT_NAME = "heatmaps"
OUTPUT_NAME = "scores"
INPUT_LAYOUT = "NVCTHW"


@dataclass(frozen=True)
class SkeletonConfig:
    """A skeleton recognizer's config: where it came from, its ``model`` dict and ``test_pipeline``.

    Attributes:
        path: The config file.
        model: The ``model`` section as plain data.
        test_pipeline: MMAction2's ``test_pipeline`` list as plain data.
        load_from: The config's ``load_from`` (a model-zoo URL or a path), if any.
    """

    path: Path
    model: dict[str, Any]
    test_pipeline: list[dict[str, Any]]
    load_from: str | None = None


def load_skeleton_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> SkeletonConfig:
    """Read a skeleton config with the project's loader (``_base_`` chains, ``--cfg-options``).

    Raises:
        ModelConfigError: The file cannot be read, or it lacks a ``model`` dict or a ``test_pipeline``.
    """
    from engines.clip_spec import find_pipeline
    from engines.config import read_config, to_plain

    path = Path(path)
    cfg = read_config(path, cfg_options)
    model = cfg.get("model")
    if not isinstance(model, Mapping) or "type" not in model:
        raise ModelConfigError(f"config {path}: no 'model' dict with a 'type' key; add model=dict(type=...)")
    pipeline = find_pipeline(cfg)
    if not pipeline:
        raise ModelConfigError(f"config {path}: no test_pipeline; add MMAction2's skeleton test pipeline list")
    load_from = cfg.get("load_from")
    return SkeletonConfig(path, to_plain(model), [to_plain(s) for s in pipeline], str(load_from) if load_from else None)


@dataclass(frozen=True)
class PersonWindow:
    """One person's keypoint window: the input of one sample.

    Attributes:
        keypoint: ``(T, V, 2)`` pixel coordinates (or ``(M, T, V, 2)`` for several people).
        keypoint_score: ``(T, V)`` scores (or ``(M, T, V)``); ``None`` means all 1.
        img_shape: ``(height, width)`` of the frames.
    """

    keypoint: np.ndarray
    keypoint_score: np.ndarray | None
    img_shape: tuple[int, int]


class SkeletonRecognizer:
    """A skeleton test pipeline and the engine that scores its output.

    Args:
        pipeline: Keypoints → one sample's heatmaps.
        engine: The engine with input :data:`INPUT_NAME` and output :data:`OUTPUT_NAME`.

    Attributes:
        input_shape: Per-sample input ``(views, K, T, H, W)``.
        num_classes: Classes scored.
        class_names: From the checkpoint's meta, if it had them.
    """

    def __init__(self, pipeline: SkeletonPipeline, engine: Engine) -> None:
        self.pipeline = pipeline
        self.engine = engine
        spec = engine.inputs[0]
        self.input_shape = tuple(int(d) for d in spec.shape[1:])
        self.num_classes = engine.manifest.num_classes
        self.class_names = engine.manifest.class_names

    def preprocess(self, window: PersonWindow) -> np.ndarray:
        """One window's heatmap volume ``(views, K, T, H, W)``.

        Raises:
            InputShapeError: The window does not fit the pipeline or the engine (e.g. another
                keypoint count than the model's channels).
        """
        heatmaps = self.pipeline(window.keypoint, window.keypoint_score, window.img_shape)
        if heatmaps.shape != self.input_shape:
            raise InputShapeError(
                f"PoseC3D: the pipeline made heatmaps {heatmaps.shape} but the engine takes {self.input_shape} "
                "(views, K, T, H, W); K is the keypoint (or limb) count the model was trained on"
            )
        return heatmaps

    def infer(self, heatmaps: np.ndarray) -> np.ndarray:
        """Scores ``(N, num_classes)`` of a batch of heatmap volumes ``(N, views, K, T, H, W)``.

        Raises:
            InputShapeError: The batch does not fit the engine's input.
        """
        return self.engine.run({INPUT_NAME: heatmaps})[OUTPUT_NAME]

    def predict(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        """Scores ``(N, num_classes)`` of ``N`` people's windows (empty → ``(0, num_classes)``).

        Raises:
            InputShapeError: A window does not fit the pipeline or the engine.
        """
        if not windows:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        return self.infer(np.stack([self.preprocess(w) for w in windows]))

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()

    def __enter__(self) -> SkeletonRecognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_posec3d_engine(
    config: str | Path | SkeletonConfig,
    checkpoint: str | Path,
    *,
    backend: str = "onnxruntime",
    cfg_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    num_threads: int | None = None,
    trusted: bool = False,
) -> SkeletonRecognizer:
    """Open (or build and cache) the engine of a PoseC3D config + checkpoint, with its pipeline.

    Args:
        config: A config file or a loaded :class:`SkeletonConfig`.
        checkpoint: ``.pth`` in MMAction2's model-zoo layout (or a bare state dict).
        backend: ``onnxruntime`` or ``openvino`` (``auto`` picks one for this CPU).
        cfg_options: ``--cfg-options`` overrides when ``config`` is a path (e.g. fewer clips:
            ``{'test_pipeline.0.num_clips': 1}``).
        cache_dir: The engine cache's root (default :func:`engines.cache.cache_root`).
        num_threads: CPU threads for the backend.
        trusted: Allow full unpickling of an old checkpoint.

    Raises:
        ModelConfigError: Not a heatmap pipeline, no fixed heatmap size, no clip averaging, or a
            model whose channels differ from the heatmaps'.
        CheckpointError: The checkpoint cannot be read or does not fit the model (names the keys).
        ExportError: The engine disagrees with torch.
        BackendUnavailable: The backend is not installed.
    """
    from engines.backends import resolve_backend
    from engines.cache import cached_graph_engine
    from engines.checkpoint import file_sha256

    cfg = config if isinstance(config, SkeletonConfig) else load_skeleton_config(config, cfg_options)
    pipeline = SkeletonPipeline.from_config(cfg.test_pipeline)
    if pipeline.output_format != HEATMAP_FORMAT:
        raise ModelConfigError(
            f"config {cfg.path}: test_pipeline makes graph input (FormatGCNInput); PoseC3D takes heatmaps "
            "(FormatShape(input_format='NCTHW_Heatmap'))"
        )
    shape = pipeline.output_shape(pipeline.num_keypoints or 17)
    views = shape[0]
    head = cfg.model.get("cls_head") or {}
    if views > 1 and head.get("average_clips") not in ("prob", "score"):
        raise ModelConfigError(
            f"config {cfg.path}: model.cls_head.average_clips is {head.get('average_clips')!r} but each sample has "
            f"{views} views; set 'prob' or 'score' so the engine gives one score row per person"
        )
    in_channels = (cfg.model.get("backbone") or {}).get("in_channels")
    if in_channels is not None and in_channels != shape[1]:
        raise ModelConfigError(
            f"config {cfg.path}: the backbone takes {in_channels} channels but the pipeline makes {shape[1]} heatmaps"
        )
    name = resolve_backend(backend)
    key_parts = (repr(cfg.model), repr(cfg.test_pipeline), file_sha256(checkpoint), repr(shape))

    def build(out_dir: Path) -> Engine:
        return _build(cfg, Path(checkpoint), shape, out_dir, name, num_threads, trusted)

    engine = cached_graph_engine(
        "posec3d", key_parts, build, backend=name, num_threads=num_threads, cache_dir=cache_dir
    )
    return SkeletonRecognizer(pipeline, engine)


def _build(
    cfg: SkeletonConfig,
    checkpoint: Path,
    shape: tuple[int, ...],
    out_dir: Path,
    backend: str,
    num_threads: int | None,
    trusted: bool,
) -> Engine:
    from engines.checkpoint import load_checkpoint
    from engines.graph import build_graph_engine
    from engines.models import build

    model = build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, config_name=cfg.path, trusted=trusted)
    model.eval()
    num_classes = int(model.num_classes)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    # heatmap-like inputs: mostly zeros, peaks up to 1
    example = {INPUT_NAME: (rng.random((1, *shape), dtype=np.float32) ** 8)}
    check = {INPUT_NAME: (rng.random((2, *shape), dtype=np.float32) ** 8)}
    return build_graph_engine(
        model,
        inputs=[TensorSpec(INPUT_NAME, ("batch", *shape), layout=INPUT_LAYOUT)],
        outputs=[TensorSpec(OUTPUT_NAME, ("batch", num_classes))],
        example=example,
        check=check,
        out_dir=out_dir,
        backend=backend,
        model_type=str(cfg.model.get("type", "Recognizer3D")),
        num_classes=num_classes,
        class_names=ckpt.classes,
        num_threads=num_threads,
    )
