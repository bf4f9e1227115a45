"""Load MMAction2-style model configs and derive the clip settings of their test pipeline.

A config is a Python file read by :func:`mmengine.Config.fromfile` (so ``_base_``
chains resolve as MMAction2 users know them) holding ``model = dict(...)`` and,
usually, MMAction2's ``test_pipeline`` list. :func:`load_config` returns the model
dict plus a typed :class:`ClipSettings` read from that pipeline: how many frames a
clip has, how far apart they are, how many clips and crops one sample holds, and
therefore the per-sample input shape the recognizer expects.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engines.errors import ModelConfigError

logger = logging.getLogger(__name__)

INPUT_FORMATS = ("NCHW", "NCTHW")

#: Crop transforms of MMAction2's test pipelines and the number of views each makes.
CROPS: dict[str, int] = {"none": 1, "CenterCrop": 1, "ThreeCrop": 3, "TenCrop": 10}


@dataclass(frozen=True)
class ClipSettings:
    """How one sample is cut from a video, as MMAction2's ``test_pipeline`` says.

    Attributes:
        clip_len: Frames per clip (``SampleFrames.clip_len``).
        frame_interval: Stride between sampled frames, in frames.
        num_clips: Clips sampled per video.
        resize_short: Short side after ``Resize(scale=(-1, S))``; ``None`` if the
            pipeline resizes to a fixed size or not at all.
        resize_hw: ``(height, width)`` of a fixed-size ``Resize(keep_ratio=False)``, else ``None``.
        crop: ``'CenterCrop'``, ``'ThreeCrop'``, ``'TenCrop'`` or ``'none'``.
        crop_hw: ``(height, width)`` of each crop; ``None`` when there is no crop.
        input_format: ``'NCHW'`` (2D recognizers) or ``'NCTHW'`` (3D recognizers).
    """

    clip_len: int
    frame_interval: int
    num_clips: int
    resize_short: int | None
    resize_hw: tuple[int, int] | None
    crop: str
    crop_hw: tuple[int, int] | None
    input_format: str

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "num_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ModelConfigError(f"clip settings: {name}: expected a positive int, got {value!r}")
        if self.crop not in CROPS:
            raise ModelConfigError(f"clip settings: crop: expected one of {sorted(CROPS)}, got {self.crop!r}")
        if self.input_format not in INPUT_FORMATS:
            raise ModelConfigError(
                f"clip settings: input_format: expected one of {INPUT_FORMATS}, got {self.input_format!r}"
            )

    @property
    def num_crops(self) -> int:
        """Views each clip is cropped into (1, 3 or 10)."""
        return CROPS[self.crop]

    @property
    def num_views(self) -> int:
        """Size of the view axis ``V`` of the recognizer input.

        For ``NCHW`` every frame is a view (``num_clips * clip_len * num_crops``); for
        ``NCTHW`` every clip-crop pair is (``num_clips * num_crops``).
        """
        if self.input_format == "NCHW":
            return self.num_clips * self.clip_len * self.num_crops
        return self.num_clips * self.num_crops

    def frame_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the frames the recognizer sees.

        Raises:
            ModelConfigError: If the pipeline fixes no spatial size (no crop, no fixed resize).
        """
        if self.crop_hw is not None:
            return self.crop_hw
        if self.resize_hw is not None:
            return self.resize_hw
        raise ModelConfigError(
            "test_pipeline fixes no input size (no crop and no fixed-size Resize); pass the input shape explicitly"
        )

    def input_shape(self, channels: int = 3) -> tuple[int, ...]:
        """Per-sample recognizer input shape: ``(V, C, H, W)`` or ``(V, C, T, H, W)``.

        Raises:
            ModelConfigError: If the pipeline fixes no spatial size.
        """
        height, width = self.frame_hw()
        if self.input_format == "NCHW":
            return (self.num_views, channels, height, width)
        return (self.num_views, channels, self.clip_len, height, width)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        for key in ("resize_hw", "crop_hw"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClipSettings:
        """Inverse of :meth:`to_dict`.

        Raises:
            ModelConfigError: If a key is missing or has the wrong type.
        """
        try:
            return cls(
                clip_len=int(data["clip_len"]),
                frame_interval=int(data["frame_interval"]),
                num_clips=int(data["num_clips"]),
                resize_short=None if data["resize_short"] is None else int(data["resize_short"]),
                resize_hw=None if data["resize_hw"] is None else _pair(data["resize_hw"], "resize_hw"),
                crop=str(data["crop"]),
                crop_hw=None if data["crop_hw"] is None else _pair(data["crop_hw"], "crop_hw"),
                input_format=str(data["input_format"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelConfigError(f"clip settings: cannot read {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class ModelConfig:
    """A loaded config: where it came from, its ``model`` dict and its clip settings.

    Attributes:
        path: The config file.
        model: The ``model`` section (plain dicts and lists, ``_base_`` resolved).
        clip: Settings from ``test_pipeline``; ``None`` if the config has no test pipeline.
        test_pipeline: The raw ``test_pipeline`` list (empty if absent).
    """

    path: Path
    model: dict[str, Any]
    clip: ClipSettings | None
    test_pipeline: list[dict[str, Any]]

    @property
    def input_format(self) -> str:
        """``'NCHW'`` or ``'NCTHW'``, from the data preprocessor or the pipeline."""
        return model_input_format(self.model, self.clip, where=str(self.path))


def _pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Sequence) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ModelConfigError(f"{where}: expected an int or a pair of ints, got {value!r}")


def _crop_hw(crop_size: Any, where: str) -> tuple[int, int]:
    """MMAction2 writes crop sizes as ``int`` or ``(width, height)``; return ``(height, width)``."""
    width, height = _pair(crop_size, where)
    return (height, width)


def clip_settings(
    pipeline: Sequence[Mapping[str, Any]],
    input_format: str | None = None,
    *,
    default_format: str | None = None,
) -> ClipSettings:
    """Read clip settings from an MMAction2 test pipeline.

    Args:
        pipeline: The ``test_pipeline`` list of transform dicts.
        input_format: Overrides the pipeline's ``FormatShape.input_format``.
        default_format: Used when the pipeline has no ``FormatShape``.

    Raises:
        ModelConfigError: If the pipeline has no frame sampler, an unsupported crop, or
            a malformed transform.
    """
    sampler: Mapping[str, Any] | None = None
    resize_short: int | None = None
    resize_hw: tuple[int, int] | None = None
    crop, crop_hw = "none", None
    fmt = input_format
    for index, step in enumerate(pipeline):
        where = f"test_pipeline[{index}]"
        if not isinstance(step, Mapping) or "type" not in step:
            raise ModelConfigError(f"{where}: expected a dict with a 'type' key, got {step!r}")
        kind = str(step["type"])
        if sampler is None and "Sample" in kind and "clip_len" in step:
            sampler = step
        elif kind == "Resize":
            scale = step.get("scale")
            if not isinstance(scale, Sequence) or len(scale) != 2:
                raise ModelConfigError(f"{where}.scale: expected a pair like (-1, 256), got {scale!r}")
            keep_ratio = bool(step.get("keep_ratio", True))
            if keep_ratio and -1 in scale:
                resize_short = int(max(scale))
                resize_hw = None
            elif not keep_ratio:
                resize_hw = (int(scale[1]), int(scale[0]))
                resize_short = None
            else:  # keep_ratio with a (long, short) bound: the short side is the smaller number
                resize_short = int(min(scale))
                resize_hw = None
        elif kind in CROPS and kind != "none":
            if "crop_size" not in step:
                raise ModelConfigError(f"{where}: {kind} needs 'crop_size'")
            crop, crop_hw = kind, _crop_hw(step["crop_size"], f"{where}.crop_size")
        elif kind.endswith("Crop"):
            raise ModelConfigError(
                f"{where}: unsupported test-time crop {kind!r}; supported: CenterCrop, ThreeCrop, TenCrop"
            )
        elif kind == "FormatShape" and input_format is None:
            fmt = str(step.get("input_format", ""))
    if fmt is None:
        fmt = default_format
    if sampler is None:
        raise ModelConfigError("test_pipeline has no frame sampler (e.g. SampleFrames with clip_len)")
    if fmt not in INPUT_FORMATS:
        raise ModelConfigError(f"test_pipeline: FormatShape.input_format: expected one of {INPUT_FORMATS}, got {fmt!r}")
    return ClipSettings(
        clip_len=int(sampler["clip_len"]),
        frame_interval=int(sampler.get("frame_interval", 1)),
        num_clips=int(sampler.get("num_clips", 1)),
        resize_short=resize_short,
        resize_hw=resize_hw,
        crop=crop,
        crop_hw=crop_hw,
        input_format=fmt,
    )


def model_input_format(model: Mapping[str, Any], clip: ClipSettings | None, where: str = "model") -> str:
    """The recognizer's input layout: the data preprocessor's ``format_shape``, else the pipeline's.

    Raises:
        ModelConfigError: If neither says, or the value is not supported.
    """
    pre = model.get("data_preprocessor") or {}
    fmt = pre.get("format_shape") if isinstance(pre, Mapping) else None
    if fmt is None and clip is not None:
        fmt = clip.input_format
    if fmt is None:
        fmt = {"Recognizer2D": "NCHW", "Recognizer3D": "NCTHW"}.get(str(model.get("type")))
    if fmt not in INPUT_FORMATS:
        raise ModelConfigError(
            f"{where}: model.data_preprocessor.format_shape: expected one of {INPUT_FORMATS}, got {fmt!r}"
        )
    return str(fmt)


def _to_plain(value: Any) -> Any:
    """mmengine ``ConfigDict``/tuples → plain dicts/lists, deep-copied."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_plain(v) for v in value)
    return copy.deepcopy(value)


def _find_test_pipeline(cfg: Mapping[str, Any]) -> list[Any]:
    pipeline = cfg.get("test_pipeline")
    if pipeline is None:
        loader = cfg.get("test_dataloader") or {}
        dataset = loader.get("dataset") if isinstance(loader, Mapping) else None
        pipeline = dataset.get("pipeline") if isinstance(dataset, Mapping) else None
    return list(pipeline) if pipeline else []


def load_config(
    path: str | Path,
    cfg_options: Mapping[str, Any] | None = None,
    *,
    input_format: str | None = None,
) -> ModelConfig:
    """Load a project or MMAction2 config file.

    Args:
        path: Python config file; its ``_base_`` chain is resolved by mmengine.
        cfg_options: ``--cfg-options`` overrides, e.g. ``{'model.cls_head.num_classes': 10}``
            (as parsed by :class:`mmengine.config.DictAction`).
        input_format: Overrides the pipeline's ``FormatShape.input_format``.

    Raises:
        ModelConfigError: If the file is missing or unreadable, has a syntax error,
            lacks a ``model`` dict, or its test pipeline is malformed. The message names
            the file and what to do.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(f"config {path}: no such file; pass the path of a .py config with model=dict(...)")
    try:
        cfg = Config.fromfile(str(path))
    except SyntaxError as exc:
        raise ModelConfigError(
            f"config {path}: syntax error at line {exc.lineno}: {exc.msg}; fix the Python syntax"
        ) from exc
    except FileNotFoundError as exc:
        raise ModelConfigError(f"config {path}: a _base_ file is missing: {exc}; fix the _base_ path") from exc
    except (OSError, ValueError, TypeError, KeyError, ImportError, NameError, AttributeError) as exc:
        raise ModelConfigError(f"config {path}: cannot load it: {type(exc).__name__}: {exc}") from exc
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelConfigError(f"config {path}: --cfg-options {dict(cfg_options)!r} do not apply: {exc}") from exc
    model = cfg.get("model")
    if not isinstance(model, Mapping) or "type" not in model:
        raise ModelConfigError(
            f"config {path}: no 'model' dict with a 'type' key; add model=dict(type='Recognizer2D', ...) "
            "or inherit one through _base_"
        )
    raw_pipeline = _find_test_pipeline(cfg)
    pipeline = [_to_plain(step) for step in raw_pipeline]
    clip: ClipSettings | None = None
    if pipeline:
        try:
            pre = model.get("data_preprocessor")
            default = pre.get("format_shape") if isinstance(pre, Mapping) else None
            clip = clip_settings(pipeline, input_format=input_format, default_format=default)
        except ModelConfigError as exc:
            raise ModelConfigError(f"config {path}: {exc}") from exc
    else:
        logger.info("config %s has no test_pipeline; the input shape must be given explicitly", path)
    return ModelConfig(path=path, model=_to_plain(model), clip=clip, test_pipeline=pipeline)
