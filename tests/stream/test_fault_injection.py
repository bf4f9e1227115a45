"""``stream.play`` never loses a user's file: fault injection as a user meets it.

Real files, real ``python -m stream.play`` processes, real SIGINT / SIGKILL sent when the
process shows progress (a log line, a file growing), never after a fixed sleep. Each case
checks the exit code, the one-line message, that existing files are byte-identical
afterwards, that outputs decode, and that nothing is left beside them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.media import VideoSpec, make_video
from tests.processes import Watched

ROOT = Path(__file__).resolve().parents[2]

# Each of these takes about a second; a run that hangs on a fault fails within 30 s.
pytestmark = pytest.mark.timeout(30)
PRECIOUS = b"an existing file the user cares about\n"


def env() -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("DISPLAY", None)
    return environment


def play(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.play", *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env()
    )


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def clip(tmp_path: Path) -> VideoSpec:
    return make_video(tmp_path / "clip.mp4", frames=24, fps=24, size=(160, 120))


@pytest.fixture
def long_clip(tmp_path: Path) -> VideoSpec:
    return make_video(tmp_path / "long.mp4", frames=240, fps=24, size=(160, 120))


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(clip: VideoSpec, tmp_path: Path, spelling: str) -> None:
    before = clip.path.read_bytes()
    out = {
        "same": str(clip.path),
        "relative": "./clip.mp4",
        "symlink": str(tmp_path / "link.mp4"),
        "hardlink": str(tmp_path / "hard.mp4"),
    }[spelling]
    if spelling == "symlink":
        (tmp_path / "link.mp4").symlink_to(clip.path)
    if spelling == "hardlink":
        os.link(clip.path, tmp_path / "hard.mp4")
    existing = listing(tmp_path)
    result = play(str(clip.path), "--out-file", out, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"--out-file {Path(out)} is the input SOURCE {clip.path}" in lines[0]
    assert clip.path.read_bytes() == before and listing(tmp_path) == existing


def test_events_file_that_is_the_input_is_refused(clip: VideoSpec) -> None:
    before = clip.path.read_bytes()
    result = play(str(clip.path), "--events", str(clip.path))
    assert result.returncode == 2 and "--events" in result.stderr and "is the input SOURCE" in result.stderr
    assert clip.path.read_bytes() == before


def test_failing_input_leaves_existing_outputs_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("this is not a video")
    outputs = {name: tmp_path / name for name in ("keep.mp4", "keep.jsonl", "keep.json")}
    for path in outputs.values():
        path.write_bytes(PRECIOUS)
    result = play(
        str(bad), "--out-file", str(outputs["keep.mp4"]), "--events", str(outputs["keep.jsonl"]),
        "--metrics", str(outputs["keep.json"]),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(error_lines(result.stderr)) == 1 and "not_a_video.mp4" in result.stderr
    assert all(path.read_bytes() == PRECIOUS for path in outputs.values())
    assert listing(tmp_path) == sorted(["not_a_video.mp4", *outputs])  # no temporaries, no 0-byte files


def test_failing_input_creates_no_output_at_all(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("this is not a video")
    result = play(str(bad), "--out-file", str(tmp_path / "out" / "v.mp4"), "--events", str(tmp_path / "e.jsonl"))
    assert result.returncode == 2, result.stderr
    assert listing(tmp_path) == ["not_a_video.mp4"]


def test_unwritable_metrics_is_refused_before_any_work(clip: VideoSpec, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = tmp_path / "out.mp4"
    result = play(str(clip.path), "--out-file", str(out), "--metrics", str(blocker / "m.json"))
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "--metrics" in lines[0] and "blocker" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "opened" not in result.stderr  # the source was never opened
    assert listing(tmp_path) == ["blocker", "clip.mp4"]


def test_successful_run_replaces_existing_outputs_whole(clip: VideoSpec, tmp_path: Path) -> None:
    out, events = tmp_path / "keep.mp4", tmp_path / "keep.jsonl"
    out.write_bytes(PRECIOUS)
    events.write_bytes(PRECIOUS)
    result = play(str(clip.path), "--out-file", str(out), "--events", str(events))
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == clip.frames
    assert len([json.loads(line) for line in events.read_text().splitlines()]) == clip.frames
    assert listing(tmp_path) == ["clip.mp4", "keep.jsonl", "keep.mp4"]


def _summary_outputs(stderr: str) -> list[Path]:
    match = re.search(r"interrupted: \d+ frames in [\d.]+ s -> (.*)", stderr)
    assert match, stderr
    return [Path(p) for p in match.group(1).split(", ")]


@pytest.mark.parametrize("moment", ["50ms-apart", "while-stopping"])
def test_double_ctrl_c_still_finalises_every_output(long_clip: VideoSpec, tmp_path: Path, moment: str) -> None:
    out, events, metrics = tmp_path / "out.mp4", tmp_path / "events.jsonl", tmp_path / "m.json"
    cmd = [sys.executable, "-m", "stream.play", str(long_clip.path), "--realtime", "--out-file", str(out),
           "--events", str(events), "--metrics", str(metrics)]  # fmt: skip
    with Watched(cmd, cwd=ROOT, env=env()) as proc:
        proc.wait_for("writing ")  # the encoder is open: frames are being written
        proc.send(signal.SIGINT)
        if moment == "50ms-apart":
            time.sleep(0.05)  # the gap under test, not a synchronisation
        else:
            proc.wait_for("interrupted: stopping")
        proc.send(signal.SIGINT)
        rc, err = proc.finish(timeout=30)
    assert rc == 130, err  # interrupted, outputs finalised
    assert "terminate called" not in err and "Traceback" not in err
    written = frames_in(out)
    assert 0 < written < long_clip.frames, err
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["frame_idx"] for r in records] == list(range(len(records))) and len(records) <= written
    assert json.loads(metrics.read_text())["status"] == "interrupted"
    assert sorted(_summary_outputs(err)) == sorted([out, events, metrics])  # it claims what it wrote, no more
    assert listing(tmp_path) == ["events.jsonl", "long.mp4", "m.json", "out.mp4"]


def _partial(folder: Path, stem: str) -> Path | None:
    found = list(folder.glob(f".{stem}.partial-*.mp4"))
    return found[0] if found else None


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "plain"])
def test_kill_9_leaves_the_existing_file_and_a_hidden_partial(
    long_clip: VideoSpec, tmp_path: Path, fragmented: bool
) -> None:
    out = tmp_path / "rec.mp4"
    out.write_bytes(PRECIOUS)
    cmd = [sys.executable, "-m", "stream.play", str(long_clip.path), "--realtime", "--out-file", str(out)]
    if fragmented:
        cmd.append("--fragmented")
    with Watched(cmd, cwd=ROOT, env=env()) as proc:
        proc.wait_for("writing ")
        if fragmented:  # observed progress: the partial recording grows past its first fragment
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                partial = _partial(tmp_path, "rec")
                if partial is not None and partial.stat().st_size > 8000:
                    break
                proc.proc.poll()
                time.sleep(0.05)  # polling a file's size, no other signal exists for it
        proc.send(signal.SIGKILL)
        rc, _ = proc.finish(timeout=30)
    assert rc == -signal.SIGKILL
    assert out.read_bytes() == PRECIOUS  # the user's file is untouched
    partial = _partial(tmp_path, "rec")
    assert partial is not None  # what the killed run recorded is beside it
    if fragmented:
        assert frames_in(partial) > 0  # and playable
