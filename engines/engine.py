"""The narrow interface users call: :func:`build_engine`, :func:`load_engine`, :meth:`Engine.infer`.

Example::

    from engines.engine import build_engine, load_engine

    build_engine("configs/recognition/tsn/tsn_r50.py", "tsn_r50.pth", backend="auto", out_dir="engines/tsn")
    engine = load_engine("engines/tsn")     # checks every file's sha256; runs no code from the folder
    scores = engine.infer(batch)            # (N, V, C, H, W) float32 -> (N, num_classes)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import OutputError
from core.files import AtomicDir, inside, sweep_partials
from engines.backends import (
    Backend,
    BackendOptionError,
    BackendOptions,
    InputSpec,
    backend_class,
    resolve_backend,
)
from engines.checkpoint import file_sha256, save_checkpoint
from engines.clip_spec import ClipSpec
from engines.config import ModelConfig, load_config
from engines.errors import EngineError, InputShapeError, ModelConfigError
from engines.export import (
    AVERAGE_CLIPS_CHOICES,
    DEFAULT_OPSET,
    DeployModel,
    build_recognizer,
    export_onnx,
    model_mean_std,
    sample_inputs,
    torch_scores,
)
from engines.integrity import (
    REBUILD,
    EngineFileError,
    EngineMismatchError,
    EngineTrustError,
    check_input_dims,
    record_hashes,
    verify_hashes,
)
from engines.manifest import MANIFEST_NAME, Manifest, library_versions
from engines.model_json import MODEL_JSON_NAME, write_model_json
from engines.quantize import (
    INT8_ONNX_NAME,
    CalibrationError,
    CalibrationSource,
    calibration_clips,
    default_calibration_video,
    quantize_onnx,
)
from engines.tensors import TensorSpec, check_feeds

logger = logging.getLogger(__name__)

#: ``precision='auto'`` keeps a reduced precision only if this share of top-1 labels agree with fp32.
AUTO_MIN_TOP1 = 0.99
#: Real-looking clips (:func:`~engines.export.sample_inputs`) that check it.
AUTO_CHECK_SAMPLES = 16

ONNX_NAME = "model.onnx"
CONFIG_NAME = "config.py"  # format 2 engines only (Python: read only with trusted=True)
WEIGHTS_NAME = "weights.pth"
#: Backends that rebuild the torch model and so need the weights inside the engine dir.
TORCH_BACKENDS = ("torch", "torch-cuda")
#: What a build may leave in an engine directory (beside the files its manifest lists):
#: backend folders and ``source_config.py`` (the config copy older engine caches kept there).
ENGINE_ENTRIES = frozenset(
    {MANIFEST_NAME, ONNX_NAME, INT8_ONNX_NAME, CONFIG_NAME, WEIGHTS_NAME, "openvino", "tensorrt",
     "onnxruntime_trt_cache", "source_config.py"}
)  # fmt: skip


class EngineOutputError(EngineError, OutputError):
    """An engine directory cannot be written where asked: it is a file, holds other files, or holds an input."""


def check_engine_out(out: Path, inputs: Mapping[str, Path]) -> None:
    """Refuse an ``out`` that a build would damage, before any work.

    ``out`` may be missing, an empty folder, or an engine folder (``manifest.json`` and
    only engine files), which the build replaces as a whole.

    Raises:
        EngineOutputError: If ``out`` is a file, a non-empty folder that is not an engine
            folder, or an engine folder holding one of ``inputs`` (which replacing it would delete).
    """
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise EngineOutputError(f"out {out} is a file; expected an engine folder (new, empty or built before)")
    entries = sorted(entry.name for entry in out.iterdir())
    if not entries:
        return
    if MANIFEST_NAME not in entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise EngineOutputError(
            f"out {out} is a non-empty folder that is not an engine folder (no {MANIFEST_NAME}; holds {shown}); "
            "choose a new or empty folder"
        )
    listed = _manifest_entries(out)
    foreign = [name for name in entries if name not in ENGINE_ENTRIES and name not in listed]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise EngineOutputError(
            f"out {out} holds files that are not part of an engine ({shown}), which rebuilding it would delete; "
            "move them or choose another folder"
        )
    for what, path in inputs.items():
        if inside(path, out):
            raise EngineOutputError(
                f"{what} {path} lies inside out {out}, which the build replaces as a whole; "
                "copy it elsewhere or choose another folder"
            )


def _manifest_entries(engine_dir: Path) -> set[str]:
    """Top-level names of the files an engine's manifest lists (empty if it cannot be read)."""
    try:
        files = json.loads((engine_dir / MANIFEST_NAME).read_text()).get("files") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    return {Path(str(name)).parts[0] for name in files.values() if str(name)} if isinstance(files, dict) else set()


