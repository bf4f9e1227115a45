"""Read MMAction2 checkpoints and load them into our models, with errors that say what is wrong.

Accepted layouts:

* MMAction2 / mmengine: ``{'state_dict': {...}, 'meta': {...}, ...}`` (optimizer and
  other training keys are ignored);
* a bare state dict ``{'backbone.conv1.conv.weight': tensor, ...}``;
* either one saved from ``nn.DataParallel`` / DDP (every key prefixed ``module.``).

Safety: files are read with ``torch.load(weights_only=True)``, which refuses to run
arbitrary pickled code. numpy arrays and scalars (common in MMAction2's ``meta``) are
allowed on top of that, since rebuilding them runs no user code. Checkpoints that pickle
other objects (mmengine config objects, custom classes, ...) fail; reading them needs
``trusted=True`` (CLI: ``--trust-checkpoint``), which retries with
``weights_only=False`` and logs a warning. Unpickling a file runs code it names, so
only pass ``trusted=True`` for files whose origin you trust.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.files import atomic_path
from engines.errors import CheckpointError

logger = logging.getLogger(__name__)

#: Keys that may be missing from a checkpoint without harm at inference time.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)
#: How many key names an error message lists per category.
_SHOW = 5


@dataclass
class Checkpoint:
    """A checkpoint read from disk.

    Attributes:
        path: The file it was read from (``None`` if built in memory).
        state_dict: Parameter and buffer tensors, ``module.`` prefix removed.
        meta: The checkpoint's ``meta`` dict (empty for bare state dicts).
    """

    path: Path | None
    state_dict: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str] | None:
        """Class names from ``meta['dataset_meta']['classes']`` (or ``meta['CLASSES']``), if any."""
        dataset_meta = self.meta.get("dataset_meta")
        names = dataset_meta.get("classes") if isinstance(dataset_meta, Mapping) else None
        if names is None:
            names = self.meta.get("CLASSES")
        if names is None or isinstance(names, str):
            return None
        try:
            return [str(name) for name in names]
        except TypeError:
            return None


@dataclass(frozen=True)
class KeyReport:
    """How a state dict fits a model.

    Attributes:
        missing: Model keys the checkpoint lacks.
        unexpected: Checkpoint keys the model lacks.
        mis_shaped: ``(key, checkpoint shape, model shape)`` for keys in both with different shapes.
    """

    missing: list[str]
    unexpected: list[str]
    mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        """True when every key is present, expected and of the right shape."""
        return not (self.missing or self.unexpected or self.mis_shaped)

    def describe(self) -> str:
        """One line with counts and the first few names of each category."""
        parts = []
        if self.mis_shaped:
            shown = ", ".join(
                f"{key} (checkpoint {tuple(ck)} vs model {tuple(md)})" for key, ck, md in self.mis_shaped[:_SHOW]
            )
            parts.append(f"{len(self.mis_shaped)} mis-shaped: {shown}{_more(self.mis_shaped)}")
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {', '.join(self.missing[:_SHOW])}{_more(self.missing)}")
        if self.unexpected:
            shown = ", ".join(self.unexpected[:_SHOW])
            parts.append(f"{len(self.unexpected)} unexpected: {shown}{_more(self.unexpected)}")
        return "; ".join(parts) if parts else "all keys match"


def _more(items: list[Any]) -> str:
    return f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: numpy globals that rebuild plain arrays and scalars; allowed without ``trusted``
#: (MMAction2's ``meta`` often holds numpy values).
_NUMPY_SAFE = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)


def _resolve_numpy(name: str) -> Any | None:
    if name not in _NUMPY_SAFE and not name.startswith("numpy.dtypes."):
        return None
    module_name, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None


def _numpy_dtype_classes() -> list[Any]:
    """numpy's per-dtype classes (``numpy.dtypes.Float32DType``, ...), met while rebuilding arrays."""
    import numpy as np

    dtypes = getattr(np, "dtypes", None)
    return [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")] if dtypes else []


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError, AttributeError):
        return []


