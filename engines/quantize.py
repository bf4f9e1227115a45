"""INT8 post-training quantization of recognizer engines, calibrated on real-looking clips.

The exported fp32 ``model.onnx`` is quantized with ONNX Runtime's static quantizer
(``onnxruntime.quantization.quantize_static``): QDQ format (``QuantizeLinear`` /
``DequantizeLinear`` pairs around each quantized op), int8 weights per output channel,
uint8 activations with ranges from MinMax calibration. The result, ``model_int8.onnx``,
runs on ONNX Runtime (which fuses the pairs into int8 kernels, VNNI where the CPU has it)
and on OpenVINO (which reads the pairs as FakeQuantize and runs those ops in int8), so one
quantized graph serves both CPU backends and needs no library beyond the two backends.

Calibration clips come from a video (:class:`CalibrationSource`): the user's own
(``--calibration VIDEO``) or, by default, the project's demo video
(``pipelines/demo/assets/demo.mp4``, synthetic actions). Windows are cut at seeded random
starts and preprocessed exactly as the runtime does (the config's clip spec and
:func:`engines.transforms.preprocess`); a disjoint set of windows of the same video are the
held-out clips on which ``precision='auto'`` checks the int8 engine's top-1 labels against
torch fp32 (:func:`calibration_clips`). The source (the file's sha256) is part of the
engine cache key, so another calibration video builds another engine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.files import temp_sibling
from engines.clip_spec import ClipSpec
from engines.errors import EngineError

logger = logging.getLogger(__name__)

INT8_ONNX_NAME = "model_int8.onnx"
#: Clips the quantizer calibrates on, and held-out clips ``auto`` checks agreement on.
CALIBRATION_CLIPS = 32
CHECK_CLIPS = 16
#: Seed of the window choice (calibration and check windows are disjoint by construction).
CALIBRATION_SEED = 0
#: Frames decoded at most from a calibration video (enough for the windows, bounded memory).
MAX_DECODED_FRAMES = 4000
#: Window starts are multiples of this (a quarter of a window at most), so windows differ.
_START_STEP = 4


class CalibrationError(EngineError, ValueError):
    """A calibration source cannot give the clips INT8 quantization needs."""


def default_calibration_video() -> Path:
    """The demo video (synthetic actions) that calibrates when no ``--calibration`` video is given."""
    return Path(__file__).resolve().parents[1] / "pipelines" / "demo" / "assets" / "demo.mp4"


@dataclass(frozen=True)
class CalibrationSource:
    """Where calibration clips come from: a video file and its sha256 (the cache key part).

    Attributes:
        path: The video.
        sha256: Its content hash.
        demo: True for the project's demo video (the default).
    """

    path: Path
    sha256: str
    demo: bool = False

    @classmethod
    def resolve(cls, video: str | Path | None) -> CalibrationSource:
        """The source for ``--calibration VIDEO`` (``None``: the demo video).

        Raises:
            CalibrationError: If the video does not exist or is not a file.
        """
        from engines.checkpoint import file_sha256

        demo = video is None
        path = default_calibration_video() if video is None else Path(video)
        if not path.is_file():
            what = "the demo video (pipelines/demo/assets)" if demo else "--calibration"
            raise CalibrationError(
                f"{what}: {path} is not a video file; pass --calibration VIDEO with a readable video"
            )
        return cls(path.resolve(), file_sha256(path), demo)

    def key(self) -> str:
        """What identifies the clips it gives (for cache keys): ``video:<sha256>``."""
        return f"video:{self.sha256}"

    def describe(self) -> dict[str, Any]:
        """Path, hash and kind, for the manifest."""
        return {"video": str(self.path), "sha256": self.sha256, "demo": self.demo}


def _decode(path: Path, spec: ClipSpec, max_frames: int, what: str = "--calibration") -> list[np.ndarray]:
    """Decode up to ``max_frames`` BGR frames, resized by the spec's ``Resize`` as they arrive."""
    import av

    from engines.transforms import resize_frame

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(resize_frame(frame.to_ndarray(format="bgr24"), spec.resize))
                if len(frames) >= max_frames:
                    break
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CalibrationError(
            f"{what} {path}: cannot decode it as a video ({detail}); pass a video file PyAV/FFmpeg can read"
        ) from exc
    return frames


