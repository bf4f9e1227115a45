"""One label for a whole video, as MMAction2's ``demo/demo.py`` computes it.

``inference_recognizer`` runs the config's test pipeline on the whole video: the sampler
(``SampleFrames`` / ``DenseSampleFrames`` in test mode) picks its frames from all
``total_frames`` of the file (or of the frame folder, ``--use-frames``), the transforms and
the model score that one sample, and the head folds its views by ``average_clips``.
:func:`classify_video` does the same with the engine of :func:`pipelines.recognizer.open_recognizer`
(built once and cached): one decoding pass counts the frames, a second keeps only the sampled
ones (resized on arrival), so memory does not grow with the video's length.

The annotated output (``--out-filename``, ``.mp4`` or ``.gif``) is a job graph (see
:func:`pipelines.graphs.demo_graph`): the source, :class:`AttachPrediction` (gives the first
frame the video's prediction), :class:`ResizeStage` (``--target-resolution``), the label
annotator and the video writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from core.errors import ConfigError
from engines.clip_spec import ClipSpec
from engines.transforms import resize_frame, short_side_size
from pipelines.clip_buffer import Clip
from pipelines.recognizer import Recognizer
from stream.errors import SourceNotFound
from stream.packet import FramePacket, Prediction
from stream.stage import Outputs, Source, Stage

log = logging.getLogger(__name__)

#: ``--resize-algorithm`` names (MMAction2's demo passes them to FFmpeg's scaler) -> OpenCV.
RESIZE_ALGORITHMS: dict[str, int] = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "neighbor": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


@dataclass(frozen=True)
class VideoLabels:
    """What :func:`classify_video` found.

    Attributes:
        names: class names, best first (top-k of the video).
        scores: their scores (probabilities with ``average_clips='prob'``, else raw).
        total_frames: frames the sampler chose from.
    """

    names: tuple[str, ...]
    scores: tuple[float, ...]
    total_frames: int

    def prediction(self, label_ids: Sequence[int] = ()) -> Prediction:
        ids = np.asarray(label_ids or range(len(self.names)), np.int64)
        return Prediction(ids, np.asarray(self.scores, np.float32), self.names, 0.0, 0.0, 0)


def sample_video(spec: ClipSpec, open_input: Callable[[], Source]) -> Clip:
    """The test pipeline's one sample of a whole video, as ``inference_recognizer`` takes it.

    One decoding pass counts the frames, a second keeps only the sampled ones (resized on
    arrival by ``spec.resize``), so memory does not grow with the video's length.

    Args:
        spec: The clip settings of the config's test pipeline.
        open_input: A callable returning a fresh (not set up) source of the video's frames.

    Returns:
        The sample: its frames resized (``resized=True``), ``slots`` the sampled indices
        ``(clips, clip_len)``, ``frame_idx`` the video's last frame (so ``frame_idx + 1``
        frames were sampled from).

    Raises:
        SourceNotFound: If the input holds no frame.
    """
    total = 0
    fps: float | None = None
    source = open_input()
    source.setup()
    try:
        for item in source:
            if isinstance(item, FramePacket):
                total += 1
                rate = item.meta.get("fps")
                fps = fps or (float(rate) if isinstance(rate, (int, float)) and rate > 0 else None)
    finally:
        source.close()
    if total == 0:
        raise SourceNotFound("the video holds no decodable frame")
    inds = spec.sample(total, fps=fps).ravel()
    wanted = {int(i) % total for i in inds}
    kept: dict[int, np.ndarray] = {}
    source = open_input()
    source.setup()
    try:
        k = 0
        for item in source:
            if not isinstance(item, FramePacket):
                continue
            if k in wanted:
                kept[k] = resize_frame(np.asarray(item.image), spec.resize)
            k += 1
    finally:
        source.close()
    if len(kept) < len(wanted):  # fewer frames the second time: repeat the last one kept
        last = kept[max(kept)]
        kept.update({i: last for i in wanted - set(kept)})
    frames = tuple(kept[int(i) % total] for i in inds)
    return Clip("video", frames, inds.reshape(-1, spec.clip_len), 0.0, 0.0, 0, total - 1, resized=True)


def top_labels(recognizer: Recognizer, scores: np.ndarray, total_frames: int, top_k: int = 5) -> VideoLabels:
    """The ``top_k`` labels of one score row, best first (ties: lower class index first)."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    names = tuple(recognizer.class_names[i] for i in order)
    return VideoLabels(names, tuple(float(scores[i]) for i in order), total_frames)


