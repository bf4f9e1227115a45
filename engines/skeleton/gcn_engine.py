"""Compiled engines for the skeleton GCNs (ST-GCN, ST-GCN++, 2s-AGCN) from an MMAction2 config + checkpoint.

::

    from engines.skeleton.gcn_engine import build_gcn_engine

    engine = build_gcn_engine("configs/skeleton/stgcnpp/stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py",
                              "stgcnpp.pth", backend="openvino")
    engine.spec.shape               # (num_clips, M, T, V, C) = (10, 2, 100, 17, 3)
    scores = engine.infer(keypoints)  # float32 (N, 10, 2, 100, 17, 3) -> (N, 60)
    engine.close()

The engine has one input, ``keypoints`` ``(batch, num_clips, M, T, V, C)`` (``FormatGCNInput``'s
output per sample, batched; ``batch`` is dynamic), and one output, ``scores``
``(batch, num_classes)``: the clips folded by the head's ``average_clips`` (``'prob'`` for the
model zoo: mean softmax). ``num_clips`` and ``T`` come from the test pipeline's
``UniformSampleFrames`` (``num_clips`` may be overridden: a live pipeline scores one clip), ``M``
from ``FormatGCNInput``, ``V`` from the backbone's graph and ``C`` from its ``in_channels``.

Engines are cached (:func:`engines.cache.cached_graph_engine`) by the model section, the
input spec and the checkpoint's hash, and run on ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import CheckpointError, InputShapeError, ModelConfigError

log = logging.getLogger(__name__)

#: Backends that run named-tensor (graph) engines.
GCN_BACKENDS = ("onnxruntime", "openvino")
#: Bump when what the engine computes changes: old cache entries are then ignored.
GCN_ENGINE_VERSION = "gcn-1"
INPUT_NAME = "keypoints"
OUTPUT_NAME = "scores"


@dataclass(frozen=True)
class GCNInputSpec:
    """What one sample fed to a GCN engine looks like: ``(num_clips, num_person, clip_len, num_joints, channels)``.

    Attributes:
        num_clips: Clips per sample, folded into one score row.
        num_person: People per clip (``FormatGCNInput`` pads with zeros or drops the rest).
        clip_len: Frames per clip.
        num_joints: Graph joints (17 for COCO, 25 for NTU RGB+D, 18 for OpenPose).
        channels: Features per joint (3: x, y, score for 2D keypoints).
    """

    num_clips: int
    num_person: int
    clip_len: int
    num_joints: int
    channels: int

    def __post_init__(self) -> None:
        for name in ("num_clips", "num_person", "clip_len", "num_joints", "channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"GCNInputSpec.{name}: expected a positive int, got {value!r}")

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Per-sample input shape ``(num_clips, M, T, V, C)``."""
        return (self.num_clips, self.num_person, self.clip_len, self.num_joints, self.channels)


