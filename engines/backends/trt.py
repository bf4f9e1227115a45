"""TensorRT backend (NVIDIA GPUs), written against TensorRT 10's Python API.

Build: ``Builder`` -> ``NetworkDefinition`` (explicit batch) -> ``OnnxParser`` ->
``BuilderConfig`` (FP16/BF16 flags, workspace pool limit, one optimisation profile
with batch ``1..max_batch``) -> ``build_serialized_network``. The serialized engine is
cached in this user's cache, ``~/.cache/action-stream/tensorrt/<key>.plan``
(``$ACTION_STREAM_CACHE`` overrides; see :func:`engines.integrity.local_cache_dir`),
where the key hashes the ONNX file's SHA-256 (checked against the file when the engine
is opened), the TensorRT version, the GPU name, the precision, the profile and the
input shape. A plan is only valid for the TensorRT version and GPU it was built with,
and deserializing one is like loading code, so plans are never read from an engine
folder (which may come from anywhere): each machine builds its own from the verified
ONNX on first load and reuses it afterwards.

Run: ``Runtime.deserialize_cuda_engine`` -> ``IExecutionContext``; per batch,
``set_input_shape`` + ``set_tensor_address`` (torch CUDA tensors as buffers) +
``execute_async_v3`` on torch's current CUDA stream.

INT8 is not offered: it needs calibration data or a Q/DQ graph.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.backends import Backend, BackendOptions, InputSpec, primary_input_spec
from engines.errors import BackendUnavailable, EngineError
from engines.integrity import local_cache_dir

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

PLAN_DIR = "tensorrt"  # folder of :func:`~engines.integrity.local_cache_dir` holding the plans


class TensorRTBuildError(EngineError, RuntimeError):
    """TensorRT could not parse the ONNX graph or build an engine."""


def _import_trt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailable(
            "backend 'tensorrt' needs TensorRT 10: pip install tensorrt --extra-index-url https://pypi.nvidia.com "
            f"(or pip install -e '.[tensorrt]'): {exc}"
        ) from exc
    return tensorrt


def _gpu_name(device: int) -> str:
    import torch

    return str(torch.cuda.get_device_name(device))


def plan_key(manifest: Manifest, options: BackendOptions, trt_version: str, gpu: str) -> str:
    """Cache key of a serialized engine: everything a plan depends on."""
    parts = [
        manifest.onnx_sha256 or "",
        trt_version,
        gpu,
        options.precision,
        str(options.max_batch),
        ",".join(map(str, manifest.input_shape)),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def build_plan(
    onnx_path: Path,
    input_name: str,
    sample_shape: tuple[int, ...],
    options: BackendOptions,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine.

    Raises:
        TensorRTBuildError: If parsing or building fails (parser errors are listed).
    """
    trt = _import_trt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # 10.x is always explicit-batch (the flag is deprecated)
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    opt = min(options.max_batch, 1 if options.performance_hint == "LATENCY" else options.max_batch)
    profile.set_shape(
        input_name,
        (1, *sample_shape),
        (opt, *sample_shape),
        (options.max_batch, *sample_shape),
    )
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    return bytes(serialized)


class TensorRTBackend(Backend):
    """Runs a serialized TensorRT engine on a CUDA device with torch-managed buffers.

    Args:
        plan: Serialized engine bytes.
        input_spec: What :meth:`infer` accepts.
        max_batch: The profile's largest batch; larger batches run in chunks.
        device: CUDA device index.
    """

    name = "tensorrt"
    precisions = ("fp32", "fp16", "bf16")
    int8_refusal = "TensorRT INT8 needs its own calibration (an IInt8Calibrator), which this project does not offer"

    def __init__(self, plan: bytes, input_spec: InputSpec, *, max_batch: int, device: int = 0) -> None:
        super().__init__(input_spec, max_batch)
        import torch

        trt = _import_trt()
        self._torch = torch
        self.device = torch.device("cuda", device)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with torch.cuda.device(self.device):
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise TensorRTBuildError("TensorRT cannot deserialize the cached plan; delete tensorrt/ and rebuild")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self._inputs != [input_spec.name] or len(self._outputs) != 1:
            raise TensorRTBuildError(
                f"engine I/O {self._inputs} -> {self._outputs}; expected [{input_spec.name!r}] -> 1"
            )
        dtype_map = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.BF16: torch.bfloat16,
        }
        self._in_dtype = dtype_map[self.engine.get_tensor_dtype(self._inputs[0])]
        self._out_dtype = dtype_map[self.engine.get_tensor_dtype(self._outputs[0])]

    @classmethod
    def auto_precision(cls) -> str:
        """``'fp16'``: TensorRT keeps fp32 where a layer needs it (the build checks top-1)."""
        return "fp16"

    @classmethod
    def check_available(cls) -> None:
        trt = _import_trt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"backend 'tensorrt' needs a CUDA GPU; TensorRT {trt.__version__} is installed but torch sees no GPU"
            )

    @classmethod
    def _plan_path(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> Path:
        trt = _import_trt()
        key = plan_key(manifest, options, trt.__version__, _gpu_name(options.device))
        return local_cache_dir(PLAN_DIR) / f"{key}.plan"

    @classmethod
    def _ensure_plan(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> Path:
        path = cls._plan_path(engine_dir, manifest, options)
        if path.is_file():
            logger.info("tensorrt: using cached plan %s", path)
            return path
        logger.info("tensorrt: building a %s plan for batch 1..%d (minutes)", options.precision, options.max_batch)
        plan = build_plan(manifest.path_of(engine_dir, "onnx"), manifest.input_name, manifest.input_shape, options)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(plan)
        tmp.replace(path)
        return path

    @classmethod
    def prepare(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> dict[str, str]:
        cls.check_options(options)
        cls.check_available()
        cls._ensure_plan(engine_dir, manifest, options)
        return {}  # the plan lives in this user's cache, not in the engine folder

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> TensorRTBackend:
        cls.check_options(options)
        cls.check_available()
        path = cls._ensure_plan(engine_dir, manifest, options)
        return cls(
            path.read_bytes(),
            primary_input_spec(manifest),
            max_batch=options.max_batch,
            device=options.device,
        )

    def graph_io(self) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
        def dims(name: str) -> tuple[int | None, ...]:
            return tuple(d if d > 0 else None for d in self.engine.get_tensor_shape(name))

        return dims(self._inputs[0]), dims(self._outputs[0])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        name_in, name_out = self._inputs[0], self._outputs[0]
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            inputs = torch.from_numpy(batch).pin_memory().to(self.device, self._in_dtype, non_blocking=True)
            inputs = inputs.contiguous()
            self.context.set_input_shape(name_in, tuple(inputs.shape))
            out_shape = tuple(self.context.get_tensor_shape(name_out))
            outputs = torch.empty(out_shape, dtype=self._out_dtype, device=self.device)
            self.context.set_tensor_address(name_in, inputs.data_ptr())
            self.context.set_tensor_address(name_out, outputs.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise EngineError("tensorrt: execute_async_v3 failed (see TensorRT's log)")
            stream.synchronize()
            return outputs.float().cpu().numpy()

    def close(self) -> None:
        self.context = None
        self.engine = None