class Engine:
    """A loaded engine: its manifest and a backend ready to run.

    Attributes:
        engine_dir: Where the engine lives.
        manifest: What it holds and how to feed it.
        backend: The backend running it.
    """

    def __init__(self, engine_dir: Path, manifest: Manifest, backend: Backend) -> None:
        self.engine_dir = engine_dir
        self.manifest = manifest
        self.backend = backend

    @property
    def input_spec(self) -> InputSpec:
        """Name, layout (``'NVCHW'``/``'NVCTHW'``), shape (batch ``None``) and dtype of the input."""
        return self.backend.input_spec

    @property
    def class_names(self) -> list[str] | None:
        """Class names, if the checkpoint carried them."""
        return self.manifest.class_names

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Class scores for a batch.

        Args:
            batch: float32 ``(N, *manifest.input_shape)``; normalised like MMAction2's data
                preprocessor, or raw RGB pixels 0-255 if ``manifest.normalize_folded``.

        Returns:
            float32 ``(N, num_classes)`` scores (probabilities when ``average_clips='prob'``).

        Raises:
            InputShapeError: If the batch does not fit :attr:`input_spec`.
            EngineMismatchError: If the graph returns another number of classes than the
                manifest says (checked here for graphs that leave it symbolic).
        """
        scores = self.backend.infer(batch)
        if self.manifest.input_format and scores.shape[-1] != self.manifest.num_classes:
            raise EngineMismatchError(
                f"engine {self.engine_dir}: the manifest says num_classes {self.manifest.num_classes} but the graph "
                f"outputs {scores.shape[-1]} classes; {REBUILD}"
            )
        return scores

    @property
    def inputs(self) -> list[TensorSpec]:
        """The engine's named inputs (dynamic axes named)."""
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The engine's named outputs."""
        return self.manifest.outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the engine on named inputs and return its named outputs.

        A one-input, one-output engine (a recognizer) runs through :meth:`infer`, split into
        chunks of at most ``max_batch``; other engines run whole, on backends that take named
        inputs (ONNX Runtime, OpenVINO).

        Raises:
            InputShapeError: A missing or unknown input, or one that does not fit its spec.
            BackendOptionError: The backend cannot run several named inputs.
        """
        checked = check_feeds(self.inputs, feeds)
        if len(self.inputs) == 1 and len(self.outputs) == 1:
            return {self.outputs[0].name: self.infer(checked[self.inputs[0].name])}
        run_named = getattr(self.backend, "run_named", None)
        if run_named is None:
            raise BackendOptionError(
                f"backend {self.backend.name!r} runs one-input engines only; open this engine with "
                "--backend onnxruntime or openvino"
            )
        out = run_named(checked, [t.name for t in self.outputs])
        return {t.name: np.asarray(out[t.name]) for t in self.outputs}

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Engine({str(self.engine_dir)!r}, backend={self.backend.name!r}, model={m.model_type}/{m.backbone_type}, "
            f"input={self.input_spec.shape}, classes={m.num_classes})"
        )


def check_engine_files(engine_dir: Path, manifest: Manifest, *, trusted: bool = False) -> None:
    """The checks :func:`load_engine` runs before any backend reads the folder.

    Every ``files`` entry must stay inside the folder; every file recorded in
    ``manifest.sha256`` must exist and match (read once, streamed); ``onnx_sha256`` must
    agree with the recorded hash of the ONNX file. Engines of an older format (model kept
    as Python, no hashes) are refused unless ``trusted``.

    Raises:
        EngineTrustError: An older-format engine without ``trusted``.
        EnginePathError / EngineFileError: An escaping path; a missing, corrupt or changed file.
        EngineMismatchError: ``onnx_sha256`` disagrees with the recorded hash of the ONNX file.
    """
    for role in manifest.files:
        manifest.path_of(engine_dir, role)
    if manifest.legacy:
        if not trusted:
            raise EngineTrustError(
                f"engine {engine_dir}: format {manifest.format_version} keeps its model as Python code (config.py, "
                f"run when opened) and records no file hashes; {REBUILD}, or pass --trust-engine "
                "(trusted=True) if you trust where the folder comes from"
            )
        version = manifest.format_version
        logger.warning("engine %s: format %d, opened as trusted without hash checks", engine_dir, version)
        return
    start = time.perf_counter()
    verify_hashes(engine_dir, manifest.sha256, manifest.files)
    onnx = manifest.files.get("onnx")
    if onnx is not None and manifest.onnx_sha256 is not None and manifest.sha256.get(onnx) != manifest.onnx_sha256:
        raise EngineMismatchError(
            f"engine {engine_dir}: onnx_sha256 disagrees with the recorded hash of {onnx}; {REBUILD}"
        )
    logger.info("engine %s: %d files match their sha256 (%.2fs)", engine_dir, len(manifest.sha256),
                time.perf_counter() - start)  # fmt: skip


def check_graph(engine_dir: Path, manifest: Manifest, backend: Backend) -> None:
    """Compare the opened graph's input and output with the manifest.

    The input shape comes from the graph; so does the class count where the graph states
    it (OpenVINO's compiled model, the torch head, TensorRT). ONNX Runtime reports the
    exported graph's symbolic output, so there :meth:`Engine.infer` checks the class count
    of every result instead (running a probe here would cost a full inference per open:
    4.4 s for a TSN-R50 with 8 views on a busy 2-core machine).

    Raises:
        EngineMismatchError: If the number of classes or the per-sample input shape differ.
    """
    inputs, outputs = backend.graph_io() or (None, None)
    where = f"engine {engine_dir}"
    if inputs is not None:
        check_input_dims(where, inputs, manifest.inputs[0].shape)
    if not manifest.input_format:  # a graph engine: its outputs are named tensors, not class scores
        return
    classes = outputs[-1] if outputs else None
    if classes is not None and classes != manifest.num_classes:
        raise EngineMismatchError(
            f"{where}: the manifest says num_classes {manifest.num_classes} but the graph outputs "
            f"{classes} classes; {REBUILD}"
        )


def load_engine(
    engine_dir: str | Path,
    backend: str | None = None,
    *,
    trusted: bool = False,
    options: BackendOptions | None = None,
    **option_overrides: Any,
) -> Engine:
    """Open an engine directory, treating it as untrusted input.

    Before a backend reads anything, :func:`check_engine_files` confines every path to the
    folder and checks every file against its recorded sha256; after it opens, the graph's
    input shape and class count must match the manifest. Nothing in the folder is executed.

    Args:
        engine_dir: Directory written by :func:`build_engine`.
        backend: Backend to run it with; ``None`` uses the manifest's, ``'auto'`` picks for this machine.
        trusted: Also open engines of an older format, whose model is a Python ``config.py``
            that the torch backends execute (CLI: ``--trust-engine``). Only for folders whose
            origin you trust.
        options: Backend options; by default the manifest's precision and max batch.
        **option_overrides: Fields of :class:`BackendOptions` to override (e.g. ``num_threads=2``).

    Raises:
        ManifestError: If the directory or its manifest is missing or malformed.
        EngineTrustError: An older-format engine without ``trusted``.
        EnginePathError / EngineFileError: A path escapes the folder; a file is missing,
            changed or corrupt (the message names it).
        EngineMismatchError: The manifest and the graph disagree (classes, input shape).
        UnknownBackendError: If ``backend`` is unknown (lists the valid names).
        BackendUnavailable: If the backend's library or device is missing (with an install hint).
        BackendOptionError: If an option is unknown or unsupported by the backend.
    """
    engine_dir = Path(engine_dir)
    manifest = Manifest.load(engine_dir)
    check_engine_files(engine_dir, manifest, trusted=trusted)
    name = resolve_backend(backend, default=manifest.backend)
    base = options or BackendOptions(precision=manifest.precision, max_batch=manifest.max_batch)
    if option_overrides:
        try:
            base = replace(base, **option_overrides)
        except TypeError as exc:
            raise BackendOptionError(f"load_engine: {exc}") from exc
    if name != manifest.backend and "precision" not in option_overrides and options is None:
        if base.precision not in backend_class(name).precisions:
            logger.info("backend %s: the engine's precision %s is unsupported, using fp32", name, base.precision)
            base = replace(base, precision="fp32")
    cls = backend_class(name)
    cls.check_available()
    start = time.perf_counter()
    try:
        runner = cls.open(engine_dir, manifest, base)
    except EngineError:
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # the libraries' own parse errors
        detail = " ".join(str(exc).split())[:300]
        raise EngineFileError(
            f"engine {engine_dir}: backend {name} cannot open it ({type(exc).__name__}: {detail}); {REBUILD}"
        ) from exc
    try:
        check_graph(engine_dir, manifest, runner)
    except EngineMismatchError:
        runner.close()
        raise
    logger.info("loaded engine %s with backend %s in %.2fs", engine_dir, name, time.perf_counter() - start)
    return Engine(engine_dir, manifest, runner)


def _input_shape(
    explicit: Sequence[int] | None, clip_shape: tuple[int, ...] | None, input_format: str, config: Path
) -> tuple[int, ...]:
    if explicit is not None:
        shape = tuple(int(d) for d in explicit)
    elif clip_shape is not None:
        shape = clip_shape
    else:
        raise ModelConfigError(
            f"config {config}: cannot tell the input shape (no test_pipeline with a crop or a fixed-size Resize); "
            "pass input_shape (CLI: --input-shape V,C,H,W or V,C,T,H,W)"
        )
    rank = 4 if input_format == "NCHW" else 5
    if len(shape) != rank or any(d <= 0 for d in shape):
        layout = "V,C,H,W" if rank == 4 else "V,C,T,H,W"
        raise InputShapeError(f"input shape: expected {rank} positive sizes ({layout}) for {input_format}, got {shape}")
    return shape


def build_engine(
    config: str | Path | ModelConfig,
    checkpoint: str | Path,
    backend: str = "auto",
    precision: str = "auto",
    max_batch: int = 4,
    out_dir: str | Path = "engine",
    *,
    cfg_options: Mapping[str, Any] | None = None,
    fold_normalize: bool = False,
    average_clips: str | None = None,
    input_shape: Sequence[int] | None = None,
    trusted: bool = False,
    opset: int = DEFAULT_OPSET,
    num_threads: int | None = None,
    copy_weights: bool | None = None,
    validate: bool = True,
    device: int = 0,
    replace_any: bool = False,
    calibration: str | Path | None = None,
) -> Engine:
    """Build an engine directory from a config and a checkpoint, and open it.

    The directory is built whole or not at all: into a hidden sibling
    (``.NAME.partial-PID-N``), checked, validated, then swapped in with renames
    (:class:`core.files.AtomicDir`). A build that fails or is interrupted leaves ``out_dir``
    as it was and removes its temporary folder; one killed (``kill -9``) leaves the
    temporary folder, which the next build of the same ``out_dir`` removes. So an engine
    directory (and a cache entry) always holds a validated engine: with
    ``precision='auto'``, a reduced precision appears only after it passed its check.

    Steps: load the config (``_base_`` + ``cfg_options``), build the recognizer, load the
    checkpoint strictly, export ONNX and check it against torch (≤ 1e-4), let the backend
    prepare its files (OpenVINO IR, TensorRT plan), write ``manifest.json``, open the
    backend and record its agreement with torch on a smooth random batch.

    ``precision='auto'`` tries the backend's fast precision for this machine
    (:meth:`Backend.auto_precision`: bf16 for OpenVINO on a CPU with native bf16, fp16 on
    CUDA GPUs) and keeps it only if its top-1 agreement with torch fp32 on
    :data:`AUTO_CHECK_SAMPLES` real-looking clips is at least :data:`AUTO_MIN_TOP1`; otherwise
    the engine falls back to fp32 (logged, and recorded in ``manifest.validation``).
    Where the backend runs INT8 and :meth:`Backend.auto_int8` says to try it, ``auto`` first
    quantizes (:mod:`engines.quantize`) and keeps INT8 only if its top-1 agreement with torch
    fp32 on :data:`~engines.quantize.CHECK_CLIPS` held-out clips of the calibration video is
    at least :data:`AUTO_MIN_TOP1` and it runs faster than the float precision ``auto``
    ends with (timed on the same clips); the check is ``manifest.validation['auto_int8']``.

    ``precision='int8'`` quantizes the exported graph, calibrated on clips of
    ``calibration`` (default: the demo video), and runs it on ONNX Runtime or OpenVINO.

    Args:
        config: Project or MMAction2 config file, or a config already loaded with
            :func:`~engines.config.load_config` (then ``cfg_options`` must be applied already).
        checkpoint: ``.pth`` in MMAction2 layout or a bare state dict.
        backend: A name from :data:`~engines.backends.BACKENDS` or ``'auto'``.
        precision: ``'auto'`` (see above), ``'fp32'``, ``'fp16'`` or ``'bf16'`` (backend permitting).
        max_batch: Largest batch per run.
        out_dir: Engine directory to write (created; existing engine files are replaced).
        cfg_options: ``--cfg-options`` overrides.
        fold_normalize: Fold mean/std into the graph; the engine then takes raw RGB 0-255.
        average_clips: Override the head's view folding: ``'score'`` or ``'prob'``.
        input_shape: Per-sample shape; default from the config's ``test_pipeline`` when a crop
            or a fixed-size ``Resize`` sets the frame size (:attr:`ClipSpec.fixed_hw`).
        trusted: Allow full unpickling of old checkpoints (see :mod:`engines.checkpoint`).
        opset: ONNX opset (>= 17).
        num_threads: CPU threads for the backend.
        copy_weights: Store ``weights.pth`` in the engine dir; default: only for torch backends.
        validate: Compare the opened backend with torch and record it in the manifest
            (always done when ``precision='auto'`` picks a reduced precision).
        device: CUDA device index for GPU backends.
        replace_any: Replace whatever ``out_dir`` holds (for cache entries this project
            owns). By default ``out_dir`` must be missing, empty or an engine directory
            without other files and without the config or checkpoint inside it.
        calibration: Video whose clips calibrate INT8 (and check it under ``auto``);
            default: the demo video. Used only when INT8 is built or tried.

    Raises:
        ModelConfigError: Bad config or option. CheckpointError: unreadable or unfitting
        checkpoint. InputShapeError: bad ``input_shape``. UnknownBackendError /
        BackendUnavailable / BackendOptionError: backend problems. ExportError: ONNX
        export failed or disagrees with torch. EngineOutputError: ``out_dir`` is a file or
        holds files that are not an engine's, or inputs (see ``replace_any``).
        CalibrationError: INT8 with an unreadable or too short calibration video, or a config
            without a test pipeline to cut calibration clips with.
    """
    if isinstance(config, ModelConfig):
        if cfg_options:
            raise ModelConfigError("build_engine: apply cfg_options when loading the config, not here")
        cfg = config
    else:
        cfg = load_config(config, cfg_options)
    config = cfg.path
    checkpoint = Path(checkpoint)
    out = Path(out_dir)
    if not replace_any:
        check_engine_out(out, {"config": config, "checkpoint": checkpoint})
    elif out.exists() and not out.is_dir():
        raise EngineOutputError(f"out {out} is a file; expected an engine folder")
    name = resolve_backend(backend)
    cls = backend_class(name)
    auto = precision == "auto"
    float_pick = cls.auto_precision() if auto else precision
    if auto:
        precision = "int8" if "int8" in cls.precisions and cls.auto_int8() else float_pick
        logger.info("precision 'auto': trying %s on %s", precision, name)
    options = BackendOptions(precision=precision, max_batch=max_batch, num_threads=num_threads, device=device)
    cls.check_options(options)
    cls.check_available()
    if auto and precision == "int8" and calibration is None and not default_calibration_video().is_file():
        logger.info("precision 'auto': no demo video to calibrate int8 with (pass calibration=VIDEO); trying %s",
                    float_pick)  # fmt: skip
        precision = float_pick
        options = replace(options, precision=precision)
    source = CalibrationSource.resolve(calibration) if precision == "int8" else None
    if average_clips is not None and average_clips not in AVERAGE_CLIPS_CHOICES:
        raise ModelConfigError(f"average_clips: expected one of {AVERAGE_CLIPS_CHOICES}, got {average_clips!r}")

    input_format = cfg.input_format
    clip_shape = None
    if input_shape is None and cfg.clip is not None and cfg.clip.fixed_hw is not None:
        clip_shape = cfg.clip.input_shape(*cfg.clip.fixed_hw)
    shape = _input_shape(input_shape, clip_shape, input_format, config)
    model, ckpt = build_recognizer(cfg.model, checkpoint, config_name=config, trusted=trusted)
    if getattr(model, "input_format", input_format) != input_format:
        raise ModelConfigError(
            f"config {config}: the model takes {model.input_format} but the pipeline says {input_format}"
        )
    mean, std = model_mean_std(model)

    sweep_partials(out)  # what killed builds of this directory left behind
    work = AtomicDir(out)
    engine: Engine | None = None
    try:
        engine = _build_into(
            work.path, model, ckpt, cfg, cls, name, options, config, checkpoint, shape, input_format,
            mean=mean, std=std, auto=auto, validate=validate, fold_normalize=fold_normalize,
            average_clips=average_clips, opset=opset, copy_weights=copy_weights, cfg_options=cfg_options,
            source=source, float_pick=float_pick,
        )  # fmt: skip
        manifest = engine.manifest
        options = replace(options, precision=manifest.precision)
        engine.close()
        engine = None
        work.commit()
    except BaseException:
        if engine is not None:
            engine.close()
        work.discard()
        raise
    logger.info("engine %s ready (backend %s, %s)", out, name, manifest.precision)
    return Engine(out, manifest, cls.open(out, manifest, options))


def _build_into(
    out: Path,
    model: Any,
    ckpt: Any,
    cfg: Any,
    cls: type[Backend],
    name: str,
    options: BackendOptions,
    config: Path,
    checkpoint: Path,
    shape: tuple[int, ...],
    input_format: str,
    *,
    mean: Any,
    std: Any,
    auto: bool,
    validate: bool,
    fold_normalize: bool,
    average_clips: str | None,
    opset: int,
    copy_weights: bool | None,
    cfg_options: Mapping[str, Any] | None,
    source: CalibrationSource | None = None,
    float_pick: str = "fp32",
) -> Engine:
    """Export, prepare, open and validate an engine in ``out`` (a fresh temporary folder)."""
    precision = options.precision
    exported = export_onnx(
        model,
        out / ONNX_NAME,
        shape,
        input_format=input_format,
        fold_normalize=fold_normalize,
        average_clips=average_clips,
        opset=opset,
    )
    write_model_json(out / MODEL_JSON_NAME, cfg.model, cfg.test_pipeline)
    files = {"onnx": ONNX_NAME, "model": MODEL_JSON_NAME}
    keep_weights = name in TORCH_BACKENDS if copy_weights is None else copy_weights
    if keep_weights:
        save_checkpoint(model, out / WEIGHTS_NAME, meta=ckpt.meta if ckpt else None)
        files["weights"] = WEIGHTS_NAME

    head = cfg.model.get("cls_head") or {}
    backbone = cfg.model.get("backbone") or {}
    manifest = Manifest(
        model_type=str(cfg.model["type"]),
        backbone_type=backbone.get("type") if isinstance(backbone, Mapping) else None,
        head_type=head.get("type") if isinstance(head, Mapping) else None,
        input_format=input_format,
        input_shape=shape,
        output_shape=exported.output_shape,
        num_classes=int(getattr(model, "num_classes", exported.output_shape[-1])),
        backend=name,
        precision=precision,
        max_batch=options.max_batch,
        class_names=ckpt.classes if ckpt else None,
        mean=mean,
        std=std,
        normalize_folded=fold_normalize,
        average_clips=getattr(getattr(model, "cls_head", None), "average_clips", None),
        clip=cfg.clip,
        files=files,
        onnx_sha256=exported.sha256,
        opset=exported.opset,
        export_max_abs_diff=exported.max_abs_diff,
        source={
            "config": str(config.resolve()),
            "checkpoint": str(checkpoint.resolve()),
            "checkpoint_sha256": file_sha256(checkpoint),
            "cfg_options": {k: repr(v) for k, v in (cfg_options or {}).items()},
        },
        versions=library_versions(),
    )
    held_out = None
    if source is not None:
        try:
            held_out = _quantize(out, manifest, cfg, source, shape, fold_normalize)
        except CalibrationError as exc:
            if not (auto and source.demo):  # an explicit int8 or calibration video must work
                raise
            logger.warning("precision 'auto': int8 not tried (%s); trying %s", exc, float_pick)
            precision = manifest.precision = float_pick
            options = replace(options, precision=precision)
    manifest.files.update(cls.prepare(out, manifest, options))
    manifest.sha256 = record_hashes(out, skip=[MANIFEST_NAME])
    manifest.save(out)
    engine = Engine(out, manifest, cls.open(out, manifest, options))
    deploy = DeployModel(model, input_format, mean if fold_normalize else None, std if fold_normalize else None)
    if auto and precision == "int8" and held_out is not None:
        engine, options = _auto_int8(engine, deploy.eval(), held_out, float_pick, cls, out, options)
        precision = options.precision
    check_precision = auto and precision != "fp32"
    if not (validate or check_precision):
        return engine
    samples = AUTO_CHECK_SAMPLES if check_precision else min(2, options.max_batch)
    batch = sample_inputs(shape, samples, mean=mean, std=std, normalize=not fold_normalize, seed=3)
    reference = torch_scores(deploy.eval(), batch)
    int8_check = manifest.validation.get("auto_int8")
    manifest.validation = compare(reference, engine.infer(batch))
    if int8_check is not None:
        manifest.validation["auto_int8"] = int8_check
    if check_precision and precision != "int8":
        agreement = manifest.validation["top1_agreement"]
        kept = agreement >= AUTO_MIN_TOP1
        auto_check = {"tried": precision, "top1_agreement": agreement, "kept": kept}
        if not kept:
            logger.warning(
                "precision 'auto': %s agrees with torch fp32 on top-1 for %.0f%% of %d clips (< %.0f%%); using fp32",
                precision, 100 * agreement, samples, 100 * AUTO_MIN_TOP1,
            )  # fmt: skip
            engine.close()
            options = replace(options, precision="fp32")
            engine = _reopen(out, manifest, cls, options)
            manifest.validation.update(compare(reference, engine.infer(batch)))
        manifest.validation["auto_precision"] = auto_check
    manifest.validation["batch"] = int(batch.shape[0])
    logger.info("backend %s %s vs torch: %s", name, manifest.precision, manifest.validation)
    manifest.save(out)
    return engine


def _calibration_spec(cfg: Any, shape: tuple[int, ...]) -> ClipSpec:
    """The clip spec that cuts calibration clips for an engine of per-sample ``shape``.

    Raises:
        CalibrationError: The config has no test pipeline to cut clips with.
    """
    spec: ClipSpec | None = cfg.clip
    if spec is None:
        raise CalibrationError(
            f"config {cfg.path}: no test_pipeline to cut INT8 calibration clips with; add one, or build fp32/bf16"
        )
    if (
        spec.num_views != shape[0]
        and spec.sampler == "SampleFrames"
        and shape[0] % (spec.num_views // spec.num_clips) == 0
    ):
        spec = replace(spec, num_clips=shape[0] // (spec.num_views // spec.num_clips))  # --num-clips builds
    return spec


def _quantize(
    out: Path, manifest: Manifest, cfg: Any, source: CalibrationSource, shape: tuple[int, ...], folded: bool
) -> np.ndarray:
    """Write ``model_int8.onnx`` beside ``model.onnx`` (calibrated on ``source``); returns the held-out clips."""
    start = time.perf_counter()
    spec = _calibration_spec(cfg, shape)
    calib, held_out = calibration_clips(source, spec, shape, normalize=not folded)
    quantize_onnx(out / ONNX_NAME, out / INT8_ONNX_NAME, calib)
    manifest.files["onnx_int8"] = INT8_ONNX_NAME
    manifest.source["calibration"] = {**source.describe(), "clips": len(calib), "check_clips": len(held_out)}
    logger.info("INT8 graph calibrated on %d clips of %s in %.1fs", len(calib), source.path.name,
                time.perf_counter() - start)  # fmt: skip
    return held_out


def best_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds of one ``run()`` call, after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def time_per_clip(engine: Engine, clips: np.ndarray, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds per clip of ``engine`` on ``clips`` (after one warm-up run)."""
    return best_seconds(lambda: engine.infer(clips), repeats) / len(clips)


#: Backends whose cost per clip can grow with the batch (CPU caches), so a cached engine's batch is measured.
BATCH_PROBE_BACKENDS = ("openvino", "onnxruntime")
#: Batch 1 is preferred only if it costs less than this share of the max batch's time per clip.
BATCH_PROBE_MARGIN = 0.95
#: Rounds of (batch 1, max batch) timings; each size keeps its best.
BATCH_PROBE_ROUNDS = 3


def batch_probe(engine: Engine, *, record: bool = True) -> dict[str, Any] | None:
    """Time per clip at batch 1 and at the engine's max batch; which one to run (``preferred``).

    On a CPU a bigger batch is not always cheaper per clip: X3D-S in OpenVINO fp32 on 2 cores
    took 39.5 ms per clip at batch 1 and 50.9 at batch 8 (docs/engines.md). Batch 1 is
    preferred where it costs less than :data:`BATCH_PROBE_MARGIN` of the max batch's time per
    clip. The result is recorded in ``manifest.validation['batch_probe']`` (``record``: also
    saved, for cache entries this project owns) and read back instead of timing again.

    Returns:
        ``{"ms_per_clip": {"1": ..., "<max>": ...}, "max_batch": ..., "preferred": ...}``, or
        None for engines with a max batch of 1 or on backends not in :data:`BATCH_PROBE_BACKENDS`.
    """
    manifest = engine.manifest
    max_batch = int(manifest.max_batch)
    if max_batch <= 1 or engine.backend.name not in BATCH_PROBE_BACKENDS or not manifest.input_shape:
        return None
    recorded = manifest.validation.get("batch_probe")
    if isinstance(recorded, dict) and recorded.get("max_batch") == max_batch:
        return recorded
    clips = np.random.default_rng(0).standard_normal((max_batch, *manifest.input_shape)).astype(np.float32)
    one = full = float("inf")
    for _ in range(BATCH_PROBE_ROUNDS):  # interleaved: a slow phase of a shared machine hits both sizes
        one = min(one, time_per_clip(engine, clips[:1], repeats=2))
        full = min(full, time_per_clip(engine, clips, repeats=2))
    preferred = 1 if one < BATCH_PROBE_MARGIN * full else max_batch
    result = {"ms_per_clip": {"1": round(1e3 * one, 3), str(max_batch): round(1e3 * full, 3)},
              "max_batch": max_batch, "preferred": preferred}  # fmt: skip
    manifest.validation["batch_probe"] = result
    if record:
        manifest.save(engine.engine_dir)
    logger.info("batch probe %s: %s", engine.engine_dir.name, result)
    return result


def int8_disagreement(agreement: float, samples: int) -> str | None:
    """Why ``auto`` drops INT8 for its top-1 agreement with torch fp32 on held-out clips; None if it passes."""
    if agreement >= AUTO_MIN_TOP1:
        return None
    return (
        f"it agrees with torch fp32 on top-1 for {100 * agreement:.0f}% of {samples} held-out clips "
        f"(< {100 * AUTO_MIN_TOP1:.0f}%)"
    )


def int8_not_faster(int8_ms: float, float_ms: float, float_pick: str, per: str) -> str | None:
    """Why ``auto`` drops INT8 for its speed (milliseconds per ``per``) against ``float_pick``; None if faster."""
    if int8_ms < float_ms:
        return None
    return f"it is not faster than {float_pick} ({int8_ms:.1f} vs {float_ms:.1f} ms per {per})"


def _auto_int8(
    engine: Engine,
    deploy: Any,
    held_out: np.ndarray,
    float_pick: str,
    cls: type[Backend],
    out: Path,
    options: BackendOptions,
) -> tuple[Engine, BackendOptions]:
    """``auto``'s INT8 check: keep INT8 if its top-1 agrees with torch fp32 and it beats ``float_pick`` on time.

    Returns the engine and options to go on with: INT8 kept, or ``float_pick`` (which then
    gets its own check). The check is recorded in ``manifest.validation['auto_int8']``.
    """
    manifest = engine.manifest
    result = compare(torch_scores(deploy, held_out), engine.infer(held_out))
    agreement = result["top1_agreement"]
    check: dict[str, Any] = {"tried": "int8", **result, "samples": len(held_out), "versus": float_pick}
    other: Engine | None = None  # the engine at float_pick, once timed
    reason = int8_disagreement(agreement, len(held_out))
    if reason is None:
        timing = held_out[: min(options.max_batch, len(held_out))]
        int8_s = time_per_clip(engine, timing)
        other = _reopen(out, manifest, cls, replace(options, precision=float_pick))
        other_s = time_per_clip(other, timing)
        check.update(ms_per_clip=round(1e3 * int8_s, 3), versus_ms_per_clip=round(1e3 * other_s, 3))
        reason = int8_not_faster(1e3 * int8_s, 1e3 * other_s, float_pick, "clip")
    check["kept"] = reason is None
    if reason is None:
        if other is not None:
            other.close()
        manifest.precision = "int8"
        manifest.sha256 = record_hashes(out, skip=[MANIFEST_NAME])
        manifest.validation = {"auto_int8": check}
        logger.info("precision 'auto': int8 kept (%s)", check)
        return engine, options
    logger.warning("precision 'auto': int8 not kept, %s; trying %s", reason, float_pick)
    engine.close()
    options = replace(options, precision=float_pick)
    manifest.validation = {"auto_int8": {**check, "reason": reason}}
    return (other if other is not None else _reopen(out, manifest, cls, options)), options


def _reopen(out: Path, manifest: Manifest, cls: type[Backend], options: BackendOptions) -> Engine:
    """Prepare and open the engine in ``out`` at ``options.precision``, which the manifest records."""
    manifest.precision = options.precision
    manifest.files.update(cls.prepare(out, manifest, options))
    manifest.sha256 = record_hashes(out, skip=[MANIFEST_NAME])
    return Engine(out, manifest, cls.open(out, manifest, options))


def compare(reference: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Max abs difference and top-1 agreement of ``scores`` against ``reference``."""
    ref = reference.reshape(reference.shape[0], -1)
    got = scores.reshape(scores.shape[0], -1)
    return {
        "max_abs_diff": float(np.max(np.abs(ref - got))),
        "top1_agreement": float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))),
    }