def _step(pipeline: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    steps = [s for s in pipeline if isinstance(s, Mapping) and s.get("type") == kind]
    return steps[0] if steps else None


def _positive(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"{where}: expected a positive int, got {value!r}")
    return value


def gcn_input_spec(
    model: Mapping[str, Any],
    test_pipeline: Sequence[Mapping[str, Any]],
    *,
    num_clips: int | None = None,
    where: str = "config",
) -> GCNInputSpec:
    """The engine input of a ``RecognizerGCN`` config: its model section and ``test_pipeline``.

    Args:
        model: The ``model`` section (``type='RecognizerGCN'``).
        test_pipeline: MMAction2's skeleton test pipeline (``UniformSampleFrames`` and
            ``FormatGCNInput`` are read; other steps are the transforms' business).
        num_clips: Clips per sample instead of the sampler's ``num_clips``.
        where: The config's name, for messages.

    Raises:
        ModelConfigError: If the model is not a ``RecognizerGCN``, the pipeline lacks
            ``UniformSampleFrames``, a value is invalid, or the pipeline's ``FormatGCNInput``
            disagrees with an ``'MVC'`` data norm's ``num_person``.
    """
    from engines.models.gcn_graph import build_graph

    if model.get("type") != "RecognizerGCN":
        raise ModelConfigError(
            f"{where}: model.type is {model.get('type')!r}; GCN engines take RecognizerGCN configs "
            "(ST-GCN, ST-GCN++, 2s-AGCN under configs/skeleton/)"
        )
    backbone = model.get("backbone")
    if not isinstance(backbone, Mapping):
        raise ModelConfigError(f"{where}: model.backbone: expected a dict, got {backbone!r}")
    sampler = _step(test_pipeline, "UniformSampleFrames")
    if sampler is None:
        raise ModelConfigError(
            f"{where}: test_pipeline has no UniformSampleFrames step; add "
            "dict(type='UniformSampleFrames', clip_len=100, num_clips=10, test_mode=True)"
        )
    clip_len = _positive(sampler.get("clip_len"), f"{where}: test_pipeline UniformSampleFrames.clip_len")
    clips = num_clips if num_clips is not None else sampler.get("num_clips", 1)
    clips = _positive(clips, f"{where}: num_clips")
    formatter = _step(test_pipeline, "FormatGCNInput") or {}
    num_person = _positive(formatter.get("num_person", 2), f"{where}: test_pipeline FormatGCNInput.num_person")
    bn_type = backbone.get("data_bn_type", "VC" if backbone.get("type") == "STGCN" else "MVC")
    if bn_type == "MVC" and backbone.get("num_person", 2) != num_person:
        raise ModelConfigError(
            f"{where}: FormatGCNInput.num_person={num_person} but model.backbone.num_person="
            f"{backbone.get('num_person', 2)} (data_bn_type 'MVC' fixes it); make them equal"
        )
    graph = build_graph(backbone.get("graph_cfg"), f"{where}: model.backbone.graph_cfg")
    channels = _positive(backbone.get("in_channels", 3), f"{where}: model.backbone.in_channels")
    return GCNInputSpec(clips, num_person, clip_len, graph.num_node, channels)


class GCNEngine:
    """A compiled skeleton recognizer: keypoint features in, class scores out.

    Attributes:
        engine: The underlying named-tensor :class:`~engines.engine.Engine`.
        spec: The per-sample input.
        num_classes: Classes scored.
        class_names: From the checkpoint's meta, if it had them.
    """

    def __init__(self, engine: Any, spec: GCNInputSpec) -> None:
        self.engine = engine
        self.spec = spec
        self.num_classes = int(engine.manifest.num_classes)
        self.class_names: list[str] | None = engine.manifest.class_names

    def infer(self, keypoints: np.ndarray) -> np.ndarray:
        """Scores for a batch of samples.

        Args:
            keypoints: float32 ``(N, num_clips, M, T, V, C)``.

        Returns:
            float32 ``(N, num_classes)``.

        Raises:
            InputShapeError: If ``keypoints`` does not fit :attr:`spec`.
        """
        if not isinstance(keypoints, np.ndarray) or keypoints.shape[1:] != self.spec.shape or keypoints.ndim != 6:
            got = keypoints.shape if isinstance(keypoints, np.ndarray) else type(keypoints).__name__
            raise InputShapeError(
                f"GCN engine input {INPUT_NAME!r}: expected (N, {', '.join(map(str, self.spec.shape))}) "
                f"(N, num_clips, M, T, V, C), got {got}"
            )
        return self.engine.run({INPUT_NAME: keypoints})[OUTPUT_NAME]

    def close(self) -> None:
        """Release the backend."""
        self.engine.close()

    def __enter__(self) -> GCNEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve_backend(backend: str) -> str:
    from engines.backends import BackendOptionError, resolve_backend, select_backend

    name = select_backend("cpu") if backend == "auto" else resolve_backend(backend)
    if name not in GCN_BACKENDS:
        raise BackendOptionError(
            f"--backend {name}: GCN engines run on {' or '.join(GCN_BACKENDS)} (or auto); pick one of those"
        )
    return name


def export_gcn_engine(
    model: Any,
    spec: GCNInputSpec,
    out_dir: str | Path,
    *,
    backend: str = "onnxruntime",
    class_names: list[str] | None = None,
    num_threads: int | None = None,
    atol: float = 1e-4,
) -> Any:
    """Export a loaded ``RecognizerGCN`` to an engine directory, checked against torch (batch 1 and 2).

    Args:
        model: The recognizer, weights loaded.
        spec: Its per-sample input.
        out_dir: Engine directory to write.
        backend: ``onnxruntime`` or ``openvino``.
        class_names: Recorded in the manifest.
        num_threads: CPU threads for the backend.
        atol: Largest accepted difference from torch.

    Returns:
        The opened :class:`~engines.engine.Engine`.

    Raises:
        ExportError: The export failed, or the backend disagrees with torch by more than ``atol``.
    """
    from engines.graph import build_graph_engine
    from engines.tensors import TensorSpec

    inputs = [TensorSpec(INPUT_NAME, ("batch", *spec.shape))]
    outputs = [TensorSpec(OUTPUT_NAME, ("batch", int(model.num_classes)))]
    rng = np.random.default_rng(0)
    # Keypoint-like values (normalised coordinates and scores), not unbounded noise.
    example = {INPUT_NAME: rng.uniform(-1, 1, (1, *spec.shape)).astype(np.float32)}
    check = {INPUT_NAME: rng.uniform(-1, 1, (2, *spec.shape)).astype(np.float32)}
    return build_graph_engine(
        model.eval(), inputs=inputs, outputs=outputs, example=example, check=check, out_dir=out_dir,
        backend=backend, model_type=f"RecognizerGCN/{type(model.backbone).__name__}",
        num_classes=int(model.num_classes), class_names=class_names, atol=atol, num_threads=num_threads,
    )  # fmt: skip


def build_gcn_engine(
    config: str | Path,
    checkpoint: str | Path,
    *,
    backend: str = "auto",
    cfg_options: Mapping[str, Any] | None = None,
    num_clips: int | None = None,
    num_threads: int | None = None,
    cache_dir: str | Path | None = None,
    trusted: bool = False,
) -> GCNEngine:
    """Open the cached GCN engine for a config + checkpoint, or build, check and cache it.

    Args:
        config: A ``RecognizerGCN`` config (e.g. under ``configs/skeleton/stgcn/``).
        checkpoint: Model-zoo checkpoint (``{'state_dict', 'meta'}``, keys ``backbone.*`` /
            ``cls_head.*``) or a bare state dict.
        backend: ``auto`` (OpenVINO on x86 where installed, else ONNX Runtime), ``onnxruntime``
            or ``openvino``.
        cfg_options: ``--cfg-options`` overrides, e.g. ``{'model.cls_head.num_classes': 120}``.
        num_clips: Clips per sample instead of the test pipeline's (a live pipeline scores 1).
        num_threads: CPU threads for the backend.
        cache_dir: The engine cache's root (default :func:`engines.cache.cache_root`).
        trusted: Allow full unpickling of an old checkpoint (``--trust-checkpoint``).

    Returns:
        The opened engine; :meth:`GCNEngine.infer` scores ``(N, *engine.spec.shape)`` batches.

    Raises:
        ModelConfigError: The config cannot be read, is not a ``RecognizerGCN`` or is invalid.
        CheckpointError: The checkpoint is missing, unreadable, or does not fit the model
            (another family, another ``num_classes``): one line with the first differing keys.
        BackendOptionError: A backend that does not run graph engines.
        ExportError: The engine disagrees with torch.
    """
    from engines.cache import cached_graph_engine
    from engines.checkpoint import file_sha256, load_checkpoint
    from engines.clip_spec import find_pipeline
    from engines.config import read_config, to_plain
    from engines.models import build

    config = Path(config)
    checkpoint = Path(checkpoint)
    cfg = read_config(config, cfg_options)
    model_cfg = to_plain(cfg.get("model"))
    if not isinstance(model_cfg, Mapping):
        raise ModelConfigError(f"config {config}: no 'model' dict; add model=dict(type='RecognizerGCN', ...)")
    pipeline = [to_plain(step) for step in find_pipeline(cfg) or []]
    spec = gcn_input_spec(model_cfg, pipeline, num_clips=num_clips, where=f"config {config}")
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint}: no such file")
    name = _resolve_backend(backend)

    def build_into(out: Path) -> Any:
        model = build(model_cfg)
        ckpt = load_checkpoint(model, checkpoint, config_name=config, trusted=trusted)
        log.info("building the %s GCN engine for %s in %s", name, config.name, out)
        return export_gcn_engine(model, spec, out, backend=name, class_names=ckpt.classes, num_threads=num_threads)

    key = (repr(model_cfg), repr(spec), file_sha256(checkpoint), GCN_ENGINE_VERSION)
    family = str(model_cfg.get("backbone", {}).get("type", "gcn")).lower()
    engine = cached_graph_engine(
        family, key, build_into, backend=name, num_threads=num_threads, cache_dir=cache_dir
    )  # fmt: skip
    return GCNEngine(engine, spec)


__all__ = ["GCNEngine", "GCNInputSpec", "build_gcn_engine", "export_gcn_engine", "gcn_input_spec"]
