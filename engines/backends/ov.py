"""OpenVINO backend for x86 CPUs (best on Intel: AVX-512, AMX bf16).

At build time the ONNX graph is converted once to OpenVINO IR (``openvino/model.xml``
+ ``.bin``, fp32 weights). At load time the IR is compiled for the CPU with
``INFERENCE_PRECISION_HINT`` (f32, bf16 or f16) and a ``PERFORMANCE_HINT``; each batch
size is compiled with a static shape on first use and kept (static shapes let the CPU
plugin pick its fastest kernels; a real-time pipeline uses one or two batch sizes). Named
engines (:meth:`OpenVinoBackend.run_named`: detectors, pose models) do the same per set of
input shapes, up to :data:`MAX_STATIC_SHAPES` of them; further shapes share one dynamic
compile. Measured on RTMPose-m, batch 3, fp32 (AMD EPYC, 2 cores, shared: load average ~5,
25 interleaved runs): median 472 ms static vs 609 ms dynamic; a compile costs 0.3-1 s, once
per shape.

A CPU without bf16/f16 support silently runs f32 under OpenVINO; the backend reads the
precision actually compiled and logs a warning when it differs from the request
(:attr:`OpenVinoBackend.effective_precision`).

Every OpenVINO user in the project shares one process-wide ``ov.Core`` (:func:`shared_core`),
created on first use and never released: see its docstring for the crash this avoids.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.backends import Backend, BackendOptions, InputSpec, graph_role, primary_input_spec
from engines.errors import BackendUnavailable
from engines.integrity import check_input_dims

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

#: int8 runs the quantized graph's int8 ops in int8 and the rest in f32.
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
IR_DIR = "openvino"
IR_NAME = "model.xml"
#: Input-shape sets a named engine compiles statically (e.g. a pose model's people per call).
MAX_STATIC_SHAPES = 16
IR_INT8_NAME = "model_int8.xml"
#: Does ``precision='auto'`` try INT8 first on OpenVINO? (kept only if its top-1 labels agree with
#: torch fp32 and it runs faster than the float precision ``auto`` would pick; see docs/engines.md.)
AUTO_INT8 = True


def _import_ov() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend 'openvino' needs OpenVINO: pip install openvino (or pip install -e '.[openvino]'): {exc}"
        ) from exc
    return openvino


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def shared_core() -> Any:
    """The process-wide ``openvino.Core``: created on first use, kept until the process exits.

    OpenVINO's CPU plugin, when a Core first loads it, gives the calling thread a new
    alternate signal stack (mmap) and unmaps that stack when the plugin is destroyed with
    its Core, without restoring the thread's previous stack unless the destruction happens
    in the same thread and in reverse order of creation. Cores released in another thread
    (a pipeline stage, the garbage collector) or out of order leave the main thread's signal
    stack pointing at unmapped memory, and the next Ctrl-C or SIGTERM then kills the process
    with a segmentation fault instead of running Python's handler (and before faulthandler
    can say why). One Core that is never destroyed keeps one CPU plugin alive, so no signal
    stack is ever unmapped. ``ov.Core`` is thread-safe; per-model settings go to
    ``compile_model`` (never ``set_property`` on the shared Core).

    Raises:
        BackendUnavailable: If OpenVINO is not installed.
    """
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = _import_ov().Core()
        return _CORE


#: /proc/cpuinfo flags of int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX-INT8).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_vnni(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True if the CPU lists an int8 dot-product instruction set (False where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not VNNI_FLAGS.isdisjoint(line.split(":", 1)[-1].split())
    return False


def _type_name(value: Any) -> str:
    text = str(value).lower()
    for name in ("bf16", "f16", "f32"):
        if name in text or {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[name] in text:
            return name
    return text


class OpenVinoBackend(Backend):
    """Runs an OpenVINO IR (or ONNX file) on the CPU.

    Args:
        model_path: ``model.xml`` or ``model.onnx``.
        input_spec: What :meth:`infer` accepts.
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` (the inference precision hint).
        performance_hint: ``'LATENCY'`` or ``'THROUGHPUT'``.
        num_threads: ``INFERENCE_NUM_THREADS`` (``None``: OpenVINO's default).
        max_batch: Chunk size for large batches.
        device: OpenVINO device name.
    """

    name = "openvino"
    precisions = ("fp32", "bf16", "fp16", "int8")

    def __init__(
        self,
        model_path: str | Path,
        input_spec: InputSpec,
        *,
        precision: str = "fp32",
        performance_hint: str = "LATENCY",
        num_threads: int | None = None,
        max_batch: int | None = None,
        device: str = "CPU",
    ) -> None:
        super().__init__(input_spec, max_batch)
        ov = _import_ov()
        self._ov = ov
        self.core = shared_core()
        if precision == "int8" and Path(model_path).suffix == ".onnx":
            # read_model on a QDQ ONNX file scored wrong (0.67 off on the demo recognizer, OpenVINO
            # 2026.4); convert_model (what prepare() saves as IR) matches ONNX Runtime within 0.012
            self.model = ov.convert_model(str(model_path))
        else:
            self.model = self.core.read_model(str(model_path))
        graph_input = self.model.input(0).get_partial_shape()  # checked before compiling for it
        dims = tuple(d.get_length() if d.is_static else None for d in graph_input)
        spec_dims = tuple("dynamic" if d is None else d for d in input_spec.shape)
        check_input_dims(f"engine {Path(model_path).parent}", dims, spec_dims)
        self.device = device
        self.precision = precision
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "PERFORMANCE_HINT": performance_hint,
        }
        if num_threads:
            self.config["INFERENCE_NUM_THREADS"] = num_threads
        self._compiled: dict[int, Any] = {}
        self._requests: dict[int, Any] = {}
        self._dynamic: Any = None
        self._named: dict[tuple[tuple[str, tuple[int, ...]], ...], Any] = {}
        self.effective_precision = self._compile(1) if len(self.model.inputs) == 1 else precision

    @classmethod
    def check_available(cls) -> None:
        _import_ov()

    @classmethod
    def auto_int8(cls) -> bool:
        """Whether ``auto`` tries INT8 first: :data:`AUTO_INT8` on a CPU with int8 dot products (VNNI / AMX).

        Measured only on such a CPU (:mod:`benchmarks.int8`); elsewhere ``auto`` keeps to its float choice.
        """
        return AUTO_INT8 and cpu_has_vnni()

    @classmethod
    def auto_precision(cls) -> str:
        """``'bf16'`` where the CPU computes it natively (AVX-512 BF16 / AMX), else ``'fp32'``.

        Measured on a Xeon with AMX (2 threads): bf16 ran the R50 families 3-6x faster than
        OpenVINO fp32 (6-17x torch eager), top-1 unchanged. Without native bf16, OpenVINO would
        emulate it slowly, so fp32 stays.
        """
        try:
            capabilities = shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        except Exception as exc:  # a failed query only means "no bf16 here"
            logger.debug("OpenVINO CPU capabilities unavailable: %s", exc)
            return "fp32"
        return "bf16" if "BF16" in capabilities else "fp32"

    @classmethod
    def prepare(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> dict[str, str]:
        """Convert ``model.onnx`` to IR in ``openvino/`` (fp32 weights; precision is chosen at load).

        For int8, the quantized ``model_int8.onnx`` becomes ``openvino/model_int8.xml`` (its
        QDQ pairs become FakeQuantize ops, which the CPU plugin runs in int8).
        """
        cls.check_options(options)
        ov = _import_ov()
        int8 = options.precision == "int8"
        onnx_path = manifest.path_of(engine_dir, graph_role(engine_dir, manifest, options.precision))
        name = IR_INT8_NAME if int8 else IR_NAME
        target = Path(engine_dir) / IR_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(ov.convert_model(str(onnx_path)), str(target), compress_to_fp16=False)
        return {"openvino_int8" if int8 else "openvino": f"{IR_DIR}/{name}"}

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> OpenVinoBackend:
        cls.check_options(options)
        ir = "openvino_int8" if options.precision == "int8" else "openvino"
        path = (
            manifest.path_of(engine_dir, ir)
            if ir in manifest.files
            else manifest.path_of(engine_dir, graph_role(engine_dir, manifest, options.precision))
        )
        return cls(
            path,
            primary_input_spec(manifest),
            precision=options.precision,
            performance_hint=options.performance_hint,
            num_threads=options.num_threads,
            max_batch=options.max_batch,
        )

    def graph_io(self) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
        def dims(partial: Any) -> tuple[int | None, ...]:
            return tuple(d.get_length() if d.is_static else None for d in partial)

        # the batch-1 compile has static shapes: the class count without running anything
        compiled = self._compiled.get(1)
        output = (compiled or self.model).output(0).get_partial_shape()
        return dims(self.model.input(0).get_partial_shape()), dims(output)

    def _compile(self, batch: int) -> str:
        model = self.model.clone()
        model.reshape({self.input_spec.name: self._ov.PartialShape([batch, *self.input_spec.sample_shape])})
        compiled = self.core.compile_model(model, self.device, self.config)
        self._compiled[batch] = compiled
        self._requests[batch] = compiled.create_infer_request()
        effective = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        wanted = _OV_PRECISION[self.precision]
        if batch == 1 and effective != wanted and self.precision != "int8":
            logger.warning(
                "openvino: asked for %s but the %s plugin compiled %s (no native support on this CPU)",
                wanted,
                self.device,
                effective,
            )
        return effective

    def _run(self, batch: np.ndarray) -> np.ndarray:
        size = batch.shape[0]
        if size not in self._requests:
            self._compile(size)
        request = self._requests[size]
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def run_named(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run validated named inputs whole; returns the named outputs.

        Each new set of input shapes is compiled statically (kept, up to
        :data:`MAX_STATIC_SHAPES`); beyond that, and for any input with an empty axis, one
        dynamically shaped compile serves the rest.
        """
        key = tuple(sorted((name, tuple(int(d) for d in value.shape)) for name, value in feeds.items()))
        request = self._named.get(key)
        # An empty input (a frame without people) never gets a static compile: OpenVINO's CPU
        # plugin dies with SIGFPE compiling a zero-sized static dimension; the dynamic compile
        # runs it fine.
        empty = any(d == 0 for _, shape in key for d in shape)
        if request is None and not empty and len(self._named) < MAX_STATIC_SHAPES:
            model = self.model.clone()
            model.reshape({name: self._ov.PartialShape(list(shape)) for name, shape in key})
            request = self._named[key] = self.core.compile_model(model, self.device, self.config).create_infer_request()
        if request is None:
            if self._dynamic is None:
                self._dynamic = self.core.compile_model(self.model, self.device, self.config).create_infer_request()
            request = self._dynamic
        result = request.infer(feeds)
        by_name = {name: value for port, value in result.items() for name in port.get_names()}
        return {name: np.array(by_name[name], copy=True) for name in outputs}
