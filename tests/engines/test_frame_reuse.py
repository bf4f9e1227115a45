"""Frame reuse: which families qualify, and the frame + head engines against the full model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.cache import Device, cached_engine
from engines.config import load_config
from engines.errors import ModelConfigError
from engines.frame_reuse import FEATURES, FRAMES, SCORES, build_reuse_engines, reuse_refusal, split_model
from tests.engines.engine_helpers import make_checkpoint, random_model, write_tiny_tsn_config, write_tsn_config

ROOT = Path(__file__).resolve().parents[2]
TSN = {
    "type": "Recognizer2D",
    "backbone": {"type": "ResNet", "depth": 50},
    "cls_head": {
        "type": "TSNHead",
        "num_classes": 400,
        "in_channels": 2048,
        "spatial_type": "avg",
        "consensus": {"type": "AvgConsensus", "dim": 1},
        "average_clips": "prob",
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(TSN)
    *parents, last = path.split(".")
    node = cfg
    for key in parents:
        node = node[key]
    node[last] = value
    return cfg


@pytest.mark.parametrize(
    ("model", "refused_for"),
    [
        (TSN, None),
        (_with("cls_head.average_clips", "score"), None),
        (_with("cls_head.average_clips", None), None),
        (_with("cls_head.consensus", None), None),  # TSNHead's default is AvgConsensus(dim=1)
        (_with("backbone.type", "ResNetTSM"), "temporal shift"),
        (_with("type", "Recognizer3D"), "as a whole"),
        (_with("cls_head.type", "TSMHead"), "head 'TSMHead'"),
        (_with("cls_head.type", "I3DHead"), "head 'I3DHead'"),
        (_with("cls_head.consensus", {"type": "TRNConsensus"}), "AvgConsensus"),
        (_with("cls_head.consensus", {"type": "AvgConsensus", "dim": 2}), "AvgConsensus"),
        (_with("cls_head.spatial_type", "max"), "spatial_type"),
        (_with("neck", {"type": "TPN"}), "neck"),
        (_with("backbone.type", "MobileNetV2"), "not known to be per-frame"),
        (_with("test_cfg", {"fcn_test": True}), "fcn_test"),
    ],
)
def test_reuse_refusal_by_family(model: dict[str, Any], refused_for: str | None) -> None:
    reason = reuse_refusal(model)
    if refused_for is None:
        assert reason is None
    else:
        assert reason is not None and refused_for in reason


@pytest.mark.parametrize(
    ("config", "qualifies"),
    [
        ("tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py", True),
        ("tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py", False),
        ("i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py", False),
    ],
)
def test_reuse_refusal_of_shipped_configs(config: str, qualifies: bool) -> None:
    cfg = load_config(ROOT / "configs" / "recognition" / config)
    assert (reuse_refusal(cfg.model) is None) is qualifies


def test_the_demo_recognizer_does_not_qualify() -> None:
    cfg = load_config(ROOT / "configs" / "demo" / "demo_slowonly_r18_synthetic.py")
    assert "Recognizer3D" in (reuse_refusal(cfg.model) or "")


@pytest.mark.parametrize("average_clips", ["prob", "score", None])
def test_split_model_composes_to_the_full_model(tmp_path: Path, average_clips: str | None) -> None:
    model = random_model(write_tiny_tsn_config(tmp_path / "tsn.py", views=3, average_clips=average_clips))
    per_frame, head = split_model(model)
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        feats = per_frame(x.reshape(6, 3, 32, 32)).reshape(2, 3, -1)
        got = head(feats)
    assert got.shape == want.shape == (2, 6)
    assert torch.max(torch.abs(got - want)).item() <= 1e-5


def test_split_model_and_build_refuse_tsm(tmp_path: Path) -> None:
    from engines.models import build

    model_cfg = dict(load_config(write_tsn_config(tmp_path / "tsn.py")).model)
    model_cfg["backbone"] = {"type": "ResNetTSM", "depth": 18, "num_segments": 2}
    model_cfg["cls_head"] = {"type": "TSMHead", "num_classes": 10, "in_channels": 512, "num_segments": 2}
    with pytest.raises(ModelConfigError, match="pooling TSNHead"):
        split_model(build(copy.deepcopy(model_cfg)))
    with pytest.raises(ModelConfigError, match="frame reuse: ResNetTSM"):
        build_reuse_engines(model_cfg, tmp_path / "missing.pth", (2, 3, 64, 64))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_reuse_engines_match_torch_and_the_full_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("ACTION_STREAM_CACHE", str(tmp_path / "cache"))
    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=3, average_clips="prob")
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    shape = (3, 3, 32, 32)
    engines = build_reuse_engines(cfg.model, checkpoint, shape, backend=backend, cache_dir=tmp_path / "c")
    assert [t.name for t in engines.frames.inputs] == [FRAMES]
    assert [t.name for t in engines.frames.outputs] == [FEATURES]
    assert [t.name for t in engines.head.inputs] == [FEATURES]
    assert [t.name for t in engines.head.outputs] == [SCORES]
    assert engines.frames.manifest.validation["max_abs_diff"] <= 1e-4
    assert engines.head.manifest.validation["max_abs_diff"] <= 1e-5
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    feats = engines.features(x.reshape(6, 3, 32, 32)).reshape(2, 3, -1)
    got = engines.scores(feats)
    model = random_model(config, seed=1)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    full = cached_engine(
        cfg, checkpoint, backend=backend, device=Device("cpu"), precision="fp32", input_shape=shape, max_batch=2
    )
    try:
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got, full.infer(x), atol=1e-5, rtol=0)
        assert np.array_equal(got.argmax(1), want.argmax(1))
    finally:
        full.close()
        engines.close()
    # cached: a second open builds nothing and gives the same scores
    again = build_reuse_engines(cfg.model, checkpoint, shape, backend=backend, cache_dir=tmp_path / "c")
    try:
        assert again.frames.engine_dir == engines.frames.engine_dir
        np.testing.assert_array_equal(again.scores(feats), got)
    finally:
        again.close()


@pytest.mark.parametrize("min_top1", [0.0, 1.01])
def test_auto_precision_checks_the_pair_and_falls_back_to_fp32_for_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, min_top1: float
) -> None:
    """``precision='auto'``: the backend's bf16 for both engines if the pair keeps top-1 labels, else fp32."""
    import engines.engine as engine_module
    from engines.backends.ov import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "bf16"))
    monkeypatch.setattr(engine_module, "AUTO_MIN_TOP1", min_top1)
    monkeypatch.setattr(engine_module, "AUTO_CHECK_SAMPLES", 4)
    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2, average_clips="prob")
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    shape = (2, 3, 32, 32)
    cache = tmp_path / "c"
    with caplog.at_level("WARNING", logger="engines.frame_reuse"):
        engines = build_reuse_engines(
            cfg.model, checkpoint, shape, backend="openvino", precision="auto", cache_dir=cache
        )
    check = engines.auto_precision
    assert check is not None and check["tried"] == "bf16" and check["samples"] == 4
    assert check["kept"] == (check["top1_agreement"] >= min_top1), check  # the recorded check decided
    tried = sorted(p.name for p in cache.iterdir() if "-bf16-" in p.name)
    assert [name.split("-")[1] for name in tried] == ["frames", "head"]
    for name in tried:  # the check is recorded in the tried engines' manifests
        assert json.loads((cache / name / "manifest.json").read_text())["validation"]["auto_precision"] == check
    x = np.random.default_rng(5).standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        want = random_model(config, seed=1)(torch.from_numpy(x)).numpy()
    got = engines.scores(engines.features(x.reshape(4, 3, 32, 32)).reshape(2, 2, -1))
    engines.close()
    if min_top1 > 1:  # nothing passes: fp32 for both parts, with fp32's accuracy, and the warning
        assert engines.precision == engines.head.manifest.precision == "fp32"
        assert "using fp32" in caplog.text
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    else:
        assert engines.precision == engines.head.manifest.precision == "bf16"
        assert "using fp32" not in caplog.text
        assert np.max(np.abs(got - want)) < 0.1  # bf16: about 3 significant digits
        # a second start reads the recorded decision instead of checking again
        monkeypatch.setattr("engines.frame_reuse._check_pair", lambda *a: pytest.fail("checked again"))
        again = build_reuse_engines(cfg.model, checkpoint, shape, backend="openvino", precision="auto", cache_dir=cache)
        again.close()
        assert again.precision == "bf16" and again.auto_precision == check


