"""core.files: outputs written whole or not at all, never over an input."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import OutputError
from core.files import (
    AtomicDir,
    AtomicFile,
    atomic_path,
    check_outputs,
    check_writable,
    refuse_overwriting_input,
    sweep_partials,
    temp_sibling,
    write_text,
)


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_temp_sibling_is_hidden_beside_and_keeps_the_extension(tmp_path: Path) -> None:
    a, b = temp_sibling(tmp_path / "clip.mp4"), temp_sibling(tmp_path / "clip.mp4")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(f".clip.partial-{os.getpid()}-") and a.suffix == ".mp4"
    assert temp_sibling(tmp_path / "engine").name.startswith(".engine.partial-")


def test_atomic_path_replaces_only_when_the_block_succeeds(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    dest.write_text("old")
    os.chmod(dest, 0o640)
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert dest.read_text() == "old" and listing(tmp_path) == ["out.json"]
    with atomic_path(dest) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == tmp_path
        tmp.write_text("new")
        assert dest.read_text() == "old"  # nothing visible until the block ends
    assert dest.read_text() == "new" and listing(tmp_path) == ["out.json"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # permissions kept


def test_keyboard_interrupt_inside_atomic_path_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "plot.png"
    with pytest.raises(KeyboardInterrupt), atomic_path(dest) as tmp:
        tmp.write_bytes(b"\x89PNG partial")
        raise KeyboardInterrupt
    assert listing(tmp_path / "sub") == []


def test_atomic_file_commit_and_discard(tmp_path: Path) -> None:
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"previous")
    out = AtomicFile(dest)
    out.path.write_bytes(b"new")
    out.discard()
    out.discard()  # idempotent
    assert dest.read_bytes() == b"previous" and listing(tmp_path) == ["v.mp4"]
    with pytest.raises(OutputError):
        out.commit()
    missing = AtomicFile(dest)  # the writer never created the file
    with pytest.raises(OutputError, match=r"v\.mp4"):
        missing.commit()
    assert dest.read_bytes() == b"previous"


def test_write_text_into_a_file_as_folder_fails_cleanly(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="blocker"):
        write_text(blocker / "m.json", "{}")
    assert listing(tmp_path) == ["blocker"]


def test_atomic_dir_swaps_a_whole_folder(tmp_path: Path) -> None:
    dest = tmp_path / "engine"
    dest.mkdir()
    (dest / "manifest.json").write_text("old")
    (dest / "openvino").mkdir()
    new = AtomicDir(dest)
    (new.path / "manifest.json").write_text("new")
    assert (dest / "manifest.json").read_text() == "old"
    new.commit()
    assert listing(dest) == ["manifest.json"] and (dest / "manifest.json").read_text() == "new"
    assert listing(tmp_path) == ["engine"]
    abandoned = AtomicDir(dest)
    (abandoned.path / "manifest.json").write_text("half")
    abandoned.discard()
    assert (dest / "manifest.json").read_text() == "new" and listing(tmp_path) == ["engine"]


def test_sweep_removes_what_dead_processes_left_and_keeps_live_ones(tmp_path: Path) -> None:
    dest = tmp_path / "engine"
    dest.mkdir()
    pid = dead_pid()
    dead = tmp_path / f".engine.partial-{pid}-0"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"half")
    dead_file = tmp_path / f".engine.partial-{pid}-3"
    dead_file.write_text("x")
    live = tmp_path / f".engine.partial-{os.getpid()}-99"  # a build running now (this process)
    live.mkdir()
    other = tmp_path / f".engine2.partial-{pid}-0"  # another destination's
    other.mkdir()
    swept = sweep_partials(dest)
    assert sorted(swept) == sorted([dead, dead_file])
    assert listing(tmp_path) == sorted([f".engine2.partial-{pid}-0", live.name, "engine"])


def test_sweep_restores_a_folder_moved_aside_when_the_swap_was_cut(tmp_path: Path) -> None:
    dest = tmp_path / "engine"
    old = tmp_path / f".engine.old-{dead_pid()}-0"
    old.mkdir()
    (old / "manifest.json").write_text("kept")
    sweep_partials(dest)
    assert (dest / "manifest.json").read_text() == "kept" and listing(tmp_path) == ["engine"]


def test_refuse_output_that_is_an_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = tmp_path / "x.mp4"
    video.write_bytes(b"precious")
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    hard = tmp_path / "hard.mp4"
    os.link(video, hard)
    monkeypatch.chdir(tmp_path)
    for out in (video, Path("x.mp4"), Path("./sub/../x.mp4"), link, hard):
        with pytest.raises(OutputError, match=r"--out-file .* is the input VIDEO .*x\.mp4") as info:
            refuse_overwriting_input({"--out-file": out}, {"VIDEO": video})
        assert "\n" not in str(info.value)
    refuse_overwriting_input({"--out-file": tmp_path / "y.mp4", "--events": None}, {"VIDEO": video})
    with pytest.raises(OutputError, match=r"--out-file .* and --events .* are the same file"):
        refuse_overwriting_input({"--out-file": tmp_path / "r", "--events": Path("r")}, {})
    assert video.read_bytes() == b"precious"


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "deeper" / "out.mp4")
    check_writable(tmp_path / "out.mp4")
    assert listing(tmp_path) == []
    with pytest.raises(OutputError, match="is a folder"):
        check_writable(tmp_path, "--metrics")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"cannot write --metrics .*file/m\.json: .*file is not a folder"):
        check_outputs({"--metrics": blocker / "m.json"}, {})
    assert listing(tmp_path) == ["file"]
