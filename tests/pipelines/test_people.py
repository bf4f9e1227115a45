"""``python -m stream.people`` end to end on real footage, its graph, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from detectors.errors import DetectorConfigError, ModelNotAvailable
from detectors.stages import DetectStage, PoseStage, TrackStage
from pipelines.people import PeopleParams, people_stages
from stream.annotate import AnnotateStage
from stream.runner import Pipeline
from stream.sinks import JsonlSink
from stream.sources import open_source
from tests.footage import vtest  # noqa: F401  (fixture)
from tests.media import make_video

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    command = [sys.executable, "-m", "stream.people", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def test_people_on_vtest_writes_video_and_events(vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    out, events = tmp_path / "people.mp4", tmp_path / "people.jsonl"
    result = run(str(vtest), "--max-frames", "30", "--out-file", str(out), "--events", str(events), "-q")
    assert result.returncode == 0, result.stderr

    with av.open(str(out)) as container:
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == 30 and (decoded[0].width, decoded[0].height) == (768, 576)

    records = [json.loads(line) for line in events.read_text().splitlines()]
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["frame_idx"] for r in frames] == list(range(30))
    everyone = [p for r in frames for p in r["people"]]
    assert sum(len(r["people"]) >= 2 for r in frames) >= 15, [len(r["people"]) for r in frames]
    for person in everyone:
        assert set(person) == {"track_id", "box", "score", "keypoints"}
        assert isinstance(person["track_id"], int) and len(person["box"]) == 4 and 0 < person["score"] <= 1
        assert len(person["keypoints"]) == 17 and all(len(k) == 3 for k in person["keypoints"])
    started = [r for r in records if r["type"] == "event" and r["kind"] == "track_started"]
    lost = [r for r in records if r["type"] == "event" and r["kind"] == "track_lost"]
    assert started and {p["track_id"] for p in everyone} <= {e["data"]["track_id"] for e in started}
    assert len(lost) == len(started)  # every track ends, at the latest with the stream
    assert all(set(e["data"]) == {"track_id", "box", "frames_seen", "last_seen_s"} for e in lost)


MM = ROOT / "tests" / "fixtures" / "mm"
RTMDET = ["--detector", "rtmdet", "--det-config", str(MM / "rtmdet" / "rtmdet_small_random.py"),
          "--det-checkpoint", str(MM / "rtmdet" / "rtmdet_small_random.pth")]  # fmt: skip
RTMPOSE = ["--pose", "rtmpose", "--pose-config", str(MM / "rtmpose" / "rtmpose-tiny_coco-256x192.py"),
           "--pose-checkpoint", str(MM / "rtmpose" / "rtmpose-tiny_coco-256x192.pth")]  # fmt: skip


def test_rtmdet_and_rtmpose_engines_run_the_whole_graph(vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    # The random-weight fixtures (checked against mmdet / mmpose in tests/detectors) score COCO
    # class 26 highest on this footage: treat it as the people class, as --det-cat-id allows.
    events = tmp_path / "people.jsonl"
    args = [str(vtest), *RTMDET, *RTMPOSE, "--det-cat-id", "26", "--det-score-thr", "0.3", "--det-interval", "1"]
    env_cache = ["--max-frames", "4", "--events", str(events), "--backend", "onnxruntime", "-q"]
    result = run(*args, *env_cache, timeout=300)
    assert result.returncode == 0, result.stderr
    frames = [r for r in map(json.loads, events.read_text().splitlines()) if r["type"] == "frame"]
    assert [r["frame_idx"] for r in frames] == [0, 1, 2, 3]
    people = [p for r in frames for p in r["people"]]
    assert people and all(len(p["keypoints"]) == 17 for p in people)  # RTMPose ran on RTMDet's boxes
    for person in people:
        x1, y1, x2, y2 = person["box"]
        assert 0 <= x1 <= x2 <= 768 and 0 <= y1 <= y2 <= 576 and person["score"] >= 0.3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mp4"], "missing.mp4"),
        (["{vtest}", "--det-config", "rtmdet.py"], "--det-config rtmdet.py: no such file"),
        (["{vtest}", "--pose-checkpoint", "rtmpose.pth"], "take no config or checkpoint"),
        (["{vtest}", "--pose", "rtmpose", "--pose-config", "missing.py", "--pose-checkpoint", "x.pth"], "missing.py"),
        (["{vtest}", "--pose", "hrnet"], "expected one of blazepose, mmpose, rtmpose"),
        (["{vtest}", "--detector", "yolo"], "expected one of blazepose, hog, mmdet, rtmdet"),
        (["{vtest}", "--det-cat-id", "2"], "people only"),
        (["{vtest}", "--det-interval", "0"], "--det-interval"),
        (["{vtest}", "--device", "cuda"], "cpu"),
        (["{vtest}", "--backend", "tensorrt"], "openvino"),
        (["{vtest}", "--precision", "bf16"], "--precision bf16: only the compiled engines take a precision"),
        (["{vtest}", "--precision", "int8"], "invalid choice: 'int8'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, vtest: Path) -> None:  # noqa: F811
    result = run(*[a.format(vtest=vtest) for a in args], "-q")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]  # ours, or argparse's usage error
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("pattern", ["black", "noise"])
def test_frames_without_people_give_empty_people_lists(pattern: str, tmp_path: Path) -> None:
    clip = make_video(tmp_path / f"{pattern}.mp4", frames=12, fps=10, size=(320, 240), pattern=pattern).path
    events = tmp_path / "people.jsonl"
    stages = [*people_stages(PeopleParams(det_interval=2)), JsonlSink(events, include_frames="people")]
    report = Pipeline([open_source(str(clip))], stages, metrics_interval_s=0).run()
    assert report.status == "ok"
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["frame_idx"] for r in records] == list(range(12))
    assert all(r["type"] == "frame" and r["people"] == [] for r in records)


def test_people_graph() -> None:
    stages = people_stages(PeopleParams())
    assert [type(s) for s in stages] == [DetectStage, TrackStage, PoseStage, AnnotateStage]
    assert [type(s) for s in people_stages(PeopleParams(pose=None, draw=False))] == [DetectStage, TrackStage]
    with pytest.raises(ModelNotAvailable, match="--pose-checkpoint"):
        people_stages(PeopleParams(pose_checkpoint="rtmpose.pth"))
    with pytest.raises(DetectorConfigError, match="hog"):
        people_stages(PeopleParams(detector="nope"))
