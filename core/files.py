"""Files written whole or not at all, and outputs that never overwrite inputs.

Every file a command writes goes through these helpers:

* :class:`AtomicFile` / :func:`atomic_path` give a temporary name beside the destination
  (same folder, hidden: ``.NAME.partial-PID-N.EXT``, keeping the extension so tools that
  pick a format from it still work). The writer fills the temporary file; ``commit()``
  renames it into place with :func:`os.replace`, so readers see the old file or the new
  one, never half of one; ``discard()`` removes it and leaves the destination as it was.
* :class:`AtomicDir` does the same for a folder (an engine directory): build into a hidden
  sibling, then swap it in with two renames; the old folder is removed only afterwards.
* :func:`check_outputs` refuses, before any work, an output that is one of the inputs
  (same file after resolving links, or the same inode), two outputs naming one file, and
  an output that cannot be written (a folder, or a parent that is a file or read-only).
* :func:`sweep_partials` removes what a killed process (``kill -9``, power loss) left
  beside a destination: temporaries whose process is gone.

This module is a leaf: it imports nothing from the project but :mod:`core.errors`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.errors import OutputError

log = logging.getLogger(__name__)

#: Marks a temporary file or folder: ``.NAME.partial-PID-N.EXT``.
PARTIAL = "partial"
#: Marks an engine folder moved aside while its replacement is swapped in: ``.NAME.old-PID-N``.
OLD = "old"

_counter = itertools.count()
_counter_lock = threading.Lock()

PathLike = str | os.PathLike[str]


def _split(name: str) -> tuple[str, str]:
    """``'clip.mp4'`` -> ``('clip', '.mp4')``; a name without a dot has no extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


def temp_sibling(dest: PathLike, kind: str = PARTIAL) -> Path:
    """A fresh hidden name beside ``dest``: ``.STEM.KIND-PID-N.EXT`` (unique in this process)."""
    dest = Path(dest)
    stem, ext = _split(dest.name)
    with _counter_lock:
        n = next(_counter)
    return dest.with_name(f".{stem}.{kind}-{os.getpid()}-{n}{ext}")


def _sibling_pattern(dest: Path, kind: str) -> re.Pattern[str]:
    stem, ext = _split(dest.name)
    return re.compile(rf"\.{re.escape(stem)}\.{kind}-(\d+)-\d+{re.escape(ext)}")


