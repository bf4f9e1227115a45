"""``python -m stream.skeleton`` end to end on real pedestrians, with nothing downloaded."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.footage import vtest  # noqa: F401  (fixture)
from tests.pipelines.test_entry_points import frames_in, run

ROOT = Path(__file__).resolve().parents[2]
DEMO_CLASSES = {"standing", "walking", "waving", "arms_up", "squatting", "jumping"}


def test_pedestrians_are_labelled_walking_person_by_person(vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    out, events = tmp_path / "skeleton.mp4", tmp_path / "skeleton.jsonl"
    result = run(
        "stream.skeleton", str(vtest), str(out), "--events", str(events), "--max-frames", "120",
        cache=tmp_path / "cache", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == 120
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    frames = [line for line in lines if line.get("type") == "frame"]
    predictions = [(f["frame_idx"], p) for f in frames for p in f.get("predictions", [])]
    assert len({p["track_id"] for _, p in predictions}) >= 3, result.stderr  # several people, each labelled
    for frame_idx, p in predictions:
        assert set(p["labels"]) <= DEMO_CLASSES and p["labels"], p
        people = next(f.get("people", []) for f in frames if f["frame_idx"] == frame_idx)
        assert p["track_id"] in {person["track_id"] for person in people}  # attached while the person is there
    top = Counter(p["labels"][0] for _, p in predictions)
    assert top["walking"] >= 0.6 * sum(top.values()), top  # vtest.avi: pedestrians walking
    starts = [e for e in lines if e.get("kind") == "action" and e["data"]["phase"] == "start"]
    assert starts and all(e["data"]["track_id"] is not None for e in starts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mp4"], "missing.mp4"),
        (
            [
                "VIDEO",
                "--config",
                "configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py",
            ],
            "not a skeleton recognizer",
        ),
        (["VIDEO", "--num-clips", "0"], "--num-clips"),
        (["VIDEO", "--min-frames", "100"], "--min-frames 100"),
        (["VIDEO", "--checkpoint", "nope.pth"], "nope.pth: no such file"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    args = [str(vtest) if a == "VIDEO" else a for a in args]
    result = run("stream.skeleton", *args, cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def h264_copy(source: Path, path: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``source`` as an H.264 MP4 (what the RTSP test server streams)."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        stream_in = src.streams.video[0]
        stream = dst.add_stream("h264", rate=round(stream_in.average_rate or 10))
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "bf": "0"}
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return path


def test_a_live_rtsp_camera_gets_per_person_labels(vtest: Path, tmp_path: Path) -> None:  # noqa: F811
    from tests.media import RtspServer

    clip = h264_copy(vtest, tmp_path / "street.mp4", 150)
    events, metrics = tmp_path / "live.jsonl", tmp_path / "metrics.json"
    with RtspServer(clip) as camera:
        result = run(
            "stream.skeleton", camera.url, "--events", str(events), "--max-frames", "120", "--metrics", str(metrics),
            cache=tmp_path / "cache", timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [p for f in lines if f.get("type") == "frame" for p in f.get("predictions", [])]
    assert predictions and all(p["track_id"] is not None for p in predictions), result.stderr
    stats = json.loads(metrics.read_text())["stages"]["skeleton"]
    assert stats["predictions"] == len(predictions)  # every label attached to a frame reached the outputs
    assert stats["inferred"] >= stats["predictions"]  # live: a label finished after its person left is not attached
    assert stats["latency_p95_ms"] is not None  # live: capture-to-label latency is measured
