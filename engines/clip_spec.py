"""Typed clip settings read from an MMAction2 config's ``test_pipeline`` and data preprocessor.

:class:`ClipSpec` is everything the stream side needs to turn frames into a model
input exactly as MMAction2's test pipeline would: which frames (``SampleFrames`` /
``DenseSampleFrames`` / ``UniformSample``), how they are resized (``Resize``), cropped (``CenterCrop``,
``ThreeCrop``, ``TenCrop``), laid out (``FormatShape``) and normalised
(``ActionDataPreprocessor``). Decoding steps (``DecordInit``, ``PyAVDecode``, …) and
``PackActionInputs`` are skipped, because frames arrive decoded; any other transform is
a :class:`~stream.errors.ConfigError` listing the supported ones.

Colour order: every MMAction2 decoder (Decord, PyAV, OpenCV, raw frames) hands RGB
frames to the pipeline, and ``ActionDataPreprocessor(to_rgb=True)`` then swaps the
channels once more. Our frames are BGR, so the model's channel order is reached by
swapping BGR→RGB exactly when the preprocessor's ``to_rgb`` is False (the default):
``ClipSpec.bgr_to_rgb = not to_rgb``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from engines.sampling import OUT_OF_BOUND_OPTS, dense_sample_frames, sample_frames, uniform_sample

SamplerKind = Literal["SampleFrames", "DenseSampleFrames", "UniformSample"]
CropKind = Literal["none", "CenterCrop", "ThreeCrop", "TenCrop"]
InputFormat = Literal["NCHW", "NCTHW"]

#: Views each crop transform makes from one frame.
CROP_VIEWS: dict[str, int] = {"none": 1, "CenterCrop": 1, "ThreeCrop": 3, "TenCrop": 10}
#: ``Resize.interpolation`` names (mmcv's, for its cv2 backend).
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "area", "lanczos")
INPUT_FORMATS: tuple[str, ...] = ("NCHW", "NCTHW")
SAMPLERS: tuple[str, ...] = ("SampleFrames", "DenseSampleFrames", "UniformSample")
#: ``UniformSample`` spreads ``clip_len`` frames over a whole video, which a stream does not
#: have: its window is ``clip_len`` segments of this many frames (8 frames = 0.27 s at 30 fps,
#: so an 8-frame model sees about 2 s). ``ClipBuffer(window_frames=...)`` sets another span;
#: the indices within any window are MMAction2's.
UNIFORM_SEGMENT_FRAMES = 8
#: Transforms that load or pack data; frames arrive decoded, so they are skipped.
IGNORED_TRANSFORMS: frozenset[str] = frozenset(
    {
        "DecordInit",
        "DecordDecode",
        "PyAVInit",
        "PyAVDecode",
        "OpenCVInit",
        "OpenCVDecode",
        "PIMSInit",
        "PIMSDecode",
        "RawFrameDecode",
        "PackActionInputs",
    }
)
SUPPORTED_TRANSFORMS: tuple[str, ...] = (*SAMPLERS, "Resize", "CenterCrop", "ThreeCrop", "TenCrop", "FormatShape")

# Keys each handled transform may carry; anything else is reported, not silently dropped.
_SAMPLE_KEYS = frozenset(
    {
        "type",
        "clip_len",
        "frame_interval",
        "num_clips",
        "temporal_jitter",
        "twice_sample",
        "out_of_bound_opt",
        "test_mode",
        "keep_tail_frames",
        "target_fps",
    }
)
_DENSE_KEYS = frozenset(
    {
        "type",
        "clip_len",
        "frame_interval",
        "num_clips",
        "temporal_jitter",
        "out_of_bound_opt",
        "test_mode",
        "sample_range",
        "num_sample_positions",
    }
)
_KEYS: dict[str, frozenset[str]] = {
    "SampleFrames": _SAMPLE_KEYS,
    "DenseSampleFrames": _DENSE_KEYS,
    "UniformSample": frozenset({"type", "clip_len", "num_clips", "test_mode"}),
    "Resize": frozenset({"type", "scale", "keep_ratio", "interpolation", "lazy"}),
    "CenterCrop": frozenset({"type", "crop_size", "lazy"}),
    "ThreeCrop": frozenset({"type", "crop_size"}),
    "TenCrop": frozenset({"type", "crop_size"}),
    "FormatShape": frozenset({"type", "input_format", "collapse"}),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_int_pair(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(map(_is_int, value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ResizeSpec:
    """MMAction2's ``Resize`` on a frame: the output size rule and the interpolation.

    Attributes:
        scale: A factor (``float``, needs ``keep_ratio``) or ``(w, h)``. With
            ``keep_ratio`` a pair is a bound: the frame is scaled as large as possible
            with its long side ``<= max(scale)`` and its short side ``<= min(scale)``;
            ``-1`` in the pair means "no bound", so ``(-1, 256)`` sets the short side to 256.
            Without ``keep_ratio`` the pair is the exact output ``(w, h)``.
        keep_ratio: Keep the aspect ratio (MMAction2's default).
        interpolation: One of :data:`INTERPOLATIONS` (cv2 backend of ``mmcv.imresize``).
    """

    scale: float | tuple[int, int]
    keep_ratio: bool = True
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        scale = self.scale
        if isinstance(scale, (float, np.floating)):
            if not scale > 0:
                raise ConfigError(f"Resize.scale: expected a positive factor, got {scale!r}")
            if not self.keep_ratio:
                raise ConfigError("Resize: a float scale needs keep_ratio=True (MMAction2 cannot unpack it)")
            object.__setattr__(self, "scale", float(scale))
        elif _is_int_pair(scale):
            pair = (int(scale[0]), int(scale[1]))
            if any(v == 0 or v < -1 for v in pair) or pair == (-1, -1):
                raise ConfigError(f"Resize.scale: expected positive sizes (one may be -1), got {scale!r}")
            if not self.keep_ratio and -1 in pair:
                raise ConfigError(
                    f"Resize.scale: -1 needs keep_ratio=True; with keep_ratio=False give (w, h), got {scale!r}"
                )
            object.__setattr__(self, "scale", pair)
        else:
            raise ConfigError(f"Resize.scale: expected a float factor or a (w, h) pair of ints, got {scale!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"Resize.interpolation: expected one of {INTERPOLATIONS}, got {self.interpolation!r}")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` a ``width × height`` frame is resized to, rounded as ``mmcv.rescale_size``.

        Raises:
            ValueError: If the frame size is not positive.
        """
        if width < 1 or height < 1:
            raise ValueError(f"frame size: expected positive width and height, got {width}x{height}")
        if not self.keep_ratio:
            w, h = self.scale  # type: ignore[misc]
            return (int(w), int(h))
        if isinstance(self.scale, float):
            factor = self.scale
        else:
            long_edge, short_edge = max(self.scale), min(self.scale)
            long_bound = math.inf if short_edge == -1 else float(long_edge)
            short_bound = float(long_edge) if short_edge == -1 else float(short_edge)
            factor = min(long_bound / max(height, width), short_bound / min(height, width))
        return (int(width * factor + 0.5), int(height * factor + 0.5))


@dataclass(frozen=True)
class ClipSpec:
    """How one model input is cut from a window of frames, as MMAction2's test pipeline says.

    Attributes:
        clip_len: Frames per clip.
        frame_interval: Step between the sampled frames of one clip.
        num_clips: Clips per sample (per start position for dense sampling).
        sampler: ``'SampleFrames'``, ``'DenseSampleFrames'`` or ``'UniformSample'``.
        twice_sample: ``SampleFrames.twice_sample`` (TSM's test protocol).
        out_of_bound_opt: ``'loop'`` or ``'repeat_last'``.
        target_fps: ``SampleFrames.target_fps`` (X3D configs), or None.
        sample_range: ``DenseSampleFrames.sample_range``.
        num_sample_positions: ``DenseSampleFrames.num_sample_positions``.
        resize: The ``Resize`` step, or None.
        crop: ``'none'``, ``'CenterCrop'``, ``'ThreeCrop'`` or ``'TenCrop'``.
        crop_size: ``(w, h)`` of each crop (MMAction2's order); None without a crop.
        input_format: ``'NCHW'`` (2D models) or ``'NCTHW'`` (3D models).
        mean: Per-channel mean in the model's channel order; None: no normalisation.
        std: Per-channel std matching ``mean``.
        bgr_to_rgb: Swap our BGR frames to RGB (True unless the preprocessor has ``to_rgb=True``).
    """

    clip_len: int
    frame_interval: int = 1
    num_clips: int = 1
    sampler: SamplerKind = "SampleFrames"
    twice_sample: bool = False
    out_of_bound_opt: str = "loop"
    target_fps: float | None = None
    sample_range: int = 64
    num_sample_positions: int = 10
    resize: ResizeSpec | None = None
    crop: CropKind = "none"
    crop_size: tuple[int, int] | None = None
    input_format: InputFormat = "NCTHW"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    bgr_to_rgb: bool = True

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "num_clips", "sample_range", "num_sample_positions"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"ClipSpec.{name}: expected a positive int, got {value!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"ClipSpec.sampler: expected one of {SAMPLERS}, got {self.sampler!r}")
        if self.out_of_bound_opt not in OUT_OF_BOUND_OPTS:
            raise ConfigError(
                f"ClipSpec.out_of_bound_opt: expected one of {OUT_OF_BOUND_OPTS}, got {self.out_of_bound_opt!r}"
            )
        if self.target_fps is not None and (not _is_number(self.target_fps) or not self.target_fps > 0):
            raise ConfigError(f"ClipSpec.target_fps: expected a positive number or None, got {self.target_fps!r}")
        if self.twice_sample and self.clip_len > 1 and self.num_clips == 1:
            raise ConfigError("ClipSpec.twice_sample: with clip_len > 1 it needs num_clips > 1 (as in MMAction2)")
        if self.crop not in CROP_VIEWS:
            raise ConfigError(f"ClipSpec.crop: expected one of {tuple(CROP_VIEWS)}, got {self.crop!r}")
        if (self.crop == "none") != (self.crop_size is None):
            raise ConfigError(
                f"ClipSpec.crop_size: expected a (w, h) pair exactly when cropping, got {self.crop_size!r}"
            )
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", _crop_pair(self.crop_size, "ClipSpec.crop_size"))
        if self.input_format not in INPUT_FORMATS:
            raise ConfigError(f"ClipSpec.input_format: expected one of {INPUT_FORMATS}, got {self.input_format!r}")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("ClipSpec.mean/std: give both or neither")
        if self.mean is not None and self.std is not None:
            object.__setattr__(self, "mean", _triple(self.mean, "mean"))
            object.__setattr__(self, "std", _triple(self.std, "std"))
            if any(not s > 0 for s in self.std):
                raise ConfigError(f"ClipSpec.std: expected positive values, got {self.std!r}")

    # ------------------------------------------------------------------ sizes
    @property
    def num_crops(self) -> int:
        """Views each frame is cropped into (1, 3 or 10)."""
        return CROP_VIEWS[self.crop]

    @property
    def clips_per_sample(self) -> int:
        """Clips one sample holds: ``num_clips``, doubled by ``twice_sample``, times the dense start positions."""
        if self.sampler == "DenseSampleFrames":
            return self.num_clips * self.num_sample_positions
        return self.num_clips * (2 if self.twice_sample else 1)

    @property
    def frames_per_sample(self) -> int:
        """Sampled frames per model input (before cropping)."""
        return self.clips_per_sample * self.clip_len

    @property
    def num_views(self) -> int:
        """Size of the view axis ``V``: ``crops × clips × clip_len`` (NCHW) or ``crops × clips`` (NCTHW)."""
        if self.input_format == "NCHW":
            return self.num_crops * self.frames_per_sample
        return self.num_crops * self.clips_per_sample

    @property
    def normalize(self) -> bool:
        """Whether the data preprocessor normalises (it has mean and std)."""
        return self.mean is not None

    @property
    def clip_span(self) -> int:
        """Frames one clip naturally covers: ``clip_len * frame_interval`` (``sample_range`` when dense,
        ``clip_len * UNIFORM_SEGMENT_FRAMES`` for ``UniformSample``, whose clips share the window)."""
        if self.sampler == "UniformSample":
            return self.clip_len * UNIFORM_SEGMENT_FRAMES
        if self.sampler == "DenseSampleFrames":
            return max(self.sample_range, self.clip_len * self.frame_interval)
        return self.clip_len * self.frame_interval

    @property
    def window_frames(self) -> int:
        """Consecutive frames (at the stream's rate) one sample window spans.

        ``clip_span × num_clips`` for ``SampleFrames`` (so the 3D clips tile the window
        and TSN's ``1x1xN`` takes ``N`` consecutive frames, as MMAction2's webcam demo
        does) and ``sample_range × num_sample_positions`` for dense sampling. With
        ``target_fps`` the stream is assumed to run at ``target_fps``; see
        :meth:`window_frames_at`.
        """
        if self.sampler == "DenseSampleFrames":
            return self.clip_span * self.num_sample_positions
        if self.sampler == "UniformSample":
            return self.clip_span  # the clips are offsets inside the same segments
        return self.clip_span * self.num_clips

    def window_frames_at(self, fps: float | None) -> int:
        """:attr:`window_frames` for a stream at ``fps``; differs only with ``target_fps``.

        Raises:
            ValueError: If ``fps`` is not positive.
        """
        if fps is not None and not fps > 0:
            raise ValueError(f"fps: expected a positive number or None, got {fps!r}")
        if self.target_fps is None or fps is None or self.sampler != "SampleFrames":
            return self.window_frames
        span = max(1.0, self.clip_len * self.frame_interval * fps / self.target_fps)
        return math.ceil(span - 1e-9) * self.num_clips

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """``(h, w)`` of each view when the pipeline fixes it (a crop or ``Resize(keep_ratio=False)``), else None."""
        if self.crop_size is not None:
            return (self.crop_size[1], self.crop_size[0])
        if self.resize is not None and not self.resize.keep_ratio:
            w, h = self.resize.scale  # type: ignore[misc]
            return (int(h), int(w))
        return None

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of each view for input frames of ``height × width``.

        Raises:
            ValueError: If the frame size is not positive.
        """
        if self.fixed_hw is not None:
            return self.fixed_hw
        if self.resize is not None:
            w, h = self.resize.output_size(width, height)
            return (h, w)
        if width < 1 or height < 1:
            raise ValueError(f"frame size: expected positive width and height, got {width}x{height}")
        return (height, width)

    def input_shape(self, height: int, width: int) -> tuple[int, ...]:
        """Per-sample model input shape ``(V, C, H, W)`` or ``(V, C, T, H, W)`` for frames of that size.

        Raises:
            ValueError: If the frame size is not positive.
        """
        h, w = self.output_hw(height, width)
        if self.input_format == "NCHW":
            return (self.num_views, 3, h, w)
        return (self.num_views, 3, self.clip_len, h, w)

    # --------------------------------------------------------------- sampling
    def sample(self, num_frames: int, fps: float | None = None, start_index: int = 0) -> np.ndarray:
        """Indices of the frames one sample takes from a window of ``num_frames`` frames.

        Args:
            num_frames: Frames in the window.
            fps: Frame rate of the window's frames (used with ``target_fps`` only).
            start_index: Added to every index.

        Returns:
            int64 ``(clips_per_sample, clip_len)``, MMAction2's ``frame_inds`` reshaped.

        Raises:
            ValueError: If ``num_frames`` is not positive.
        """
        if self.sampler == "UniformSample":
            return uniform_sample(num_frames, self.clip_len, self.num_clips, start_index=start_index)
        if self.sampler == "DenseSampleFrames":
            return dense_sample_frames(
                num_frames,
                self.clip_len,
                self.frame_interval,
                self.num_clips,
                sample_range=self.sample_range,
                num_sample_positions=self.num_sample_positions,
                out_of_bound_opt=self.out_of_bound_opt,  # type: ignore[arg-type]
                start_index=start_index,
            )
        return sample_frames(
            num_frames,
            self.clip_len,
            self.frame_interval,
            self.num_clips,
            twice_sample=self.twice_sample,
            out_of_bound_opt=self.out_of_bound_opt,  # type: ignore[arg-type]
            start_index=start_index,
            target_fps=self.target_fps,
            fps=fps,
        )

    # ---------------------------------------------------------- normalisation
    def lookup_table(self, normalize: bool = True) -> np.ndarray:
        """float32 ``(3, 256)`` table: row ``c`` maps a uint8 value of **input BGR** channel ``c``
        to the model's value, ``(v - mean) / std`` in float32 as MMAction2 computes it.

        Args:
            normalize: False gives the raw values (for engines that fold normalisation in).
        """
        values = np.arange(256, dtype=np.float32)
        table = np.empty((3, 256), np.float32)
        for in_ch in range(3):
            out_ch = 2 - in_ch if self.bgr_to_rgb else in_ch
            if normalize and self.mean is not None and self.std is not None:
                mean = np.float32(self.mean[out_ch])
                std = np.float32(self.std[out_ch])
                table[in_ch] = (values - mean) / std
            else:
                table[in_ch] = values
        return table

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (tuples become lists, ``resize`` a dict or None)."""
        return _json_lists(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipSpec:
        """Inverse of :meth:`to_dict`; absent keys take the field defaults.

        Raises:
            ConfigError: If ``data`` is not a mapping, has unknown keys or lacks
                ``clip_len``, or a value is invalid.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"ClipSpec: expected a dict, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"ClipSpec: unknown keys {unknown}; valid: {sorted(names)}")
        if "clip_len" not in data:
            raise ConfigError("ClipSpec: missing key 'clip_len'")
        kwargs = dict(data)
        resize = kwargs.get("resize")
        if resize is not None:
            if not isinstance(resize, Mapping) or set(resize) - {"scale", "keep_ratio", "interpolation"}:
                raise ConfigError(
                    f"ClipSpec.resize: expected a dict of scale, keep_ratio, interpolation, got {resize!r}"
                )
            kwargs["resize"] = ResizeSpec(
                scale=resize.get("scale"),  # type: ignore[arg-type]  # __post_init__ validates it
                keep_ratio=bool(resize.get("keep_ratio", True)),
                interpolation=str(resize.get("interpolation", "bilinear")),
            )
        return cls(**kwargs)

    # ----------------------------------------------------------------- config
    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any] | str | Path, *, pipeline_key: str = "test_pipeline", file: str | None = None
    ) -> ClipSpec:
        """Read the spec from an MMAction2-style config.

        The pipeline is ``cfg[pipeline_key]``, else ``cfg.test_dataloader.dataset.pipeline``
        (for ``test_pipeline``); the normalisation comes from ``cfg.model.data_preprocessor``.

        Args:
            cfg: An mmengine ``Config``, a mapping, or the path of a config file.
            pipeline_key: Which pipeline to read, e.g. ``'val_pipeline'``.
            file: Config file name for messages (defaults to ``cfg.filename`` when present).

        Raises:
            ConfigError: If the file cannot be loaded, there is no pipeline, or a step is
                unsupported or malformed; the message names the file and the step.
        """
        config: Mapping[str, Any]
        if isinstance(cfg, (str, Path)):
            from engines.config import read_config

            file = file or str(cfg)
            config = read_config(cfg)
        else:
            config = cfg
        if file is None:
            file = getattr(config, "filename", None) or None
        where = f"{file}: " if file else ""
        pipeline = find_pipeline(config, pipeline_key)
        if pipeline is None:
            raise ConfigError(f"{where}no {pipeline_key!r} in the config; add MMAction2's test pipeline list")
        model = config.get("model")
        preprocessor = model.get("data_preprocessor") if isinstance(model, Mapping) else None
        try:
            return cls.from_pipeline(pipeline, preprocessor, name=pipeline_key)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from exc

    @classmethod
    def from_pipeline(
        cls,
        pipeline: Sequence[Mapping[str, Any]],
        data_preprocessor: Mapping[str, Any] | None = None,
        *,
        name: str = "test_pipeline",
    ) -> ClipSpec:
        """Read the spec from a pipeline list and an optional ``data_preprocessor`` dict.

        Decoding steps and ``PackActionInputs`` are skipped. At most one sampler, one
        ``Resize`` (before the crop) and one crop are supported. The preprocessor's
        ``blending`` (training only) and ``to_float32`` (the output is always float32) do
        not matter at inference and are ignored.

        Args:
            pipeline: MMAction2 transform dicts, e.g. ``[dict(type='SampleFrames', ...), ...]``.
            data_preprocessor: ``model.data_preprocessor`` (mean, std, to_rgb, format_shape).
            name: The pipeline's key, for messages.

        Raises:
            ConfigError: For an unknown or unsupported transform (the message lists the
                supported ones), a missing sampler, unknown keys, bad values, or a
                preprocessor that disagrees with ``FormatShape``.
        """
        if isinstance(pipeline, (str, bytes)) or not isinstance(pipeline, Sequence):
            raise ConfigError(f"{name}: expected a list of transform dicts, got {type(pipeline).__name__}")
        kwargs: dict[str, Any] = {}
        seen: dict[str, int] = {}
        fmt: str | None = None
        for index, step in enumerate(pipeline):
            at = f"{name}[{index}]"
            if not isinstance(step, Mapping) or "type" not in step:
                raise ConfigError(f"{at}: expected a dict with a 'type' key, got {step!r}")
            kind = str(step["type"])
            if kind in IGNORED_TRANSFORMS:
                continue
            if kind not in _KEYS:
                raise ConfigError(
                    f"{at}: unsupported transform {kind!r}; supported: {', '.join(SUPPORTED_TRANSFORMS)} "
                    f"(ignored: {', '.join(sorted(IGNORED_TRANSFORMS))})"
                )
            unknown = sorted(set(step) - _KEYS[kind])
            if unknown:
                raise ConfigError(f"{at}: {kind} has unknown keys {unknown}; valid: {sorted(_KEYS[kind] - {'type'})}")
            group = "crop" if kind in CROP_VIEWS else ("sampler" if kind in SAMPLERS else kind)
            if group in seen:
                raise ConfigError(
                    f"{at}: a second {group} step {kind!r} (the first is {name}[{seen[group]}]); only one is supported"
                )
            seen[group] = index
            if kind in SAMPLERS:
                kwargs.update(_read_sampler(step, kind, at))
            elif kind == "Resize":
                if "crop" in seen:
                    raise ConfigError(f"{at}: Resize after a crop is not supported; resize first")
                if step.get("lazy", False):
                    raise ConfigError(f"{at}: Resize(lazy=True) is not supported (it needs Fuse)")
                try:
                    kwargs["resize"] = ResizeSpec(
                        scale=step.get("scale"),  # type: ignore[arg-type]
                        keep_ratio=bool(step.get("keep_ratio", True)),
                        interpolation=str(step.get("interpolation", "bilinear")),
                    )
                except ConfigError as exc:
                    raise ConfigError(f"{at}: {exc}") from exc
            elif kind in CROP_VIEWS:
                if step.get("lazy", False):
                    raise ConfigError(f"{at}: {kind}(lazy=True) is not supported (it needs Fuse)")
                if "crop_size" not in step:
                    raise ConfigError(f"{at}: {kind} needs crop_size")
                kwargs["crop"] = kind
                kwargs["crop_size"] = _crop_pair(step["crop_size"], f"{at}.crop_size")
            else:  # FormatShape
                fmt = step.get("input_format")
                if fmt not in INPUT_FORMATS:
                    raise ConfigError(f"{at}: FormatShape.input_format: expected one of {INPUT_FORMATS}, got {fmt!r}")
                if step.get("collapse", False):
                    raise ConfigError(f"{at}: FormatShape(collapse=True) is not supported")
        if "sampler" not in seen:
            raise ConfigError(
                f"{name}: no frame sampler; add SampleFrames (or DenseSampleFrames, UniformSample) with clip_len"
            )
        kwargs.update(_read_preprocessor(data_preprocessor, fmt, name))
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from exc


def find_pipeline(cfg: Mapping[str, Any], key: str = "test_pipeline") -> list[Any] | None:
    """The config's pipeline list ``cfg[key]``; for ``test_pipeline`` also the test dataloader's.

    Returns:
        The list, or None if the config has none.
    """
    pipeline = cfg.get(key)
    if pipeline is None and key == "test_pipeline":
        loader = cfg.get("test_dataloader")
        dataset = loader.get("dataset") if isinstance(loader, Mapping) else None
        pipeline = dataset.get("pipeline") if isinstance(dataset, Mapping) else None
    return None if pipeline is None else list(pipeline)


def _json_lists(value: Any) -> Any:
    """Tuples → lists, recursively through dicts and lists."""
    if isinstance(value, dict):
        return {key: _json_lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_lists(item) for item in value]
    return value


def _crop_pair(value: Any, where: str) -> tuple[int, int]:
    if _is_int(value):
        pair = (int(value), int(value))
    elif _is_int_pair(value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ConfigError(f"{where}: expected an int or a (w, h) pair of ints, got {value!r}")
    if min(pair) < 1:
        raise ConfigError(f"{where}: expected positive sizes, got {value!r}")
    return pair


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise ConfigError(f"ClipSpec.{name}: expected 3 numbers (one per colour channel), got {value!r}")
    if not all(map(_is_number, value)):
        raise ConfigError(f"ClipSpec.{name}: expected numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _read_sampler(step: Mapping[str, Any], kind: str, at: str) -> dict[str, Any]:
    if step.get("test_mode") is not True:
        raise ConfigError(f"{at}: {kind} needs test_mode=True (training-time sampling is random)")
    if step.get("temporal_jitter", False):
        raise ConfigError(f"{at}: {kind}(temporal_jitter=True) is random; use False for inference")
    if "clip_len" not in step:
        raise ConfigError(f"{at}: {kind} needs clip_len")
    if kind == "UniformSample":
        return {"sampler": kind, "clip_len": step["clip_len"], "num_clips": step.get("num_clips", 1)}
    out: dict[str, Any] = {
        "sampler": kind,
        "clip_len": step["clip_len"],
        "frame_interval": step.get("frame_interval", 1),
        "num_clips": step.get("num_clips", 1),
        "out_of_bound_opt": step.get("out_of_bound_opt", "loop"),
    }
    if kind == "SampleFrames":
        out["twice_sample"] = bool(step.get("twice_sample", False))
        out["target_fps"] = step.get("target_fps")
    else:
        out["sample_range"] = step.get("sample_range", 64)
        out["num_sample_positions"] = step.get("num_sample_positions", 10)
    return out


def _read_preprocessor(pre: Mapping[str, Any] | None, fmt: str | None, name: str) -> dict[str, Any]:
    where = "model.data_preprocessor"
    if pre is None:
        pre = {}
    if not isinstance(pre, Mapping):
        raise ConfigError(f"{where}: expected a dict, got {type(pre).__name__}")
    kind = pre.get("type", "ActionDataPreprocessor")
    if kind != "ActionDataPreprocessor":
        raise ConfigError(f"{where}.type: expected 'ActionDataPreprocessor', got {kind!r}")
    pre_fmt = pre.get("format_shape")
    if pre_fmt is not None and pre_fmt not in INPUT_FORMATS:
        raise ConfigError(f"{where}.format_shape: expected one of {INPUT_FORMATS}, got {pre_fmt!r}")
    if fmt is not None and pre_fmt is not None and fmt != pre_fmt:
        raise ConfigError(f"{name}: FormatShape.input_format {fmt!r} disagrees with {where}.format_shape {pre_fmt!r}")
    fmt = fmt or pre_fmt
    if fmt is None:
        raise ConfigError(f"{name}: no FormatShape and no {where}.format_shape; add FormatShape(input_format=...)")
    mean, std = pre.get("mean"), pre.get("std")
    if (mean is None) != (std is None):
        raise ConfigError(f"{where}: mean and std go together; got mean={mean!r}, std={std!r}")
    return {
        "input_format": fmt,
        "mean": None if mean is None else _triple(mean, "mean"),
        "std": None if std is None else _triple(std, "std"),
        "bgr_to_rgb": not bool(pre.get("to_rgb", False)),
    }
