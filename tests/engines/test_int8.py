"""INT8 engines: the quantized graph, its scores against fp32 on a trained model, calibration, ``auto``, the CLI.

The trained model is the shipped demo recognizer (SlowOnly-R18, 8 synthetic classes): random
weights score near-equal classes, which any perturbation flips, so agreement would prove nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engines.engine as engine_module
from engines.backends import BackendOptionError, BackendOptions, backend_class
from engines.cache import Device, cache_key
from engines.config import load_config
from engines.engine import Engine, build_engine, compare, load_engine
from engines.export import DeployModel, build_recognizer, torch_scores
from engines.quantize import (
    INT8_ONNX_NAME,
    CalibrationError,
    CalibrationSource,
    calibration_clips,
    count_qdq,
    default_calibration_video,
    quantize_onnx,
)
from tests.media import make_video

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "demo" / "demo_slowonly_r18_synthetic.py"
DEMO_CHECKPOINT = ROOT / "pipelines" / "demo" / "assets" / "demo_recognizer.pth"
SHAPE = (1, 3, 8, 64, 112)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def demo_torch() -> Any:
    model, _ = build_recognizer(load_config(DEMO_CONFIG).model, DEMO_CHECKPOINT)
    return DeployModel(model, "NCTHW").eval()


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """Held-out clips of the demo video (not the ones the engine calibrated on)."""
    spec = load_config(DEMO_CONFIG).clip
    assert spec is not None
    _, check = calibration_clips(CalibrationSource.resolve(None), spec, SHAPE, count=1, check=16)
    return check


@pytest.fixture(scope="module")
def short_video(work: Path) -> Path:
    """A short video (quick to decode) for the tests where agreement is forced anyway."""
    return make_video(work / "short.mp4", frames=120, size=(160, 96)).path


@pytest.fixture(scope="module")
def ort_int8(work: Path) -> Engine:
    return build_engine(DEMO_CONFIG, DEMO_CHECKPOINT, backend="onnxruntime", precision="int8", out_dir=work / "ort")


def test_quantizing_shows_no_onnxruntime_advice_to_the_user(
    ort_int8: Engine, held_out: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quantize_onnx(ort_int8.engine_dir / "model.onnx", tmp_path / "int8.onnx", held_out[:2])
    advice = [r for r in caplog.records if "pre-processing before quantization" in r.getMessage()]
    assert advice, "onnxruntime no longer gives the advice: drop engines.quantize._PreprocessAdvice"
    assert all(r.levelno == logging.DEBUG and r.name == "engines.quantize" for r in advice), advice
    assert (tmp_path / "int8.onnx").is_file()
    assert not logging.getLogger().filters  # the filter is removed again


def test_the_quantized_graph_has_qdq_pairs_and_int8_weights(ort_int8: Engine) -> None:
    counts = count_qdq(ort_int8.engine_dir / INT8_ONNX_NAME)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > counts["QuantizeLinear"], counts
    assert counts["int8_initializers"] >= 20, counts  # the conv weights (and zero points) are stored as int8
    assert count_qdq(ort_int8.engine_dir / "model.onnx")["QuantizeLinear"] == 0  # the fp32 graph is kept as it was
    m = ort_int8.manifest
    assert m.precision == "int8" and m.files["onnx_int8"] == INT8_ONNX_NAME
    assert (
        m.source["calibration"]["demo"] and m.source["calibration"]["sha256"] == CalibrationSource.resolve(None).sha256
    )
    assert load_engine(ort_int8.engine_dir).manifest.precision == "int8"  # reopens, hashes checked


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_keeps_the_trained_demo_recognizers_labels(
    work: Path, ort_int8: Engine, demo_torch: Any, held_out: np.ndarray, backend: str
) -> None:
    engine = ort_int8 if backend == "onnxruntime" else load_engine(ort_int8.engine_dir, "openvino", precision="int8")
    reference = torch_scores(demo_torch, held_out)
    int8 = compare(reference, engine.infer(held_out))
    assert int8["top1_agreement"] == 1.0, int8  # trained, well-separated classes keep their labels
    assert 1e-4 < int8["max_abs_diff"] < 0.1, int8  # quantized (not the fp32 graph), yet close
    fp32 = load_engine(ort_int8.engine_dir, backend, precision="fp32")
    assert compare(reference, fp32.infer(held_out))["max_abs_diff"] < 1e-4  # fp32 still runs the float graph


def test_calibration_source_is_part_of_the_cache_key(media: Any) -> None:
    cfg = load_config(DEMO_CONFIG)
    other = CalibrationSource.resolve(make_video(media.path("other.mp4"), frames=40, size=(160, 96)).path)
    demo = CalibrationSource.resolve(None)
    assert other.key() != demo.key() and CalibrationSource.resolve(demo.path).key() == demo.key()

    def key(precision: str, calibration: str) -> str:
        return cache_key(cfg, DEMO_CHECKPOINT, "openvino", Device("cpu"), precision, SHAPE, 4, calibration)

    assert key("int8", demo.key()) != key("int8", other.key())
    assert key("auto", demo.key()) != key("auto", other.key())  # auto may keep int8
    assert key("fp32", demo.key()) == key("fp32", other.key()) == key("fp32", "")  # fp32 entries stay put


@pytest.mark.parametrize(
    ("min_top1", "int8_faster", "kept"),
    [(0.0, True, True), (1.01, True, False), (0.0, False, False)],
    ids=["agrees-and-faster", "disagrees", "slower"],
)
def test_auto_keeps_int8_only_where_it_agrees_and_is_faster(
    work: Path, short_video: Path, monkeypatch: pytest.MonkeyPatch, min_top1: float, int8_faster: bool, kept: bool
) -> None:
    monkeypatch.setattr(backend_class("onnxruntime"), "auto_int8", classmethod(lambda cls: True))
    monkeypatch.setattr(engine_module, "AUTO_MIN_TOP1", min_top1)

    times = iter([1.0, 2.0] if int8_faster else [2.0, 1.0])  # int8 is timed first, then fp32

    def timed(engine: Engine, clips: np.ndarray, repeats: int = 3) -> float:
        return next(times)

    monkeypatch.setattr(engine_module, "time_per_clip", timed)
    out = work / f"auto-{min_top1}-{int8_faster}"
    engine = build_engine(
        DEMO_CONFIG, DEMO_CHECKPOINT, backend="onnxruntime", precision="auto", out_dir=out, calibration=short_video
    )
    check = engine.manifest.validation["auto_int8"]
    assert check["tried"] == "int8" and check["samples"] == 16 and check["kept"] is kept, check
    assert engine.manifest.precision == ("int8" if kept else "fp32")
    assert load_engine(out).manifest.precision == engine.manifest.precision
    if not kept:
        assert ("agrees with torch fp32 on top-1" if min_top1 > 1 else "not faster than fp32") in check["reason"]


def test_bad_calibration_input_is_one_clear_line(work: Path, media: Any) -> None:
    spec = load_config(DEMO_CONFIG).clip
    assert spec is not None
    with pytest.raises(CalibrationError, match=r"^--calibration: .*missing\.mp4 is not a video file") as missing:
        CalibrationSource.resolve(work / "missing.mp4")
    assert "\n" not in str(missing.value)
    garbage = media.file("garbage.mp4", b"this is not a video" * 100)
    with pytest.raises(CalibrationError, match=r"cannot decode it as a video .*; pass a video file"):
        calibration_clips(CalibrationSource.resolve(garbage), spec, SHAPE)
    short = make_video(media.path("short.mp4"), frames=12, size=(112, 64))
    with pytest.raises(CalibrationError, match=r"12 frames, fewer than one 32-frame window"):
        calibration_clips(CalibrationSource.resolve(short.path), spec, SHAPE)
    with pytest.raises(CalibrationError, match="not a video file"):  # before any export work
        build_engine(DEMO_CONFIG, DEMO_CHECKPOINT, backend="onnxruntime", precision="int8",
                     out_dir=work / "bad", calibration=work / "missing.mp4")  # fmt: skip
    assert not (work / "bad").exists()


def test_a_users_video_calibrates_deterministically(media: Any) -> None:
    spec = load_config(DEMO_CONFIG).clip
    assert spec is not None
    video = CalibrationSource.resolve(make_video(media.path("user.mp4"), frames=72, size=(224, 128)).path)
    calib, check = calibration_clips(video, spec, SHAPE, count=8, check=4)
    again, _ = calibration_clips(video, spec, SHAPE, count=8, check=4)
    assert calib.shape == (8, *SHAPE) and check.shape == (4, *SHAPE) and calib.dtype == np.float32
    np.testing.assert_array_equal(calib, again)  # seeded windows
    assert not any(np.array_equal(c, h) for c in calib for h in check)  # held-out windows are not calibration ones
    assert default_calibration_video().is_file()


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("tensorrt", "TensorRT INT8 needs its own calibration"),
        ("torch", "the torch backends run the float model and offer no INT8"),
        ("torch-cuda", "offer no INT8"),
    ],
)
def test_backends_without_int8_refuse_it_clearly(backend: str, message: str) -> None:
    with pytest.raises(BackendOptionError, match=rf"^backend '{backend}' cannot run precision int8: .*{message}"):
        backend_class(backend).check_options(BackendOptions(precision="int8"))


def test_the_clis_accept_int8_and_a_calibration_video(tmp_path: Path) -> None:
    import argparse

    from engines.build import make_parser
    from pipelines.cli import add_model_args

    args = make_parser().parse_args(
        ["--config", "c.py", "--checkpoint", "k.pth", "--out", "o", "--int8", "--calibration", "v.mp4"]
    )
    assert args.int8 and args.calibration == "v.mp4"
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--config", "c.py", "--checkpoint", "k.pth", "--out", "o", "--int8", "--bf16"])
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    parsed = parser.parse_args(["--config", "c.py", "--precision", "int8", "--calibration", "v.mp4"])
    assert parsed.precision == "int8" and parsed.calibration == "v.mp4"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("fpu avx2 avx512f avx512_vnni avx512_bf16", True), ("fpu avx2 avx_vnni", True), ("fpu avx2 avx512f", False)],
)
def test_openvino_tries_int8_under_auto_only_with_int8_dot_products(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str, expected: bool
) -> None:
    from engines.backends import ov

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert ov.cpu_has_vnni(cpuinfo) is expected
    assert ov.cpu_has_vnni(tmp_path / "missing") is False
    monkeypatch.setattr(ov, "cpu_has_vnni", lambda: expected)
    assert ov.OpenVinoBackend.auto_int8() is (ov.AUTO_INT8 and expected)
    assert backend_class("onnxruntime").auto_int8() is False  # auto on onnxruntime stays exact fp32


def test_auto_goes_on_without_int8_when_the_demo_video_cannot_calibrate(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model the demo video cannot calibrate (e.g. a window longer than the video) still builds under auto."""

    def too_short(*args: Any, **kwargs: Any) -> Any:
        raise CalibrationError("--calibration demo.mp4: 790 frames, fewer than one 1000-frame window")

    monkeypatch.setattr(backend_class("openvino"), "auto_int8", classmethod(lambda cls: True))
    monkeypatch.setattr(engine_module, "calibration_clips", too_short)
    engine = build_engine(DEMO_CONFIG, DEMO_CHECKPOINT, backend="openvino", precision="auto", out_dir=work / "ov-a")
    assert engine.manifest.precision in ("bf16", "fp32") and "onnx_int8" not in engine.manifest.files
    assert "auto_int8" not in engine.manifest.validation
    with pytest.raises(CalibrationError, match="fewer than one 1000-frame window"):  # asked for: an error
        build_engine(DEMO_CONFIG, DEMO_CHECKPOINT, backend="openvino", precision="int8", out_dir=work / "ov-i")
