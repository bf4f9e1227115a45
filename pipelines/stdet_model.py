"""The spatio-temporal detector of ``stream.stdet``: an AVA config + checkpoint behind :class:`StdetStage`'s contract.

:func:`open_stdet_detector` builds (or reuses) the cached engine of :mod:`engines.stdet` and
wraps it as :class:`~pipelines.stdet.SpatioTemporalDetector`: frames arrive already resized to
the model's short side (BGR, as decoded), boxes in their pixels; the class names come from
``--label-map`` (AVA's ``id: name`` lines, or one name per line), else the checkpoint. As in
MMAction2's demo, only the actions named in the label map are reported, never the background
class (their scores are set to 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from engines.errors import EngineError
from pipelines.model_files import checkpoint_path
from stream.errors import SourceNotFound


def read_label_map(path: str | Path, num_classes: int, *, background_class: bool) -> tuple[list[str], np.ndarray]:
    """Names of the model's score columns from an MMAction2 label map, and which columns it names.

    AVA's label maps have ``id: name`` lines (``1: bend/bow (at the waist)``), the id being the
    score column; a plain list of names maps line ``i`` to column ``i + 1`` with a background
    class (column 0), else to column ``i``. Columns without a name are called ``action_<id>``
    and are not named (the returned mask is False there).

    Raises:
        SourceNotFound: The file does not exist.
        ConfigError: It holds no names, an id outside the model's classes, or mixes both forms.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFound(f"--label-map {path}: no such file; pass MMAction2's label map (e.g. label_map.txt)")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise ConfigError(f"--label-map {path} is not a UTF-8 text file") from None
    if not lines:
        raise ConfigError(f"--label-map {path} is empty; it needs 'id: name' lines or one name per line")
    names = [f"action_{i}" for i in range(num_classes)]
    named = np.zeros(num_classes, bool)
    if background_class:
        names[0] = "background"
    with_ids = [line.partition(":") for line in lines]
    if all(sep and head.strip().isdigit() for head, sep, _ in with_ids):
        for head, _, name in with_ids:
            column = int(head)
            if column >= num_classes:
                raise ConfigError(
                    f"--label-map {path}: id {column} is beyond the model's {num_classes} classes "
                    "(pass the label map the checkpoint was trained with)"
                )
            names[column] = name.strip()
            named[column] = True
        return names, named
    if any(sep and head.strip().isdigit() for head, sep, _ in with_ids):
        raise ConfigError(f"--label-map {path}: mixes 'id: name' lines and plain names; use one form")
    first = 1 if background_class else 0
    if len(lines) > num_classes - first:
        raise ConfigError(
            f"--label-map {path}: {len(lines)} names for a model with {num_classes - first} action classes"
        )
    names[first : first + len(lines)] = lines
    named[first : first + len(lines)] = True
    return names, named


class StdetModel:
    """An AVA engine fed as :class:`~pipelines.stdet.StdetStage` feeds it."""

    def __init__(self, detector: Any, names: Sequence[str], reported: np.ndarray) -> None:
        self._detector = detector
        self.spec = detector.spec
        self._names = list(names)
        self._hidden = ~np.asarray(reported, bool)

    @property
    def class_names(self) -> Sequence[str]:
        return self._names

    @property
    def clip_len(self) -> int:
        return int(self.spec.clip_len)

    @property
    def frame_interval(self) -> int:
        return int(self.spec.frame_interval)

    @property
    def short_side(self) -> int:
        return int(self.spec.short_side)

    def scores(self, frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._detector.predict(np.stack(frames), np.asarray(boxes, np.float32)), np.float32)
        scores[:, self._hidden] = 0.0  # never above a threshold: not reported
        return scores

    def close(self) -> None:
        self._detector.close()


def check_stdet_model(
    config: Path, checkpoint: str | None, label_map: str | None, cfg_options: Mapping[str, Any]
) -> None:
    """Fail fast, before any model or source is opened, on missing files or an unreadable config.

    Raises:
        SourceNotFound / ConfigError: Naming the flag and what to do.
    """
    from engines.stdet import load_stdet_config

    if not Path(config).is_file():
        raise SourceNotFound(f"--config {config}: no such file; pass an MMAction2 AVA config (configs/detection/...)")
    _, cfg = load_stdet_config(config, cfg_options or None)
    checkpoint_path(Path(config), checkpoint, cfg.get("load_from"))
    if label_map is not None and not Path(label_map).is_file():
        raise SourceNotFound(f"--label-map {label_map}: no such file")


def open_stdet_detector(
    config: Path,
    checkpoint: str | None,
    *,
    label_map: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    short_side: int | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    trust_checkpoint: bool = False,
) -> StdetModel:
    """Build or reuse the engine of ``config`` + ``checkpoint`` and wrap it for :class:`StdetStage`.

    Raises:
        ConfigError: A device / backend the AVA engines do not run on, a bad label map.
        engines errors: A bad config or a checkpoint that does not fit (one line each).
    """
    from dataclasses import replace

    from engines.cache import resolve_device
    from engines.stdet import SpatioTemporalDetector, build_stdet_engine, load_stdet_config

    try:
        name, dev = resolve_device(backend, device)
    except EngineError as exc:
        raise ConfigError(str(exc)) from exc
    if dev.kind != "cpu" or name not in ("onnxruntime", "openvino"):
        raise ConfigError(
            f"--backend {name} / --device {dev}: the spatio-temporal detectors run on the CPU with onnxruntime "
            "or openvino"
        )
    _, cfg = load_stdet_config(config, cfg_options)
    engine, spec = build_stdet_engine(
        config,
        checkpoint_path(Path(config), checkpoint, cfg.get("load_from")),
        backend=name,
        trusted=trust_checkpoint,
        cfg_options=cfg_options or None,
    )
    if short_side is not None and short_side != spec.short_side:
        spec = replace(spec, short_side=short_side)
    detector = SpatioTemporalDetector(engine, spec, channel_order="bgr")
    reported = np.ones(spec.num_classes, bool)
    if label_map is not None:
        # as MMAction2's demo: only the actions the label map names are reported
        names, reported = read_label_map(label_map, spec.num_classes, background_class=spec.background_class)
    else:
        names = list(detector.class_names or [f"action_{i}" for i in range(spec.num_classes)])
    if spec.background_class:
        reported[0] = False
    return StdetModel(detector, names, reported)
