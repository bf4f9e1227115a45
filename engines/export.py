"""torch -> ONNX export of recognizers, with optional normalisation folding and a parity check.

The exported graph has one input ``inputs`` (float32, ``(N, V, C, H, W)`` or
``(N, V, C, T, H, W)``, batch axis dynamic) and one output ``scores``
(``(N, num_classes)``, views already folded by the head's ``average_clips``).

With ``fold_normalize=True`` the graph starts with ``(x - mean) / std`` using the
model's data-preprocessor statistics, so the input is raw RGB pixels in 0-255 (float32,
same layout). Without it the input is what MMAction2's data preprocessor outputs.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engines.checkpoint import Checkpoint, file_sha256, load_checkpoint
from engines.errors import ExportError, ModelConfigError
from engines.tensors import ONNX_EXPORT_LOCK

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAME = "inputs"
OUTPUT_NAME = "scores"
EXPORT_ATOL = 1e-4
AVERAGE_CLIPS_CHOICES = ("score", "prob")


def _stats(value: Any, where: str) -> Tensor | None:
    if value is None:
        return None
    tensor = torch.as_tensor(value, dtype=torch.float64).flatten()
    if tensor.numel() == 0:
        raise ModelConfigError(f"{where}: expected per-channel values, got an empty list")
    return tensor


def model_mean_std(model: nn.Module) -> tuple[list[float] | None, list[float] | None]:
    """The recognizer's data-preprocessor ``mean`` and ``std`` as lists (``None`` if unset)."""
    mean = _stats(getattr(model, "mean", None), "model.mean")
    std = _stats(getattr(model, "std", None), "model.std")
    return (
        None if mean is None else [float(v) for v in mean],
        None if std is None else [float(v) for v in std],
    )


class DeployModel(nn.Module):
    """A recognizer as deployed: optional normalisation in front, class scores out.

    Args:
        recognizer: Model with MMAction2's contract, ``model(inputs) -> scores``.
        input_format: ``'NCHW'`` or ``'NCTHW'`` (the channel axis is axis 2 of the input either way).
        mean: Per-channel mean to fold in, or ``None`` to leave normalisation outside.
        std: Per-channel std to fold in (required with ``mean``).

    Raises:
        ModelConfigError: If only one of mean/std is given or their lengths differ.
    """

    def __init__(
        self,
        recognizer: nn.Module,
        input_format: str,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.recognizer = recognizer
        self.fold = mean is not None
        if (mean is None) != (std is None):
            raise ModelConfigError("normalisation folding needs both mean and std")
        if mean is not None and std is not None:
            if len(mean) != len(std):
                raise ModelConfigError(f"mean has {len(mean)} values but std has {len(std)}")
            extra = 3 if input_format == "NCHW" else 4  # axes after C: (H, W) or (T, H, W), plus one
            shape = (1, 1, len(mean)) + (1,) * (extra - 1)
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
            self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).reshape(shape))

    mean: Tensor
    inv_std: Tensor

    def forward(self, inputs: Tensor) -> Tensor:
        if self.fold:
            inputs = (inputs - self.mean) * self.inv_std
        return self.recognizer(inputs)


def set_average_clips(model: nn.Module, average_clips: str | None) -> None:
    """Override the head's ``average_clips`` (``'score'`` or ``'prob'``); ``None`` leaves it.

    Raises:
        ModelConfigError: If the value is invalid or the model has no head with that attribute.
    """
    if average_clips is None:
        return
    if average_clips not in AVERAGE_CLIPS_CHOICES:
        raise ModelConfigError(f"average_clips: expected one of {AVERAGE_CLIPS_CHOICES}, got {average_clips!r}")
    head = getattr(model, "cls_head", None)
    if head is None or not hasattr(head, "average_clips"):
        raise ModelConfigError(f"average_clips: {type(model).__name__} has no cls_head.average_clips to override")
    head.average_clips = average_clips


def build_recognizer(
    model_cfg: Mapping[str, Any],
    checkpoint: str | Path | Checkpoint | None,
    *,
    config_name: str | Path | None = None,
    trusted: bool = False,
) -> tuple[nn.Module, Checkpoint | None]:
    """Build a recognizer from a ``model`` dict and load its weights, in eval mode.

    Raises:
        ModelConfigError / UnknownTypeError: If the config does not build.
        CheckpointError: If the checkpoint cannot be read or does not fit.
    """
    from engines.models import build

    model = build(copy.deepcopy(dict(model_cfg)), where="model")
    ckpt = None
    if checkpoint is not None:
        ckpt = load_checkpoint(model, checkpoint, config_name=config_name, trusted=trusted)
    return model.eval(), ckpt


