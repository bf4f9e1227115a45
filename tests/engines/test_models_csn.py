"""ResNet3dCSN (ip-CSN, ir-CSN): parity with MMAction2 1.2 on every shipped CSN config, shrunk; ONNX; errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.errors import CheckpointError, ModelConfigError
from engines.models import build
from tests.engines.zoo_parity import (
    assert_matches_zoo_config,
    assert_scores_match,
    backend_errors,
    mmaction_config,
    mmaction_scores,
    save_zoo_checkpoint,
    zoo_twins,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/csn").glob("*.py"))
#: MMAction2's CSN configs: ip / ir, depth 152 / 50, frozen BN or not, two normalisations.
ZOO = [
    "csn/ipcsn_ig65m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py",
    "csn/ipcsn_r152_32x2x1-180e_kinetics400-rgb.py",
    "csn/ipcsn_sports1m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py",
    "csn/ircsn_ig65m-pretrained-r152-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb.py",
    "csn/ircsn_ig65m-pretrained-r152_8xb12-32x2x1-58e_kinetics400-rgb.py",
    "csn/ircsn_ig65m-pretrained-r50-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb.py",
    "csn/ircsn_r152_32x2x1-180e_kinetics400-rgb.py",
    "csn/ircsn_sports1m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py",
]
#: The real layout (depth-50 blocks, 3x3x3 depthwise conv2, temporal strides 1-2-2-2),
#: 1 block per stage, 8 base channels.
SHRINK = {
    "model.backbone.depth": 50,
    "model.backbone.stage_blocks": (1, 1, 1, 1),
    "model.backbone.base_channels": 8,
    "model.cls_head.in_channels": 256,
    "model.cls_head.num_classes": 7,
}
CLIP = (3, 8, 32, 32)


def _small(name: str, **extra: Any) -> dict[str, Any]:
    return mmaction_config(name, {**SHRINK, **extra}).model.to_dict()


@pytest.mark.parametrize("views", [1, 3])
@pytest.mark.parametrize("name", ZOO, ids=lambda n: Path(n).stem.split("_")[0] + "-" + Path(n).stem.split("_")[1])
def test_zoo_config_scores_match_mmaction(name: str, views: int, tmp_path: Path) -> None:
    cfg = _small(name)
    ref, ours = zoo_twins(cfg, tmp_path / "csn.pth")
    backbone: Any = ours.backbone
    assert backbone.bottleneck_mode == cfg["backbone"]["bottleneck_mode"]
    x = torch.randn(2, views, *CLIP, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x)
    error = assert_scores_match(got, mmaction_scores(ref, x))
    print(f"parity {Path(name).stem} views={views}: relative {error:.2e}")


@pytest.mark.parametrize("mode", ["ip", "ir"])
def test_csn_exports_to_onnxruntime_and_openvino(mode: str, tmp_path: Path) -> None:
    cfg = _small(ZOO[3], **{"model.backbone.bottleneck_mode": mode})
    _, ours = zoo_twins(cfg, tmp_path / "csn.pth")
    errors = backend_errors(ours, (2, *CLIP), "NCTHW", tmp_path)
    print(f"backends csn-{mode}: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_checkpoint_of_the_other_mode_is_refused(tmp_path: Path) -> None:
    ir = build(_small(ZOO[3]))
    ip = build(_small(ZOO[0]))
    path = save_zoo_checkpoint(ip, tmp_path / "ipcsn.pth")
    with pytest.raises(CheckpointError, match=r"does not fit .*layer1\.0\.conv2\.1\.conv\.weight") as info:
        load_checkpoint(ir, path)
    assert "\n" not in str(info.value)


def test_layout_of_each_mode() -> None:
    ir: Any = build(_small(ZOO[3])).backbone
    ip: Any = build(_small(ZOO[0])).backbone
    depthwise = ir.get_submodule("layer2.0.conv2.0.conv")
    assert depthwise.groups == 16 and depthwise.kernel_size == (3, 3, 3) and depthwise.stride == (2, 2, 2)
    assert ip.get_submodule("layer2.0.conv2.0.conv").kernel_size == (1, 1, 1)
    assert ip.get_submodule("layer2.0.conv2.1.conv").groups == 16
    assert ir.get_submodule("layer1.0.conv1.bn").eps == 1e-3


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"bottleneck_mode": "ix"}, r"bottleneck_mode: expected 'ip' or 'ir', got 'ix'"),
        ({"depth": 34}, r"depth: expected one of \[50, 101, 152\], got 34"),
        ({"bogus": 1}, r"ResNet3dCSN: unknown key\(s\) 'bogus'"),
    ],
)
def test_bad_config_is_reported(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build({"type": "ResNet3dCSN", "depth": 50, **cfg}, where="model.backbone")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
