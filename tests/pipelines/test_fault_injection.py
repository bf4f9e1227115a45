"""``stream.long_video`` and the engine cache never lose a user's file: fault injection.

Real ``python -m stream.long_video`` processes on synthetic videos with the demo model
(seeded random weights), real SIGINT / SIGKILL sent on observed progress (the progress bar,
a log line, the cache's temporary folder appearing). Each case checks the exit code, the
one-line message, existing files byte-identical, outputs that decode, and the cache.
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
import cv2
import pytest

from tests.media import make_video
from tests.pipelines.conftest import DEMO_CONFIG, assert_partial_segments
from tests.processes import Watched

ROOT = Path(__file__).resolve().parents[2]

# A run that hangs on a fault fails within 60 s (some of these build an engine, ~7 s unloaded).
pytestmark = pytest.mark.timeout(60)
PRECIOUS = b"an existing file the user cares about\n"


def env(cache: Path) -> dict[str, str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "ACTION_STREAM_CACHE": str(cache)}
    environment.pop("DISPLAY", None)
    return environment


def long_video(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stream.long_video", *args, "--backend", "onnxruntime"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT, env=env(cache))


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("fi") / "clip.mp4", frames=60, fps=25, size=(160, 120)).path


def test_out_file_that_is_the_video_is_refused_before_any_work(
    random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path
) -> None:
    video = tmp_path / "x.mp4"
    video.write_bytes(clip.read_bytes())
    cache = tmp_path / "cache"
    result = long_video(str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file), str(video), cache=cache)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and f"OUT_FILE {video} is the input VIDEO {video}" in lines[0], result.stderr
    assert video.read_bytes() == clip.read_bytes()
    assert listing(tmp_path) == ["x.mp4"]  # no engine built, nothing written


@pytest.mark.parametrize("flag", ["--segments", "--timeline"])
def test_other_outputs_that_are_inputs_are_refused(
    random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path, flag: str
) -> None:
    before = labels_file.read_bytes()
    args = [str(DEMO_CONFIG), str(random_checkpoint), str(clip), str(labels_file), str(tmp_path / "o.mp4")]
    result = long_video(*args, flag, str(labels_file), cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    assert f"{flag} {labels_file} is the input LABEL_FILE" in result.stderr and "Traceback" not in result.stderr
    assert labels_file.read_bytes() == before and listing(tmp_path) == []


def test_unwritable_metrics_is_one_line_before_any_work(
    random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = tmp_path / "o.mp4"
    args = [str(DEMO_CONFIG), str(random_checkpoint), str(clip), str(labels_file), str(out)]
    result = long_video(*args, "--metrics", str(blocker / "metrics.json"), cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "--metrics" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert listing(tmp_path) == ["blocker"]  # no engine built (no cache), no output


def test_failed_build_keeps_outputs_and_leaves_no_cache_entry(
    random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ten_classes.py"
    config.write_text(f"_base_ = [{str(DEMO_CONFIG)!r}]\nmodel = dict(cls_head=dict(num_classes=10))\n")
    out, segments = tmp_path / "o.mp4", tmp_path / "s.csv"
    for path in (out, segments, tmp_path / "o_timeline.png"):
        path.write_bytes(PRECIOUS)
    cache = tmp_path / "cache"
    result = long_video(
        str(config), str(random_checkpoint), str(clip), str(labels_file), str(out), "--segments", str(segments),
        cache=cache,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(error_lines(result.stderr)) == 1 and "cls_head.fc_cls.weight" in result.stderr
    for path in (out, segments, tmp_path / "o_timeline.png"):
        assert path.read_bytes() == PRECIOUS
    assert listing(cache / "engines") == []  # no junk cache folder
    assert listing(tmp_path) == sorted(["ten_classes.py", "o.mp4", "s.csv", "o_timeline.png"])


def _progress(at_least: int):  # type: ignore[no-untyped-def]
    def seen(text: str) -> bool:
        done = [int(n) for n in re.findall(r"(\d+)/\d+ frames", text[-400:])]
        return bool(done) and max(done) >= at_least

    return seen


@pytest.mark.parametrize("moment", ["50ms-apart", "while-stopping"])
def test_double_ctrl_c_leaves_every_output_valid(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, tmp_path: Path, moment: str
) -> None:
    video = make_video(tmp_path / "long.mp4", frames=1500, fps=25, size=(160, 120)).path
    out, segments = tmp_path / "out.mp4", tmp_path / "segments.json"
    cmd = [sys.executable, "-m", "stream.long_video", str(DEMO_CONFIG), str(random_checkpoint), str(video),
           str(labels_file), str(out), "--segments", str(segments), "--stride", "0",
           "--backend", "onnxruntime"]  # fmt: skip
    with Watched(cmd, cwd=ROOT, env=env(engine_cache)) as proc:
        proc.wait_for(_progress(60), timeout=120)  # the progress bar shows frames done
        proc.send(signal.SIGINT)
        if moment == "50ms-apart":
            time.sleep(0.05)  # the gap under test, not a synchronisation
        else:
            proc.wait_for("interrupted: stopping")
        proc.send(signal.SIGINT)
        rc, err = proc.finish(timeout=60)
    assert rc == 130, err  # interrupted, outputs finalised
    assert "terminate called" not in err and "Traceback" not in err
    done = frames_in(out)
    assert 0 < done < 1500  # finalised: the MP4 index is there
    timeline = tmp_path / "out_timeline.png"
    image = cv2.imread(str(timeline))
    assert image is not None and image.shape[0] > 50  # a complete PNG
    # a second Ctrl-C cuts the drain short: frames already labelled may not reach the video
    assert_partial_segments(segments, 1500, labels_file)
    match = re.search(r"interrupted: .* -> (.*)", err)
    assert match, err
    claimed = sorted(Path(p) for p in match.group(1).split(", "))
    assert claimed == sorted([out, segments, timeline])  # the log claims exactly what was written
    assert listing(tmp_path) == sorted(["long.mp4", "out.mp4", "out_timeline.png", "segments.json"])


def test_kill_9_during_the_cache_build_then_the_next_run(
    random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    engines = cache / "engines"
    out = tmp_path / "o.json"
    args = [str(DEMO_CONFIG), str(random_checkpoint), str(clip), str(labels_file), str(out), "--no-timeline"]
    cmd = [sys.executable, "-m", "stream.long_video", *args, "--backend", "onnxruntime"]
    with Watched(cmd, cwd=ROOT, env=env(cache)) as proc:
        proc.wait_for("building the onnxruntime engine")
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while not partial and time.monotonic() < deadline:  # the build has started writing its folder
            partial = [p for p in engines.glob(".*.partial-*") if (p / "model.onnx").exists()]
            time.sleep(0.02)  # polling the file system: the build reports nothing finer
        assert partial, proc.stderr
        proc.send(signal.SIGKILL)
        rc, _ = proc.finish()
    assert rc == -signal.SIGKILL
    assert [p.name for p in engines.iterdir() if not p.name.startswith(".")] == []  # no entry to reuse
    assert not out.exists()

    result = long_video(*args, cache=cache)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["sources"]
    entries = listing(engines)
    assert len(entries) == 1 and not entries[0].startswith("."), entries  # swept, then built whole
    manifest = json.loads((engines / entries[0] / "manifest.json").read_text())
    assert manifest["validation"]["batch"] >= 1  # validated before it appeared


@pytest.mark.parametrize("command", ["stream.webcam", "stream.rtsp"])
def test_fragmented_flag_records_a_fragmented_mp4(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, clip: Path, tmp_path: Path, command: str
) -> None:
    model = ["--config", str(DEMO_CONFIG), "--checkpoint", str(random_checkpoint), "--label-file", str(labels_file)]
    if command == "stream.webcam":
        out = tmp_path / "rec.mp4"
        args = ["--source", str(clip), "--out-file", str(out)]
    else:
        args = ["--source", str(clip), "--record-dir", str(tmp_path / "rec")]
    cmd = [
        sys.executable,
        "-m",
        command,
        *model,
        *args,
        "--fragmented",
        "--max-frames",
        "40",
        "--backend",
        "onnxruntime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT, env=env(engine_cache))
    assert result.returncode == 0, result.stderr
    (video,) = [tmp_path / "rec.mp4"] if command == "stream.webcam" else list((tmp_path / "rec").glob("*.mp4"))
    data = video.read_bytes()
    assert b"moof" in data[:200_000]  # movie fragments: playable even if the process had been killed
    assert frames_in(video) == 40
