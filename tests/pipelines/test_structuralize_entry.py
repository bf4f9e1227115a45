"""``python -m stream.structuralize``: people found once, shared by an AVA detector and a skeleton recognizer."""

from __future__ import annotations

import json
from pathlib import Path

from tests.footage import vtest  # noqa: F401  (fixture)
from tests.pipelines.test_entry_points import frames_in, run
from tests.pipelines.test_skeleton_entry import DEMO_CLASSES
from tests.pipelines.test_stdet_entry import ACTIONS, ava_model  # noqa: F401  (fixture)


def test_both_models_label_the_same_people_from_one_detection_pass(
    ava_model: tuple[Path, Path, Path],  # noqa: F811
    vtest: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    config, checkpoint, labels = ava_model
    out, events = tmp_path / "structure.mp4", tmp_path / "structure.jsonl"
    result = run(
        "stream.structuralize", "--video", str(vtest), "--out-filename", str(out), "--events", str(events),
        "--rgb-stdet-config", str(config), "--rgb-stdet-checkpoint", str(checkpoint), "--label-map-stdet", str(labels),
        "--action-score-thr", "0.0", "--max-frames", "80", "--metrics", str(tmp_path / "metrics.json"),
        cache=tmp_path / "cache", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert frames_in(out) == 80
    frames = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [p for f in frames if f.get("type") == "frame" for p in f.get("predictions", [])]
    ava = [p for p in predictions if p.get("multi_label")]
    skeleton = [p for p in predictions if not p.get("multi_label")]
    assert ava and skeleton, result.stderr
    assert all(set(p["labels"]) <= set(ACTIONS) for p in ava)
    assert all(set(p["labels"]) <= DEMO_CLASSES and p["track_id"] is not None for p in skeleton)
    assert {p["track_id"] for p in ava} & {p["track_id"] for p in skeleton}  # the same people, one tracker
    stages = json.loads((tmp_path / "metrics.json").read_text())["stages"]
    assert [name for name in stages if name in ("detector", "tracker", "pose")] == ["detector", "tracker", "pose"]


def test_nothing_to_run_and_contradictory_flags_are_one_line(tmp_path: Path) -> None:
    result = run("stream.structuralize", "--video", "x.mp4", "--use-skeleton-stdet", cache=tmp_path)
    assert result.returncode == 2 and "--use-skeleton-stdet needs --skeleton-stdet-config" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
