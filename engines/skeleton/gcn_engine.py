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

One person per sample (``people_per_sample=1``): a live pipeline scores each tracked person
alone, so ``FormatGCNInput(num_person=M)`` pads every sample with ``M - 1`` people that are
zeros (``mode='zero'``) or copies of the first (``mode='loop'``). Each person goes through the
backbone on its own (the data norm is per person, the graph and temporal units see one person
at a time), so a padded person's features are a constant (``'zero'``) or the real person's
(``'loop'``, except with an ``'MVC'`` data norm, which normalises each copy with its own
statistics: then the whole sample is run). :class:`OnePersonGCN` runs the backbone on the
real person only and hands the head the padded people's features precomputed, which scores
exactly as the model on the padded input at ``1 / M`` of the backbone's cost; its engine
takes ``(batch, num_clips, 1, T, V, C)`` and :meth:`GCNEngine.infer_padded` feeds it the
pipeline's padded samples::

    engine = build_gcn_engine(config, checkpoint, num_clips=1, people_per_sample=1)
    scores = engine.infer_padded(samples)   # (N, 1, 2, 100, 17, 3): person 1 must be the padding

Engines are cached (:func:`engines.cache.cached_graph_engine`) by the model section, the
input spec, ``people_per_sample`` and the checkpoint's hash, and run on ONNX Runtime or OpenVINO.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engines.errors import CheckpointError, ExportError, InputShapeError, ModelConfigError
from engines.models.gcn import RecognizerGCN

log = logging.getLogger(__name__)

#: Backends that run named-tensor (graph) engines.
GCN_BACKENDS = ("onnxruntime", "openvino")
#: Bump when what the engine computes changes: old cache entries are then ignored.
GCN_ENGINE_VERSION = "gcn-1"
INPUT_NAME = "keypoints"
OUTPUT_NAME = "scores"
#: ``FormatGCNInput``'s padding modes: missing people are zeros, or copies of a lone person.
PAD_MODES = ("zero", "loop")


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


def gcn_pad_mode(test_pipeline: Sequence[Mapping[str, Any]], where: str = "config") -> str:
    """How the test pipeline's ``FormatGCNInput`` pads a sample with fewer people: ``'zero'`` or ``'loop'``.

    Raises:
        ModelConfigError: For another mode.
    """
    mode = (_step(test_pipeline, "FormatGCNInput") or {}).get("mode", "zero")
    if mode not in PAD_MODES:
        raise ModelConfigError(f"{where}: test_pipeline FormatGCNInput.mode: expected one of {PAD_MODES}, got {mode!r}")
    return str(mode)


class OnePersonGCN(nn.Module):
    """A ``RecognizerGCN`` scoring one-person samples exactly as it scores them padded to ``M`` people.

    ``forward(keypoints)``: ``(N, num_clips, 1, T, V, C)``, the first person of
    ``FormatGCNInput``'s sample → the recognizer's scores on the whole padded sample. The
    backbone runs on the one person (an ``'MVC'`` data norm through person 0's slice of its
    channels, which is what person 0 gets in the full model); the padded people's backbone
    features are a buffer computed once from an all-zero sample (``mode='zero'``: they are the
    same for every sample) or the real person's (``'loop'``: copies of it; not with an ``'MVC'``
    data norm, see :func:`one_person_is_exact`). The recognizer's own
    head (pooling, the mean over people, dropout, ``fc``) and clip folding then run on all
    ``M`` people's features, unchanged.

    Args:
        model: The loaded ``RecognizerGCN`` (eval mode; shares its weights).
        spec: The padded sample the model takes (``num_person = M > 1``).
        mode: ``FormatGCNInput``'s ``mode``.

    Raises:
        ModelConfigError: ``M`` is 1 (nothing is padded) or an unknown mode.
    """

    def __init__(self, model: RecognizerGCN, spec: GCNInputSpec, mode: str = "zero") -> None:
        super().__init__()
        if spec.num_person < 2:
            raise ModelConfigError("OnePersonGCN: FormatGCNInput.num_person is 1, nothing is padded; use the model")
        if mode not in PAD_MODES:
            raise ModelConfigError(f"OnePersonGCN: mode: expected one of {PAD_MODES}, got {mode!r}")
        if not one_person_is_exact(getattr(model.backbone, "data_bn_type", None), mode):
            raise ModelConfigError(
                "OnePersonGCN: with data_bn_type 'MVC' and mode 'loop' each copy of the person is normalised "
                "by its own slice of the data norm, so the copies' features differ: run the model on the whole sample"
            )
        self.recognizer = model.eval()
        self.num_person = spec.num_person
        self.mode = mode
        backbone: Any = model.backbone
        self.backbone = _one_person_backbone(backbone)
        with torch.no_grad():  # the people FormatGCNInput adds, at their places 1..M-1 of an all-zero sample
            zeros = torch.zeros(1, *spec.shape[1:], dtype=next(model.parameters()).dtype)
            padded = backbone(zeros)
        self.padding: Tensor
        self.register_buffer("padding", padded[:, 1:].clone())

    def forward(self, keypoints: Tensor) -> Tensor:
        """Scores ``(N, num_classes)`` of a batch ``(N, num_clips, 1, T, V, C)``.

        Raises:
            InputShapeError: If ``keypoints`` is not 6-D with one person.
        """
        from engines.models.recognizers import _static_size

        if keypoints.dim() != 6 or _static_size(keypoints, 2) != 1:
            raise InputShapeError(
                f"OnePersonGCN expects (N, num_clips, 1, T, V, C) input, got shape {tuple(keypoints.shape)}"
            )
        num_clips = _static_size(keypoints, 1)
        real = self.backbone(keypoints.reshape((-1, *keypoints.shape[2:])))  # (N * num_clips, 1, C', T', V)
        if self.mode == "loop":
            feats = real.expand(-1, self.num_person, -1, -1, -1)
        else:
            feats = torch.cat([real, self.padding.expand(real.shape[0], -1, -1, -1, -1)], dim=1)
        head: Any = self.recognizer.cls_head
        return self.recognizer._fold_clips(head(feats, num_segs=num_clips), num_clips)


