"""Spatio-temporal action detection engines (AVA): config + checkpoint → cached engine → per-box scores.

One graph per model: ``imgs`` ``(batch, 3, T, height, width)`` (normalised RGB, the data
preprocessor's output; SlowFast splits its pathways inside; the runner sends one clip) and
``rois`` ``(boxes, 5)`` (clip index, x1, y1, x2, y2 in clip pixels) → ``scores`` ``(boxes, num_classes)``,
MMAction2's ``pred_instances.scores`` (sigmoid for the multi-label AVA heads). Height, width
and the number of boxes are dynamic; ``T`` is the config's ``SampleAVAFrames.clip_len``.

::

    detector = SpatioTemporalDetector.from_config(CONFIG, CHECKPOINT, backend="openvino")
    spec = detector.spec                     # clip_len, frame_interval, short_side, mean, std, ...
    h, w = spec.input_size(720, 1280)        # (256, 455): MMAction2's demo resizes to short side 256
    clip = np.stack([spec.resize(frames[key + o]) for o in spec.frame_offsets])   # (T, h, w, 3) RGB
    scores = detector.predict(clip, boxes * [w / 1280, h / 720, w / 1280, h / 720])  # (K, num_classes)

Column ``j`` of ``scores`` is AVA label id ``j`` (MMAction2's ``label_map.txt`` ids); with
``background_class`` column 0 is set to 0, because it is untrained and MMAction2's demo skips
it (its label map has no id 0). No box gives ``(0, num_classes)`` without running the model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputShapeError, ModelConfigError

log = logging.getLogger(__name__)

#: Bump when the graph or its inputs change: cached engines of older versions are then rebuilt.
GRAPH_VERSION = "stdet-1"
#: Test-pipeline steps that need nothing from the runner (decoding happens before it).
_PASSIVE_STEPS = ("RawFrameDecode", "DecordInit", "DecordDecode", "OpenCVInit", "OpenCVDecode", "PackActionInputs")


@dataclass(frozen=True)
class StdetSpec:
    """What a caller needs to know to feed a spatio-temporal detector, read from its config.

    Attributes:
        clip_len: Frames per clip (``SampleAVAFrames.clip_len``).
        frame_interval: Stream frames between clip frames (``SampleAVAFrames.frame_interval``).
        short_side: Short side the frames are resized to (``Resize(scale=(-1, S))``; 256).
        mean: Per-channel RGB mean of the data preprocessor.
        std: Per-channel RGB std.
        num_classes: Score columns, background included (81 for AVA).
        background_class: Whether column 0 is background.
        multilabel: Sigmoid scores (multi-label) rather than softmax.
        action_thr: ``model.test_cfg.rcnn.action_thr`` when set, else ``None``.
    """

    clip_len: int
    frame_interval: int
    short_side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    background_class: bool = True
    multilabel: bool = True
    action_thr: float | None = None

    @property
    def window(self) -> int:
        """Stream frames one clip spans: ``clip_len * frame_interval``."""
        return self.clip_len * self.frame_interval

    @property
    def frame_offsets(self) -> tuple[int, ...]:
        """Clip frames relative to the key frame (the one the boxes belong to), as MMAction2's demo takes them.

        ``start = key - (clip_len // 2 - 1) * frame_interval``, then every ``frame_interval``:
        for 4x16 that is ``(-16, 0, 16, 32)``.
        """
        start = -(self.clip_len // 2 - 1) * self.frame_interval
        return tuple(start + i * self.frame_interval for i in range(self.clip_len))

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of a ``height × width`` frame resized to :attr:`short_side` (``mmcv.rescale_size``)."""
        scale = self.short_side / min(height, width)
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def resize(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (H, W, 3) resized to :attr:`short_side` with bilinear interpolation (``mmcv.imresize``)."""
        import cv2

        h, w = self.input_size(*frame.shape[:2])
        if (h, w) == frame.shape[:2]:
            return frame
        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)

    @classmethod
    def from_config(cls, cfg: Any, model: Any, where: str = "config") -> StdetSpec:
        """Read the clip settings from a config's test pipeline and the rest from the built model.

        Args:
            cfg: The mmengine ``Config`` (or a mapping) holding ``val_pipeline`` / ``test_pipeline``
                / ``test_dataloader.dataset.pipeline``.
            model: The built :class:`~engines.models.stdet.FastRCNN`.
            where: The config file, named in errors.

        Raises:
            ModelConfigError: No pipeline, no ``SampleAVAFrames``, an unsupported step or resize.
        """
        pipeline = _test_pipeline(cfg)
        if pipeline is None:
            raise ModelConfigError(f"{where}: no test pipeline (test_pipeline, val_pipeline or test_dataloader)")
        clip_len = frame_interval = short_side = None
        for step in pipeline:
            kind = step.get("type")
            if kind == "SampleAVAFrames":
                clip_len, frame_interval = step.get("clip_len"), step.get("frame_interval")
            elif kind == "Resize":
                scale = tuple(step.get("scale", ()))
                if len(scale) != 2 or scale[0] != -1 or not isinstance(scale[1], int) or scale[1] <= 0:
                    raise ModelConfigError(f"{where}: test pipeline Resize: expected scale=(-1, S), got {scale!r}")
                short_side = scale[1]
            elif kind == "FormatShape":
                if step.get("input_format") != "NCTHW":
                    raise ModelConfigError(f"{where}: test pipeline FormatShape: expected input_format='NCTHW'")
            elif kind not in _PASSIVE_STEPS:
                raise ModelConfigError(
                    f"{where}: test pipeline step {kind!r} is not supported for action detection; "
                    "supported: SampleAVAFrames, Resize, FormatShape, " + ", ".join(_PASSIVE_STEPS)
                )
        for name, value in (("clip_len", clip_len), ("frame_interval", frame_interval)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelConfigError(
                    f"{where}: test pipeline SampleAVAFrames.{name}: expected a positive int, got {value!r}"
                )
        if short_side is None:
            raise ModelConfigError(f"{where}: test pipeline has no Resize(scale=(-1, S)); add one (MMAction2 uses 256)")
        return cls(
            clip_len=int(clip_len),  # type: ignore[arg-type]
            frame_interval=int(frame_interval),  # type: ignore[arg-type]
            short_side=int(short_side),
            mean=tuple(model.mean),
            std=tuple(model.std),
            num_classes=int(model.num_classes),
            background_class=bool(model.background_class),
            multilabel=bool(model.multilabel),
            action_thr=model.action_thr,
        )


def _test_pipeline(cfg: Any) -> list[Mapping[str, Any]] | None:
    for key in ("test_pipeline", "val_pipeline"):
        if cfg.get(key) is not None:
            return list(cfg.get(key))
    for key in ("test_dataloader", "val_dataloader"):
        loader = cfg.get(key)
        dataset = loader.get("dataset") if isinstance(loader, Mapping) else None
        if isinstance(dataset, Mapping) and dataset.get("pipeline") is not None:
            return list(dataset["pipeline"])
    return None


def load_stdet_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Any]:
    """Read an AVA config: its ``model`` section (plain dicts) and the whole mmengine ``Config``.

    Raises:
        ModelConfigError: The file does not load, or its model is not a ``FastRCNN``.
    """
    from engines.config import read_config, to_plain

    cfg = read_config(path, cfg_options)
    model = cfg.get("model")
    if not isinstance(model, Mapping) or str(model.get("type", "")).rpartition(".")[2] != "FastRCNN":
        got = model.get("type") if isinstance(model, Mapping) else None
        raise ModelConfigError(f"config {path}: model.type: expected 'FastRCNN' (an AVA detector), got {got!r}")
    return to_plain(model), cfg


def build_stdet_model(model_cfg: Mapping[str, Any]) -> Any:
    """Build the torch :class:`~engines.models.stdet.FastRCNN` from a ``model`` section, in eval mode.

    Raises:
        ModelConfigError / UnknownTypeError: For a bad section (the message names the key).
    """
    from engines.models import build

    return build(model_cfg).eval()


def graph_specs(spec: StdetSpec) -> tuple[list[Any], list[Any]]:
    """The engine's input and output :class:`~engines.tensors.TensorSpec`\\ s."""
    from engines.tensors import TensorSpec

    inputs = [
        TensorSpec("imgs", ("batch", 3, spec.clip_len, "height", "width"), layout="NCTHW"),
        TensorSpec("rois", ("boxes", 5)),
    ]
    return inputs, [TensorSpec("scores", ("boxes", spec.num_classes))]


def example_feeds(spec: StdetSpec, height: int, width: int, boxes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random normalised clip and ``boxes`` random rois inside it (for tracing and checks)."""
    rng = np.random.default_rng(seed)
    imgs = rng.standard_normal((1, 3, spec.clip_len, height, width)).astype(np.float32)
    return {"imgs": imgs, "rois": random_rois(rng, boxes, height, width)}


def random_rois(rng: np.random.Generator, boxes: int, height: int, width: int) -> np.ndarray:
    """``(boxes, 5)`` rois with batch index 0 and corners inside a ``height × width`` frame."""
    xs = np.sort(rng.uniform(0, width, (boxes, 2)), axis=1)
    ys = np.sort(rng.uniform(0, height, (boxes, 2)), axis=1)
    return np.concatenate([np.zeros((boxes, 1)), xs[:, :1], ys[:, :1], xs[:, 1:], ys[:, 1:]], axis=1).astype(np.float32)


def build_stdet_engine(
    config: str | Path,
    checkpoint: str | Path,
    *,
    backend: str = "onnxruntime",
    num_threads: int | None = None,
    cache_dir: str | Path | None = None,
    trusted: bool = False,
    cfg_options: Mapping[str, Any] | None = None,
    trace_size: tuple[int, int] = (128, 160),
) -> tuple[Any, StdetSpec]:
    """Open the cached engine of an AVA config + model-zoo checkpoint, or export, check and cache it.

    Args:
        config: An AVA config (``configs/detection/slowonly/...``, ``.../slowfast/...``).
        checkpoint: Its checkpoint (MMAction2's ``{'state_dict', 'meta'}`` or a bare state dict).
        backend: ``onnxruntime`` or ``openvino`` (``auto`` picks).
        num_threads: CPU threads for the backend.
        cache_dir: The engine cache's root (default ``~/.cache/action-stream/engines``).
        trusted: Allow full unpickling of the checkpoint.
        cfg_options: ``--cfg-options`` overrides.
        trace_size: ``(height, width)`` of the clip traced for export; another size is checked.

    Returns:
        The engine (inputs ``imgs``, ``rois``; output ``scores``) and the :class:`StdetSpec`.

    Raises:
        ModelConfigError: A bad config.
        CheckpointError: The checkpoint is unreadable or does not fit the config (one line).
        ExportError: The export or a backend disagrees with torch.
        BackendUnavailable: The backend is not installed.
    """
    from engines.backends import resolve_backend
    from engines.cache import cached_graph_engine
    from engines.checkpoint import file_sha256, load_checkpoint
    from engines.graph import build_graph_engine

    config, checkpoint = Path(config), Path(checkpoint)
    model_cfg, cfg = load_stdet_config(config, cfg_options)
    model = build_stdet_model(model_cfg)
    spec = StdetSpec.from_config(cfg, model, where=f"config {config}")
    ckpt = load_checkpoint(model, checkpoint, config_name=config, trusted=trusted)  # fails fast, before any export
    name = resolve_backend(backend)
    inputs, outputs = graph_specs(spec)
    h, w = trace_size

    def build(out_dir: Path) -> Any:
        log.info("building the %s engine of %s", name, config.name)
        return build_graph_engine(
            model, inputs=inputs, outputs=outputs, example=example_feeds(spec, h, w, 3),
            check=example_feeds(spec, h + 32, w - 32, 5, seed=1), out_dir=out_dir, backend=name,
            model_type="FastRCNN", num_classes=spec.num_classes, class_names=ckpt.classes, num_threads=num_threads,
        )  # fmt: skip

    key = (repr(model_cfg), repr(spec), file_sha256(checkpoint), repr(trace_size), GRAPH_VERSION)
    engine = cached_graph_engine("stdet", key, build, backend=name, num_threads=num_threads, cache_dir=cache_dir)
    return engine, spec


class SpatioTemporalDetector:
    """Per-box action scores of one clip, on an engine built by :func:`build_stdet_engine`.

    Args:
        engine: The engine (inputs ``imgs``, ``rois``; output ``scores``).
        spec: The model's :class:`StdetSpec`.
        channel_order: ``'rgb'`` (default) or ``'bgr'`` frames; BGR is turned to RGB, the
            order the AVA models were trained in. (MMAction2's 1.x demo normalises OpenCV's BGR
            frames without the swap; pass RGB to reproduce its numbers exactly.)

    Raises:
        ModelConfigError: For an unknown ``channel_order``.
    """

    def __init__(self, engine: Any, spec: StdetSpec, *, channel_order: str = "rgb") -> None:
        if channel_order not in ("rgb", "bgr"):
            raise ModelConfigError(f"channel_order: expected 'rgb' or 'bgr', got {channel_order!r}")
        self.engine = engine
        self.spec = spec
        self.channel_order = channel_order
        self._mean = np.asarray(spec.mean, np.float32)
        self._std = np.asarray(spec.std, np.float32)

    @classmethod
    def from_config(
        cls,
        config: str | Path,
        checkpoint: str | Path,
        *,
        backend: str = "onnxruntime",
        channel_order: str = "rgb",
        **kwargs: Any,
    ) -> SpatioTemporalDetector:
        """Build (or open the cached) engine and wrap it; ``kwargs`` go to :func:`build_stdet_engine`.

        Raises:
            See :func:`build_stdet_engine`.
        """
        engine, spec = build_stdet_engine(config, checkpoint, backend=backend, **kwargs)
        return cls(engine, spec, channel_order=channel_order)

    @property
    def num_classes(self) -> int:
        """Score columns (column ``j`` = label id ``j``; 0 is background for AVA)."""
        return self.spec.num_classes

    @property
    def class_names(self) -> list[str] | None:
        """Class names from the checkpoint's meta, if it had them."""
        names = self.engine.manifest.class_names
        return list(names) if names else None

    def predict(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Scores ``(K, num_classes)`` float32 of ``K`` person boxes on one clip.

        Args:
            clip: ``(clip_len, H, W, 3)`` frames (uint8 or float 0-255) in ``channel_order``,
                taken at :attr:`StdetSpec.frame_offsets` around the key frame and resized to
                :attr:`StdetSpec.short_side` (:meth:`StdetSpec.resize`).
            boxes: ``(K, 4)`` x1, y1, x2, y2 of the key frame's people, in ``clip`` pixels.

        Returns:
            Sigmoid (multi-label) scores; column 0 is 0 when it is the background class.

        Raises:
            InputShapeError: A clip or boxes of the wrong shape, non-finite boxes, or a box
                with ``x2 < x1`` or ``y2 < y1``.
        """
        t = self.spec.clip_len
        if not isinstance(clip, np.ndarray) or clip.ndim != 4 or clip.shape[0] != t or clip.shape[3] != 3:
            got = clip.shape if isinstance(clip, np.ndarray) else type(clip).__name__
            raise InputShapeError(f"clip: expected ({t}, H, W, 3) frames, got {got}")
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InputShapeError(f"boxes: expected (K, 4) x1, y1, x2, y2, got shape {boxes.shape}")
        if not np.isfinite(boxes).all():
            raise InputShapeError("boxes: expected finite coordinates, got NaN or inf")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise InputShapeError("boxes: expected x2 >= x1 and y2 >= y1 (x1, y1, x2, y2 order)")
        if not len(boxes):  # nothing to score: skip the backbone
            return np.zeros((0, self.num_classes), np.float32)
        frames = clip[..., ::-1] if self.channel_order == "bgr" else clip
        imgs = (frames.astype(np.float32) - self._mean) / self._std  # (T, H, W, 3)
        imgs = np.ascontiguousarray(imgs.transpose(3, 0, 1, 2)[None])  # (1, 3, T, H, W)
        rois = np.concatenate([np.zeros((len(boxes), 1), np.float32), boxes], axis=1)
        scores = np.array(self.engine.run({"imgs": imgs, "rois": rois})["scores"], dtype=np.float32)
        if self.spec.background_class:
            scores[:, 0] = 0.0
        return scores

    def close(self) -> None:
        """Release the engine."""
        self.engine.close()

    def __enter__(self) -> SpatioTemporalDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def label_ids(spec: StdetSpec) -> Sequence[int]:
    """Score columns that are action classes (all but 0 with a background class)."""
    return range(1 if spec.background_class else 0, spec.num_classes)