def _fsync(path: Path) -> None:
    """Flush a file's (or folder's) data to disk; best effort (some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()


class AtomicFile:
    """One output file, written under a temporary name and renamed into place when complete.

    Example::

        out = AtomicFile("results.json")
        try:
            out.path.write_text(text)      # the hidden temporary name
        except BaseException:
            out.discard()                  # results.json is untouched
            raise
        out.commit()                       # results.json now holds text

    The temporary file is created by whoever writes it (``open(out.path, "w")``, PyAV,
    matplotlib…). ``commit`` keeps an existing destination's permission bits.

    Args:
        dest: where the file belongs.
    """

    def __init__(self, dest: PathLike) -> None:
        self.dest = Path(dest)
        self.path = temp_sibling(self.dest)
        self.done = False  # committed or discarded

    def commit(self) -> Path:
        """Flush the temporary file to disk and rename it to the destination.

        Returns:
            The destination.

        Raises:
            OutputError: If the temporary file is missing or cannot be renamed (it is removed).
        """
        if self.done:
            raise OutputError(f"{self.dest}: commit() after commit() or discard()")
        self.done = True
        try:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.path, stat.S_IMODE(self.dest.stat().st_mode))
            _fsync(self.path)
            os.replace(self.path, self.dest)
        except OSError as exc:
            _remove(self.path)
            raise OutputError(f"cannot write {self.dest}: {exc.strerror or exc}") from exc
        _fsync(self.dest.parent)
        return self.dest

    def discard(self) -> None:
        """Remove the temporary file, if any; the destination stays as it was. Idempotent."""
        if not self.done:
            self.done = True
            _remove(self.path)

    def __repr__(self) -> str:
        return f"AtomicFile({str(self.dest)!r}, tmp={self.path.name!r})"


@contextlib.contextmanager
def atomic_path(dest: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` if the block succeeds.

    If the block raises (also ``KeyboardInterrupt``), the temporary file is removed and
    ``dest`` is left as it was. The parent folder is created.

    Example::

        with atomic_path("timeline.png") as tmp:
            figure.savefig(tmp)
    """
    out = AtomicFile(dest)
    try:
        out.dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {out.dest}: {exc.strerror or exc}") from exc
    try:
        yield out.path
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_text(dest: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically.

    Raises:
        OutputError: If it cannot be written; ``dest`` is then unchanged.
    """
    with atomic_path(dest) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    return Path(dest)


class AtomicDir:
    """An output folder built under a temporary name and swapped in when complete.

    The temporary folder (``.NAME.partial-PID-N``) is created at once. ``commit`` moves an
    existing destination aside (``.NAME.old-PID-N``), renames the new folder into place
    and only then removes the old one, so the destination is always a complete folder
    (between the two renames, for an instant, it is missing; :func:`sweep_partials`
    restores it if the process dies right there).

    Args:
        dest: where the folder belongs.

    Raises:
        OutputError: If the temporary folder cannot be created.
    """

    def __init__(self, dest: PathLike) -> None:
        self.dest = Path(dest)
        self.path = temp_sibling(self.dest)
        self.done = False
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write {self.dest}: {exc.strerror or exc}") from exc

    def commit(self) -> Path:
        """Swap the new folder in; the previous one (if any) is removed afterwards.

        Returns:
            The destination.

        Raises:
            OutputError: If the renames fail (the new folder is removed, the old one stays).
        """
        if self.done:
            raise OutputError(f"{self.dest}: commit() after commit() or discard()")
        self.done = True
        old: Path | None = None
        try:
            if self.dest.exists() or self.dest.is_symlink():
                old = temp_sibling(self.dest, OLD)
                os.rename(self.dest, old)
            os.rename(self.path, self.dest)
        except OSError as exc:
            if old is not None and not self.dest.exists():
                with contextlib.suppress(OSError):
                    os.rename(old, self.dest)
            _remove(self.path)
            raise OutputError(f"cannot write {self.dest}: {exc.strerror or exc}") from exc
        _fsync(self.dest.parent)
        if old is not None:
            _remove(old)
        return self.dest

    def discard(self) -> None:
        """Remove the temporary folder; the destination stays as it was. Idempotent."""
        if not self.done:
            self.done = True
            _remove(self.path)

    def __repr__(self) -> str:
        return f"AtomicDir({str(self.dest)!r}, tmp={self.path.name!r})"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_partials(dest: PathLike) -> list[Path]:
    """Clean up what killed processes left beside ``dest``.

    Temporaries (``.NAME.partial-PID-N…``) of processes that no longer run are removed. A
    folder moved aside during a swap (``.NAME.old-PID-N``) is put back when ``dest`` is
    missing (the process died between the two renames), else removed. Temporaries of
    running processes (another build of the same destination) are left alone.

    Returns:
        The paths removed or restored.
    """
    dest = Path(dest)
    folder = dest.parent
    if not folder.is_dir():
        return []
    partial, old = _sibling_pattern(dest, PARTIAL), _sibling_pattern(dest, OLD)
    swept: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = partial.fullmatch(entry.name) or old.fullmatch(entry.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        if match.re is old and not (dest.exists() or dest.is_symlink()):
            with contextlib.suppress(OSError):
                os.rename(entry, dest)
                log.warning("restored %s from %s (a replacement was interrupted)", dest, entry.name)
                swept.append(entry)
            continue
        _remove(entry)
        log.info("removed %s, left by an interrupted run", entry)
        swept.append(entry)
    return swept


# -- checks before any work ----------------------------------------------------------------


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file: the same inode if both exist, else the same resolved path."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def inside(path: PathLike, folder: PathLike) -> bool:
    """Whether ``path`` lies inside ``folder`` (after resolving links)."""
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p != f and f in p.parents


def refuse_overwriting_input(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """Refuse an output that is an input, or two outputs that are one file.

    Args:
        outputs: what the user calls each output (a flag such as ``--out-file``) -> its path
            (None or ``-`` for stdout: skipped).
        inputs: the same for the inputs (a file or folder that exists).

    Raises:
        OutputError: Naming both, e.g. ``--out-file x.mp4 is the input VIDEO x.mp4; ...``.
    """
    outs = [(what, path) for what, path in outputs.items() if path is not None and str(path) != "-"]
    ins = [(what, path) for what, path in inputs.items() if path is not None and str(path) != "-"]
    for what, out in outs:
        for in_what, src in ins:
            if Path(src).exists() and same_file(out, src):
                raise OutputError(
                    f"{what} {out} is the input {in_what} {src}; writing it would destroy the input: "
                    "choose another output path"
                )
    for i, (what, out) in enumerate(outs):
        for other, path in outs[i + 1 :]:
            if same_file(out, path):
                raise OutputError(f"{what} {out} and {other} {path} are the same file; give each output its own path")


def check_writable(path: PathLike, what: str = "output") -> None:
    """Check, without creating anything, that a file can be written at ``path``.

    Raises:
        OutputError: If ``path`` is a folder, a parent is a file, or the nearest existing
            folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; expected a file path")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {what} {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {path}: no permission to write in {ancestor}")
    if ancestor == path.parent:
        probe = temp_sibling(path)
        try:
            with open(probe, "xb"):
                pass
        except OSError as exc:
            raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Mapping[str, PathLike | None]) -> None:
    """:func:`refuse_overwriting_input` then :func:`check_writable` on every output.

    Run it before any work (model loading, decoding), so a bad output path costs nothing.

    Raises:
        OutputError: The first problem found, naming the flag and the path.
    """
    refuse_overwriting_input(outputs, inputs)
    for what, path in outputs.items():
        if path is not None and str(path) != "-":
            check_writable(path, what)