def one_person_is_exact(data_bn_type: str | None, mode: str) -> bool:
    """Whether the padded people's features are known without the backbone (:class:`OnePersonGCN` applies).

    ``mode='zero'``: always (the zeros' features are a constant). ``'loop'``: unless the data
    norm is ``'MVC'``, which normalises each copy of the person with other statistics.
    """
    return mode == "zero" or data_bn_type != "MVC"


def _one_person_backbone(backbone: Any) -> nn.Module:
    """``backbone`` for ``M = 1`` input: itself, or with an ``'MVC'`` data norm cut to person 0's channels.

    ``'MVC'`` normalises the channels ``(m, v, c)`` of person ``m`` at ``m * V * C + v * C + c``;
    person 0's are the first ``V * C``, which a ``'VC'`` norm over one person indexes the same way.
    """
    if getattr(backbone, "data_bn_type", None) != "MVC":
        return backbone  # 'VC' and None treat every person alike
    full: nn.BatchNorm1d = backbone.data_bn
    width = full.num_features // backbone.num_person
    one = copy.deepcopy(backbone)
    norm = nn.BatchNorm1d(
        width,
        eps=full.eps,
        momentum=full.momentum,
        affine=full.affine,
        track_running_stats=full.track_running_stats,
        dtype=next(backbone.parameters()).dtype,
    )
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(full, name) is not None:
                getattr(norm, name).copy_(getattr(full, name)[:width])
    one.data_bn = norm.eval()
    one.data_bn_type = "VC"
    return one


