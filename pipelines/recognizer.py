"""A recognizer ready for streams: engine + clip settings + class names.

:func:`open_recognizer` turns what the user typed (config, checkpoint, backend, label
file) into a :class:`Recognizer`. Engines are built once and cached on disk, keyed by
everything that changes them (config text after ``--cfg-options``, checkpoint hash,
backend, precision, input shape), so the second start is fast. ``--engine DIR`` uses a
prebuilt engine directory (``python -m engines.build``) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from engines.cache import cached_engine, resolve_device
from engines.clip_spec import ClipSpec
from engines.config import ModelConfig, load_config
from engines.engine import Engine, batch_probe, load_engine
from engines.errors import EngineError
from pipelines.clip_buffer import Clip
from pipelines.frame_reuse import FrameReuse
from stream.errors import SourceNotFound

log = logging.getLogger(__name__)


def read_label_file(path: str | Path) -> list[str]:
    """Class names, one per line (MMAction2's label-map format; ``id name`` lines are accepted too).

    Raises:
        SourceNotFound: If the file does not exist.
        ConfigError: If it holds no names.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFound(f"label file not found: {path}; pass a text file with one class name per line")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text or "\0" in text:
        if data.strip():
            raise ConfigError(f"label file {path} is not a text file; it needs one class name per line (UTF-8)")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ConfigError(f"label file {path} is empty; it needs one class name per line")
    return names


@dataclass
class Recognizer:
    """An engine with the clip settings and class names needed to feed it from a stream.

    Attributes:
        engine: the loaded engine.
        spec: how clips are sampled and preprocessed (from the config's test pipeline).
        class_names: one name per output score.
        normalize: whether inputs must be normalised here (False when the engine folded it).
        probabilities: whether the engine's scores are probabilities (``average_clips='prob'``).
            Otherwise they are the head's raw scores (``'score'``: their mean over the clips;
            ``None`` with one clip per sample: that clip's), reported and thresholded as they
            are, as MMAction2's demos do.
        reuse: Scores clips from cached per-frame features (TSN-style models, see
            :mod:`pipelines.frame_reuse`), or None: every clip runs the full engine.
        backbone_frames: Frame views (frames × crops) the backbone ran on so far.
        reused_frames: Frame views whose features came from the cache instead.
        batch: Clips per engine call (at most the engine's max batch; None: its max batch).
            On a CPU, batch 1 can be cheaper per clip (:func:`engines.engine.batch_probe`).
    """

    engine: Engine
    spec: ClipSpec
    class_names: list[str]
    normalize: bool = True
    probabilities: bool = True
    reuse: FrameReuse | None = None
    backbone_frames: int = 0
    reused_frames: int = 0
    batch: int | None = None

    @property
    def max_batch(self) -> int:
        """Clips per engine call: the engine's max batch, or fewer where that measured faster."""
        most = int(self.engine.manifest.max_batch)
        return most if self.batch is None else max(1, min(self.batch, most))

    def inputs(self, clips: Sequence[Clip]) -> np.ndarray:
        """Preprocess clips into one float32 batch."""
        return np.stack([clip.to_input(self.spec, normalize=self.normalize) for clip in clips])

    def scores(self, clips: Sequence[Clip]) -> np.ndarray:
        """Class scores ``(len(clips), num_classes)``, in chunks of :attr:`max_batch`.

        Probabilities with ``average_clips='prob'``, else the head's raw scores (not softmaxed:
        MMAction2 reports and thresholds what the head gives).

        Raises:
            InputShapeError: If the clips do not fit the engine's input (e.g. frame size changed
                with a config whose input size depends on it).
        """
        out = []
        reuse = self.reuse
        for start in range(0, len(clips), self.max_batch):
            chunk = clips[start : start + self.max_batch]
            if reuse is None:
                out.append(self.engine.infer(self.inputs(chunk)))
                self.backbone_frames += len(chunk) * self.spec.num_crops * self.spec.frames_per_sample
            else:
                computed, reused = reuse.computed, reuse.reused
                out.append(reuse.scores(chunk))
                self.backbone_frames += reuse.computed - computed
                self.reused_frames += reuse.reused - reused
        return np.concatenate(out).astype(np.float32, copy=False)

    def forget(self, source_id: str) -> None:
        """The source ended: free what is cached for it."""
        if self.reuse is not None:
            self.reuse.forget(source_id)

    def close(self) -> None:
        self.engine.close()
        if self.reuse is not None:
            self.reuse.engines.close()
            self.reuse.clear()


def open_recognizer(
    config: str | Path,
    checkpoint: str | Path | None = None,
    *,
    backend: str = "auto",
    device: str = "cpu",
    precision: str = "auto",
    calibration: str | Path | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    label_file: str | Path | None = None,
    engine_dir: str | Path | None = None,
    trust_engine: bool = False,
    max_batch: int = 4,
    num_clips: int | None = None,
    frame_size: tuple[int, int] | None = None,
    num_threads: int | None = None,
    trust_checkpoint: bool = False,
    reuse: bool = True,
) -> Recognizer:
    """Build (or reuse from the cache) the engine for a config and checkpoint.

    Args:
        config: Project or MMAction2 config (``model`` + ``test_pipeline``).
        checkpoint: ``.pth`` in MMAction2 layout; default: the config's ``load_from``.
        backend: Engine backend (``auto`` picks for the device).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (the backend's fast precision where it keeps top-1 labels, else
            fp32; see :func:`engines.engine.build_engine`), ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        calibration: Video whose clips calibrate INT8 (``int8``, ``auto``); default: the demo video.
        cfg_options: ``--cfg-options`` overrides.
        label_file: Class names, one per line; default the config's ``label_file``, then the
            checkpoint's ``dataset_meta.classes``, then ``class_0``…
        engine_dir: Use this prebuilt engine instead of building one (checked as untrusted input);
            its manifest's clip spec is used, and must agree with the config's test pipeline.
        trust_engine: Also open an ``engine_dir`` of an older format whose model is Python code
            (see :func:`engines.engine.load_engine`).
        max_batch: Largest batch the engine runs at once.
        num_clips: Override the test pipeline's ``num_clips`` (fewer views: faster, for live use).
        frame_size: ``(width, height)`` of the frames, for configs whose input size depends on it.
        num_threads: CPU threads for the backend.
        trust_checkpoint: Allow full unpickling of old checkpoints (see :mod:`engines.checkpoint`).
        reuse: For TSN-style models (:func:`engines.frame_reuse.reuse_refusal`) on an ONNX
            Runtime / OpenVINO engine, also open the frame and head engines (at ``precision``,
            ``auto`` checked on the pair as on the full engine), so that frames shared by
            overlapping clips go through the backbone once (in fp32 the full engine's scores;
            in bf16 / int8 within that precision's rounding of them; ``--no-reuse`` turns it off). Other models
            and backends, and ``engine_dir``, run the full engine.

    Raises:
        ConfigError / SourceNotFound: Bad config, missing checkpoint or label file, label file
            with fewer names than the model has classes, a config that disagrees with ``engine_dir``.
        EngineError: The checkpoint does not fit the config, or the backend is unavailable.
    """
    cfg = load_config(config, cfg_options)
    name, dev = resolve_device(backend, device)
    config_dir = Path(config).resolve().parent
    frame_reuse: FrameReuse | None = None
    if num_clips is not None and num_clips < 1:
        raise ConfigError(f"--num-clips: expected >= 1, got {num_clips}")
    if engine_dir is not None:
        engine = load_engine(
            engine_dir, name if backend != "auto" else None, trusted=trust_engine, num_threads=num_threads
        )
        spec = _engine_spec(cfg, engine)
        if num_clips is not None and num_clips != spec.num_clips:
            raise ConfigError(
                f"--num-clips {num_clips}: the engine {engine_dir} was built for {spec.num_clips} clip(s); "
                "rebuild it with --cfg-options test_pipeline.N.num_clips=... or drop --num-clips"
            )
    else:
        spec = _config_spec(cfg)
        if num_clips is not None:
            spec = replace(spec, num_clips=num_clips)
        checkpoint = checkpoint or cfg.get("load_from")
        if not checkpoint:
            raise ConfigError(f"{config}: no checkpoint given (--checkpoint) and the config has no load_from")
        checkpoint_path = _local_path(str(checkpoint), config_dir, what="checkpoint")
        input_shape = _input_shape(spec, frame_size)
        engine = cached_engine(
            cfg,
            checkpoint_path,
            backend=name,
            device=dev,
            precision=precision,
            input_shape=input_shape,
            max_batch=max_batch,
            num_threads=num_threads,
            trusted=trust_checkpoint,
            calibration=calibration,
        )
        if reuse:
            frame_reuse = _open_reuse(
                cfg, checkpoint_path, engine, spec, input_shape, num_threads, trust_checkpoint, precision, calibration
            )
    manifest = engine.manifest
    try:
        check_average_clips(manifest.average_clips, manifest.output_shape, config)
        names = _class_names(cfg, config_dir, label_file, manifest.class_names, manifest.num_classes)
    except ConfigError:
        engine.close()
        if frame_reuse is not None:
            frame_reuse.engines.close()
        raise
    probabilities = manifest.average_clips == "prob"
    batch = None
    if engine_dir is None and frame_reuse is None:  # a cache entry of ours: measured once, recorded in it
        try:
            probe = batch_probe(engine)
        except (EngineError, OSError) as exc:  # the engine works: run its max batch as before
            log.warning("batch probe of %s failed (%s); running batches of %d", engine.engine_dir, exc, max_batch)
            probe = None
        batch = None if probe is None else int(probe["preferred"])
    return Recognizer(
        engine,
        spec,
        names,
        normalize=not manifest.normalize_folded,
        probabilities=probabilities,
        reuse=frame_reuse,
        batch=batch,
    )


def _open_reuse(
    cfg: ModelConfig,
    checkpoint: Path,
    engine: Engine,
    spec: ClipSpec,
    input_shape: Sequence[int],
    num_threads: int | None,
    trusted: bool,
    precision: str,
    calibration: str | Path | None = None,
) -> FrameReuse | None:
    """The frame-reuse scorer for a TSN-style model on a CPU graph backend; None (logged why) otherwise.

    The frame and head engines are built at the precision asked for: ``auto`` runs the
    full engine's checks on the pair itself (INT8 where the backend tries it, on the same
    calibration video; then bf16; both parts fall back to fp32 together), so the pair may
    keep another precision than the full engine; an explicit precision is the full
    engine's (``int8``: the frame engine in INT8, the head in fp32).
    """
    from engines.frame_reuse import REUSE_BACKENDS, build_reuse_engines, reuse_refusal

    manifest = engine.manifest
    reason = reuse_refusal(cfg.model)
    if reason is None and manifest.backend not in REUSE_BACKENDS:
        reason = f"backend {manifest.backend} (reuse runs on {', '.join(REUSE_BACKENDS)})"
    if reason is None and manifest.normalize_folded:
        reason = "the engine folds normalisation in"
    if reason is not None:
        log.info("frame reuse off: %s", reason)
        return None
    try:
        engines = build_reuse_engines(
            cfg.model, checkpoint, input_shape, backend=manifest.backend,
            precision="auto" if precision == "auto" else manifest.precision, num_threads=num_threads, trusted=trusted,
            clip=spec, calibration=calibration,
        )  # fmt: skip
    except EngineError as exc:  # the full engine works: run it as without reuse
        log.warning("frame reuse off: the frame/head engines could not be built (%s)", exc)
        return None
    log.info("frame reuse on: each frame goes through the backbone once (%s, %s)", cfg.path.name, engines.precision)
    return FrameReuse(engines, spec)


def check_average_clips(average_clips: str | None, output_shape: Sequence[int], config: str | Path) -> None:
    """Refuse a head that leaves several clips per sample unfolded (``average_clips=None``).

    MMAction2's head then returns one score row per clip (its ``pred_score`` is
    ``(clips, num_classes)``) and its demos cannot label that; with one clip per sample the
    engine's output is that clip's raw scores, which are used as they are.

    Raises:
        ConfigError: Naming the key and the fix, if the output has a clip axis.
    """
    if average_clips is None and len(output_shape) > 1:
        raise ConfigError(
            f"{config}: model.cls_head.average_clips=None leaves {output_shape[0]} clips per sample unfolded "
            "(one score row per clip, which MMAction2's demos cannot label either); set "
            "--cfg-options model.cls_head.average_clips=prob (mean probability, as the shipped configs) or "
            "=score (mean raw score), or infer one clip with --num-clips 1"
        )


def _config_spec(cfg: ModelConfig) -> ClipSpec:
    if cfg.clip is None:
        raise ConfigError(f"{cfg.path}: no test_pipeline; add MMAction2's test pipeline list to the config")
    return cfg.clip


def _engine_spec(cfg: ModelConfig, engine: Engine) -> ClipSpec:
    """The engine's recorded clip spec; the config's must agree with it (same frames, same input)."""
    recorded = engine.manifest.clip
    if recorded is None:
        return _config_spec(cfg)
    if cfg.clip is not None and cfg.clip != recorded:
        ours, theirs = cfg.clip.to_dict(), recorded.to_dict()
        diff = ", ".join(
            f"{k}: config {ours.get(k)!r} vs engine {theirs.get(k)!r}" for k in ours if ours.get(k) != theirs.get(k)
        )
        raise ConfigError(
            f"{cfg.path} does not match the engine {engine.engine_dir} ({diff}); pass the config the engine was "
            "built from, or rebuild the engine with python -m engines.build"
        )
    return recorded


def _local_path(value: str, config_dir: Path, *, what: str) -> Path:
    if "://" in value:
        raise ConfigError(
            f"the config's {what} is a URL ({value}); nothing is downloaded: fetch it yourself and pass --{what} FILE"
        )
    path = Path(value).expanduser()
    for candidate in (path, config_dir / path):
        if candidate.is_file():
            return candidate
    hint = "an existing .pth file" if what == "checkpoint" else "an existing file"
    raise SourceNotFound(f"{what} not found: {value}; pass {hint} with --{what}")


def _input_shape(spec: ClipSpec, frame_size: tuple[int, int] | None) -> tuple[int, ...]:
    """Per-sample input shape; needs the frame size only when neither a crop nor a fixed resize sets it."""
    fixed = spec.crop_size is not None or (spec.resize is not None and not spec.resize.keep_ratio)
    if not fixed and frame_size is None:
        raise ConfigError("this config's input size depends on the frame size, which is not known yet")
    width, height = frame_size or (256, 256)
    return spec.input_shape(height, width)


def _class_names(
    cfg: ModelConfig,
    config_dir: Path,
    label_file: str | Path | None,
    meta_names: Sequence[str] | None,
    num_classes: int,
) -> list[str]:
    source = "checkpoint"
    names: list[str] | None = None
    if label_file is None and cfg.get("label_file"):
        label_file = _local_path(str(cfg.get("label_file")), config_dir, what="label-file")
    if label_file is not None:
        names, source = read_label_file(label_file), str(label_file)
    elif meta_names:
        names = list(meta_names)
    if names is None:
        return [f"class_{i}" for i in range(num_classes)]
    if len(names) < num_classes:
        raise ConfigError(
            f"{source} has {len(names)} class names but the model has {num_classes} classes; "
            "pass the label file the checkpoint was trained with"
        )
    if len(names) > num_classes:
        log.warning("%s has %d names for %d classes; using the first %d", source, len(names), num_classes, num_classes)
    return names[:num_classes]
