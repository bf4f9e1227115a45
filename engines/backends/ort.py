"""ONNX Runtime backend: the portable default (CPU; CUDA / TensorRT execution providers when present)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.backends import Backend, BackendOptions, InputSpec, primary_input_spec
from engines.errors import BackendUnavailable

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

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
    precisions = ("fp32",)

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
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=provider_list)
        self.providers = self.session.get_providers()
        self._output = self.session.get_outputs()[0].name
        logger.info("onnxruntime: %s with providers %s", onnx_path, self.providers)

    @classmethod
    def check_available(cls) -> None:
        _import_ort()

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> OnnxRuntimeBackend:
        cls.check_options(options)
        return cls(
            manifest.path_of(engine_dir, "onnx"),
            primary_input_spec(manifest),
            num_threads=options.num_threads,
            cache_dir=Path(engine_dir) / "onnxruntime_trt_cache",
            max_batch=options.max_batch,
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self.input_spec.name: batch})[0]

    def run_named(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run validated named inputs whole; returns the named outputs."""
        return dict(zip(outputs, self.session.run(outputs, feeds), strict=True))