class GCNEngine:
    """A compiled skeleton recognizer: keypoint features in, class scores out.

    Attributes:
        engine: The underlying named-tensor :class:`~engines.engine.Engine`.
        spec: The per-sample input of the model (``FormatGCNInput``'s sample, ``M`` people).
        people_per_sample: People per sample the engine takes: ``spec.num_person``, or 1 for
            a one-person engine (:class:`OnePersonGCN`).
        pad_mode: ``FormatGCNInput``'s ``mode`` (how the people past the first are padded).
        num_classes: Classes scored.
        class_names: From the checkpoint's meta, if it had them.
    """

    def __init__(
        self, engine: Any, spec: GCNInputSpec, people_per_sample: int | None = None, pad_mode: str = "zero"
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.people_per_sample = spec.num_person if people_per_sample is None else people_per_sample
        self.pad_mode = pad_mode
        self.num_classes = int(engine.manifest.num_classes)
        self.class_names: list[str] | None = engine.manifest.class_names

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample engine input ``(num_clips, people_per_sample, T, V, C)``."""
        return (self.spec.num_clips, self.people_per_sample, *self.spec.shape[2:])

    def infer(self, keypoints: np.ndarray) -> np.ndarray:
        """Scores for a batch of samples.

        Args:
            keypoints: float32 ``(N, num_clips, people_per_sample, T, V, C)``.

        Returns:
            float32 ``(N, num_classes)``.

        Raises:
            InputShapeError: If ``keypoints`` does not fit :attr:`input_shape`.
        """
        if not isinstance(keypoints, np.ndarray) or keypoints.shape[1:] != self.input_shape or keypoints.ndim != 6:
            got = keypoints.shape if isinstance(keypoints, np.ndarray) else type(keypoints).__name__
            raise InputShapeError(
                f"GCN engine input {INPUT_NAME!r}: expected (N, {', '.join(map(str, self.input_shape))}) "
                f"(N, num_clips, M, T, V, C), got {got}"
            )
        return self.engine.run({INPUT_NAME: keypoints})[OUTPUT_NAME]

    def infer_padded(self, samples: np.ndarray) -> np.ndarray:
        """Scores for a batch of the pipeline's samples ``(N, *spec.shape)``, whatever people the engine takes.

        A one-person engine gets the first person of each sample, after checking that the
        others are ``FormatGCNInput``'s padding (zeros, or copies of the first with
        ``mode='loop'``): the scores are then those of the whole sample.

        Raises:
            InputShapeError: If ``samples`` does not fit :attr:`spec`, or, for a one-person
                engine, a sample's other people are not the padding.
        """
        if not isinstance(samples, np.ndarray) or samples.shape[1:] != self.spec.shape or samples.ndim != 6:
            got = samples.shape if isinstance(samples, np.ndarray) else type(samples).__name__
            raise InputShapeError(
                f"GCN engine samples: expected (N, {', '.join(map(str, self.spec.shape))}) "
                f"(N, num_clips, M, T, V, C), got {got}"
            )
        if self.people_per_sample == self.spec.num_person:
            return self.infer(samples)
        first, others = samples[:, :, :1], samples[:, :, 1:]
        if self.pad_mode == "loop":
            same = (others == first) | (np.isnan(others) & np.isnan(first))  # a NaN keypoint is copied too
            padded = same.all(axis=(1, 2, 3, 4, 5))
        else:
            padded = ~np.any(others, axis=(1, 2, 3, 4, 5))
        if not padded.all():
            bad = np.flatnonzero(~padded).tolist()
            what = "copies of person 0" if self.pad_mode == "loop" else "zeros"
            raise InputShapeError(
                f"one-person GCN engine: people 1..{self.spec.num_person - 1} of sample(s) {bad} are not "
                f"FormatGCNInput's padding ({what}, mode {self.pad_mode!r}); score several people per sample "
                "with build_gcn_engine(..., people_per_sample=None)"
            )
        return self.infer(np.ascontiguousarray(first))

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
    people_per_sample: int | None = None,
    pad_mode: str = "zero",
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
        people_per_sample: ``None`` (or ``spec.num_person``): the engine takes whole samples.
            1 (with ``spec.num_person > 1``): the engine is :class:`OnePersonGCN`'s, taking the
            first person of samples padded by ``FormatGCNInput(mode=pad_mode)``; it is checked
            against the recognizer on those padded samples as well, and the manifest's
            ``validation`` records ``people_per_sample``, ``num_person``, ``pad_mode`` and
            ``max_abs_diff_padded``.
        pad_mode: ``FormatGCNInput``'s ``mode``, for ``people_per_sample=1``.

    Returns:
        The opened :class:`~engines.engine.Engine`.

    Raises:
        ExportError: The export failed, or the backend disagrees with torch by more than ``atol``.
        ModelConfigError: ``people_per_sample`` is neither ``None``, 1 nor ``spec.num_person``.
    """
    from engines.graph import build_graph_engine
    from engines.tensors import TensorSpec

    people = _people_per_sample(people_per_sample, spec)
    module = model.eval() if people == spec.num_person else OnePersonGCN(model, spec, pad_mode).eval()
    shape = (spec.num_clips, people, *spec.shape[2:])
    inputs = [TensorSpec(INPUT_NAME, ("batch", *shape))]
    outputs = [TensorSpec(OUTPUT_NAME, ("batch", int(model.num_classes)))]
    rng = np.random.default_rng(0)
    # Keypoint-like values (normalised coordinates and scores), not unbounded noise.
    example = {INPUT_NAME: rng.uniform(-1, 1, (1, *shape)).astype(np.float32)}
    check = {INPUT_NAME: rng.uniform(-1, 1, (2, *shape)).astype(np.float32)}
    backbone = type(model.backbone).__name__
    engine = build_graph_engine(
        module, inputs=inputs, outputs=outputs, example=example, check=check, out_dir=out_dir,
        backend=backend, model_type=f"RecognizerGCN/{backbone}", num_classes=int(model.num_classes),
        class_names=class_names, atol=atol, num_threads=num_threads,
    )  # fmt: skip
    if people == spec.num_person:
        return engine
    # The one-person engine against the recognizer itself on the samples FormatGCNInput makes.
    first = check[INPUT_NAME]
    padded = np.repeat(first, spec.num_person, axis=2)  # 'loop': copies of person 0
    if pad_mode == "zero":
        padded[:, :, 1:] = 0
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(padded)).numpy()
    got = engine.run({INPUT_NAME: first})[OUTPUT_NAME]
    worst = float(np.abs(got.astype(np.float64) - want).max())
    manifest = engine.manifest
    manifest.validation.update(
        people_per_sample=people, num_person=spec.num_person, pad_mode=pad_mode, max_abs_diff_padded=worst
    )
    manifest.save(engine.engine_dir)
    if not worst <= atol:
        engine.close()
        raise ExportError(
            f"{backend}: the one-person {backbone} engine differs from the model on {pad_mode}-padded "
            f"samples of {spec.num_person} people by {worst:.3g} (> {atol})"
        )
    log.info("one-person %s engine: max |engine - model on padded input| = %.2g", backbone, worst)
    return engine