def sample_inputs(
    shape: Sequence[int],
    batch: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """A "real-looking" float32 batch: smooth random RGB frames, not white noise.

    Each frame is coarse random colour blobs upsampled bilinearly, plus a little grain;
    consecutive frames drift slightly so clips have motion. Values are pixels 0-255, or
    ``(pixels - mean) / std`` when ``normalize`` and stats are given.

    Args:
        shape: Per-sample shape ``(V, C, H, W)`` or ``(V, C, T, H, W)``.
        batch: Number of samples.
        mean: Per-channel mean (0-255 scale).
        std: Per-channel std.
        normalize: Apply ``mean``/``std`` (ignored when they are ``None``).
        seed: RNG seed.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in shape)
    channels, height, width = shape[1], shape[-2], shape[-1]
    frames = int(np.prod(shape)) // (channels * height * width) * batch
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, channels, 5, 5)).astype(np.float32))
    drift = torch.from_numpy(rng.normal(0, 12, (frames, channels, 5, 5)).astype(np.float32)).cumsum(0)
    small = (coarse + drift).clamp(0, 255)
    images = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    images = images + torch.from_numpy(rng.normal(0, 3, images.shape).astype(np.float32))
    pixels = images.clamp(0, 255).numpy()
    if len(shape) == 4:  # (N*V, C, H, W)
        out = pixels.reshape((batch, *shape))
    else:  # frames run along T: (N, V, T, C, H, W) -> (N, V, C, T, H, W)
        views, _, depth = shape[0], shape[1], shape[2]
        out = pixels.reshape(batch, views, depth, channels, height, width).transpose(0, 1, 3, 2, 4, 5)
    if normalize and mean is not None and std is not None:
        stat_shape = (1, 1, channels) + (1,) * (len(shape) - 2)
        out = (out - np.reshape(mean, stat_shape)) / np.reshape(std, stat_shape)
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` produced.

    Attributes:
        path: The ``.onnx`` file.
        sha256: Its SHA-256.
        opset: ONNX opset.
        max_abs_diff: Max |ONNX Runtime - torch| on the check batch (``None`` if unchecked).
        output_shape: Per-sample output shape.
    """

    path: Path
    sha256: str
    opset: int
    max_abs_diff: float | None
    output_shape: tuple[int, ...]


def torch_scores(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """Run ``model`` on a numpy batch in inference mode and return float32 numpy scores."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(batch))).float().numpy()


def _onnx_export(module: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    kwargs: dict[str, Any] = {
        "input_names": [INPUT_NAME],
        "output_names": [OUTPUT_NAME],
        "opset_version": opset,
        "do_constant_folding": True,
        "dynamic_axes": {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    }
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but needs no extra packages
        # (the dynamo one needs onnxscript) and gives stable graphs for these CNNs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        with ONNX_EXPORT_LOCK:  # the exporter's global state allows one export at a time
            try:
                torch.onnx.export(module, (example,), str(path), dynamo=False, **kwargs)
            except TypeError:  # a torch without the legacy exporter's switch
                torch.onnx.export(module, (example,), str(path), dynamo=True, **kwargs)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: Sequence[int],
    *,
    input_format: str,
    fold_normalize: bool = False,
    average_clips: str | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = EXPORT_ATOL,
    check_batch: int = 2,
) -> ExportResult:
    """Export a recognizer to ONNX and check it against torch.

    Args:
        model: Recognizer in eval mode (``model(inputs) -> scores``).
        path: Output ``.onnx`` file.
        input_shape: Per-sample input shape (``(V, C, H, W)`` or ``(V, C, T, H, W)``).
        input_format: ``'NCHW'`` or ``'NCTHW'``.
        fold_normalize: Put ``(x - mean) / std`` into the graph (input becomes raw RGB 0-255).
        average_clips: Override the head's view folding, ``'score'`` or ``'prob'``.
        opset: ONNX opset (>= 17).
        check: Compare ONNX Runtime with torch on a smooth random batch of ``check_batch``
            samples (a different batch size than the traced one, so a baked-in batch
            size shows up).
        atol: Largest accepted max abs difference.
        check_batch: Samples in the check batch.

    Returns:
        The file, its hash, and the measured difference.

    Raises:
        ModelConfigError: If folding is asked for but the model has no mean/std.
        ExportError: If the export fails or ONNX Runtime disagrees with torch by more than ``atol``.
    """
    if opset < 17:
        raise ModelConfigError(f"opset: expected >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    set_average_clips(model, average_clips)
    mean, std = model_mean_std(model)
    if fold_normalize and (mean is None or std is None):
        raise ModelConfigError(
            "fold_normalize: the model has no data_preprocessor mean/std to fold; "
            "set model.data_preprocessor.mean/std or build without --fold-normalize"
        )
    deploy = DeployModel(model, input_format, mean if fold_normalize else None, std if fold_normalize else None)
    deploy.eval()
    shape = tuple(int(d) for d in input_shape)
    example = torch.from_numpy(sample_inputs(shape, 1, mean=mean, std=std, normalize=not fold_normalize, seed=1))
    try:
        with torch.no_grad():
            _onnx_export(deploy, example, path, opset)
    except (RuntimeError, ValueError, TypeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise ExportError(f"ONNX export of {type(model).__name__} failed: {exc}") from exc
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX {path} is invalid: {exc}") from exc
    batch = sample_inputs(shape, check_batch, mean=mean, std=std, normalize=not fold_normalize, seed=2)
    expected = torch_scores(deploy, batch)
    diff: float | None = None
    if check:
        got = run_onnx(path, batch)
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {got.shape} differs from torch's {expected.shape}")
        diff = float(np.max(np.abs(got - expected)))
        logger.info("ONNX export %s: max |onnxruntime - torch| = %.3g", path, diff)
        if not diff <= atol:
            raise ExportError(
                f"ONNX export {path} does not match torch: max abs diff {diff:.3g} > {atol:g} "
                f"on a batch of {check_batch}"
            )
    return ExportResult(
        path=path,
        sha256=file_sha256(path),
        opset=opset,
        max_abs_diff=diff,
        output_shape=tuple(int(d) for d in expected.shape[1:]),
    )


def run_onnx(path: str | Path, batch: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """Run an exported model once with ONNX Runtime on CPU (for checks)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        opts.intra_op_num_threads = num_threads
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0], dtype=np.float32)
