"""Engines for any torch module with named inputs and outputs (RoI heads, detectors, skeleton models).

Recognizers go through :func:`engines.engine.build_engine`, which knows MMAction2's configs.
Other models — a spatio-temporal RoI head taking ``features`` and ``rois``, a detector giving
``boxes`` / ``scores`` / ``labels`` — are built here from the torch module and their
:class:`~engines.tensors.TensorSpec`\\ s, with the same export, parity check, backends and
engine directory layout::

    engine = build_graph_engine(head, inputs=[feats, rois], outputs=[scores], example=feeds,
                                out_dir="engines/roi_head", backend="openvino")
    engine.run({"features": f, "rois": r})["scores"]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends import BackendOptions, backend_class, resolve_backend
from engines.engine import Engine
from engines.errors import ExportError
from engines.integrity import record_hashes
from engines.manifest import MANIFEST_NAME, Manifest, library_versions
from engines.tensors import TensorSpec, export_graph, parity

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"


def build_graph_engine(
    module: Any,
    *,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    example: Mapping[str, np.ndarray],
    out_dir: str | Path,
    backend: str = "onnxruntime",
    model_type: str = "graph",
    num_classes: int = 1,
    class_names: list[str] | None = None,
    check: Mapping[str, np.ndarray] | None = None,
    atol: float = 1e-4,
    num_threads: int | None = None,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
) -> Engine:
    """Export ``module`` with named tensors, write an engine directory, open it and check it.

    Args:
        module: ``module(*inputs) -> outputs`` (a tensor, or a tuple in the order of ``outputs``).
        inputs: Input specs in the order ``module`` takes them; dynamic axes named.
        outputs: Output specs in the order ``module`` returns them.
        example: Inputs to trace with.
        out_dir: Engine directory to write.
        backend: A backend that runs named inputs: ``onnxruntime`` or ``openvino`` (``auto`` picks).
        model_type: Recorded in the manifest (e.g. ``'AVARoIHead'``).
        num_classes: Classes of the model's scores, recorded for consumers.
        class_names: Optional class names.
        check: Inputs with other dynamic sizes than ``example`` for the parity checks.
        atol: Largest accepted difference between the engine and torch (fp32).
        num_threads: CPU threads for the backend.
        precision: The backend's inference precision (``'fp32'``, or ``'bf16'`` / ``'fp16'``
            where it offers them). A reduced precision is not held to ``atol``: its measured
            difference is recorded, and the caller decides (e.g. by top-1 labels, as
            :func:`engines.frame_reuse.build_reuse_engines` does). ``'int8'`` (one-input graphs):
            the exported graph is quantized (:func:`engines.quantize.quantize_onnx`, QDQ) on
            ``calibration`` and the backend runs that graph.
        calibration: For ``'int8'``: inputs ``(N, ...)`` the quantizer calibrates on, one
            row per call (each row gets a leading axis of 1).

    Returns:
        The opened engine; ``manifest.validation`` holds its measured agreement with torch.

    Raises:
        ExportError: The export failed, or ONNX Runtime / the backend (fp32) disagrees with torch.
        InputShapeError: ``example`` or ``check`` do not fit ``inputs``.
        BackendOptionError: The backend does not offer ``precision``.
        ExportError: ``'int8'`` without calibration inputs, or for a graph with several inputs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = resolve_backend(backend)
    cls = backend_class(name)
    options = BackendOptions(precision=precision, max_batch=1, num_threads=num_threads)
    cls.check_options(options)
    cls.check_available()
    if precision == "int8" and (calibration is None or len(inputs) != 1 or not len(calibration)):
        raise ExportError(
            f"{model_type}: precision int8 needs calibration inputs and a graph with one input "
            f"(got {len(inputs)} input(s), {0 if calibration is None else len(calibration)} calibration rows)"
        )
    export_diff = export_graph(module, out / ONNX_NAME, inputs, outputs, example, check=check, atol=atol)
    manifest = Manifest(
        model_type=model_type,
        backbone_type=None,
        head_type=None,
        input_format="",
        input_shape=(),
        output_shape=(),
        num_classes=num_classes,
        backend=name,
        precision=precision,
        class_names=class_names,
        files={"onnx": ONNX_NAME},
        export_max_abs_diff=export_diff,
        versions=library_versions(),
        inputs=list(inputs),
        outputs=list(outputs),
    )
    if precision == "int8" and calibration is not None:
        from engines.quantize import INT8_ONNX_NAME, quantize_onnx

        quantize_onnx(out / ONNX_NAME, out / INT8_ONNX_NAME, np.asarray(calibration, np.float32))
        manifest.files["onnx_int8"] = INT8_ONNX_NAME
    manifest.files.update(cls.prepare(out, manifest, options))
    manifest.sha256 = record_hashes(out, skip=[MANIFEST_NAME])
    manifest.save(out)
    engine = Engine(out, manifest, cls.open(out, manifest, options))
    feeds = check or example
    torch_out = _torch_outputs(module, inputs, feeds)
    got = engine.run(feeds)
    worst = max(
        (_max_diff(spec, want, got[spec.name]) for spec, want in zip(outputs, torch_out, strict=True)), default=0.0
    )
    manifest.validation = {"max_abs_diff": worst, "backend": name}
    manifest.save(out)
    if precision == "fp32" and not worst <= atol:
        engine.close()
        raise ExportError(f"{name} differs from torch by {worst:.3g} (> {atol}) on {model_type}")
    logger.info("built %s %s engine %s (max |engine - torch| = %.2g)", name, precision, out, worst)
    return engine


