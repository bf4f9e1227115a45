"""torch backends: ``torch`` (eager CPU reference, optional ``torch.compile``) and ``torch-cuda``.

Both rebuild the recognizer from the engine directory's ``model.json`` (the model dict as
data; engines of format 2 kept a Python ``config.py``, read only when the engine was
opened as trusted) and its weights (``weights.pth`` when the build copied them, else the
checkpoint path recorded in the manifest, used only if its sha256 matches the recorded
one), loaded without unpickling code, wrapped exactly like the ONNX export (normalisation folded in when the
engine was built that way), so their scores are the reference the other backends are
checked against.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from engines.backends import Backend, BackendOptions, InputSpec, primary_input_spec
from engines.errors import BackendUnavailable, CheckpointError

if TYPE_CHECKING:
    from engines.manifest import Manifest

logger = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_deploy_model(engine_dir: Path, manifest: Manifest) -> nn.Module:
    """Rebuild the engine's :class:`~engines.export.DeployModel` (fp32, CPU, eval mode).

    Only format 2 engines (``manifest.legacy``) are read from ``config.py``, which runs
    Python; :func:`~engines.engine.load_engine` opens those only when trusted.

    Raises:
        ManifestError: If the engine has no stored model description.
        EngineFileError: If ``model.json`` is malformed.
        CheckpointError: If neither ``weights.pth`` nor the recorded checkpoint exists, or the
            recorded checkpoint's sha256 differs from the one recorded at build time.
    """
    from engines.export import DeployModel, build_recognizer, set_average_clips
    from engines.model_json import read_model_json

    if "model" in manifest.files or not manifest.legacy:
        config_path = manifest.path_of(engine_dir, "model")
        model_cfg, _ = read_model_json(config_path)
    else:
        from engines.config import load_config

        config_path = manifest.path_of(engine_dir, "config")
        model_cfg = load_config(config_path).model
    if "weights" in manifest.files:
        weights: Path = manifest.path_of(engine_dir, "weights")
    else:
        weights = _recorded_checkpoint(engine_dir, manifest)
    model, _ = build_recognizer(model_cfg, weights, config_name=config_path, trusted=False)
    if manifest.average_clips in ("score", "prob"):
        set_average_clips(model, manifest.average_clips)
    fold = manifest.normalize_folded
    return DeployModel(
        model, manifest.input_format, manifest.mean if fold else None, manifest.std if fold else None
    ).eval()


def _recorded_checkpoint(engine_dir: Path, manifest: Manifest) -> Path:
    from engines.integrity import file_sha256

    recorded = manifest.source.get("checkpoint")
    if not isinstance(recorded, str) or not Path(recorded).is_file():
        raise CheckpointError(
            f"engine {engine_dir}: the torch backends need weights, but the engine holds no weights.pth "
            f"and the recorded checkpoint {recorded!r} is gone; rebuild with --backend torch (copies the weights)"
        )
    expected = manifest.source.get("checkpoint_sha256")
    if not manifest.legacy and file_sha256(Path(recorded)) != expected:
        raise CheckpointError(
            f"engine {engine_dir}: the recorded checkpoint {recorded} differs from the one the engine was built "
            "from (sha256); rebuild with --backend torch (copies the weights)"
        )
    return Path(recorded)


class TorchBackend(Backend):
    """Eager torch on the CPU: the reference. ``bf16`` runs under CPU autocast.

    Args:
        model: The deploy model (normalisation folded or not, as the engine was built).
        input_spec: What :meth:`infer` accepts.
        precision: ``'fp32'`` or ``'bf16'``.
        compile_mode: ``None`` (eager) or a ``torch.compile`` mode.
        max_batch: Chunk size for large batches.
    """

    name = "torch"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    int8_refusal: ClassVar[str] = "the torch backends run the float model and offer no INT8"
    device = torch.device("cpu")

    def __init__(
        self,
        model: nn.Module,
        input_spec: InputSpec,
        *,
        precision: str = "fp32",
        compile_mode: str | None = None,
        max_batch: int | None = None,
    ) -> None:
        super().__init__(input_spec, max_batch)
        self.precision = precision
        self.model: Any = model.eval().to(self.device)
        if compile_mode is not None:
            self.model = torch.compile(self.model, mode=compile_mode)

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> Backend:
        cls.check_options(options)
        cls.check_available()
        if options.num_threads:
            torch.set_num_threads(options.num_threads)
        return cls(
            load_deploy_model(engine_dir, manifest),
            primary_input_spec(manifest),
            precision=options.precision,
            compile_mode=options.compile,
            max_batch=options.max_batch,
        )

    def graph_io(self) -> tuple[None, tuple[int | None, ...] | None]:
        inner = getattr(self.model, "_orig_mod", self.model)  # torch.compile wraps the module
        head = getattr(getattr(inner, "recognizer", None), "cls_head", None)
        classes = getattr(head, "num_classes", None)
        return None, (None, int(classes)) if isinstance(classes, int) else None

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            return self.model(torch.from_numpy(batch)).float().numpy()


class TorchCudaBackend(TorchBackend):
    """torch on an NVIDIA GPU: fp16/bf16 weights (``.half()`` / ``.bfloat16()``), cuDNN autotuning,
    and optionally ``torch.compile`` (``'max-autotune'``, or ``'reduce-overhead'`` for CUDA graphs).

    The first call per batch size is slow (autotuning / compilation / graph capture);
    :meth:`warmup` runs it up front.
    """

    name = "torch-cuda"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "bf16")

    def __init__(
        self,
        model: nn.Module,
        input_spec: InputSpec,
        *,
        precision: str = "fp32",
        compile_mode: str | None = None,
        max_batch: int | None = None,
        device: int = 0,
    ) -> None:
        self.device = torch.device("cuda", device)
        torch.backends.cudnn.benchmark = True
        model = model.eval().to(self.device, dtype=_DTYPES[precision])
        super().__init__(model, input_spec, precision="fp32", compile_mode=compile_mode, max_batch=max_batch)
        self.precision = precision
        self.dtype = _DTYPES[precision]

    @classmethod
    def auto_precision(cls) -> str:
        """``'fp16'``: every CUDA GPU this backend targets has fast fp16 (the build checks top-1)."""
        return "fp16"

    @classmethod
    def check_available(cls) -> None:
        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"backend 'torch-cuda' needs a CUDA GPU and a CUDA build of torch; this torch "
                f"({torch.__version__}) sees none. Use --backend onnxruntime/openvino/torch on CPU"
            )

    @classmethod
    def open(cls, engine_dir: Path, manifest: Manifest, options: BackendOptions) -> Backend:
        cls.check_options(options)
        cls.check_available()
        backend = cls(
            load_deploy_model(engine_dir, manifest),
            primary_input_spec(manifest),
            precision=options.precision,
            compile_mode=options.compile,
            max_batch=options.max_batch,
            device=options.device,
        )
        backend.warmup(1)
        return backend

    def warmup(self, batch: int = 1, iters: int = 3) -> None:
        """Run a few zero batches so autotuning / compilation happen now, not on the first frame."""
        zeros = np.zeros((batch, *self.input_spec.sample_shape), dtype=np.float32)
        for _ in range(iters):
            self._run(zeros)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        host = torch.from_numpy(batch)
        with torch.inference_mode():
            inputs = host.pin_memory().to(self.device, dtype=self.dtype, non_blocking=True)
            scores = self.model(inputs).float()
            return scores.cpu().numpy()

    def close(self) -> None:
        self.model = None
        torch.cuda.empty_cache()
