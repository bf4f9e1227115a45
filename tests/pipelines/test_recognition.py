"""The recognition stage with a real ONNX Runtime engine (demo config, random weights)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.recognizer import Recognizer, open_recognizer, read_label_file
from stream.errors import ConfigError, SourceNotFound
from stream.packet import FramePacket, Prediction
from stream.runner import Pipeline
from tests.pipelines.conftest import DEMO_CONFIG
from tests.stream.helpers import Collect, CountingSource, frame

WINDOW = 32  # demo config: clip_len 8 × frame_interval 4


@pytest.fixture(scope="module")
def recognizer(engine_cache: Path, random_checkpoint: Path, labels_file: Path) -> Recognizer:
    return open_recognizer(DEMO_CONFIG, random_checkpoint, backend="onnxruntime", max_batch=4, label_file=labels_file)


def moving_frames(n: int, fps: int = 25) -> list[FramePacket]:
    out = []
    for i in range(n):
        p = frame(i, "vid", size=(64, 112))
        image = np.zeros((64, 112, 3), np.uint8)
        x = (i * 3) % 100
        image[20:40, x : x + 12] = (0, 200, 255)
        p.image = image
        p.pts, p.time_base = i, __import__("fractions").Fraction(1, fps)
        out.append(p)
    return out


def run_file_mode(recognizer: Recognizer, params: RecognitionParams, frames: list[FramePacket]) -> list[FramePacket]:
    stage = RecognitionStage(recognizer, params, fps=25)
    stage.setup()
    out: list[FramePacket] = []
    for p in frames:
        result = stage.process(p)
        out += [] if result is None else [result] if isinstance(result, FramePacket) else list(result)  # type: ignore[list-item]
    out += list(stage.finish() or [])  # type: ignore[arg-type]
    return out


def attached(frames: list[FramePacket]) -> dict[int, tuple[str, ...]]:
    return {p.frame_idx: p.predictions[0].names for p in frames if p.predictions}


def test_engine_is_cached_and_reused(recognizer: Recognizer, engine_cache: Path, labels_file: Path) -> None:
    assert recognizer.class_names == [f"action_{i}" for i in range(8)]
    assert any(engine_cache.rglob("manifest.json"))
    checkpoint = recognizer.engine.manifest.source["checkpoint"]
    again = open_recognizer(DEMO_CONFIG, checkpoint, backend="onnxruntime", label_file=labels_file)
    assert again.engine.engine_dir == recognizer.engine.engine_dir  # reused, not rebuilt


def test_file_mode_is_lossless_ordered_and_independent_of_batch_size(recognizer: Recognizer) -> None:
    frames = moving_frames(100)
    one = run_file_mode(recognizer, RecognitionParams(stride=0.25, batch_size=1), moving_frames(100))
    four = run_file_mode(recognizer, RecognitionParams(stride=0.25, batch_size=4), frames)
    assert [p.frame_idx for p in four] == list(range(100))
    first = attached(one)
    assert first == attached(four)
    # A clip every 8 frames once the 32-frame window is full, attached to the clip's newest frame.
    assert sorted(first) == list(range(WINDOW - 1, 100, 8))
    scores_one = [p.predictions[0].scores for p in one if p.predictions]
    scores_four = [p.predictions[0].scores for p in four if p.predictions]
    np.testing.assert_allclose(np.stack(scores_one), np.stack(scores_four), atol=1e-5)


def test_center_anchor_attaches_to_the_middle_of_the_window(recognizer: Recognizer) -> None:
    out = run_file_mode(recognizer, RecognitionParams(stride=0.5, anchor="center", batch_size=2), moving_frames(80))
    assert [p.frame_idx for p in out] == list(range(80))
    centers = sorted(attached(out))
    assert centers[0] in (15, 16)  # middle of frames 0..31
    assert np.diff(centers).tolist() == [16] * (len(centers) - 1)


def full_scores(prediction: Prediction) -> np.ndarray:
    out = np.zeros(8, np.float32)
    out[prediction.label_ids] = prediction.scores
    return out


@pytest.mark.parametrize("batch_size", [1, 3])
def test_interpolate_anchor_blends_the_windows_around_each_frame(recognizer: Recognizer, batch_size: int) -> None:
    frames = 90
    params = dict(stride=0.5, top_k=8, batch_size=batch_size)
    centred = run_file_mode(recognizer, RecognitionParams(anchor="center", **params), moving_frames(frames))
    windows = [p.predictions[0] for p in centred if p.predictions]
    centres = np.array([(w.start_s + w.end_s) / 2 for w in windows])
    window_scores = np.stack([full_scores(w) for w in windows])
    out = run_file_mode(recognizer, RecognitionParams(anchor="interpolate", **params), moving_frames(frames))
    assert [p.frame_idx for p in out] == list(range(frames))
    assert all(len(p.predictions) == 1 for p in out)  # every frame, once
    times = np.arange(frames) / 25
    expected = np.stack([np.interp(times, centres, window_scores[:, c]) for c in range(8)], 1)
    got = np.stack([full_scores(p.predictions[0]) for p in out])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Between two windows' middles a frame's prediction spans both windows.
    middle = out[int(centres[0] * 25) + 4].predictions[0]
    assert (middle.start_s, middle.end_s) == (windows[0].start_s, windows[1].end_s)


@pytest.mark.parametrize("anchor", ["end", "center", "interpolate"])
def test_video_shorter_than_a_window_gets_one_padded_clip(
    recognizer: Recognizer, anchor: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = RecognitionParams(anchor=anchor, stride=0.5)  # type: ignore[arg-type]
    out = run_file_mode(recognizer, params, moving_frames(20))  # the window is 32 frames
    assert [p.frame_idx for p in out] == list(range(20))
    labelled = [p.frame_idx for p in out if p.predictions]
    assert labelled == ({"end": [19], "center": [10]}.get(anchor) or list(range(20)))
    assert "ended after 20 frames, before one whole window of 32" in caplog.text


def test_frames_without_a_whole_window_are_not_held_forever(recognizer: Recognizer) -> None:
    stage = RecognitionStage(recognizer, RecognitionParams(anchor="end"), fps=25)
    stage.setup()
    frames = moving_frames(200)
    for p in frames:
        p.pts = p.frame_idx % 10  # timestamps reset every 10 frames: never a whole 32-frame window
    passed = [stage.process(p) for p in frames]
    released = sum(1 if isinstance(r, FramePacket) else len(r) for r in passed if r)  # type: ignore[arg-type]
    assert released >= 200 - 33  # at most one window's worth waits for the end
    assert released + len(list(stage.finish() or [])) == 200  # type: ignore[arg-type]


def test_unknown_anchor_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="'end', 'center', 'interpolate'"):
        RecognitionParams(anchor="middle")  # type: ignore[arg-type]


def test_threshold_top_k_and_averaging(recognizer: Recognizer) -> None:
    out = run_file_mode(
        recognizer, RecognitionParams(stride=0.25, top_k=2, threshold=0.0, average_size=3), moving_frames(64)
    )
    predictions = [p.predictions[0] for p in out if p.predictions]
    assert all(len(p.names) == 2 and p.scores[0] >= p.scores[1] for p in predictions)
    none = run_file_mode(recognizer, RecognitionParams(stride=0.25, threshold=1.0), moving_frames(40))
    assert all(p.predictions[0].names == () for p in none if p.predictions)  # nothing reaches a score of 1


class SlowRecognizer(Recognizer):
    """The real engine plus a fixed delay, standing in for a model slower than the camera."""

    delay_s = 0.15

    def scores(self, clips):  # type: ignore[no-untyped-def]
        time.sleep(self.delay_s)
        return super().scores(clips)


def test_live_mode_keeps_frames_flowing_and_drops_stale_clips(recognizer: Recognizer) -> None:
    slow = SlowRecognizer(recognizer.engine, recognizer.spec, recognizer.class_names)
    stage = RecognitionStage(slow, RecognitionParams(predict_stepsize=1, live=True, batch_size=1))
    sink = Collect()
    source = CountingSource(150, interval_s=0.01, live=True, size=(64, 112))  # 100 fps camera
    report = Pipeline([source], [stage, sink], metrics_interval_s=0).run()
    metrics = report.stages["recognizer"]
    assert len(sink.frames) + report.stages["recognizer"]["dropped"] >= 140  # frames are not held back by the model
    assert metrics["dropped_clips"] > 10 and 3 <= metrics["clips"] <= 15  # ~0.15 s per clip over ~1.5 s
    assert metrics["latency_p50_ms"] is not None and metrics["latency_p50_ms"] >= 150


def test_label_file_with_too_few_names_is_an_error(engine_cache: Path, random_checkpoint: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    with pytest.raises(ConfigError, match="2 class names but the model has 8 classes"):
        open_recognizer(DEMO_CONFIG, random_checkpoint, backend="onnxruntime", label_file=short)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"checkpoint": "missing.pth"}, SourceNotFound, "checkpoint not found"),
        ({"label_file": "missing.txt"}, SourceNotFound, "label file not found"),
        ({"device": "tpu"}, ConfigError, "--device"),
        ({"num_clips": 0}, ConfigError, "--num-clips"),
        ({"device": "cuda:64"}, ConfigError, r"no CUDA GPU|has \d+ CUDA GPU"),
    ],
)
def test_bad_arguments(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, kwargs: dict, error: type, match: str
) -> None:
    kwargs = {"checkpoint": random_checkpoint, "label_file": labels_file, **kwargs}
    with pytest.raises(error, match=match):
        open_recognizer(DEMO_CONFIG, kwargs.pop("checkpoint"), backend="onnxruntime", **kwargs)


def test_read_label_file_accepts_mmaction_label_maps(tmp_path: Path) -> None:
    path = tmp_path / "map.txt"
    path.write_text("abseiling\nair drumming\n\n")
    assert read_label_file(path) == ["abseiling", "air drumming"]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"threshold": 2.0}, "threshold"), ({"top_k": 0}, "top-k"), ({"predict_stepsize": 2, "stride": 0.5}, "not both")],
)
def test_invalid_params(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RecognitionParams(**kwargs)


def test_engine_dir_is_the_truth_and_a_disagreeing_config_is_an_error(
    engine_cache: Path, random_checkpoint: Path, tmp_path: Path
) -> None:
    from engines.engine import build_engine

    engine_dir = tmp_path / "demo_engine"
    build_engine(DEMO_CONFIG, random_checkpoint, backend="onnxruntime", out_dir=engine_dir, validate=False).close()
    recognizer = open_recognizer(DEMO_CONFIG, backend="onnxruntime", engine_dir=engine_dir)
    assert recognizer.spec == recognizer.engine.manifest.clip and recognizer.spec.clip_len == 8
    recognizer.close()
    with pytest.raises(ConfigError, match=r"does not match the engine .*frame_interval: config 2 vs engine 4"):
        open_recognizer(
            DEMO_CONFIG,
            backend="onnxruntime",
            engine_dir=engine_dir,
            cfg_options={"test_pipeline.0.frame_interval": 2},
        )
    with pytest.raises(ConfigError, match="was built for 1 clip"):
        open_recognizer(DEMO_CONFIG, backend="onnxruntime", engine_dir=engine_dir, num_clips=3)
    with pytest.raises(ConfigError, match="frame_intervall"):  # a new key is checked by the section that gets it
        open_recognizer(DEMO_CONFIG, backend="onnxruntime", cfg_options={"test_pipeline.0.frame_intervall": 2})
    with pytest.raises(ConfigError, match="no key 'test_pipelin' at the top level"):
        open_recognizer(DEMO_CONFIG, backend="onnxruntime", cfg_options={"test_pipelin.0.clip_len": 2})