#: What a graph engine's user may ask for: ``auto`` tries the backend's fast precision under a task check.
GRAPH_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def auto_candidate(backend: str) -> str | None:
    """The reduced precision ``precision='auto'`` tries on ``backend`` here, or None (fp32 only).

    OpenVINO offers bf16 where the CPU computes it natively (:meth:`Backend.auto_precision`);
    ONNX Runtime's CPU engines are fp32 only.
    """
    tried = backend_class(backend).auto_precision()
    return None if tried == "fp32" else tried


def resolve_graph_precision(precision: str, backend: str) -> tuple[str, str | None]:
    """The precision a graph engine is cached under, and the reduced one ``auto`` tries (or None).

    ``auto`` on a backend without a fast precision here is plain fp32 (the same cache entry).
    """
    tried = auto_candidate(backend) if precision == "auto" else None
    return ("fp32" if precision == "auto" and tried is None else precision), tried


def try_reduced_precision(
    engine: Engine, precision: str, agree: Callable[[Engine, Engine], dict[str, Any]]
) -> dict[str, Any]:
    """Keep ``precision`` for a freshly built fp32 graph engine only if ``agree`` says it gives the same results.

    The engine's files are opened a second time at ``precision``; ``agree(fp32, reduced)``
    compares the two on the model's task (boxes, keypoints) and returns a dict with ``kept``.
    The dict (plus ``tried``) is recorded as ``manifest.validation['auto_precision']``, and
    when kept, ``manifest.precision`` becomes ``precision``, so that the folder opens at that
    precision from then on (:func:`~engines.engine.load_engine` reads it).

    Args:
        engine: An fp32 engine just built by :func:`build_graph_engine`.
        precision: The reduced precision to try (``bf16`` / ``fp16``).
        agree: The task check.

    Returns:
        The check's result.
    """
    from engines.engine import load_engine

    reduced = load_engine(engine.engine_dir, engine.backend.name, precision=precision)
    try:
        result = {**agree(engine, reduced), "tried": precision}
    finally:
        reduced.close()
    manifest = engine.manifest
    manifest.validation["auto_precision"] = result
    if result.get("kept"):
        manifest.precision = precision
    manifest.save(engine.engine_dir)
    return result


def _max_diff(spec: TensorSpec, want: np.ndarray, got: np.ndarray) -> float:
    if want.shape != got.shape:
        raise ExportError(f"output {spec.name!r}: the engine gives shape {got.shape}, torch {want.shape}")
    return float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64)))) if want.size else 0.0


def _torch_outputs(module: Any, inputs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        ref = module.eval()(*(torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in inputs))
    return [r.detach().numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]


__all__ = [
    "GRAPH_PRECISIONS",
    "auto_candidate",
    "build_graph_engine",
    "parity",
    "resolve_graph_precision",
    "try_reduced_precision",
]
