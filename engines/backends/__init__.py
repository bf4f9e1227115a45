"""Inference backends behind one narrow interface: an :class:`InputSpec` and ``infer(batch)``.

Every backend turns a float32 batch shaped like :attr:`Backend.input_spec` into class
scores ``(N, num_classes)``. Backends are looked up by name in :data:`BACKENDS`, a
plain dict from name to ``"module:Class"``; the module is imported only when that
backend is asked for, and the optional library it wraps (onnxruntime, openvino,
tensorrt) only when the backend is opened, so a missing library costs nothing until
then and fails with :class:`~engines.errors.BackendUnavailable` and an install hint.

Adding a backend: write a module with a :class:`Backend` subclass (``name``,
``precisions``, ``check_available``, ``open``, ``_run``; ``prepare`` if it builds
files at build time), then add it to :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib
import logging
import platform
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from engines.errors import BackendUnavailable, EngineError, InputShapeError
from engines.integrity import EngineFileError

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

#: Backend name -> ``"module:Class"``, imported on first use.
BACKENDS: dict[str, str] = {
    "onnxruntime": "engines.backends.ort:OnnxRuntimeBackend",
    "openvino": "engines.backends.ov:OpenVinoBackend",
    "tensorrt": "engines.backends.trt:TensorRTBackend",
    "torch": "engines.backends.torch_backend:TorchBackend",
    "torch-cuda": "engines.backends.torch_backend:TorchCudaBackend",
}

#: Names accepted where a backend is chosen; ``auto`` is resolved by :func:`select_backend`.
BACKEND_CHOICES = ("auto", *BACKENDS)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: ``--precision`` choices of the entry points: ``auto`` or one of :data:`PRECISIONS`.
PRECISION_CHOICES = ("auto", *PRECISIONS)
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")


class BackendOptionError(EngineError, ValueError):
    """A backend option (precision, hint, compile mode, ...) is not supported."""


class UnknownBackendError(EngineError, KeyError):
    """A backend name is not in :data:`BACKENDS`."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class InputSpec:
    """What a backend accepts.

    Attributes:
        name: Graph input name.
        layout: Axes of the array, e.g. ``'NVCHW'`` (batch, view, channel, height, width).
        shape: Full shape with ``None`` for the dynamic batch axis.
        dtype: NumPy dtype name; always ``'float32'``.
    """

    name: str
    layout: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if len(self.layout) != len(self.shape):
            raise ValueError(f"InputSpec: layout {self.layout!r} has {len(self.layout)} axes, shape {self.shape}")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample (the batch axis removed)."""
        return tuple(int(d) for d in self.shape[1:] if d is not None)

    def validate(self, batch: object) -> np.ndarray:
        """Check a batch against this spec and return it as a C-contiguous float32 array.

        Float arrays of other precisions are cast; integer and other arrays are refused,
        so a ``uint8`` image is never silently fed to a normalised-input engine.

        Raises:
            InputShapeError: If ``batch`` is not a float ndarray, or its shape differs
                from the spec (the message gives expected and got).
        """
        if not isinstance(batch, np.ndarray):
            raise InputShapeError(f"input {self.name!r}: expected a numpy.ndarray, got {type(batch).__name__}")
        expected = "(" + ", ".join("N" if d is None else str(d) for d in self.shape) + ")"
        if batch.ndim != len(self.shape) or any(
            want is not None and got != want for want, got in zip(self.shape, batch.shape, strict=False)
        ):
            raise InputShapeError(
                f"input {self.name!r}: expected shape {expected} ({self.layout}), got {tuple(batch.shape)}"
            )
        if batch.shape[0] == 0:
            raise InputShapeError(f"input {self.name!r}: expected at least one sample, got an empty batch")
        if not np.issubdtype(batch.dtype, np.floating):
            raise InputShapeError(
                f"input {self.name!r}: expected dtype {self.dtype}, got {batch.dtype}; convert with .astype(np.float32)"
            )
        return np.ascontiguousarray(batch, dtype=np.float32)


def primary_input_spec(manifest: Manifest) -> InputSpec:
    """The :class:`InputSpec` of an engine's first named input (dynamic axes as ``None``)."""
    first = manifest.inputs[0]
    layout = first.layout or "?" * len(first.shape)
    return InputSpec(first.name, layout, tuple(None if isinstance(d, str) else d for d in first.shape), first.dtype)


