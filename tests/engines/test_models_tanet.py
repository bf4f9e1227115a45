"""TANet (ResNet with temporal adaptive modules): parity with MMAction2 1.2 on its shipped configs; ONNX; errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.models import build
from engines.models.tanet import TAM
from tests.engines.mmaction_ref import import_reference, mmaction_registry
from tests.engines.zoo_parity import (
    assert_matches_zoo_config,
    assert_scores_match,
    backend_errors,
    mmaction_config,
    mmaction_scores,
    randomize,
    save_zoo_checkpoint,
    zoo_twins,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/tanet").glob("*.py"))
ZOO = [
    "tanet/tanet_imagenet-pretrained-r50_8xb6-1x1x16-50e_sthv1-rgb.py",
    "tanet/tanet_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py",
    "tanet/tanet_imagenet-pretrained-r50_8xb8-dense-1x1x8-100e_kinetics400-rgb.py",
]
#: TA-blocks need bottlenecks: the real R50 widths, two stages, at 32x32. MMAction2's TANet
#: loads its ImageNet ``pretrained`` weights in ``__init__`` (a download): off.
SHRINK = {
    "model.backbone.pretrained": None,
    "model.backbone.num_stages": 2,
    "model.backbone.strides": (1, 2),
    "model.backbone.dilations": (1, 1),
    "model.backbone.out_indices": (1,),
    "model.cls_head.in_channels": 512,
    "model.cls_head.num_classes": 7,
}
FRAME = (3, 32, 32)


def _small(name: str, **extra: Any) -> dict[str, Any]:
    return mmaction_config(name, {**SHRINK, **extra}).model.to_dict()


@pytest.mark.parametrize(
    ("name", "views"),
    [(ZOO[0], 16), (ZOO[1], 16), (ZOO[2], 8)],
    ids=["sthv1-16seg-1clip", "sthv1-8seg-2clips", "k400-dense-8seg-1clip"],
)
def test_zoo_config_scores_match_mmaction(name: str, views: int, tmp_path: Path) -> None:
    ref, ours = zoo_twins(_small(name), tmp_path / "tanet.pth")
    x = torch.randn(2, views, *FRAME, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x)
    error = assert_scores_match(got, mmaction_scores(ref, x))
    print(f"parity {Path(name).stem} views={views}: relative {error:.2e}")


@pytest.mark.parametrize(
    "tam_cfg",
    [
        {},
        {"alpha": 1, "beta": 2, "conv1d_kernel_size": 5},
        {"adaptive_kernel_size": 5, "adaptive_convolution_padding": 2},
        {"adaptive_kernel_size": 1, "adaptive_convolution_padding": 0},
    ],
    ids=["default", "alpha1-beta2-conv5", "kernel5", "kernel1"],
)
def test_tam_matches_mmaction(tam_cfg: dict[str, Any]) -> None:
    mmaction_registry()  # imports MMAction2 with its packaging fix before the module below
    theirs = import_reference("mmaction.models.common").TAM(16, 6, **tam_cfg).eval()
    randomize(theirs)
    ours = TAM(16, 6, **tam_cfg).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(3 * 6, 16, 5, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    error = float((got - expected).abs().max() / expected.abs().max())
    assert error <= 1e-5, error


def test_tanet_exports_to_onnxruntime_and_openvino(tmp_path: Path) -> None:
    _, ours = zoo_twins(_small(ZOO[1]), tmp_path / "tanet.pth")
    errors = backend_errors(ours, (8, *FRAME), "NCHW", tmp_path)
    print(f"backends tanet: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_checkpoint_with_other_segment_count_is_refused(tmp_path: Path) -> None:
    path = save_zoo_checkpoint(build(_small(ZOO[0])), tmp_path / "tanet16.pth")
    with pytest.raises(CheckpointError, match=r"does not fit .*mis-shaped.*tam\.G\.0\.weight") as info:
        load_checkpoint(build(_small(ZOO[1])), path)
    assert "\n" not in str(info.value)


def test_frames_must_be_whole_clips() -> None:
    backbone = build(
        {
            "type": "TANet",
            "depth": 50,
            "num_segments": 4,
            "num_stages": 1,
            "strides": (1,),
            "dilations": (1,),
            "out_indices": (0,),
        }
    )
    with pytest.raises(InputShapeError, match=r"multiple of num_segments=4 frames, got 6"):
        backbone(torch.zeros(6, 3, 32, 32))


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"depth": 18}, r"TA-blocks need bottleneck blocks .*got 18"),
        ({"num_segments": 2}, r"num_segments: expected an int >= 3, got 2"),
        ({"tam_cfg": {"gamma": 1}}, r"tam_cfg: unknown key\(s\) \['gamma'\]"),
        ({"tam_cfg": {"adaptive_convolution_stride": 2}}, r"turn 8 frames into 4; the TAM must keep the frame count"),
    ],
)
def test_bad_config_is_reported(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build({"type": "TANet", "depth": 50, "num_segments": 8, **cfg}, where="model.backbone")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
