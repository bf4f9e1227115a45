"""The skeleton model of ``stream.skeleton``: an MMAction2 skeleton config + checkpoint behind
:class:`~pipelines.skeleton.SkeletonStage`'s contract.

Both kinds of MMAction2 skeleton recognizer are accepted, told apart by the config's test
pipeline: graph models (``RecognizerGCN``: ST-GCN, ST-GCN++, 2s-AGCN; ``FormatGCNInput``) and
PoseC3D (``Recognizer3D`` on heatmap volumes; ``FormatShape(input_format='NCTHW_Heatmap')``).
Each person's window goes through MMAction2's own test pipeline
(:class:`engines.skeleton.transforms.SkeletonPipeline`: ``UniformSampleFrames`` from the window,
normalisation or heatmaps) as one person (``M = 1``, the others padded as ``FormatGCNInput``
pads), and all people due together go through the engine in one batch. Graph models use the
one-person engine (:class:`engines.skeleton.gcn_engine.OnePersonGCN`): the backbone runs on the
person only, not on the padding, and the scores are those of the whole padded sample.

``num_clips``: MMAction2's skeleton test configs average 10 uniformly sampled clips over a
whole video; a live per-person label every few frames uses 1 by default (``--num-clips``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from engines.errors import EngineError
from pipelines.model_files import checkpoint_path
from pipelines.skeleton import PersonWindow
from stream.errors import SourceNotFound

log = logging.getLogger(__name__)

#: The model types of MMAction2's skeleton recognizers.
SKELETON_RECOGNIZERS = ("RecognizerGCN", "Recognizer3D")


def _with_num_clips(pipeline: list[dict[str, Any]], num_clips: int | None, where: str) -> list[dict[str, Any]]:
    """The test pipeline with ``UniformSampleFrames.num_clips`` set (None: as the config has it)."""
    steps = copy.deepcopy(pipeline)
    samplers = [s for s in steps if s.get("type") == "UniformSampleFrames"]
    if not samplers:
        raise ConfigError(f"{where}: the test_pipeline has no UniformSampleFrames; it is not a skeleton pipeline")
    if num_clips is not None:
        samplers[0]["num_clips"] = num_clips
    return steps


def _clip_len(pipeline: Sequence[Mapping[str, Any]]) -> int:
    return int(next(s for s in pipeline if s.get("type") == "UniformSampleFrames")["clip_len"])


def check_skeleton_model(
    config: Path, checkpoint: str | None, label_map: str | None, cfg_options: Mapping[str, Any]
) -> int:
    """Fail fast, before any model or source is opened, on missing files or a config that is no skeleton model.

    Returns:
        The model's window: the ``clip_len`` of its ``UniformSampleFrames``.

    Raises:
        SourceNotFound / ConfigError: Naming the flag and what to do.
    """
    from engines.skeleton.posec3d import load_skeleton_config

    if not Path(config).is_file():
        raise SourceNotFound(f"--config {config}: no such file; pass an MMAction2 skeleton config (configs/skeleton/)")
    cfg = load_skeleton_config(config, cfg_options or None)
    if cfg.model.get("type") not in SKELETON_RECOGNIZERS:
        raise ConfigError(
            f"--config {config}: model type {cfg.model.get('type')!r} is not a skeleton recognizer "
            f"({' or '.join(SKELETON_RECOGNIZERS)}); pass a config from configs/skeleton/"
        )
    steps = _with_num_clips(cfg.test_pipeline, None, f"--config {config}")
    checkpoint_path(Path(config), checkpoint, cfg.load_from)
    if label_map is not None and not Path(label_map).is_file():
        raise SourceNotFound(f"--label-map {label_map}: no such file")
    return _clip_len(steps)


class SkeletonModel:
    """A skeleton engine and its test pipeline, scoring :class:`~pipelines.skeleton.PersonWindow` s.

    Args:
        pipeline: MMAction2's test pipeline (keypoints → one sample).
        run: ``run(batch) -> (N, num_classes)`` scores of a batch of samples.
        close: Releases the engine.
        class_names: One name per score column.
        clip_len: Frames the pipeline samples from a window.
        max_batch: People per engine call.
    """

    def __init__(
        self,
        pipeline: Any,
        run: Any,
        close: Any,
        class_names: Sequence[str],
        clip_len: int,
        max_batch: int,
    ) -> None:
        self._pipeline, self._run, self._close = pipeline, run, close
        self._names = list(class_names)
        self._clip_len, self._max_batch = clip_len, max_batch

    @property
    def class_names(self) -> Sequence[str]:
        return self._names

    @property
    def clip_len(self) -> int:
        return self._clip_len

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def sample(self, window: PersonWindow) -> np.ndarray:
        """One person's model input, exactly as MMAction2's test pipeline makes it."""
        keypoints = np.asarray(window.keypoints, np.float32)
        return np.asarray(self._pipeline(keypoints[None, ..., :2], keypoints[None, ..., 2], window.img_shape))

    def scores(self, windows: Sequence[PersonWindow]) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self._names)), np.float32)
        return np.asarray(self._run(np.stack([self.sample(w) for w in windows])), np.float32)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> SkeletonModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _class_names(label_map: str | None, meta: Sequence[str] | None, num_classes: int, where: str) -> list[str]:
    from pipelines.recognizer import read_label_file

    if label_map is not None:
        names = read_label_file(label_map)
        if len(names) < num_classes:
            raise ConfigError(
                f"--label-map {label_map}: {len(names)} names for a model with {num_classes} classes "
                "(pass the label map the checkpoint was trained with)"
            )
        return names[:num_classes]
    if meta and len(meta) >= num_classes:
        return list(meta)[:num_classes]
    log.warning("%s: no --label-map and no class names in the checkpoint: labels are class_<id>", where)
    return [f"class_{i}" for i in range(num_classes)]


def open_skeleton_recognizer(
    config: Path,
    checkpoint: str | None,
    *,
    label_map: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    cfg_options: Mapping[str, Any] | None = None,
    max_batch: int = 16,
    num_clips: int | None = 1,
    trust_checkpoint: bool = False,
    cache_dir: str | Path | None = None,
) -> SkeletonModel:
    """Build or reuse the engine of a skeleton ``config`` + ``checkpoint`` with its test pipeline.

    Args:
        config: An MMAction2 skeleton config (``configs/skeleton/...`` or a user's, ``_base_`` resolved).
        checkpoint: Its checkpoint (default: the config's ``load_from``, relative to the config).
        label_map: Class names, one per line (default: the checkpoint's).
        backend: ``auto``, ``onnxruntime`` or ``openvino``.
        device: ``cpu`` (the skeleton engines run on the CPU).
        cfg_options: ``--cfg-options`` overrides.
        max_batch: People per engine call.
        num_clips: Clips sampled per window (None: the config's ``num_clips``).
        trust_checkpoint: Allow full unpickling of an old checkpoint.
        cache_dir: The engine cache's root.

    Raises:
        ConfigError / SourceNotFound: Bad flags or files, one line each.
        engines errors: A checkpoint that does not fit the config (names the keys), an export
            that disagrees with torch.
    """
    from engines.cache import resolve_device
    from engines.skeleton.posec3d import build_posec3d_engine, load_skeleton_config
    from engines.skeleton.transforms import HEATMAP_FORMAT, SkeletonPipeline

    config = Path(config)
    if num_clips is not None and num_clips < 1:
        raise ConfigError(f"--num-clips: expected >= 1, got {num_clips}")
    try:
        name, dev = resolve_device(backend, device)
    except EngineError as exc:
        raise ConfigError(str(exc)) from exc
    if dev.kind != "cpu" or name not in ("onnxruntime", "openvino"):
        raise ConfigError(
            f"--backend {name} / --device {dev}: the skeleton engines run on the CPU with onnxruntime or openvino"
        )
    cfg = load_skeleton_config(config, cfg_options)
    ckpt = checkpoint_path(config, checkpoint, cfg.load_from)
    cfg = replace(cfg, test_pipeline=_with_num_clips(cfg.test_pipeline, num_clips, f"--config {config}"))
    pipeline = SkeletonPipeline.from_config(cfg.test_pipeline)
    clip_len = _clip_len(cfg.test_pipeline)
    if pipeline.output_format == HEATMAP_FORMAT:
        posec3d = build_posec3d_engine(cfg, ckpt, backend=name, cache_dir=cache_dir, trusted=trust_checkpoint)
        names = _class_names(label_map, posec3d.class_names, posec3d.num_classes, str(config))
        return SkeletonModel(pipeline, posec3d.infer, posec3d.close, names, clip_len, max_batch)
    from engines.skeleton.gcn_engine import build_gcn_engine

    # Every sample holds one person, padded by FormatGCNInput: the one-person engine scores it
    # exactly as the model scores the padded sample, without running the backbone on the padding.
    gcn = build_gcn_engine(
        config, ckpt, backend=name, cfg_options=cfg_options, num_clips=num_clips, cache_dir=cache_dir,
        trusted=trust_checkpoint, people_per_sample=1,
    )  # fmt: skip
    manifest = gcn.engine.manifest
    names = _class_names(label_map, manifest.class_names, manifest.num_classes, str(config))
    return SkeletonModel(pipeline, gcn.infer_padded, gcn.close, names, clip_len, max_batch)