def _people_per_sample(value: int | None, spec: GCNInputSpec) -> int:
    if value is None or value == spec.num_person:
        return spec.num_person
    if value != 1 or isinstance(value, bool):
        raise ModelConfigError(
            f"people_per_sample: expected None (all {spec.num_person}) or 1 (the others are padding), got {value!r}"
        )
    return 1


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
    people_per_sample: int | None = None,
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
        people_per_sample: ``None``: the engine takes whole samples of ``M`` people. 1: it
            takes only the first person of each sample, the others being ``FormatGCNInput``'s
            padding (:class:`OnePersonGCN`: the same scores for ``1 / M`` of the backbone's work;
            cached apart from the whole-sample engine). With ``M = 1``, or where
            :func:`one_person_is_exact` is false, the whole-sample engine is returned (its
            ``people_per_sample`` says which one it is; :meth:`GCNEngine.infer_padded` takes both).

    Returns:
        The opened engine; :meth:`GCNEngine.infer` scores ``(N, *engine.input_shape)`` batches,
        :meth:`GCNEngine.infer_padded` the pipeline's ``(N, *engine.spec.shape)`` samples.

    Raises:
        ModelConfigError: The config cannot be read, is not a ``RecognizerGCN`` or is invalid,
            or ``people_per_sample`` is not ``None`` or 1.
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
    pad_mode = gcn_pad_mode(pipeline, where=f"config {config}")
    people = _people_per_sample(people_per_sample, spec)
    backbone_cfg = model_cfg.get("backbone", {})
    bn_type = backbone_cfg.get("data_bn_type", "VC" if backbone_cfg.get("type") == "STGCN" else "MVC")
    if people != spec.num_person and not one_person_is_exact(bn_type, pad_mode):
        log.info("%s: data_bn_type 'MVC' with FormatGCNInput mode 'loop': the engine takes whole samples", config.name)
        people = spec.num_person
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint}: no such file")
    name = _resolve_backend(backend)

    def build_into(out: Path) -> Any:
        model = build(model_cfg)
        ckpt = load_checkpoint(model, checkpoint, config_name=config, trusted=trusted)
        log.info("building the %s GCN engine for %s in %s", name, config.name, out)
        return export_gcn_engine(
            model, spec, out, backend=name, class_names=ckpt.classes, num_threads=num_threads,
            people_per_sample=people, pad_mode=pad_mode,
        )  # fmt: skip

    key: tuple[str, ...] = (repr(model_cfg), repr(spec), file_sha256(checkpoint), GCN_ENGINE_VERSION)
    family = str(model_cfg.get("backbone", {}).get("type", "gcn")).lower()
    if people != spec.num_person:  # the one-person engine (the whole-sample key is left as it was)
        key = (*key, f"people_per_sample={people}", f"pad_mode={pad_mode}")
        family = f"{family}-1p"
    engine = cached_graph_engine(
        family, key, build_into, backend=name, num_threads=num_threads, cache_dir=cache_dir
    )  # fmt: skip
    return GCNEngine(engine, spec, people, pad_mode)


__all__ = [
    "GCNEngine",
    "GCNInputSpec",
    "OnePersonGCN",
    "build_gcn_engine",
    "export_gcn_engine",
    "gcn_input_spec",
    "gcn_pad_mode",
    "one_person_is_exact",
]
