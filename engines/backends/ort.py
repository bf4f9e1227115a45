"""ONNX Runtime backend: the portable default (CPU; CUDA / TensorRT execution providers when present)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.backends import Backend, BackendOptions, InputSpec, graph_role, primary_input_spec
from engines.errors import BackendUnavailable
from engines.integrity import REBUILD, EngineFileError, local_cache_dir

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

#: Does ``precision='auto'`` try INT8 before fp32 on ONNX Runtime? No: ``auto`` on ONNX Runtime
#: stays exact fp32 (a contract the pipelines and their tests rely on), and INT8 here is asked for
#: explicitly (``--precision int8``). The measurements are in docs/engines.md (INT8).
AUTO_INT8 = False
#: Execution providers used when present, best first.
_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend 'onnxruntime' needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu): {exc}"
        ) from exc
    return onnxruntime


def _session_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """onnxruntime's load errors (``InvalidProtobuf``, ``Fail``, ...), which derive from ``Exception`` only."""
    state = ort.capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph", "RuntimeException")
    return (RuntimeError, OSError, *(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type)))


class OnnxRuntimeBackend(Backend):
    """Runs ``model.onnx`` with ONNX Runtime, graph optimisations at ``ORT_ENABLE_ALL``.

    Args:
        onnx_path: The exported model.
        input_spec: What :meth:`infer` accepts.
        num_threads: Intra-op threads (``None``: ONNX Runtime's default, one per core).
        providers: Execution providers; default: those of TensorRT, CUDA, CPU that are present.
        cache_dir: Where the TensorRT execution provider caches its engines.
        max_batch: Chunk size for large batches (``None``: no chunking).
    """

    name = "onnxruntime"
    precisions = ("fp32", "int8")

    def __init__(
        self,
        onnx_path: str | Path,
        input_spec: InputSpec,
        *,
        num_threads: int | None = None,
        providers: list[str] | None = None,
        cache_dir: str | Path | None = None,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(input_spec, max_batch)
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if num_threads:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        chosen = providers or [p for p in _PREFERRED if p in available]
        provider_list: list[Any] = []
        for provider in chosen:
            if provider == "TensorrtExecutionProvider" and cache_dir is not None:
                provider_list.append(
                    (provider, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir)})
                )
            else:
                provider_list.append(provider)
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=provider_list)
        except _session_errors(ort) as exc:  # onnxruntime's errors derive from Exception only
            detail = " ".join(str(exc).split())[:300]
            raise EngineFileError(f"{onnx_path}: onnxruntime cannot load it ({detail}); {REBUILD}") from exc
        self.providers = self.session.get_providers()
        self._output = self.session.get_outputs()[0].name
        logger.info("onnxruntime: %s with providers %s", onnx_path, self.providers)

    @classmethod
    def check_available(cls) -> None:
        _import_ort()

    @classmethod
    def auto_int8(cls) -> bool:
        """Whether ``auto`` tries INT8 first: see :data:`AUTO_INT8` (measured in :mod:`benchmarks.int8`)."""
        return AUTO_INT8

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> OnnxRuntimeBackend:
        cls.check_options(options)
        available = _import_ort().get_available_providers()
        cache_dir = None
        if "TensorrtExecutionProvider" in available:  # compiled plans: this user's cache, never the engine folder
            cache_dir = local_cache_dir("onnxruntime_trt") / (manifest.onnx_sha256 or "unknown")[:20]
        return cls(
            manifest.path_of(engine_dir, graph_role(engine_dir, manifest, options.precision)),
            primary_input_spec(manifest),
            num_threads=options.num_threads,
            cache_dir=cache_dir,
            max_batch=options.max_batch,
        )

    def graph_io(self) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
        def dims(shape: list[Any]) -> tuple[int | None, ...]:
            return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)

        return dims(self.session.get_inputs()[0].shape), dims(self.session.get_outputs()[0].shape)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self.input_spec.name: batch})[0]

    def run_named(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run validated named inputs whole; returns the named outputs."""
        return dict(zip(outputs, self.session.run(outputs, feeds), strict=True))