@pytest.mark.parametrize(("backend", "precision"), [("openvino", "fp32"), ("onnxruntime", "auto")])
def test_fp32_pairs_are_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, precision: str
) -> None:
    """Explicit fp32, and ``auto`` where the backend has nothing faster: fp32 engines, no auto check."""
    from engines.backends.ov import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "bf16"))
    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2, average_clips="prob")
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    engines = build_reuse_engines(
        load_config(config).model, checkpoint, (2, 3, 32, 32), backend=backend, precision=precision,
        cache_dir=tmp_path / "c",
    )  # fmt: skip
    engines.close()
    assert engines.precision == engines.head.manifest.precision == "fp32"
    assert engines.auto_precision is None
    assert "auto_precision" not in engines.frames.manifest.validation
    assert [p.name.split("-")[3] for p in sorted((tmp_path / "c").iterdir())] == ["fp32", "fp32"]


def test_a_precision_the_backend_lacks_is_refused(tmp_path: Path) -> None:
    from engines.backends import BackendOptionError

    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2)
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    with pytest.raises(BackendOptionError, match="supports precision"):
        build_reuse_engines(load_config(config).model, checkpoint, (2, 3, 32, 32), backend="onnxruntime",
                            precision="bf16", cache_dir=tmp_path / "c")  # fmt: skip


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short video to calibrate INT8 with (quick to decode)."""
    from tests.media import make_video

    return make_video(tmp_path_factory.mktemp("calib") / "short.mp4", frames=60, size=(64, 48)).path


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_quantizes_the_frame_engine_on_the_calibration_videos_frames(
    tmp_path: Path, short_video: Path, backend: str
) -> None:
    """``int8``: a QDQ frame engine calibrated on the video's frames, an fp32 head, cached per calibration video."""
    from engines.quantize import count_qdq

    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2, average_clips="prob")
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    shape, cache = (2, 3, 32, 32), tmp_path / "c"

    def build(video: Path) -> Any:
        return build_reuse_engines(cfg.model, checkpoint, shape, backend=backend, precision="int8", cache_dir=cache,
                                   clip=cfg.clip, calibration=video)  # fmt: skip

    engines = build(short_video)
    try:
        assert engines.precision == engines.frames.manifest.precision == "int8"
        assert engines.head.manifest.precision == "fp32"
        qdq = count_qdq(engines.frames.engine_dir / engines.frames.manifest.files["onnx_int8"])
        assert qdq["QuantizeLinear"] > 0 and qdq["int8_initializers"] > 0
        x = np.random.default_rng(5).standard_normal((4, *shape)).astype(np.float32)
        with torch.no_grad():
            want = random_model(config, seed=1)(torch.from_numpy(x)).numpy()
        got = engines.scores(engines.features(x.reshape(8, 3, 32, 32)).reshape(4, 2, -1))
        assert got.shape == want.shape
        assert 0 < np.max(np.abs(got - want)) < 0.1  # quantized: close to fp32, not equal
    finally:
        engines.close()
    other = tmp_path / "other.mp4"
    other.write_bytes(short_video.read_bytes() + b"\0")  # other bytes: another calibration, another frame engine
    again = build(other)
    again.close()
    assert again.frames.engine_dir != engines.frames.engine_dir
    assert again.head.engine_dir == engines.head.engine_dir  # the fp32 head does not depend on calibration
    names = sorted(p.name.split("-")[1] + "-" + p.name.split("-")[3] for p in cache.iterdir())
    assert names == ["frames-int8", "frames-int8", "head-fp32"]


