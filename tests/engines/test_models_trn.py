"""TRNHead: parity with MMAction2 1.2 (its random relation draw replayed), the expected-value default; ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.models import build
from engines.models.trn import RelationModuleMultiScale
from tests.engines.mmaction_ref import import_reference
from tests.engines.zoo_parity import (
    assert_matches_zoo_config,
    assert_scores_match,
    backend_errors,
    mmaction_config,
    save_zoo_checkpoint,
    zoo_twins,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/trn").glob("*.py"))
ZOO = [
    "trn/trn_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv1-rgb.py",
    "trn/trn_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py",
]
SHRINK = {"model.backbone.depth": 18, "model.cls_head.in_channels": 512, "model.cls_head.num_classes": 7}
FRAME = (3, 32, 32)


def _small(name: str, **extra: Any) -> dict[str, Any]:
    return mmaction_config(name, {**SHRINK, **extra}).model.to_dict()


def _mmaction_draws(consensus: Any, seed: int) -> list[list[int]]:
    """The subsets MMAction2's RelationModuleMultiScale.forward draws after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    return [
        list(np.random.choice(len(consensus.relations_scales[i]), consensus.subsample_scales[i], replace=False))
        for i in range(1, len(consensus.scales))
    ]


def _mmaction_scores_seeded(ref: Any, x: torch.Tensor, seed: int) -> torch.Tensor:
    from mmaction.structures import ActionDataSample

    rows = []
    with torch.no_grad():
        for sample in x:
            np.random.seed(seed)  # the same draw for every sample, as our fixed relations
            rows.append(ref.predict(sample[None], [ActionDataSample()])[0].pred_score)
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("name", "extra", "views"),
    [
        pytest.param(ZOO[0], {}, 8, id="sthv1-multiscale-1clip"),
        pytest.param(ZOO[1], {}, 16, id="sthv2-multiscale-2clips"),
        pytest.param(ZOO[1], {"model.cls_head.num_segments": 4}, 4, id="multiscale-4segments"),
        pytest.param(ZOO[1], {"model.cls_head.relation_type": "TRN"}, 16, id="single-scale-2clips"),
    ],
)
def test_zoo_config_scores_match_mmaction_on_the_same_draw(
    name: str, extra: dict[str, Any], views: int, tmp_path: Path
) -> None:
    ref, ours = zoo_twins(_small(name, **extra), tmp_path / "trn.pth")
    x = torch.randn(2, views, *FRAME, generator=torch.Generator().manual_seed(1))
    for seed in (0, 1):
        consensus = ours.cls_head.consensus
        if isinstance(consensus, RelationModuleMultiScale):
            consensus.fix_relations(_mmaction_draws(consensus, seed))
        with torch.no_grad():
            got = ours(x)
        error = assert_scores_match(got, _mmaction_scores_seeded(ref, x, seed))
        print(f"parity {Path(name).stem} {extra} views={views} seed={seed}: relative {error:.2e}")


def test_default_is_the_expected_value_of_mmaction_draw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """E[MMAction2] = full-length score + per scale (draws / subsets) x the sum over all subsets.

    Each sum is computed by MMAction2 itself, its ``np.random.choice`` replaced by a chooser.
    """
    ref, ours = zoo_twins(_small(ZOO[1], **{"model.cls_head.num_segments": 5}), tmp_path / "trn.pth")
    trn_head = import_reference("mmaction.models.heads.trn_head")
    x = torch.randn(1, 5, *FRAME, generator=torch.Generator().manual_seed(2))
    mm = ref.cls_head.consensus
    chosen: dict[int, np.ndarray] = {}

    class _Choice:  # MMAction2 draws ``choice(len(relations), k)`` per scale: give each scale's subsets by hand
        calls = 0

        @staticmethod
        def choice(n: int, k: int, replace: bool = False) -> np.ndarray:
            _Choice.calls += 1
            return chosen.get(_Choice.calls, np.zeros(0, dtype=int))

    monkeypatch.setattr(trn_head, "np", type("np", (), {"random": _Choice}))

    def mm_scores(select: dict[int, np.ndarray]) -> torch.Tensor:
        chosen.clear()
        chosen.update(select)
        _Choice.calls = 0
        with torch.no_grad():
            return ref.extract_feat(x, stage="head", test_mode=True)[0]  # (1, classes): raw relation scores

    base = mm_scores({})  # the full-length subset only
    expected = base.clone()
    for i in range(1, len(mm.scales)):
        every = np.arange(len(mm.relations_scales[i]))
        expected += (mm_scores({i: every}) - base) * mm.subsample_scales[i] / len(every)
    with torch.no_grad():
        got = ours.cls_head(ours.backbone(x.flatten(0, 1)))
    error = assert_scores_match(got, expected)
    print(f"parity trn expected-value default: relative {error:.2e}")


def test_trn_exports_to_onnxruntime_and_openvino(tmp_path: Path) -> None:
    _, ours = zoo_twins(_small(ZOO[0]), tmp_path / "trn.pth")
    errors = backend_errors(ours, (8, *FRAME), "NCHW", tmp_path)
    print(f"backends trn: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_single_scale_checkpoint_is_refused_by_multiscale(tmp_path: Path) -> None:
    single = build(_small(ZOO[0], **{"model.cls_head.relation_type": "TRN"}))
    path = save_zoo_checkpoint(single, tmp_path / "trn_single.pth")
    with pytest.raises(CheckpointError, match=r"does not fit .*cls_head\.consensus\.") as info:
        load_checkpoint(build(_small(ZOO[0])), path)
    assert "\n" not in str(info.value)


def test_views_must_be_whole_clips() -> None:
    model = build(_small(ZOO[0]))
    with pytest.raises(InputShapeError, match=r"multiple of num_segments=8, got 6"):
        model(torch.zeros(1, 6, *FRAME))


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"relation_type": "TRNX"}, ModelConfigError, r"relation_type: expected 'TRN' or 'TRNMultiScale', got 'TRNX'"),
        ({"num_segments": 1}, ModelConfigError, r"multi-scale relation needs >= 2, got 1"),
    ],
)
def test_bad_config_is_reported(cfg: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build({"type": "TRNHead", "num_classes": 5, "in_channels": 8, **cfg}, where="model.cls_head")


@pytest.mark.parametrize("draws", [[[0, 1, 2]] * 5, [[0, 0, 1]] * 6, [[0, 1, 99]] * 6])
def test_bad_relation_draws_are_refused(draws: list[list[int]]) -> None:
    module = RelationModuleMultiScale(4, 8, 3)
    with pytest.raises(ValueError, match=r"relation draws"):
        module.fix_relations(draws)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
