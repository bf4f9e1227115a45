"""``stream.webcam``, ``stream.long_video`` and ``stream.rtsp`` end to end, as a user runs them.

Most use the demo config with seeded random weights (``random_checkpoint``), so they check
the plumbing, outputs and errors; ``test_long_video_labels_the_shipped_demo_video`` (and
``test_demo_model.py``) check what the shipped model predicts.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from tests.media import RtspServer, make_audio, make_video, rtsp_server_unavailable, strip_media_data
from tests.pipelines.conftest import DEMO_CONFIG, assert_partial_segments
from tests.processes import Watched, spawn
from tests.waiting import jsonl_records, wait_until

ROOT = Path(__file__).resolve().parents[2]


def run(module: str, *args: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTION_STREAM_CACHE": str(cache)}
    env.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", frames=100, fps=25, size=(320, 240)).path


def model_args(checkpoint: Path, labels: Path) -> list[str]:
    return ["--config", str(DEMO_CONFIG), "--checkpoint", str(checkpoint), "--label-file", str(labels)]


def test_webcam_on_a_file(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    out, events, metrics = tmp_path / "out.mp4", tmp_path / "ev.jsonl", tmp_path / "m.json"
    result = run(
        "stream.webcam", *model_args(random_checkpoint, labels_file), "--source", str(video), "--max-frames", "80",
        "--out-file", str(out), "--events", str(events), "--metrics", str(metrics), "--backend", "onnxruntime",
        cache=engine_cache,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == 80
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [p for line in lines for p in line.get("predictions", [])]
    # window 32 frames, --inference-fps 4 at 25 fps: a clip every ~6 frames after the first window
    assert 6 <= len(predictions) <= 10
    assert all(p["labels"][0].startswith("action_") for p in predictions)
    rec = json.loads(metrics.read_text())["stages"]["recognizer"]
    assert rec["clips"] == len(predictions) and rec["latency_p50_ms"] > 0


def test_webcam_without_camera_says_how_to_pass_a_source(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "no_demo.py"
    config.write_text(f"_base_ = [{str(DEMO_CONFIG)!r}]\ndemo_video = None\n")
    args = ["--config", str(config), "--checkpoint", str(random_checkpoint), "--label-file", str(labels_file)]
    result = run("stream.webcam", *args, "--backend", "onnxruntime", cache=engine_cache)
    assert result.returncode == 2
    assert "no camera at index 0" in result.stderr and "--source" in result.stderr
    assert "Traceback" not in result.stderr


def test_long_video_outputs(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    out, segments = tmp_path / "labelled.mp4", tmp_path / "segments.csv"
    args = [str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file)]
    result = run(
        "stream.long_video",
        *args,
        str(out),
        "--segments",
        str(segments),
        "--backend",
        "onnxruntime",
        cache=engine_cache,
    )
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == 100
    assert (tmp_path / "labelled_timeline.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(segments.open()))
    assert rows and all(r["label"].startswith("action_") for r in rows)
    assert "100%" in result.stderr  # the progress bar reached the end
    as_json = tmp_path / "labelled.json"
    result = run(
        "stream.long_video", *args, str(as_json), "--no-timeline", "--backend", "onnxruntime", cache=engine_cache
    )
    assert result.returncode == 0, result.stderr
    frames = json.loads(as_json.read_text())["sources"]["clip"]["frames"]
    assert len(frames) == 100 and frames[-1]["labels"]


def test_long_video_labels_the_shipped_demo_video(engine_cache: Path, tmp_path: Path) -> None:
    """The README's long-video job on the shipped model and video: >= 95% of all frames right.

    Every frame counts, also those next to the demo's 12 action changes; the merged segments
    follow the ground truth's order of actions.
    """
    from pipelines.demo import ASSETS
    from pipelines.demo.synthetic import GroundTruth

    truth = GroundTruth.load(ASSETS / "demo_gt.json")
    out, segments = tmp_path / "demo.json", tmp_path / "demo_segments.json"
    args = [str(DEMO_CONFIG), str(ASSETS / "demo_recognizer.pth"), str(ASSETS / "demo.mp4"),
            str(ASSETS / "label_map.txt"), str(out), "--segments", str(segments)]  # fmt: skip
    result = run("stream.long_video", *args, "--backend", "onnxruntime", cache=engine_cache, timeout=300)
    assert result.returncode == 0, result.stderr
    frames = json.loads(out.read_text())["sources"]["demo"]["frames"]
    assert [f["frame_idx"] for f in frames] == list(range(truth.num_frames))
    predicted = [f["labels"][0] for f in frames]
    expected = [truth.classes[i] for i in truth.frame_labels()]
    accuracy = sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)
    assert accuracy >= 0.95, accuracy
    merged = [s["label"] for s in json.loads(segments.read_text())]
    assert merged == [s.label for s in truth.segments]


def test_long_video_is_deterministic(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    outputs = []
    for name in ("a.json", "b.json"):
        args = [str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file), str(tmp_path / name)]
        assert (
            run("stream.long_video", *args, "--no-timeline", "--backend", "onnxruntime", cache=engine_cache).returncode
            == 0
        )
        outputs.append(json.loads((tmp_path / name).read_text()))
    assert outputs[0] == outputs[1]


def test_long_video_interrupted_keeps_valid_outputs(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, tmp_path: Path
) -> None:
    long = make_video(tmp_path / "long.mp4", frames=1500, fps=25, size=(320, 240)).path
    out, segments = tmp_path / "partial.mp4", tmp_path / "partial.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTION_STREAM_CACHE": str(engine_cache)}
    cmd = [sys.executable, "-m", "stream.long_video", str(DEMO_CONFIG), str(random_checkpoint), str(long),
           str(labels_file), str(out), "--segments", str(segments), "--stride", "0"]  # fmt: skip
    proc = spawn(cmd, cwd=ROOT, env=env)
    # Interrupt once the progress bar shows some frames done (not after a fixed sleep: how far a
    # run gets in a given time depends on the machine's load).
    err_chunks: list[str] = []
    started = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read(64):
            err_chunks.append(chunk)
            done = [int(n) for n in re.findall(r"(\d+)/1500 frames", "".join(err_chunks[-8:]))]
            if done and max(done) >= 100:
                started.set()
        started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert started.wait(60), "".join(err_chunks)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=5)
    err = "".join(err_chunks)
    assert proc.returncode == 130, err  # interrupted: outputs valid, exit code 130
    done = frames_in(out)
    assert 0 < done < 1500
    assert_partial_segments(segments, done, labels_file)


@pytest.mark.parametrize("case", ["short_labels", "wrong_checkpoint", "no_video_stream", "zero_length", "bad_out"])
def test_long_video_bad_inputs(
    case: str, engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    config, checkpoint, clip, labels, out = DEMO_CONFIG, random_checkpoint, video, labels_file, tmp_path / "o.mp4"
    message = {
        "short_labels": "2 class names but the model has 8 classes",
        "wrong_checkpoint": "cls_head.fc_cls.weight",
        "no_video_stream": "no video stream",
        "zero_length": "holds no frames",
        "bad_out": "expected a video",
    }[case]
    if case == "short_labels":
        labels = tmp_path / "short.txt"
        labels.write_text("a\nb\n")
    elif case == "wrong_checkpoint":
        config = tmp_path / "ten_classes.py"
        config.write_text(f"_base_ = [{str(DEMO_CONFIG)!r}]\nmodel = dict(cls_head=dict(num_classes=10))\n")
    elif case == "no_video_stream":
        clip = make_audio(tmp_path / "sound.m4a")
    elif case == "zero_length":
        clip = strip_media_data(video, dest=tmp_path / "empty.mp4")
    else:
        out = tmp_path / "o.txt"
    result = run(
        "stream.long_video",
        str(config),
        str(checkpoint),
        str(clip),
        str(labels),
        str(out),
        "--backend",
        "onnxruntime",
        cache=engine_cache,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.lower() or message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(240)  # may build the engine, then streams at least 12 s; each wait has its own deadline
def test_rtsp_monitor_two_cameras_one_restarted(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, tmp_path: Path
) -> None:
    reason = rtsp_server_unavailable()
    if reason:
        pytest.skip(reason)
    clip = make_video(tmp_path / "cam.mp4", frames=125, fps=25, size=(320, 240)).path
    events, health = tmp_path / "events.jsonl", tmp_path / "health.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTION_STREAM_CACHE": str(engine_cache)}
    with RtspServer(clip) as steady, RtspServer(clip) as flaky:
        cmd = [sys.executable, "-m", "stream.rtsp", *model_args(random_checkpoint, labels_file),
               "--source", steady.url, "--source", flaky.url, "--backend", "onnxruntime",
               "--events", str(events), "--health-file", str(health), "--health-interval", "1",
               "--event-threshold", "0.05", "--start-after", "2", "--max-backoff", "1"]  # fmt: skip
        with Watched(cmd, cwd=ROOT, env=env) as proc:  # stderr read as it comes: a full pipe never blocks it

            def running(check: Callable[[], object]) -> Callable[[], object]:
                def poll() -> object:
                    if proc.proc.poll() is not None:
                        raise AssertionError(f"stream.rtsp exited with {proc.proc.returncode}:\n{proc.stderr[-3000:]}")
                    return check()

                return poll

            def kinds(source: str) -> list[str]:
                return [e["kind"] for e in jsonl_records(events) if e["source_id"] == source]

            def health_of(source: str) -> list[dict[str, Any]]:
                return [r for r in jsonl_records(health) if r["source_id"] == source]

            def streaming(source: str, after: int = 0) -> bool:  # a new health record with frames flowing
                records = health_of(source)
                return len(records) > after and records[-1]["connected"] and records[-1]["fps"] > 5

            def steady_started() -> bool:
                return any(
                    e["source_id"] == steady.url and e["kind"] == "action" and e["data"]["phase"] == "start"
                    for e in jsonl_records(events)
                )

            wait_until(running(lambda: streaming(steady.url) and streaming(flaky.url)), 120, "both cameras streaming")
            flaky.stop()
            wait_until(running(lambda: "disconnected" in kinds(flaky.url)), 60, "the stopped camera's disconnect")
            before = len(health_of(flaky.url))
            flaky.start()
            wait_until(
                running(lambda: "connected" in kinds(flaky.url)[kinds(flaky.url).index("disconnected") :]),
                60, "a 'connected' event of the restarted camera",
            )  # fmt: skip
            wait_until(running(lambda: streaming(flaky.url, before)), 60, "the restarted camera streaming again")
            wait_until(running(steady_started), 120, "an action 'start' event on the steady camera")
            steady_frames = lambda: max((r["frames"] for r in health_of(steady.url)), default=0)  # noqa: E731
            wait_until(running(lambda: steady_frames() > 300), 60, "300 frames of the steady camera")
            proc.send(signal.SIGINT)
            code, err = proc.finish(timeout=30)
    assert code == 130, err  # interrupted: outputs valid, exit code 130
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    by_kind = lambda src, kind: [e for e in lines if e["source_id"] == src and e["kind"] == kind]  # noqa: E731
    steady_id, flaky_id = steady.url, flaky.url
    disconnected, connected = by_kind(flaky_id, "disconnected"), by_kind(flaky_id, "connected")
    assert disconnected and connected and lines.index(connected[-1]) > lines.index(disconnected[0])  # came back
    assert not by_kind(steady_id, "disconnected")  # the other camera was not disturbed
    steady_actions = by_kind(steady_id, "action")
    assert any(e["data"]["phase"] == "start" for e in steady_actions)
    records = [json.loads(line) for line in health.read_text().splitlines()]
    last_flaky = [r for r in records if r["source_id"] == flaky_id][-1]
    assert last_flaky["connected"] and last_flaky["fps"] > 5  # the restarted camera resumed
    assert max(r["frames"] for r in records if r["source_id"] == steady_id) > 300


def test_webcam_takes_webcam_demo_positionals(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path
) -> None:
    events = tmp_path / "ev.jsonl"
    result = run(
        "stream.webcam", str(DEMO_CONFIG), str(random_checkpoint), str(labels_file), "--camera-id", str(video),
        "--average-size", "5", "--threshold", "0.0", "--inference-fps", "0", "--top-k", "3", "--max-frames", "60",
        "--events", str(events), "--backend", "onnxruntime", cache=engine_cache,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    predictions = [p for line in events.read_text().splitlines() for p in json.loads(line).get("predictions", [])]
    # --inference-fps 0 is no limit: a clip per frame once the 32-frame window is full
    assert len(predictions) == 60 - 32 + 1
    assert all(len(p["labels"]) == 3 for p in predictions)


BAD_FLAGS = [
    ("stream.webcam", ["--cfg-options", "foo"], "--cfg-options: expected KEY=VALUE"),
    ("stream.webcam", ["--cfg-options", "model.backbone_typo.depth=3"], "no key 'backbone_typo' at model"),
    ("stream.webcam", ["--inference-fps", "nan"], "argument --inference-fps: expected a finite number"),
    ("stream.webcam", ["--predict-stepsize", "0"], "argument --predict-stepsize: expected an integer >= 1"),
    ("stream.webcam", ["--num-clips", "100000"], "argument --num-clips: expected an integer between 1 and 100"),
    ("stream.webcam", ["--threshold", "1.5"], "argument --threshold: expected a number <= 1"),
    ("stream.webcam", ["--device", "gpu"], "--device: expected cpu, cuda or cuda:N"),
    ("stream.rtsp", ["--health-interval", "-1"], "argument --health-interval: expected a number > 0"),
    ("stream.long_video", ["--stride", "nan"], "argument --stride: expected a finite number"),
    ("stream.long_video", ["--stride", "inf"], "argument --stride: expected a finite number"),
]


@pytest.mark.parametrize(("module", "flags", "message"), BAD_FLAGS, ids=[" ".join(f) for _, f, _ in BAD_FLAGS])
def test_bad_flag_values_get_one_line_and_exit_code_2(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, video: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], module: str, flags: list[str], message: str,
) -> None:  # fmt: skip
    """In-process (the argparse types and the config checks fail before any model work)."""
    if module == "stream.long_video":
        base = [str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file), str(tmp_path / "o.mp4")]
    else:
        base = [*model_args(random_checkpoint, labels_file), "--source", str(video)]
    main = importlib.import_module(module).main
    try:
        code = main([*base, *flags, "--backend", "onnxruntime", "-q"])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "o.mp4").exists()


def test_binary_label_file_and_missing_gpu_are_one_line_errors(
    engine_cache: Path, random_checkpoint: Path, video: Path, tmp_path: Path
) -> None:
    binary = tmp_path / "labels.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    args = ["--config", str(DEMO_CONFIG), "--checkpoint", str(random_checkpoint), "--source", str(video), "-q"]
    result = run("stream.webcam", *args, "--label-file", str(binary), "--backend", "onnxruntime", cache=engine_cache)
    assert result.returncode == 2 and "is not a text file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    result = run("stream.webcam", *args, "--device", "cuda:64", cache=engine_cache)
    assert result.returncode == 2 and "CUDA GPU" in result.stderr and "Traceback" not in result.stderr, result.stderr