@pytest.mark.parametrize(
    ("min_top1", "int8_faster", "expected"),
    [(0.0, True, "int8"), (1.01, True, "fp32"), (0.0, False, "bf16")],
    ids=["agrees-and-faster", "disagrees", "slower"],
)
def test_auto_tries_int8_first_and_keeps_it_only_where_it_agrees_and_is_faster(
    tmp_path: Path,
    short_video: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    min_top1: float,
    int8_faster: bool,
    expected: str,
) -> None:
    """``auto`` where the backend tries INT8: the INT8 pair's check, then the bf16 pair's, then fp32."""
    import engines.engine as engine_module
    import engines.frame_reuse as frame_reuse
    from engines.backends.ov import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "bf16"))
    monkeypatch.setattr(OpenVinoBackend, "auto_int8", classmethod(lambda cls: True))
    monkeypatch.setattr(engine_module, "AUTO_MIN_TOP1", min_top1)
    monkeypatch.setattr(engine_module, "AUTO_CHECK_SAMPLES", 4)

    def timed(pair: Any, frames: np.ndarray, repeats: int = 3) -> float:
        assert len(frames) == frame_reuse.TIMING_FRAMES
        return 1.0 if (pair.precision == "int8") == int8_faster else 2.0

    monkeypatch.setattr(frame_reuse, "_ms_per_frame", timed)
    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2, average_clips="prob")
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    shape, cache = (2, 3, 32, 32), tmp_path / "c"

    def build() -> Any:
        return build_reuse_engines(cfg.model, checkpoint, shape, backend="openvino", precision="auto",
                                   cache_dir=cache, clip=cfg.clip, calibration=short_video)  # fmt: skip

    with caplog.at_level("INFO", logger="engines.frame_reuse"):
        engines = build()
    engines.close()
    check = engines.auto_int8
    assert check is not None and check["tried"] == "int8" and check["samples"] == 16 and check["versus"] == "bf16"
    assert check["kept"] is (expected == "int8"), check
    assert engines.precision == expected
    assert engines.head.manifest.precision == ("fp32" if expected == "int8" else expected)
    if expected == "int8":
        assert check["ms_per_frame"] < check["versus_ms_per_frame"]
        assert engines.auto_precision is None  # bf16 was not needed
    else:
        assert ("agrees with torch fp32 on top-1" if min_top1 > 1 else "not faster than bf16") in check["reason"]
        assert "int8 not kept" in caplog.text
        assert engines.auto_precision is not None and engines.auto_precision["tried"] == "bf16"
    int8_dir = next(p for p in cache.iterdir() if p.name.startswith("tsn-frames-openvino-int8-"))
    assert json.loads((int8_dir / "manifest.json").read_text())["validation"]["auto_int8"] == check
    # a second start reads the recorded decisions instead of checking again
    monkeypatch.setattr(frame_reuse, "_check_int8_pair", lambda *a: pytest.fail("int8 checked again"))
    monkeypatch.setattr(frame_reuse, "_check_pair", lambda *a: pytest.fail("bf16 checked again"))
    again = build()
    again.close()
    assert again.precision == expected and again.auto_int8 == check