def classify_video(recognizer: Recognizer, open_input: Callable[[], Source], top_k: int = 5) -> VideoLabels:
    """Score a whole video with the test pipeline's sampling over all of its frames.

    Args:
        recognizer: the engine and its clip settings.
        open_input: a callable returning a fresh (not set up) source of the video's frames.
        top_k: labels kept, best first (ties: lower class index first, as ``sorted`` keeps them).

    Raises:
        SourceNotFound: If the input holds no frame.
    """
    clip = sample_video(recognizer.spec, open_input)
    labels = top_labels(recognizer, recognizer.scores([clip])[0], clip.frame_idx + 1, top_k)
    log.info(
        "%d frames, sampled %d: top-1 %s (%.4f)", labels.total_frames, len(clip.frames), labels.names[0],
        labels.scores[0],
    )  # fmt: skip
    return labels


class AttachPrediction(Stage):
    """Gives the first frame the whole video's prediction (the label annotator holds it on)."""

    def __init__(self, prediction: Prediction, name: str = "prediction") -> None:
        super().__init__(name)
        self.prediction = prediction
        self._sent = False

    def process(self, packet: FramePacket) -> Outputs:
        if not self._sent:
            packet.predictions.append(self.prediction)
            self._sent = True
        return packet


def target_size(resolution: Sequence[int] | None, width: int, height: int) -> tuple[int, int] | None:
    """``--target-resolution W H`` for a ``width × height`` input; ``-1`` keeps the aspect ratio.

    As MMAction2's demo: ``W = int(H / height * width)`` when ``W`` is -1, and alike for ``H``.

    Raises:
        ConfigError: If a value is neither positive nor -1, or both are -1.
    """
    if resolution is None:
        return None
    w, h = (int(v) for v in resolution)
    if any(v == 0 or v < -1 for v in (w, h)) or (w == -1 and h == -1):
        raise ConfigError(
            f"--target-resolution {w} {h}: expected W H as positive pixels, one of them -1 to keep the aspect ratio"
        )
    if w == -1:
        w = int(h / height * width)
    if h == -1:
        h = int(w / width * height)
    return max(1, w), max(1, h)


class ResizeStage(Stage):
    """Resizes every frame to ``--target-resolution`` (or ``--short-side``) with ``--resize-algorithm``."""

    def __init__(
        self,
        resolution: Sequence[int] | None = None,
        algorithm: str = "bicubic",
        name: str = "resize",
        *,
        short_side: int | None = None,
    ) -> None:
        super().__init__(name)
        if algorithm not in RESIZE_ALGORITHMS:
            raise ConfigError(f"--resize-algorithm: expected one of {', '.join(RESIZE_ALGORITHMS)}, got {algorithm!r}")
        if (resolution is None) == (short_side is None):
            raise ConfigError("ResizeStage: give a resolution or a short side, not both or neither")
        if short_side is not None and short_side < 1:
            raise ConfigError(f"--short-side: expected a positive number of pixels, got {short_side}")
        self.resolution = None if resolution is None else tuple(resolution)
        self.short_side = short_side
        self.interpolation = RESIZE_ALGORITHMS[algorithm]
        self._size: tuple[int, int] | None = None

    def process(self, packet: FramePacket) -> Outputs:
        if self._size is None:
            if self.short_side is not None:
                self._size = short_side_size(self.short_side, packet.width, packet.height)
            else:
                self._size = target_size(self.resolution, packet.width, packet.height)
        if self._size is not None and self._size != (packet.width, packet.height):
            packet.image = cv2.resize(np.asarray(packet.image), self._size, interpolation=self.interpolation)
        return packet