def calibration_clips(
    source: CalibrationSource,
    spec: ClipSpec,
    shape: Sequence[int],
    *,
    count: int = CALIBRATION_CLIPS,
    check: int = CHECK_CLIPS,
    normalize: bool = True,
    seed: int = CALIBRATION_SEED,
    extra_held_out: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration clips and disjoint held-out check clips from a video, preprocessed as the runtime does.

    Window starts are multiples of a few frames, shuffled with ``seed``; the first
    ``count`` windows calibrate, the next ``check`` are held out. A video too short for
    that many distinct windows reuses starts for calibration only (never for checking).

    Args:
        source: The video.
        spec: The model's clip spec (sampling, resize, crop, normalisation).
        shape: The engine's per-sample input shape; the clips are resized to it if the
            video's frame size gives another.
        count: Calibration clips.
        check: Held-out clips.
        normalize: Apply mean/std (False for engines that fold normalisation in).
        seed: Seed of the window order.
        extra_held_out: Add up to this many windows used for neither (for measurements on
            more held-out clips than the build checks).

    Returns:
        float32 ``(count, *shape)`` and ``(check, *shape)``.

    Raises:
        CalibrationError: The video cannot be decoded or is shorter than one window.
    """
    from engines.transforms import preprocess

    what = "the demo video" if source.demo else "--calibration"
    frames = _decode(source.path, spec, MAX_DECODED_FRAMES, what)
    window = spec.window_frames
    if len(frames) < window:
        raise CalibrationError(
            f"{what} {source.path}: {len(frames)} frames, fewer than one {window}-frame window of the model; "
            "pass a longer video"
        )
    starts = np.arange(0, len(frames) - window + 1, max(1, min(_START_STEP, window // 4 or 1)))
    order = np.random.default_rng(seed).permutation(starts)
    if len(order) < check + 1:
        raise CalibrationError(
            f"{what} {source.path}: {len(frames)} frames give {len(order)} windows, fewer than the "
            f"{check + 1} needed (held-out check + calibration); pass a longer video"
        )
    held_out, calib = order[:check], order[check:]
    if extra_held_out:  # windows neither the calibration nor the build's check used
        held_out = np.concatenate([held_out, order[check + count :][:extra_held_out]])
    calib = np.resize(calib, count)  # repeats windows when the video is short
    sampled = spec.sample(window).ravel()

    def clips(chosen: np.ndarray) -> np.ndarray:
        out = np.stack(
            [preprocess([frames[s + i] for i in sampled], spec, normalize=normalize, resized=True) for s in chosen]
        )
        return _fit(out, tuple(int(d) for d in shape))

    return clips(calib), clips(held_out)


def _fit(batch: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize the spatial axes of ``(N, *s)`` clips to ``shape`` when only height and width differ."""
    if batch.shape[1:] == shape:
        return np.ascontiguousarray(batch, dtype=np.float32)
    if batch.shape[1:-2] != shape[:-2]:
        raise CalibrationError(
            f"calibration clips have shape {batch.shape[1:]} but the engine takes {shape}; "
            "the config's test pipeline and --input-shape disagree"
        )
    import torch
    import torch.nn.functional as F

    flat = torch.from_numpy(batch.reshape(-1, *batch.shape[-3:]).astype(np.float32))
    resized = F.interpolate(flat, size=shape[-2:], mode="bilinear", align_corners=False)
    logger.info("calibration clips resized from %s to %s", batch.shape[-2:], shape[-2:])
    return np.ascontiguousarray(resized.numpy().reshape(len(batch), *shape))


class _Reader:
    """A ``CalibrationDataReader`` (duck-typed) over a batch: one clip per call, as the calibrator asks."""

    def __init__(self, input_name: str, clips: np.ndarray) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: np.ascontiguousarray(clip[None])} for clip in clips
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def _fold_every(count: int) -> int | None:
    """How many clips' activations the calibrator keeps before folding them into ranges.

    Without a bound it keeps every activation of every clip (gigabytes for an R50 at 224 px).
    onnxruntime 1.32 raises "No data is collected" when the count is a multiple of the bound
    (nothing is left at the end), so the bound is one that leaves a remainder.
    """
    return next((every for every in (3, 5, 7, 2) if count % every), None)


def quantize_onnx(src: str | Path, dst: str | Path, clips: np.ndarray, *, per_channel: bool = True) -> Path:
    """Quantize an fp32 ONNX recognizer to INT8 (QDQ), calibrated on ``clips``; written atomically.

    Args:
        src: The fp32 ONNX file (one input, batch axis dynamic).
        dst: Where the INT8 ONNX goes (written under a temporary name, then renamed).
        clips: float32 ``(N, *input_shape)`` calibration clips.
        per_channel: Per-output-channel weight scales (more accurate for convolutions).

    Returns:
        ``dst``.

    Raises:
        EngineError: If onnxruntime's quantization tools are missing.
    """
    try:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError as exc:
        raise EngineError(f"precision int8 needs onnxruntime's quantizer: pip install onnxruntime ({exc})") from exc
    src, dst = Path(src), Path(dst)
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    reader = _Reader(input_name, clips)
    tmp = temp_sibling(dst)
    advice = _PreprocessAdvice()
    logging.getLogger().addFilter(advice)  # onnxruntime logs its advice on the root logger
    try:
        quantize_static(
            str(src),
            str(tmp),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False, "CalibMaxIntermediateOutputs": _fold_every(len(clips))},
            calibration_cache_path=None,
        )
        os.replace(tmp, dst)
    finally:
        logging.getLogger().removeFilter(advice)
        tmp.unlink(missing_ok=True)
    logger.info("quantized %s to INT8 (QDQ, per-channel=%s) on %d calibration clips", dst.name, per_channel, len(clips))
    return dst


class _PreprocessAdvice(logging.Filter):
    """Moves onnxruntime's "consider pre-processing before quantization" warnings to debug.

    ``quantize_static`` logs them on the root logger for every graph it is given without
    onnxruntime's ``quant_pre_process`` tag. That advice is for whoever calls the quantizer
    (this module), not for a user of the command, who could do nothing about it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "pre-processing before quantization" in record.getMessage():
            logger.debug("onnxruntime: %s", record.getMessage())
            return False
        return True


def count_qdq(onnx_path: str | Path) -> dict[str, int]:
    """How many ``QuantizeLinear`` / ``DequantizeLinear`` nodes and int8 initializers a graph has."""
    import onnx

    model = onnx.load(str(onnx_path))
    ops = [node.op_type for node in model.graph.node]
    int8 = sum(1 for t in model.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8))
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear"),
            "int8_initializers": int8}  # fmt: skip


__all__ = [
    "CALIBRATION_CLIPS",
    "CHECK_CLIPS",
    "INT8_ONNX_NAME",
    "CalibrationError",
    "CalibrationSource",
    "calibration_clips",
    "count_qdq",
    "default_calibration_video",
    "quantize_onnx",
]
