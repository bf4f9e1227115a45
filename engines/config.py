"""Load MMAction2-style model configs and read the clip spec of their test pipeline.

A config is a Python file read by :func:`mmengine.Config.fromfile` (so ``_base_``
chains resolve as MMAction2 users know them) holding ``model = dict(...)`` and,
usually, MMAction2's ``test_pipeline`` list. :func:`load_config` returns the model
dict plus the :class:`~engines.clip_spec.ClipSpec` of that pipeline (the one parser
of test pipelines, shared with the streaming runtime): which frames a sample takes,
how they are resized and cropped, and therefore the per-sample input shape.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from engines.clip_spec import INPUT_FORMATS, MIXED_FORMAT, ClipSpec, find_pipeline
from engines.errors import ModelConfigError

__all__ = ["INPUT_FORMATS", "ClipSpec", "ModelConfig", "load_config", "model_input_format", "read_config", "to_plain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """A loaded config: where it came from, its ``model`` dict and its clip spec.

    Attributes:
        path: The config file.
        model: The ``model`` section (plain dicts and lists, ``_base_`` resolved).
        clip: The spec of ``test_pipeline``; ``None`` if the config has no test pipeline.
        test_pipeline: The raw ``test_pipeline`` list (empty if absent).
        raw: The whole mmengine ``Config`` (``--cfg-options`` applied), for the keys entry points
            read (``load_from``, ``label_file``, ``demo_video``, ``sources``).
    """

    path: Path
    model: dict[str, Any]
    clip: ClipSpec | None
    test_pipeline: list[dict[str, Any]]
    raw: Any = field(default=None, repr=False, compare=False)

    def get(self, key: str, default: Any = None) -> Any:
        """A top-level key of the config as plain data, or ``default``."""
        value = self.raw.get(key, default) if self.raw is not None else default
        return to_plain(value)

    @property
    def input_format(self) -> str:
        """``'NCHW'`` or ``'NCTHW'``, from the data preprocessor or the pipeline."""
        return model_input_format(self.model, self.clip, where=str(self.path))


def model_input_format(model: Mapping[str, Any], clip: ClipSpec | None, where: str = "model") -> str:
    """The recognizer's input layout: the data preprocessor's ``format_shape``, else the pipeline's.

    Raises:
        ModelConfigError: If neither says, or the value is not supported.
    """
    pre = model.get("data_preprocessor") or {}
    fmt = pre.get("format_shape") if isinstance(pre, Mapping) else None
    if fmt == MIXED_FORMAT:  # the input decides (MMAction2's OmniSource models): a video clip here
        fmt = None
    if fmt is None and clip is not None:
        fmt = clip.input_format
    if fmt is None:
        fmt = {"Recognizer2D": "NCHW", "Recognizer3D": "NCTHW", "RecognizerOmni": "NCTHW"}.get(str(model.get("type")))
    if fmt not in INPUT_FORMATS:
        raise ModelConfigError(
            f"{where}: model.data_preprocessor.format_shape: expected one of {INPUT_FORMATS}, got {fmt!r}"
        )
    return str(fmt)


def to_plain(value: Any) -> Any:
    """mmengine ``ConfigDict``/tuples → plain dicts/lists, deep-copied."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return copy.deepcopy(value)


