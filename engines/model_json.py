"""The engine folder's ``model.json``: the resolved ``model`` dict and ``test_pipeline`` as data.

Engines before format 3 stored them as ``config.py``, which mmengine executes as Python
when it reads it; a folder from elsewhere could run anything that way. ``model.json`` is
plain JSON read with :func:`json.loads`. Tuples (``out_indices=(3,)``, ``scale=(-1, 256)``)
are kept as ``{"__tuple__": [...]}`` so the torch backend rebuilds exactly the model the
build exported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engines.errors import ModelConfigError
from engines.integrity import REBUILD, EngineFileError

MODEL_JSON_NAME = "model.json"
_TUPLE = "__tuple__"
#: A model.json larger than this is refused before parsing (real ones are a few KiB).
MAX_MODEL_JSON_BYTES = 4 << 20


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        if _TUPLE in value:
            raise ModelConfigError(f"{where}: the key {_TUPLE!r} is reserved")
        return {str(k): _encode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ModelConfigError(
        f"{where}: {type(value).__name__} value {value!r} cannot be stored in an engine as data; "
        "use plain numbers, strings, lists and dicts in the model config"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TUPLE} and isinstance(value[_TUPLE], list):
            return tuple(_decode(v) for v in value[_TUPLE])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def write_model_json(path: Path, model: Mapping[str, Any], test_pipeline: list[Any]) -> Path:
    """Write ``{"model": ..., "test_pipeline": ...}`` to ``path``.

    Raises:
        ModelConfigError: If a value is not plain data (a class, a function, NaN...).
    """
    data = {"model": _encode(model, "model"), "test_pipeline": _encode(list(test_pipeline), "test_pipeline")}
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return path


def read_model_json(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The ``model`` dict and ``test_pipeline`` list of an engine's ``model.json``.

    Raises:
        EngineFileError: If the file is missing, too large, not JSON, or lacks a ``model``
            dict with a ``type``.
    """
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_JSON_BYTES:
            raise EngineFileError(f"{path}: {size} bytes is too large for a model description; {REBUILD}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EngineFileError(f"{path}: missing; {REBUILD}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineFileError(f"{path}: not readable JSON ({exc}); {REBUILD}") from exc
    model = _decode(data.get("model")) if isinstance(data, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("type"), str):
        raise EngineFileError(f"{path}: expected an object with a 'model' dict holding a 'type'; {REBUILD}")
    pipeline = _decode(data.get("test_pipeline") or [])
    if not isinstance(pipeline, list):
        raise EngineFileError(f"{path}: 'test_pipeline' must be a list; {REBUILD}")
    return model, pipeline
