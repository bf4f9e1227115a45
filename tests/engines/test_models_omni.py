"""OmniSource SlowOnly (RecognizerOmni, OmniResNet, OmniHead, format_shape 'MIX2d3d'): parity with MMAction2 1.2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.errors import ConfigError
from engines.checkpoint import load_checkpoint
from engines.clip_spec import ClipSpec
from engines.config import load_config
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.models import build
from tests.engines.zoo_parity import (
    assert_matches_zoo_config,
    assert_scores_match,
    backend_errors,
    mmaction_config,
    mmaction_config_root,
    mmaction_scores,
    save_zoo_checkpoint,
    zoo_twins,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/omnisource").glob("*.py"))
ZOO = "omnisource/slowonly_r50_8xb16-8x8x1-256e_imagenet-kinetics400-rgb.py"
#: One block per stage (the widths are fixed), few classes.
SHRINK = {
    "model.backbone.layers": (1, 1, 1, 1),
    "model.cls_head.video_classes": 7,
    "model.cls_head.image_classes": 5,
}
CLIP = (3, 8, 32, 32)


def _small(**extra: Any) -> dict[str, Any]:
    return mmaction_config(ZOO, {**SHRINK, **extra}).model.to_dict()


@pytest.mark.parametrize(
    ("extra", "views"),
    [({}, 1), ({}, 3), ({"model.cls_head.video_nl_head": False}, 2)],
    ids=["nl-head-1view", "nl-head-3views", "linear-head-2views"],
)
def test_zoo_config_scores_match_mmaction(extra: dict[str, Any], views: int, tmp_path: Path) -> None:
    ref, ours = zoo_twins(_small(**extra), tmp_path / "omni.pth")
    assert ours.input_format == "NCTHW"
    x = torch.randn(2, views, *CLIP, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x)
    error = assert_scores_match(got, mmaction_scores(ref, x))
    print(f"parity omnisource {extra} views={views}: relative {error:.2e}")


def test_omni_exports_to_onnxruntime_and_openvino(tmp_path: Path) -> None:
    _, ours = zoo_twins(_small(), tmp_path / "omni.pth")
    errors = backend_errors(ours, (2, *CLIP), "NCTHW", tmp_path)
    print(f"backends omnisource: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_mix2d3d_config_loads_as_a_video_model() -> None:
    cfg = load_config(mmaction_config_root() / ZOO)
    assert cfg.input_format == "NCTHW"
    assert cfg.clip is not None and cfg.clip.input_format == "NCTHW"


@pytest.mark.parametrize("fmt", ["NCTHW", "NCHW"])
def test_mix2d3d_takes_the_pipeline_format(fmt: str) -> None:
    pre = {"type": "ActionDataPreprocessor", "format_shape": "MIX2d3d"}
    steps = [
        {"type": "SampleFrames", "clip_len": 8, "num_clips": 1, "test_mode": True},
        {"type": "CenterCrop", "crop_size": 32},
    ]
    spec = ClipSpec.from_pipeline([*steps, {"type": "FormatShape", "input_format": fmt}], pre)
    assert spec.input_format == fmt


def test_mix2d3d_without_format_shape_is_refused() -> None:
    pre = {"type": "ActionDataPreprocessor", "format_shape": "MIX2d3d"}
    with pytest.raises(ConfigError, match=r"no FormatShape and no model.data_preprocessor.format_shape"):
        ClipSpec.from_pipeline([{"type": "SampleFrames", "clip_len": 8, "num_clips": 1, "test_mode": True}], pre)


def test_image_input_is_refused() -> None:
    model: Any = build(_small())
    with pytest.raises(InputShapeError, match=r"OmniResNet takes video clips .*image path .* not supported"):
        model.backbone(torch.zeros(2, 3, 32, 32))


def test_checkpoint_of_the_other_video_head_is_refused(tmp_path: Path) -> None:
    path = save_zoo_checkpoint(build(_small(**{"model.cls_head.video_nl_head": False})), tmp_path / "linear.pth")
    with pytest.raises(CheckpointError, match=r"does not fit .*cls_head\.fc3d\.") as info:
        load_checkpoint(build(_small()), path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"type": "OmniResNet", "layers": (3, 4, 6)}, r"OmniResNet.layers: expected 4 positive block counts"),
        (
            {"type": "OmniHead", "image_classes": 0, "video_classes": 4, "in_channels": 8},
            r"OmniHead.image_classes: expected a positive int, got 0",
        ),
    ],
)
def test_bad_config_is_reported(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build(cfg, where="model.backbone")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
