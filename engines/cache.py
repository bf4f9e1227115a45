"""Build an engine once, reuse it afterwards: the on-disk engine cache, and device choice.

:func:`cached_engine` is what every pipeline calls with a loaded config and a checkpoint:
it resolves ``--backend`` / ``--device`` once (:func:`resolve_device`), then opens the
cached engine keyed by everything that changes it — the model section (after
``--cfg-options``), the checkpoint's hash, backend, device with its index, precision,
input shape, max batch, the INT8 calibration video (for ``int8`` and ``auto``) and the cache
layout version — or builds it. Detectors, RoI heads
and skeleton models use the same cache as recognizers.

The cache lives in ``$ACTION_STREAM_CACHE/engines`` (default ``~/.cache/action-stream``).
A broken entry is rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.files import AtomicDir
from engines.config import ModelConfig, to_plain
from engines.engine import Engine, build_engine, load_engine

log = logging.getLogger(__name__)

#: Bump when the cached engine layout changes: old entries are then ignored.
ENGINE_FORMAT = 2
DEVICE_KINDS = ("cpu", "cuda")


@dataclass(frozen=True)
class Device:
    """Where an engine runs: ``kind`` (``cpu`` / ``cuda``) and, for CUDA, the device ``index``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(text: str) -> Device:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` → :class:`Device`.

    Raises:
        ConfigError: For anything else.
    """
    kind, _, index = str(text).strip().partition(":")
    if kind not in DEVICE_KINDS or (kind == "cpu" and index) or (index and not index.isdigit()):
        raise ConfigError(f"--device: expected cpu, cuda or cuda:N, got {text!r}")
    return Device(kind, int(index) if index else 0)


def resolve_device(backend: str, device: str | Device) -> tuple[str, Device]:
    """The concrete backend name and device for ``--backend`` / ``--device``.

    ``--device cuda[:N]`` on a machine without that GPU is an error rather than a silent fall
    back to the CPU; ``--backend auto`` then picks a GPU backend, on ``cpu`` a CPU one.

    Raises:
        ConfigError: Unknown device, or a CUDA device that is not there.
        UnknownBackendError: Unknown backend name (the message lists the valid ones).
    """
    from engines.backends import GPU_BACKENDS, cuda_device_count, resolve_backend, select_backend

    dev = device if isinstance(device, Device) else parse_device(device)
    if dev.kind == "cuda":
        count = cuda_device_count()
        if count == 0:
            raise ConfigError(f"--device {dev}: no CUDA GPU is visible on this machine; use --device cpu")
        if dev.index >= count:
            raise ConfigError(f"--device {dev}: this machine has {count} CUDA GPU(s) (cuda:0-cuda:{count - 1})")
    if backend == "auto":
        return select_backend("cpu" if dev.kind == "cpu" else "cuda"), dev
    name = resolve_backend(backend)
    if dev.kind == "cpu" and name in GPU_BACKENDS:
        raise ConfigError(f"--backend {name} runs on a CUDA GPU; pass --device cuda (or cuda:N)")
    return name, dev


def cache_root() -> Path:
    """Where built engines are cached: ``$ACTION_STREAM_CACHE/engines`` or ``~/.cache/action-stream/engines``."""
    root = os.environ.get("ACTION_STREAM_CACHE") or Path.home() / ".cache" / "action-stream"
    return Path(root) / "engines"


def cache_key(
    cfg: ModelConfig,
    checkpoint: Path,
    backend: str,
    device: Device,
    precision: str,
    shape: Sequence[int],
    max_batch: int,
    calibration: str = "",
) -> str:
    """The cache folder name of an engine: readable prefix plus a hash of all that shapes it.

    ``calibration`` (:meth:`~engines.quantize.CalibrationSource.key`) counts for ``int8`` and
    ``auto`` only (``auto`` may keep INT8), so fp32 / bf16 entries stay where they were.
    """
    from engines.checkpoint import file_sha256

    digest = hashlib.sha256()
    parts: tuple[str, ...] = (
        repr(to_plain(cfg.model)),
        repr(to_plain(cfg.test_pipeline)),
        file_sha256(checkpoint),
        backend,
        str(device),
        precision,
        repr(tuple(shape)),
        str(max_batch),
        str(ENGINE_FORMAT),
    )
    if precision in ("int8", "auto") and calibration:
        parts = (*parts, f"calibration={calibration}")
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return f"{backend}-{precision}-{digest.hexdigest()[:16]}"


def cached_engine(
    cfg: ModelConfig,
    checkpoint: Path,
    *,
    backend: str,
    device: Device,
    precision: str,
    input_shape: Sequence[int],
    max_batch: int,
    num_threads: int | None = None,
    trusted: bool = False,
    calibration: str | Path | None = None,
) -> Engine:
    """Open the cached engine for ``cfg`` + ``checkpoint``, building it on a miss.

    Args:
        cfg: The loaded config (``--cfg-options`` applied); it is not read from disk again.
        checkpoint: The checkpoint file.
        backend: A concrete backend name (see :func:`resolve_device`).
        device: The device the engine runs on.
        precision: ``auto``, ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        input_shape: Per-sample input shape.
        max_batch: Largest batch per engine call.
        num_threads: CPU threads for the backend.
        trusted: Allow full unpickling of an old checkpoint (``--trust-checkpoint``).
        calibration: INT8 calibration video (``--calibration``); default: the demo video.

    Raises:
        EngineError: The checkpoint does not fit, the export fails, the backend is unavailable.
        CalibrationError: ``int8`` with a calibration video that is missing or unreadable.
    """
    from engines.quantize import CalibrationSource, default_calibration_video

    calibration_key = ""  # auto without the demo video (and without --calibration) never tries int8
    if precision == "int8" or (precision == "auto" and (calibration or default_calibration_video().is_file())):
        calibration_key = CalibrationSource.resolve(calibration).key()
    key = cache_key(cfg, checkpoint, backend, device, precision, input_shape, max_batch, calibration_key)
    out = cache_root() / key
    engine = _open_cached(out, backend, device, num_threads)
    if engine is not None:
        return engine
    log.info("building the %s engine for %s (cached in %s)", backend, cfg.path.name, out)
    return build_engine(
        cfg,
        checkpoint,
        backend=backend,
        precision=precision,
        max_batch=max_batch,
        out_dir=out,
        input_shape=input_shape,
        num_threads=num_threads,
        device=device.index,
        trusted=trusted,
        replace_any=True,  # a cache entry is ours; it appears whole once validated
        calibration=calibration,
    )


def cached_graph_engine(
    name: str,
    key_parts: Sequence[str],
    build: Callable[[Path], Engine],
    *,
    backend: str,
    num_threads: int | None = None,
    cache_dir: str | Path | None = None,
    precision: str = "fp32",
) -> Engine:
    """Open a cached graph engine (a detector, a pose model), or build it and cache it whole.

    Args:
        name: the model's short name (the cache folder starts with it).
        key_parts: everything the engine depends on (config, checkpoint hash, input shape...).
        build: builds, checks and returns the engine in the folder it is given.
        backend: a concrete backend name.
        num_threads: CPU threads for the backend.
        cache_dir: the cache's root (default :func:`cache_root`).
        precision: the precision ``build`` builds at (part of the key and the folder name).

    The engine is built in a hidden folder beside its cache entry and swapped in only once
    complete (:class:`core.files.AtomicDir`), so a failed or interrupted build leaves no
    entry, and a broken entry is rebuilt.
    """
    digest = hashlib.sha256()
    # fp32 keys stay as they were, so existing fp32 cache entries are still found
    parts = (*key_parts, backend, str(ENGINE_FORMAT)) + (() if precision == "fp32" else (precision,))
    for part in parts:
        digest.update(part.encode() + b"\0")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    out = root / f"{name}-{backend}-{precision}-{digest.hexdigest()[:16]}"
    engine = _open_cached(out, backend, Device("cpu"), num_threads)
    if engine is not None:
        return engine
    log.info("building the %s %s engine (cached in %s)", backend, name, out)
    building = AtomicDir(out)
    try:
        build(building.path).close()
        building.commit()
    finally:
        building.discard()  # a no-op once committed
    return load_engine(out, backend, num_threads=num_threads)


def _open_cached(out: Path, backend: str, device: Device, num_threads: int | None) -> Engine | None:
    if not (out / "manifest.json").is_file():
        return None
    try:
        return load_engine(out, backend, num_threads=num_threads, device=device.index)
    except Exception as exc:  # a broken cache entry is rebuilt, never fatal
        log.warning("cached engine %s is unusable (%s); rebuilding", out, exc)
        return None
