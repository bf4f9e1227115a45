"""Grad-CAM of a whole video, as MMAction2's ``tools/visualizations/vis_cam.py`` (0.x: ``demo/demo_gradcam.py``).

The config's test pipeline takes its one sample of the video (the sampling of ``stream.demo``:
:func:`pipelines.video_demo.sample_video`), the torch model of :mod:`engines.models` (weights
from the checkpoint) scores it, and :class:`engines.gradcam.GradCAM` computes the heat map of
the top class at ``--target-layer-name``. The output video shows every view of the model input
(all crops and clips, at the model's input size, in MMAction2's order) with the heat map blended
over it (viridis, ``--alpha``), at ``--fps`` (5, as vis_cam.py), optionally resized to
``--target-resolution`` as vis_cam.py resizes it (``mmcv.rescale_size``: the frame is scaled to
fit ``W x H``, aspect ratio kept; ``-1`` leaves a side unbounded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import ConfigError
from core.files import atomic_path
from engines.cache import parse_device
from engines.clip_spec import INTERPOLATIONS, ResizeSpec
from engines.config import load_config
from engines.export import build_recognizer
from engines.gradcam import DEFAULT_TARGET_LAYER, GradCAM, blend, find_layer, view_frames
from engines.transforms import resize_frame
from pipelines.graphs import DEMO_OUT_SUFFIXES, VIDEO_SUFFIXES, video_input
from pipelines.video_demo import sample_video
from stream.cli import check_output_paths
from stream.errors import SourceNotFound
from stream.packet import FramePacket
from stream.sinks import VideoWriterSink

log = logging.getLogger(__name__)

#: vis_cam.py's defaults.
DEFAULT_FPS = 5.0
DEFAULT_RESIZE_ALGORITHM = "bilinear"
DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class GradCamParams:
    """``python -m stream.gradcam``'s arguments (vis_cam.py's, plus ``--alpha``)."""

    config: Path
    checkpoint: Path
    video: Path
    use_frames: bool = False
    target_layer_name: str = DEFAULT_TARGET_LAYER
    out_filename: Path | None = None
    fps: float = DEFAULT_FPS
    target_resolution: tuple[int, int] | None = None
    resize_algorithm: str = DEFAULT_RESIZE_ALGORITHM
    cfg_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    alpha: float = DEFAULT_ALPHA
    trust_checkpoint: bool = False


@dataclass(frozen=True)
class GradCamResult:
    """What :func:`run_gradcam` computed.

    Attributes:
        maps: float32 heat maps in ``[0, 1]``, ``(B, T, H, W)`` as :class:`~engines.gradcam.GradCAM` gives them.
        frames: uint8 RGB ``(B*T, H', W', 3)``: the heat maps blended over the model input (resized
            to ``--target-resolution``).
        scores: The head's raw scores ``(num_classes,)``.
        top_class: Index of the class the maps explain.
    """

    maps: np.ndarray
    frames: np.ndarray
    scores: np.ndarray
    top_class: int


def output_size(resolution: tuple[int, int] | None, width: int, height: int) -> tuple[int, int] | None:
    """vis_cam.py's ``--target-resolution W H`` for ``width x height`` frames (None: unchanged).

    Raises:
        ConfigError: If a value is neither positive nor -1.
    """
    if resolution is None or tuple(resolution) == (-1, -1):
        return None
    try:
        return ResizeSpec(scale=(int(resolution[0]), int(resolution[1]))).output_size(width, height)
    except ConfigError:
        raise ConfigError(
            f"--target-resolution {resolution[0]} {resolution[1]}: expected W H as positive pixels, -1 for no bound"
        ) from None


def check_params(p: GradCamParams) -> None:
    """Everything checked before any model work.

    Raises:
        ConfigError / SourceNotFound / OutputError: One line naming the bad argument.
    """
    out = p.out_filename
    if out is not None and out.suffix.lower() not in DEMO_OUT_SUFFIXES:
        raise ConfigError(f"--out-filename {out}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a .gif")
    if p.resize_algorithm not in INTERPOLATIONS:
        raise ConfigError(
            f"--resize-algorithm: expected one of {', '.join(INTERPOLATIONS)}, got {p.resize_algorithm!r}"
        )
    if not 0.0 <= p.alpha <= 1.0:
        raise ConfigError(f"--alpha: expected a value in [0, 1], got {p.alpha}")
    if not p.fps > 0:
        raise ConfigError(f"--fps: expected a positive frame rate, got {p.fps}")
    output_size(p.target_resolution, 2, 2)
    if not p.checkpoint.is_file():
        raise SourceNotFound(f"checkpoint {p.checkpoint}: no such file")
    check_output_paths({"--out-filename": out}, {"VIDEO": p.video, "CONFIG": p.config, "CHECKPOINT": p.checkpoint})


def torch_device(text: str) -> torch.device:
    """``--device`` as a torch device; a CUDA device that is not there is an error.

    Raises:
        ConfigError: Naming the device.
    """
    dev = parse_device(text)
    if dev.kind == "cuda" and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {dev}: no such CUDA GPU on this machine; use --device cpu")
    return torch.device(str(dev))


def run_gradcam(p: GradCamParams) -> GradCamResult:
    """Compute the heat maps of the video and, with ``out_filename``, write them blended.

    Raises:
        ConfigError / SourceNotFound / OutputError: Bad input, before any model work where possible.
        EngineError: The model does not build or the checkpoint does not fit.
    """
    open_input = video_input(p.video, p.use_frames)
    check_params(p)
    device = torch_device(p.device)
    cfg = load_config(p.config, p.cfg_options)
    spec = cfg.clip
    if spec is None:
        raise ConfigError(f"config {p.config}: no test_pipeline; GradCAM samples the video with it")
    model, _ = build_recognizer(cfg.model, p.checkpoint, config_name=p.config, trusted=p.trust_checkpoint)
    find_layer(model, p.target_layer_name)  # a typo fails before the video is decoded
    clip = sample_video(spec, open_input)
    inputs = torch.from_numpy(clip.to_input(spec, normalize=True)[None]).to(device)
    cam = GradCAM(model.to(device), p.target_layer_name)
    result = cam(inputs)
    maps = result.maps
    scores = result.scores[0]
    top = int(np.argmax(scores))
    pixels = clip.to_input(spec, normalize=False)
    frames = view_frames(pixels, spec.input_format)
    if not spec.bgr_to_rgb:  # the model takes BGR (to_rgb=True); MMAction2 blends the RGB frames
        frames = frames[..., ::-1]
    blended = blend(maps.reshape(-1, *maps.shape[-2:]), frames, p.alpha)
    size = output_size(p.target_resolution, blended.shape[2], blended.shape[1])
    if size is not None:
        rule = ResizeSpec(scale=size, keep_ratio=False, interpolation=p.resize_algorithm)
        blended = np.stack([resize_frame(f, rule) for f in blended])
    log.info(
        "%s: %d frames sampled, top class %d (score %.4f), %d heat-map frames",
        p.video, len(clip.frames), top, float(scores[top]), len(blended),
    )  # fmt: skip
    if p.out_filename is not None:
        write_frames(p.out_filename, blended, p.fps)
    return GradCamResult(maps, blended, scores, top)


def write_frames(path: Path, frames_rgb: np.ndarray, fps: float) -> None:
    """Write RGB frames as a video or a GIF (by suffix), whole or not at all.

    Raises:
        SinkError / OutputError: If the file cannot be encoded or written; ``path`` is then unchanged.
    """
    gif = path.suffix.lower() == ".gif"
    with atomic_path(path) as tmp:  # the sink would keep the frames written before a failure
        writer = VideoWriterSink(tmp, fps=fps, codec="gif", pix_fmt="rgb8") if gif else VideoWriterSink(tmp, fps=fps)
        writer.setup()
        try:
            for i, frame in enumerate(frames_rgb):
                image = np.ascontiguousarray(frame[..., ::-1])
                writer.process(FramePacket(image, "gradcam", i, i, Fraction(1, 1000), 0))
            writer.finish()
        finally:
            writer.close()
    log.info("wrote %s (%d frames at %g fps)", path, len(frames_rgb), fps)
