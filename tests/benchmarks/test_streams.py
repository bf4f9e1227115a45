"""``benchmarks/streams.py``: its core on one and two local RTSP cameras, and its stop rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.streams import (
    COLUMNS,
    DEMO_CONFIG,
    camera_counts,
    clip_rates,
    main,
    model_for,
    plot,
    run,
    verdict,
)
from tests.media import rtsp_server_unavailable


@pytest.mark.parametrize(
    ("max_cameras", "expected"),
    [(1, [1]), (2, [1, 2]), (16, [1, 2, 4, 8, 16]), (12, [1, 2, 4, 8, 12])],
)
def test_camera_counts_double_up_to_the_cap(max_cameras: int, expected: list[int]) -> None:
    assert camera_counts(max_cameras) == expected


def _row(**kw: Any) -> dict[str, Any]:
    return {"fps_min": 25.0, "label_p95_ms": 60.0, "bound_ms": 1300.0} | kw


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_row(), "ok"),
        (_row(fps_min=22.5), "ok"),  # exactly 90 % of 25 still keeps up
        (_row(fps_min=22.4), "fps<22.5"),
        (_row(label_p95_ms=1300.5), "p95>bound"),
        (_row(fps_min=10.0, label_p95_ms=5000.0), "fps<22.5,p95>bound"),
        (_row(label_p95_ms=None), "no labels"),
    ],
)
def test_verdict_names_what_broke(row: dict[str, Any], expected: str) -> None:
    assert verdict(row) == expected


@pytest.mark.timeout(120)  # two monitor start-ups (torch import, engine build) on a loaded machine
def test_one_and_two_cameras_give_sane_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = rtsp_server_unavailable()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("ACTION_STREAM_CACHE", str(tmp_path / "cache"))  # the monitor's engine: not the user's cache
    model = model_for(DEMO_CONFIG, backend="onnxruntime")
    assert model.window_s == pytest.approx(8 * 4 / 25)  # clip_len 8 x frame_interval 4 at 25 fps
    # 320x240 cameras: the test checks the figures are sane, not what 720p costs.
    rows = run([1, 2], model, tmp_path, seconds=2, warmup=0, stop_on_break=False, health_interval=0.5, size=(320, 240))
    assert [r["cameras"] for r in rows] == [1, 2]
    for row in rows:
        assert set(COLUMNS) <= set(row)
        assert len(row["per_camera"]) == row["cameras"]
        assert len({c["source"] for c in row["per_camera"]}) == row["cameras"]
        assert all(c["fps"] > 0 for c in row["per_camera"])
        assert 0 < row["fps_min"] <= row["fps_mean"]
        assert 0 < row["label_p50_ms"] <= row["label_p95_ms"]
        assert row["infer_ms"] > 0 and row["bound_ms"] == pytest.approx(1280 + 1.5 * row["engine_call_ms"])
        assert row["engine_call_ms"] == pytest.approx(row["infer_ms"] * row["cameras"])  # batch 4 holds them all
        assert row["dropped"] >= 0 and row["cpu_pct"] > 0 and row["rss_mb"] > 0
        assert row["recognizer"]["clips"] > 0
        assert row["clips_per_cam_s"] > 0 and 0 <= row["stale_pct"] < 100
    json.dumps(rows)  # the JSON payload is plain data
    png = tmp_path / "out" / "streams.png"
    plot(rows, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clip_rates_count_scored_clips_per_camera_and_the_stale_share() -> None:
    # 100 s of 2 cameras (5000 frames at 50 frames/s in all): 150 clips scored, 50 dropped as stale.
    rates = clip_rates({"clips": 150, "dropped_clips": 50, "frames": 5000, "fps": 50.0}, 2)
    assert rates == {"clips_per_cam_s": pytest.approx(0.75), "stale_pct": pytest.approx(25.0)}
    assert clip_rates({"clips": 0, "frames": 10, "fps": 1.0}, 1) == {"clips_per_cam_s": None, "stale_pct": None}
    assert clip_rates({}, 1)["stale_pct"] is None  # no recognizer metrics (the monitor died)


def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--seconds", "0"])
    assert exc.value.code == 2
    assert "--seconds > 0" in capsys.readouterr().err