def _torch_load(path: Path, trusted: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(
                f"checkpoint {path}: not a PyTorch checkpoint or corrupt ({exc}); "
                "pass a .pth file saved by torch.save / MMAction2"
            ) from exc
        names = _unsafe_globals(path)
        numpy_objects = [obj for obj in map(_resolve_numpy, names) if obj is not None]
        if names and len(numpy_objects) == len(names):
            with torch.serialization.safe_globals([*numpy_objects, *_numpy_dtype_classes()]):
                return torch.load(path, map_location="cpu", weights_only=True)
        if not trusted:
            refused = [name for name in names if _resolve_numpy(name) is None]
            shown = f" ({', '.join(refused[:_SHOW])})" if refused else ""
            raise CheckpointError(
                f"checkpoint {path}: holds pickled objects beyond tensors{shown}, which weights_only loading "
                "refuses; if you trust where the file comes from, pass trusted=True (CLI: --trust-checkpoint)"
            ) from exc
    logger.warning("checkpoint %s: loading with weights_only=False because trusted=True; this runs pickled code", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, AttributeError, ModuleNotFoundError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot unpickle it: {exc}") from exc


def read_checkpoint(path: str | Path, *, trusted: bool = False) -> Checkpoint:
    """Read a checkpoint file into a :class:`Checkpoint`.

    Args:
        path: ``.pth`` file in MMAction2 layout or a bare state dict.
        trusted: Allow full unpickling (``weights_only=False``) when safe loading fails.

    Raises:
        CheckpointError: If the file is missing, truncated, corrupt, not a checkpoint, or
            needs unpickling that ``trusted`` does not allow. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise CheckpointError(
            f"checkpoint {path}: not a PyTorch checkpoint (neither a torch.save zip nor a pickle); "
            "pass a .pth file saved by torch.save / MMAction2"
        )
    try:
        obj = _torch_load(path, trusted)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError, struct.error) as exc:
        raise CheckpointError(
            f"checkpoint {path}: cannot read it, the file is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); download or save it again"
        ) from exc
    return checkpoint_from_object(obj, path)


def checkpoint_from_object(obj: Any, path: Path | None = None) -> Checkpoint:
    """Normalise a loaded object (MMAction2 layout or bare state dict) into a :class:`Checkpoint`.

    Raises:
        CheckpointError: If the object holds no tensors in a recognised layout.
    """
    name = f"checkpoint {path}" if path is not None else "checkpoint"
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{name}: expected a dict (state dict or {{'state_dict': ...}}), got {type(obj).__name__}"
        )
    meta: dict[str, Any] = {}
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        state = obj["state_dict"]
        raw_meta = obj.get("meta")
        meta = dict(raw_meta) if isinstance(raw_meta, Mapping) else {}
    elif "model" in obj and isinstance(obj["model"], Mapping) and not isinstance(obj["model"], Tensor):
        state = obj["model"]  # some trainers save {'model': state_dict}
    else:
        state = obj
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{name}: holds no tensors; expected a state dict or {{'state_dict': ..., 'meta': ...}}")
    skipped = len(state) - len(tensors)
    if skipped:
        logger.info("%s: ignored %d non-tensor entries of the state dict", name, skipped)
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return Checkpoint(path=path, state_dict=tensors, meta=meta)


def compare_keys(model: nn.Module, state_dict: Mapping[str, Tensor]) -> KeyReport:
    """Compare a state dict with a model's, key by key and shape by shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state_dict if k not in own]
    mis_shaped = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    return KeyReport(missing=missing, unexpected=unexpected, mis_shaped=mis_shaped)


def _drop_preprocessor(model: nn.Module, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    own = model.state_dict()
    return {
        key: value for key, value in state_dict.items() if not (key.startswith("data_preprocessor.") and key not in own)
    }


def load_checkpoint(
    model: nn.Module,
    checkpoint: str | Path | Checkpoint,
    *,
    config_name: str | Path | None = None,
    trusted: bool = False,
) -> Checkpoint:
    """Load a checkpoint into ``model`` strictly, after checking every key and shape.

    ``data_preprocessor.*`` entries are dropped when the model does not register them;
    a missing ``num_batches_tracked`` buffer is tolerated (unused at inference).

    Args:
        model: The model built from the config.
        checkpoint: A file path or an already-read :class:`Checkpoint`.
        config_name: The config the model came from, named in errors.
        trusted: See :func:`read_checkpoint`.

    Returns:
        The checkpoint that was loaded (for its ``meta`` and class names).

    Raises:
        CheckpointError: If the file cannot be read, or keys are missing, unexpected or
            mis-shaped; the message gives counts, the first few names, and the config.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint, trusted=trusted)
    state = _drop_preprocessor(model, ckpt.state_dict)
    report = compare_keys(model, state)
    if not report.ok:
        source = f"checkpoint {ckpt.path}" if ckpt.path is not None else "checkpoint"
        target = f"config {config_name}" if config_name is not None else f"model {type(model).__name__}"
        hint = (
            " (a different num_classes? override it with --cfg-options model.cls_head.num_classes=N)"
            if any(key.startswith("cls_head.") for key, _, _ in report.mis_shaped)
            else ""
        )
        raise CheckpointError(f"{source} does not fit {target}: {report.describe()}{hint}")
    model.load_state_dict(state, strict=False)
    return ckpt


def save_checkpoint(model: nn.Module, path: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Save ``model``'s weights in MMAction2's model-zoo layout ``{'state_dict', 'meta'}``.

    Only tensors and plain Python values are written, so the file loads with
    ``weights_only=True``. The file is written whole or not at all (:func:`core.files.atomic_path`).
    """
    path = Path(path)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": dict(meta or {})}, tmp)
    return path
