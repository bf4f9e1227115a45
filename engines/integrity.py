"""Engine folders are untrusted input: confined paths, recorded hashes, no code.

An engine folder may come from anywhere (a colleague, a download, a shared drive), so
opening one must never run code from it, read files outside it, or use a file that
differs from what the build wrote. This module holds the checks :func:`~engines.engine.load_engine`
runs before a backend touches anything:

* :func:`confined_path` — a ``files`` entry of the manifest must be a relative path that
  stays inside the folder once symlinks are resolved (no absolute paths, no ``..``);
* :func:`record_hashes` / :func:`verify_hashes` — the build records the SHA-256 of every
  file it wrote (``manifest.sha256``); opening checks each of them (streamed, once per
  open) and names the first file that differs or is missing;
* :func:`local_cache_dir` — compiled artefacts that a backend deserializes as code-like
  blobs (TensorRT plans) live in the user's own cache, not in an untrusted folder.

Python configs (``config.py`` of engines built before format 3) and TensorRT plans shipped
inside the folder are only used with ``trusted=True`` (CLI: ``--trust-engine``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from engines.errors import EngineError

#: Read size when hashing; large weight files are streamed, never read whole.
HASH_CHUNK = 1 << 20
#: Files hashed at once (hashlib releases the GIL on large blocks).
HASH_THREADS = 4
#: Folders inside an engine dir holding caches written after the build (never hashed, never trusted).
UNHASHED_DIRS = ("tensorrt", "onnxruntime_trt_cache")
#: Where compiled plans of untrusted engines are cached (``$ACTION_STREAM_CACHE`` overrides).
CACHE_ENV = "ACTION_STREAM_CACHE"

REBUILD = "rebuild the engine with python -m engines.build"


class EngineFileError(EngineError, ValueError):
    """A file of an engine folder is missing, corrupt, or differs from its recorded hash."""


class EnginePathError(EngineFileError):
    """A manifest ``files`` entry is absolute, climbs out with ``..``, or resolves outside the folder."""


class EngineTrustError(EngineError, PermissionError):
    """Opening the engine would run code or load a code-like blob from the folder; needs ``--trust-engine``."""


class EngineMismatchError(EngineError, ValueError):
    """The manifest and the graph in the folder disagree (classes, input shape)."""


def confined_path(engine_dir: Path, relative: object, role: str) -> Path:
    """The absolute path of a manifest ``files`` entry, refused unless it stays inside ``engine_dir``.

    Args:
        engine_dir: The engine folder.
        relative: The manifest's entry (must be a non-empty relative POSIX path string).
        role: Its role in the manifest (``'onnx'``, ``'model'``...), for the message.

    Raises:
        EnginePathError: If the entry is not a string, is absolute, contains ``..`` or a
            backslash, or resolves (symlinks followed) outside the folder.
    """
    where = f"engine {engine_dir}: manifest files[{role!r}]"
    if not isinstance(relative, str) or not relative.strip():
        raise EnginePathError(f"{where}: expected a relative file name, got {relative!r}; {REBUILD}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("~") or "\\" in relative or ":" in pure.parts[0]:
        raise EnginePathError(f"{where} = {relative!r} is not a relative path inside the folder; {REBUILD}")
    if ".." in pure.parts:
        raise EnginePathError(f"{where} = {relative!r} climbs out of the folder with '..'; {REBUILD}")
    root = engine_dir.resolve()
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root):
        raise EnginePathError(f"{where} = {relative!r} resolves outside the folder (to {resolved}); {REBUILD}")
    return root / pure


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in :data:`HASH_CHUNK` blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def engine_files(engine_dir: Path, skip: Iterable[str] = ()) -> list[str]:
    """Relative POSIX paths of the regular files under ``engine_dir`` (caches and ``skip`` left out), sorted."""
    skipped = set(skip)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(engine_dir):
        rel_dir = Path(dirpath).relative_to(engine_dir)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in UNHASHED_DIRS]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel not in skipped and (Path(dirpath) / name).is_file():
                found.append(rel)
    return sorted(found)


def record_hashes(engine_dir: Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """SHA-256 of every file the build wrote into ``engine_dir`` (relative path -> hex)."""
    return {rel: file_sha256(engine_dir / rel) for rel in engine_files(engine_dir, skip)}


def verify_hashes(engine_dir: Path, hashes: Mapping[str, str], files: Mapping[str, str]) -> None:
    """Check every recorded file against its hash; every ``files`` entry must be recorded.

    Raises:
        EnginePathError: If a recorded path escapes the folder.
        EngineFileError: If a file is missing, unreadable, unrecorded, or differs from its hash
            (one line naming the file and saying to rebuild the engine).
    """
    for role, relative in files.items():
        if relative not in hashes and PurePosixPath(relative).parts[0] not in UNHASHED_DIRS:
            raise EngineFileError(
                f"engine {engine_dir}: {relative} (files[{role!r}]) has no recorded sha256, so it cannot be "
                f"checked; {REBUILD}"
            )
    paths = {}
    for relative in sorted(hashes):
        path = confined_path(engine_dir, relative, f"sha256 {relative}")
        if not path.is_file():
            raise EngineFileError(f"engine {engine_dir}: {relative} is missing; {REBUILD}")
        paths[relative] = path
    workers = max(1, min(HASH_THREADS, len(paths), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-hash") as pool:
        futures = {relative: pool.submit(file_sha256, path) for relative, path in paths.items()}
        for relative, future in futures.items():  # sorted: the first bad file is reported
            try:
                actual = future.result()
            except OSError as exc:
                message = f"engine {engine_dir}: cannot read {relative}: {exc.strerror}; {REBUILD}"
                raise EngineFileError(message) from exc
            if actual != hashes[relative]:
                raise EngineFileError(
                    f"engine {engine_dir}: {relative} differs from the sha256 recorded at build time "
                    f"(corrupt or replaced); {REBUILD}"
                )


def check_input_dims(where: str, graph: tuple[int | None, ...], want: tuple[int | str, ...]) -> None:
    """Compare a graph's first input (``None`` for dynamic dims) with the manifest's spec of it.

    Args:
        where: For messages.
        graph: The graph's dims, batch first.
        want: The manifest's full shape (``TensorSpec.shape``: names for dynamic axes), or the
            per-sample shape of a recognizer (batch omitted).

    Raises:
        EngineMismatchError: If the rank or a static size differs.
    """
    full = tuple(want) if want and isinstance(want[0], str) else ("batch", *want)
    bad = len(graph) != len(full) or any(
        g is not None and isinstance(w, int) and g != w for g, w in zip(graph, full, strict=False)
    )
    if bad:  # shown per sample (the batch axis left out), as the manifest's input_shape is
        shown = ", ".join("?" if d is None else str(d) for d in graph[1:])
        raise EngineMismatchError(
            f"{where}: the manifest's input_shape {list(full[1:])} does not match the graph's ({shown}); {REBUILD}"
        )


def local_cache_dir(kind: str) -> Path:
    """This user's cache folder for ``kind`` (e.g. ``'tensorrt'``): ``$ACTION_STREAM_CACHE/kind``
    or ``~/.cache/action-stream/kind`` (beside the engine cache's ``engines/``); created if missing."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "action-stream"
    path = Path(base) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
