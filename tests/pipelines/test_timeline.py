import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.timeline import TimelineStage, merge_segments
from stream.errors import ConfigError
from stream.packet import Prediction
from tests.stream.helpers import frame


def test_merge_segments_joins_equal_labels_and_skips_unlabelled_frames() -> None:
    frames = [(0, 0.0, None, 0.0), (1, 0.5, "a", 0.8), (2, 1.0, "a", 0.6), (3, 1.5, "b", 0.9), (4, 2.0, None, 0.0)]
    segs = merge_segments(frames, period_s=0.5)
    assert [(s.label, s.start_s, s.end_s, s.first_frame, s.last_frame) for s in segs] == [
        ("a", 0.5, 1.5, 1, 2),
        ("b", 1.5, 2.0, 3, 3),
    ]
    assert segs[0].score == pytest.approx(0.7)


def test_timeline_stage_writes_frames_segments_and_plot(tmp_path: Path) -> None:
    out = {"frames_json": tmp_path / "r.json", "segments_path": tmp_path / "s.csv", "timeline_png": tmp_path / "t.png"}
    progress = io.StringIO()
    stage = TimelineStage(["walk", "run"], total_frames=6, progress=progress, **out)
    stage.setup()
    for i in range(6):
        p = frame(i, "vid")
        if i in (1, 4):
            label = "walk" if i == 1 else "run"
            p.predictions.append(Prediction(np.array([0]), np.array([0.9]), (label,), 0.0, p.time_s, 0))
        stage.process(p)
    stage.finish()
    results = json.loads(out["frames_json"].read_text())
    labels = [f["labels"][:1] for f in results["sources"]["vid"]["frames"]]
    assert labels == [["walk"], ["walk"], ["walk"], ["walk"], ["run"], ["run"]]  # frame 0 lies in the first window
    rows = list(csv.DictReader(out["segments_path"].open()))
    assert [(r["label"], r["first_frame"], r["last_frame"]) for r in rows] == [("walk", "0", "3"), ("run", "4", "5")]
    assert out["timeline_png"].read_bytes()[:4] == b"\x89PNG"
    assert "100%" in progress.getvalue() and "6/6 frames" in progress.getvalue()


def test_segments_suffix_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        TimelineStage(["a"], segments_path=tmp_path / "s.txt")
