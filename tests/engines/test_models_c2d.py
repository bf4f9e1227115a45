"""C2D (a 2D ResNet over the frames of a clip): parity with MMAction2 1.2 on its shipped configs; ONNX; errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

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
SHIPPED = sorted((ROOT / "configs/recognition/c2d").glob("c2d_r50-in1k-pre_*.py"))
#: MMAction2's configs whose backbone is ``C2D`` (the ``nopool`` ones are ResNet3d, tested elsewhere).
ZOO = [
    "c2d/c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb.py",
    "c2d/c2d_r50-in1k-pre_8xb32-16x4x1-100e_kinetics400-rgb.py",
]
#: ResNet-18 blocks: the C2D stem, pools and stage layout at a fraction of the cost.
SHRINK = {"model.backbone.depth": 18, "model.cls_head.in_channels": 512, "model.cls_head.num_classes": 7}


def _small(name: str, **extra: Any) -> dict[str, Any]:
    return mmaction_config(name, {**SHRINK, **extra}).model.to_dict()


@pytest.mark.parametrize(
    ("name", "extra", "views", "clip"),
    [
        pytest.param(ZOO[0], {}, 1, (8, 32, 32), id="8x8x1-r18-1view"),
        pytest.param(ZOO[0], {}, 3, (8, 32, 32), id="8x8x1-r18-3views"),
        pytest.param(ZOO[1], {}, 2, (16, 32, 32), id="16x4x1-r18-2views"),
        pytest.param(ZOO[1], {}, 1, (7, 33, 35), id="odd-sizes"),  # odd T drops a frame in maxpool3d_2; unpadded pool
        pytest.param(
            ZOO[0],
            {"model.backbone.depth": 50, "model.cls_head.in_channels": 2048},
            1,
            (4, 32, 32),
            id="8x8x1-r50",
        ),
    ],
)
def test_zoo_config_scores_match_mmaction(
    name: str, extra: dict[str, Any], views: int, clip: tuple[int, int, int], tmp_path: Path
) -> None:
    ref, ours = zoo_twins(_small(name, **extra), tmp_path / "c2d.pth")
    x = torch.randn(2, views, 3, *clip, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x)
    error = assert_scores_match(got, mmaction_scores(ref, x))
    print(f"parity {Path(name).stem} {extra} views={views} clip={clip}: relative {error:.2e}")


def test_c2d_exports_to_onnxruntime_and_openvino(tmp_path: Path) -> None:
    _, ours = zoo_twins(_small(ZOO[0]), tmp_path / "c2d.pth")
    errors = backend_errors(ours, (2, 3, 8, 32, 32), "NCTHW", tmp_path)
    print(f"backends c2d: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_c2d_time_and_space_after_the_pools() -> None:
    backbone: Any = build({"type": "C2D", "depth": 18, "out_indices": (0, 3)}).eval()
    with torch.no_grad():
        first, last = backbone(torch.zeros(1, 3, 8, 64, 64))
    # 64 -> 32 (stem conv) -> 15 (unpadded 3x3/2 pool); T 8 -> 4 after stage 1
    assert first.shape == (1, 64, 4, 15, 15)
    assert last.shape == (1, 512, 4, 2, 2)
    assert not hasattr(backbone, "maxpool")


def test_resnet_checkpoint_for_c2d_with_other_depth_is_refused(tmp_path: Path) -> None:
    r18 = build(_small(ZOO[0]))
    r50 = build(_small(ZOO[0], **{"model.backbone.depth": 50, "model.cls_head.in_channels": 2048}))
    path = save_zoo_checkpoint(r50, tmp_path / "c2d_r50.pth")
    from engines.checkpoint import load_checkpoint

    with pytest.raises(CheckpointError, match=r"does not fit .*layer1\.0\.conv3") as info:
        load_checkpoint(r18, path)
    assert "\n" not in str(info.value)


def test_bad_depth_is_reported() -> None:
    with pytest.raises(ModelConfigError, match=r"C2D\.depth: unsupported depth 42"):
        build({"type": "C2D", "depth": 42}, where="model.backbone")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