def test_int8_needs_a_clip_spec_and_a_readable_calibration_video(tmp_path: Path) -> None:
    from engines.errors import ExportError
    from engines.graph import build_graph_engine
    from engines.quantize import CalibrationError
    from engines.tensors import TensorSpec

    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2)
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    with pytest.raises(ModelConfigError, match="int8 needs the config's test_pipeline"):
        build_reuse_engines(cfg.model, checkpoint, (2, 3, 32, 32), backend="onnxruntime", precision="int8",
                            cache_dir=tmp_path / "c")  # fmt: skip
    with pytest.raises(CalibrationError, match=r"missing\.mp4 is not a video file"):
        build_reuse_engines(cfg.model, checkpoint, (2, 3, 32, 32), backend="onnxruntime", precision="int8",
                            cache_dir=tmp_path / "c", clip=cfg.clip, calibration=tmp_path / "missing.mp4")  # fmt: skip
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
    spec = TensorSpec("x", ("batch", 4))
    with pytest.raises(ExportError, match="int8 needs calibration inputs"):
        build_graph_engine(
            torch.nn.Linear(4, 2), inputs=[spec], outputs=[TensorSpec("y", ("batch", 2))],
            example={"x": np.ones((1, 4), np.float32)}, out_dir=tmp_path / "g", precision="int8",
        )  # fmt: skip


def test_auto_goes_on_without_int8_when_the_demo_video_cannot_calibrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken demo video costs INT8 (logged), not frame reuse; no INT8 entry is left in the cache."""
    import engines.quantize as quantize
    from engines.backends.ov import OpenVinoBackend

    garbage = tmp_path / "demo.mp4"
    garbage.write_bytes(b"not a video" * 100)
    monkeypatch.setattr(quantize, "default_calibration_video", lambda: garbage)
    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "fp32"))
    monkeypatch.setattr(OpenVinoBackend, "auto_int8", classmethod(lambda cls: True))
    config = write_tiny_tsn_config(tmp_path / "tsn.py", views=2)
    checkpoint = make_checkpoint(config, tmp_path / "tsn.pth", seed=1)
    cfg = load_config(config)
    with caplog.at_level("WARNING", logger="engines.frame_reuse"):
        engines = build_reuse_engines(cfg.model, checkpoint, (2, 3, 32, 32), backend="openvino", precision="auto",
                                      cache_dir=tmp_path / "c", clip=cfg.clip)  # fmt: skip
    engines.close()
    assert engines.precision == "fp32" and engines.auto_int8 is None
    assert "int8 not tried (the demo video" in caplog.text and "cannot decode it as a video" in caplog.text
    assert sorted(p.name.split("-")[3] for p in (tmp_path / "c").iterdir()) == ["fp32", "fp32"]
    with pytest.raises(quantize.CalibrationError, match="cannot decode"):  # a video the user gave must work
        build_reuse_engines(cfg.model, checkpoint, (2, 3, 32, 32), backend="openvino", precision="auto",
                            cache_dir=tmp_path / "c", clip=cfg.clip, calibration=garbage)  # fmt: skip