@dataclass(frozen=True)
class BackendOptions:
    """Options a backend is opened with; each backend reads the ones it knows.

    Attributes:
        precision: ``'fp32'``, ``'fp16'``, ``'bf16'`` or ``'int8'`` (each backend lists what it
            supports; ``'int8'`` runs the engine's quantized graph, see :mod:`engines.quantize`).
        max_batch: Largest batch per run; larger batches are split into chunks.
        num_threads: CPU threads (onnxruntime intra-op, OpenVINO, torch); ``None``: library default.
        performance_hint: OpenVINO ``'LATENCY'`` or ``'THROUGHPUT'``.
        compile: torch backends: ``None`` (eager) or a ``torch.compile`` mode
            (``'default'``, ``'reduce-overhead'`` (CUDA graphs), ``'max-autotune'``).
        workspace_mb: TensorRT builder memory pool limit.
        device: CUDA device index for GPU backends.
    """

    precision: str = "fp32"
    max_batch: int = 4
    num_threads: int | None = None
    performance_hint: str = "LATENCY"
    compile: str | None = None
    workspace_mb: int = 2048
    device: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BackendOptionError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.max_batch, int) or self.max_batch <= 0:
            raise BackendOptionError(f"max_batch: expected a positive int, got {self.max_batch!r}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads <= 0):
            raise BackendOptionError(f"num_threads: expected a positive int or None, got {self.num_threads!r}")
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise BackendOptionError(
                f"performance_hint: expected one of {PERFORMANCE_HINTS}, got {self.performance_hint!r}"
            )
        if self.compile not in COMPILE_MODES:
            raise BackendOptionError(f"compile: expected one of {COMPILE_MODES}, got {self.compile!r}")


def graph_role(engine_dir: Path, manifest: Manifest, precision: str) -> str:
    """The manifest's file role of the ONNX graph to run: ``onnx_int8`` (the quantized graph) for int8.

    Raises:
        EngineFileError: If int8 is asked for but the engine holds no quantized graph.
    """
    if precision != "int8":
        return "onnx"
    if "onnx_int8" not in manifest.files:
        raise EngineFileError(
            f"engine {engine_dir} holds no INT8 graph (built as {manifest.precision}); rebuild it with --int8 "
            "(precision='int8') or open it with another precision"
        )
    return "onnx_int8"


class Backend(ABC):
    """One way of running an engine. Subclasses implement :meth:`open` and :meth:`_run`.

    Attributes:
        name: Registry name.
        precisions: Precisions it supports.
        input_spec: What :meth:`infer` accepts.
        max_batch: Largest batch per run; :meth:`infer` splits larger batches.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    install_hint: ClassVar[str] = ""
    #: Why a backend without ``'int8'`` in :attr:`precisions` cannot run INT8 (part of the error).
    int8_refusal: ClassVar[str] = "INT8 is not offered on this backend"

    def __init__(self, input_spec: InputSpec, max_batch: int | None = None) -> None:
        self.input_spec = input_spec
        self.max_batch = max_batch

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`BackendUnavailable` (with an install hint) if this backend can't run here."""

    @classmethod
    def is_available(cls) -> bool:
        """True if :meth:`check_available` passes."""
        try:
            cls.check_available()
        except BackendUnavailable:
            return False
        return True

    @classmethod
    def auto_precision(cls) -> str:
        """The precision ``precision='auto'`` tries first on this machine (the build checks it).

        ``'fp32'`` unless the backend has a faster precision the hardware runs natively.
        """
        return "fp32"

    @classmethod
    def auto_int8(cls) -> bool:
        """Whether ``precision='auto'`` tries INT8 first on this machine (the build checks its top-1 and speed).

        False unless the backend runs INT8 and it was measured faster here (see :mod:`benchmarks.int8`).
        """
        return False

    @classmethod
    def check_options(cls, options: BackendOptions) -> None:
        """Refuse options this backend does not support.

        Raises:
            BackendOptionError: If the precision is not one of :attr:`precisions`.
        """
        if options.precision == "int8" and "int8" not in cls.precisions:
            raise BackendOptionError(
                f"backend {cls.name!r} cannot run precision int8: {cls.int8_refusal}; use --backend onnxruntime or "
                "openvino for int8"
            )
        if options.precision not in cls.precisions:
            raise BackendOptionError(
                f"backend {cls.name!r} supports precision {', '.join(cls.precisions)}; got {options.precision!r}"
            )

    @classmethod
    def prepare(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> dict[str, str]:
        """Build-time work (converting, compiling, caching); returns files to add to the manifest."""
        return {}

    @classmethod
    @abstractmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> Backend:
        """Load the engine in ``engine_dir`` for inference."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run one validated batch of at most :attr:`max_batch` samples."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Scores for a batch.

        Args:
            batch: float32 array shaped like :attr:`input_spec` (any batch size >= 1).

        Returns:
            float32 scores, ``(N, num_classes)``.

        Raises:
            InputShapeError: If the batch does not fit :attr:`input_spec`.
        """
        batch = self.input_spec.validate(batch)
        step = self.max_batch or batch.shape[0]
        if batch.shape[0] <= step:
            return np.asarray(self._run(batch), dtype=np.float32)
        parts = [self._run(batch[start : start + step]) for start in range(0, batch.shape[0], step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def graph_io(self) -> tuple[tuple[int | None, ...] | None, tuple[int | None, ...] | None] | None:
        """Input and output shapes of the opened graph (``None`` for a dynamic or unknown axis).

        :func:`~engines.engine.load_engine` compares them with the manifest. ``None`` (the
        default) means the backend cannot tell; either shape may also be ``None``.
        """
        return None

    def close(self) -> None:
        """Release what the backend holds (sessions, GPU memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (imports its module on first use).

    Raises:
        UnknownBackendError: If ``name`` is unknown; the message lists the valid names.
    """
    target = BACKENDS.get(name)
    if target is None:
        raise UnknownBackendError(f"unknown backend {name!r}; valid backends: {', '.join(BACKEND_CHOICES)}")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, class_name)
    return cls


#: Backends that run only on a CUDA GPU.
GPU_BACKENDS = ("tensorrt", "torch-cuda")


def cuda_available() -> bool:
    """True if torch sees a CUDA device."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without a GPU or a CUDA build)."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def is_x86_cpu() -> bool:
    """True on an x86-64 CPU, where OpenVINO's CPU plugin runs (Intel or AMD).

    Measured on an AMD EPYC (AVX2 only): OpenVINO fp32 beat ONNX Runtime for every model
    family (1.1-3x), so it is preferred on any x86 CPU, not only Intel's.
    """
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def select_backend(device: str = "any") -> str:
    """Pick the best available backend for this machine and log why.

    Order: TensorRT (importable and a CUDA GPU), ``torch-cuda`` (a CUDA GPU),
    OpenVINO (installed, on an x86 CPU), ONNX Runtime. ``device="cpu"`` skips the GPU backends.
    """
    gpu = device != "cpu" and cuda_available()
    if gpu and backend_class("tensorrt").is_available():
        choice, why = "tensorrt", "TensorRT is installed and a CUDA GPU is present"
    elif gpu:
        choice, why = "torch-cuda", "a CUDA GPU is present but TensorRT is not installed"
    elif is_x86_cpu() and backend_class("openvino").is_available():
        choice, why = "openvino", "CPU: x86 with OpenVINO installed"
    else:
        choice, why = "onnxruntime", "CPU: no OpenVINO for this processor"
    logger.info("backend 'auto' chose %r: %s", choice, why)
    return choice


def resolve_backend(name: str | None, default: str = "auto") -> str:
    """Turn ``None``/``'auto'``/a name into a concrete backend name.

    Raises:
        UnknownBackendError: If the name is unknown.
    """
    name = name or default
    if name == "auto":
        return select_backend()
    backend_class(name)
    return name


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "GPU_BACKENDS",
    "Backend",
    "BackendOptionError",
    "BackendOptions",
    "BackendUnavailable",
    "InputSpec",
    "UnknownBackendError",
    "backend_class",
    "cuda_available",
    "cuda_device_count",
    "primary_input_spec",
    "resolve_backend",
    "select_backend",
]