def read_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """Read a config file (the project's one config loader) and apply ``--cfg-options``.

    Args:
        path: Python config file; its ``_base_`` chain is resolved by mmengine.
        cfg_options: ``{'dotted.key': value}`` overrides, as parsed by ``--cfg-options``. Every
            section on a key's path must exist (a typo is an error that lists the valid keys there).

    Returns:
        The mmengine ``Config``.

    Raises:
        ModelConfigError: If the file is missing or unreadable, has a syntax error, or an
            override names a key the config does not have. The message names the file.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise ModelConfigError(f"config {path}: no such file{hint}; pass the path of a .py config, e.g. under configs/")
    try:
        cfg = Config.fromfile(str(path))
    except SyntaxError as exc:
        raise ModelConfigError(
            f"config {path}: syntax error at line {exc.lineno}: {exc.msg}; fix the Python syntax"
        ) from exc
    except FileNotFoundError as exc:
        raise ModelConfigError(f"config {path}: a _base_ file is missing: {exc}; fix the _base_ path") from exc
    except Exception as exc:  # mmengine raises many kinds for bad files; report them all the same way
        raise ModelConfigError(f"config {path}: cannot load it: {type(exc).__name__}: {exc}") from exc
    if cfg_options:
        for key in cfg_options:
            _check_key(cfg, str(key), path)
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except Exception as exc:
            raise ModelConfigError(f"config {path}: --cfg-options {dict(cfg_options)!r} do not apply: {exc}") from exc
    return cfg


def _check_key(cfg: Any, key: str, path: Path) -> None:
    """Fail unless every section on the dotted ``key``'s path exists (list items by index).

    The last part may be new (MMAction2 users add keys, e.g. ``model.cls_head.average_clips``);
    the section that receives it then validates it (the model registry and the test-pipeline
    parser reject keys they do not know), and a new key is logged.
    """
    node: Any = cfg
    walked: list[str] = []
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, Mapping) or hasattr(node, "keys"):  # mmengine's Config is no Mapping
            if part not in node:
                where = ".".join(walked) or "the top level"
                if last:
                    logger.warning("config %s: --cfg-options %s adds a key %s lacks", path, key, where)
                    return
                valid = ", ".join(sorted(str(k) for k in node if not str(k).startswith("_")))
                raise ModelConfigError(
                    f"config {path}: --cfg-options {key}: no key {part!r} at {where}; valid keys there: {valid}"
                )
            node = node[part]
        elif isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                raise ModelConfigError(
                    f"config {path}: --cfg-options {key}: {'.'.join(walked)} is a list of {len(node)} items; "
                    f"expected an index 0-{len(node) - 1}, got {part!r}"
                )
            node = node[int(part)]
        else:
            raise ModelConfigError(
                f"config {path}: --cfg-options {key}: {'.'.join(walked)} is a {type(node).__name__}, not a dict"
            )
        walked.append(part)


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> ModelConfig:
    """Load a project or MMAction2 config file: its ``model`` dict and test-pipeline clip spec.

    Args:
        path: Python config file; its ``_base_`` chain is resolved by mmengine.
        cfg_options: ``--cfg-options`` overrides, e.g. ``{'model.cls_head.num_classes': 10}``.

    Raises:
        ModelConfigError: If :func:`read_config` fails, the config lacks a ``model`` dict, or
            :meth:`ClipSpec.from_pipeline` rejects its test pipeline. The message names the file
            and what to do.
    """
    path = Path(path)
    cfg = read_config(path, cfg_options)
    model = cfg.get("model")
    if not isinstance(model, Mapping) or "type" not in model:
        raise ModelConfigError(
            f"config {path}: no 'model' dict with a 'type' key; add model=dict(type='Recognizer2D', ...) "
            "or inherit one through _base_"
        )
    model = to_plain(model)
    _refuse_flow(cfg, path)
    pipeline = [to_plain(step) for step in find_pipeline(cfg) or []]
    clip: ClipSpec | None = None
    if pipeline:
        try:
            clip = ClipSpec.from_pipeline(pipeline, model.get("data_preprocessor"))
        except ConfigError as exc:
            raise ModelConfigError(f"config {path}: {exc}") from exc
    else:
        logger.info("config %s has no test_pipeline; the input shape must be given explicitly", path)
    return ModelConfig(path=path, model=model, clip=clip, test_pipeline=pipeline, raw=cfg)


def _refuse_flow(cfg: Any, path: Path) -> None:
    """Refuse an optical-flow config (``modality='Flow'`` in its test dataset) in one line.

    Such models take stacked flow fields (two channels per frame, precomputed with TV-L1 and
    stored as images), not the RGB frames every source here decodes.
    """
    loader = cfg.get("test_dataloader")
    dataset = loader.get("dataset") if isinstance(loader, Mapping) else None
    modality = dataset.get("modality") if isinstance(dataset, Mapping) else None
    if modality == "Flow":
        raise ModelConfigError(
            f"config {path}: an optical-flow model (test dataset modality='Flow'): it takes precomputed "
            "flow fields, not the RGB frames this project decodes; use the RGB config of the same model"
        )
