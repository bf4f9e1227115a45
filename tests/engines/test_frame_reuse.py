"""Frame reuse: which families qualify, and the frame + head engines against the full model."""

from __future__ import annotations

import copy
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
