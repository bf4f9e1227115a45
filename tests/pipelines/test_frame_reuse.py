"""Frame reuse in the recognition pipeline: same scores as the full engine, fewer backbone frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipelines.clip_buffer import Clip, ClipBuffer
from pipelines.recognition import RecognitionParams, RecognitionStage
from pipelines.recognizer import Recognizer, open_recognizer
from stream.long_video import main as long_video_main
from stream.packet import FramePacket, Prediction
from stream.runner import Pipeline
from stream.stage import Outputs, Stage
from tests.engines.engine_helpers import make_checkpoint, write_tiny_tsn_config
from tests.media import make_video
from tests.stream.helpers import CountingSource, frame

VIEWS = 4


@pytest.fixture(scope="module")
def tiny_tsn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tsn")
    config = write_tiny_tsn_config(folder / "tiny_tsn.py", views=VIEWS, num_classes=6)
    return config, make_checkpoint(config, folder / "tiny_tsn.pth", seed=2)


@pytest.fixture(scope="module")
def recognizers(engine_cache: Path, tiny_tsn: tuple[Path, Path]) -> Iterator[tuple[Recognizer, Recognizer]]:
    config, checkpoint = tiny_tsn
    opened = [
        open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32", reuse=reuse, max_batch=4)
        for reuse in (True, False)
    ]
    yield opened[0], opened[1]
    for rec in opened:
        rec.close()


def frames(count: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(count)]


def packet(image: np.ndarray, idx: int, pts: int | None = None) -> FramePacket:
    return FramePacket(image, "cam", idx, idx if pts is None else pts, Fraction(1, 25), 0, meta={"fps": 25.0})


def clips_of(buffer: ClipBuffer, packets: list[FramePacket]) -> list[Clip]:
    clips = []
    for p in packets:
        if buffer.push(p):
            clip = buffer.poll()
            assert clip is not None
            clips.append(clip)
    return clips


def test_reuse_is_on_for_tsn_and_off_when_asked(recognizers: tuple[Recognizer, Recognizer]) -> None:
    reusing, full = recognizers
    assert reusing.reuse is not None and full.reuse is None


def test_overlapping_clips_score_as_the_full_engine_with_half_the_backbone_frames(
    recognizers: tuple[Recognizer, Recognizer],
) -> None:
    reusing, full = recognizers
    assert reusing.reuse is not None
    reusing.reuse.clear()
    buffer = ClipBuffer(reusing.spec, source_id="cam", stride=0.5, resize_on_push=True)
    clips = clips_of(buffer, [packet(f, i) for i, f in enumerate(frames(40))])
    assert len(clips) == 1 + (40 - VIEWS) // 2  # window 4 frames, a clip every 2
    before_full, before = full.backbone_frames, (reusing.backbone_frames, reusing.reused_frames)
    want = full.scores(clips)
    got = np.concatenate([reusing.scores(clips[i : i + 3]) for i in range(0, len(clips), 3)])  # batches of 3
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert full.backbone_frames - before_full == len(clips) * VIEWS
    computed, reused = reusing.backbone_frames - before[0], reusing.reused_frames - before[1]
    assert computed == 40  # each frame once
    assert computed + reused == len(clips) * VIEWS
    assert len(reusing.reuse) <= VIEWS  # frames before the newest clip's window were freed


def test_filled_slots_and_three_crops_keep_the_full_engines_scores(engine_cache: Path, tmp_path: Path) -> None:
    config = write_tiny_tsn_config(tmp_path / "three.py", views=3, crop="ThreeCrop", resize=32, average_clips="score")
    checkpoint = make_checkpoint(config, tmp_path / "three.pth", seed=3)
    reusing = open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32")
    full = open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32", reuse=False)
    try:
        assert reusing.reuse is not None and reusing.spec.num_views == 9
        images = frames(20, seed=4)
        dropped = {5, 6, 11}  # missing frames: their slots repeat the frame before
        packets = [packet(f, i) for i, f in enumerate(images) if i not in dropped]
        clips = clips_of(ClipBuffer(reusing.spec, source_id="cam", stride=0.34), packets)
        assert any(c.filled_slots for c in clips)
        assert any(len(set(c.frame_ids)) < len(c.frame_ids) for c in clips)
        np.testing.assert_allclose(reusing.scores(clips), full.scores(clips), atol=1e-5, rtol=0)
        assert reusing.backbone_frames == 3 * len({i for c in clips for i in c.frame_ids})
    finally:
        reusing.close()
        full.close()


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_bf16_reuse_under_auto_and_explicit_precision(
    engine_cache: Path, tiny_tsn: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    """Where OpenVINO offers bf16, reuse runs bf16 engines too, within bf16 rounding of the full bf16 engine."""
    from engines.backends.ov import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "bf16"))
    monkeypatch.setattr(OpenVinoBackend, "auto_int8", classmethod(lambda cls: False))  # the bf16 path
    config, checkpoint = tiny_tsn
    reusing = open_recognizer(config, checkpoint, backend="openvino", precision=precision, max_batch=4)
    try:
        assert reusing.engine.manifest.precision == "bf16"
        assert reusing.reuse is not None and reusing.reuse.engines.precision == "bf16"
        check = reusing.reuse.engines.auto_precision
        assert (check is not None and check["tried"] == "bf16") if precision == "auto" else check is None
        clips = clips_of(
            ClipBuffer(reusing.spec, source_id="cam", stride=0.5), [packet(f, i) for i, f in enumerate(frames(12))]
        )
        full = reusing.engine.infer(reusing.inputs(clips))
        got = reusing.scores(clips)
        assert reusing.reused_frames > 0
        np.testing.assert_allclose(got, full, atol=0.02, rtol=0)  # probabilities; bf16 keeps ~3 digits
    finally:
        reusing.close()


def test_int8_reuse_runs_an_int8_frame_engine_calibrated_on_the_given_video(
    engine_cache: Path, tiny_tsn: tuple[Path, Path], tmp_path: Path
) -> None:
    """``--precision int8`` (with ``--calibration``): reuse is on, with the frame engine in INT8."""
    config, checkpoint = tiny_tsn
    video = make_video(tmp_path / "calib.mp4", frames=60, size=(64, 48)).path
    reusing = open_recognizer(config, checkpoint, backend="onnxruntime", precision="int8", calibration=video,
                              max_batch=4)  # fmt: skip
    try:
        assert reusing.engine.manifest.precision == "int8"
        assert reusing.reuse is not None and reusing.reuse.engines.precision == "int8"
        assert "onnx_int8" in reusing.reuse.engines.frames.manifest.files
        assert reusing.reuse.engines.head.manifest.precision == "fp32"
        import av

        with av.open(str(video)) as container:  # frames like those it was calibrated on
            images = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)][:12]
        clips = clips_of(
            ClipBuffer(reusing.spec, source_id="cam", stride=0.5), [packet(f, i) for i, f in enumerate(images)]
        )
        fp32 = open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32", reuse=False, max_batch=4)
        try:
            want = fp32.engine.infer(fp32.inputs(clips))
        finally:
            fp32.close()
        got = reusing.scores(clips)
        assert reusing.reused_frames > 0
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
        error = np.max(np.abs(got - want))
        assert 0 < error < 0.02, error  # quantized: near fp32's probabilities, not equal to them
    finally:
        reusing.close()


def test_a_frame_index_that_comes_back_with_other_pixels_is_computed_again(
    recognizers: tuple[Recognizer, Recognizer],
) -> None:
    reusing, full = recognizers
    assert reusing.reuse is not None
    reusing.reuse.clear()
    first, second = frames(8, seed=5), frames(8, seed=6)
    buffer = ClipBuffer(reusing.spec, source_id="cam", stride=0.5)
    clips = clips_of(buffer, [packet(f, i) for i, f in enumerate(first)])
    # a restarted camera: the same frame indices, later timestamps, other pixels
    clips += clips_of(buffer, [packet(f, i, pts=100 + i) for i, f in enumerate(second)])
    got = np.concatenate([reusing.scores([c]) for c in clips])
    np.testing.assert_allclose(got, full.scores(clips), atol=1e-5, rtol=0)
    # a clip built by hand (no frame ids) is scored with all its frames computed
    bare = Clip("cam", clips[-1].frames, clips[-1].slots, 0.0, 0.0, 0, 0, resized=False)
    computed = reusing.backbone_frames
    np.testing.assert_allclose(reusing.scores([bare]), got[-1:], atol=1e-5, rtol=0)
    assert reusing.backbone_frames - computed == VIEWS


def test_forget_frees_a_source(recognizers: tuple[Recognizer, Recognizer]) -> None:
    reusing, _ = recognizers
    assert reusing.reuse is not None
    reusing.reuse.clear()
    buffer = ClipBuffer(reusing.spec, source_id="cam", stride=0.5)
    reusing.scores(clips_of(buffer, [packet(f, i) for i, f in enumerate(frames(6))]))
    assert len(reusing.reuse) == VIEWS
    reusing.forget("other")
    assert len(reusing.reuse) == VIEWS
    reusing.forget("cam")
    assert len(reusing.reuse) == 0


def test_long_video_stride_half_same_labels_half_the_backbone_frames(
    engine_cache: Path, tiny_tsn: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = tiny_tsn
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"action_{i}\n" for i in range(6)))
    video = make_video(tmp_path / "clip.mp4", frames=60, fps=25, size=(96, 72)).path
    outputs = {}
    for flag in ("--reuse", "--no-reuse"):
        out, metrics = tmp_path / f"{flag}.json", tmp_path / f"{flag}-metrics.json"
        extra = [] if flag == "--reuse" else [flag]
        code = long_video_main(
            [
                str(config), str(checkpoint), str(video), str(labels), str(out), "--stride", "0.5", "--no-timeline",
                "--no-progress", "--backend", "onnxruntime", "--precision", "fp32", "--metrics", str(metrics),
                "--threshold", "0", *extra,
            ]
        )  # fmt: skip
        assert code == 0
        rec = json.loads(metrics.read_text())["stages"]["recognizer"]
        outputs[flag] = (json.loads(out.read_text())["sources"]["clip"]["frames"], rec)
    (reused, rec_on), (full, rec_off) = outputs["--reuse"], outputs["--no-reuse"]
    assert rec_on["frame_reuse"] is True and rec_off["frame_reuse"] is False
    assert rec_on["reuse_precision"] == rec_on["precision"] == "fp32" and rec_off["reuse_precision"] is None
    assert rec_on["clips"] == rec_off["clips"] == 1 + (60 - VIEWS) // 2
    assert rec_off["backbone_frames"] == rec_off["clips"] * VIEWS
    assert rec_on["backbone_frames"] == 60  # each frame once: about half at stride 0.5
    assert rec_on["backbone_frames"] + rec_on["reused_frames"] == rec_off["backbone_frames"]
    assert len(reused) == len(full) == 60
    assert [f["labels"] for f in reused] == [f["labels"] for f in full]
    for a, b in zip(reused, full, strict=True):
        np.testing.assert_allclose(a["scores"], b["scores"], atol=2e-5, rtol=0)


class _Predictions(Stage):
    def __init__(self) -> None:
        super().__init__("predictions")
        self.found: list[Prediction] = []

    def process(self, packet: FramePacket) -> Outputs:
        self.found += packet.predictions
        return packet


def test_live_mode_reuses_frames_and_keeps_the_full_engines_scores(
    recognizers: tuple[Recognizer, Recognizer],
) -> None:
    reusing, full = recognizers
    before = reusing.backbone_frames, reusing.reused_frames
    stage = RecognitionStage(reusing, RecognitionParams(predict_stepsize=1, live=True, batch_size=1, top_k=6))
    sink = _Predictions()
    report = Pipeline([CountingSource(30, interval_s=0.005, live=True)], [stage, sink], metrics_interval_s=0).run()
    metrics = report.stages["recognizer"]
    computed, reused = reusing.backbone_frames - before[0], reusing.reused_frames - before[1]
    assert metrics["frame_reuse"] is True and metrics["clips"] >= 2
    assert computed + reused == metrics["clips"] * VIEWS
    assert 0 < computed < metrics["clips"] * VIEWS  # consecutive clips share frames
    assert sink.found
    for prediction in sink.found:  # each label's score is the full engine's on the same window
        end = round(prediction.end_s * 25)
        images = tuple(frame(i, "gen").image for i in range(end - VIEWS + 1, end + 1))
        clip = Clip("gen", images, reusing.spec.sample(VIEWS), 0.0, 0.0, 0, end, resized=False)
        want = full.scores([clip])[0]
        np.testing.assert_allclose(prediction.scores, want[prediction.label_ids], atol=1e-5, rtol=0)
