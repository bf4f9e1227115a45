"""TimeSformer (divided / joint space-time, space-only) + ``TimeSformerHead``: parity with MMAction2 1.2.

MMAction2's TimeSformer is built with mmcv's transformer builders (``BaseTransformerLayer``,
``FFN``, ``MultiheadAttention``); mmcv-lite 2.1 has them (no compiled ops needed), so the
reference here is MMAction2's own model, keys and all.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.engine import build_engine
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.export import torch_scores
from engines.models import build
from tests.engines.mmaction_ref import mmaction_registry
from tests.engines.zoo_parity import (
    assert_scores_match,
    batch_for,
    mm_config,
    our_model,
    randomize,
    reference_checkpoint,
    reference_scores,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs/recognition/timesformer").glob("*.py"))
DIVST = ROOT / "configs/recognition/timesformer/timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb.py"
ATTENTION_TYPES = ["divided_space_time", "joint_space_time", "space_only"]
#: ViT-B TimeSformer shrunk: 2 layers of width 32, 4 frames of 32x32 (2x2 patches), 5 classes.
SMALL = {
    "model.backbone.img_size": 32,
    "model.backbone.num_frames": 4,
    "model.backbone.embed_dims": 32,
    "model.backbone.num_heads": 2,
    "model.backbone.num_transformer_layers": 2,
    "model.cls_head.in_channels": 32,
    "model.cls_head.num_classes": 5,
}
CLIP = (3, 4, 32, 32)
BACKBONE: dict[str, Any] = {
    "type": "TimeSformer",
    "patch_size": 16,
    **{key.split(".")[-1]: value for key, value in SMALL.items() if key.startswith("model.backbone.")},
}


def _mmaction_zoo_config(name: str) -> Path:
    import mmaction

    return Path(mmaction.__file__).parent / ".mim/configs/recognition/timesformer" / name


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_backbone_keys_and_outputs_match_mmaction(attention_type: str) -> None:
    cfg = {**BACKBONE, "attention_type": attention_type}
    ref = mmaction_registry().build(copy.deepcopy(cfg)).eval()
    randomize(ref)
    ours = build(cfg, where="model.backbone").eval()
    assert list(ours.state_dict()) == list(ref.state_dict())  # same keys, same order
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape == (3, 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("attention_type", "views"), [("divided_space_time", 3), ("joint_space_time", 1), ("space_only", 2)]
)
def test_recognizer_loads_zoo_checkpoint_and_matches_mmaction(tmp_path: Path, attention_type: str, views: int) -> None:
    options = {**SMALL, "model.backbone.attention_type": attention_type}
    ckpt = tmp_path / "timesformer.pth"
    ref = reference_checkpoint(DIVST, options, ckpt)
    ours = our_model(DIVST, options, ckpt)
    x = batch_for(ours, (views, *CLIP))
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (2, 5)
    assert_scores_match(got, reference_scores(ref, x))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_torch(tmp_path: Path, backend: str) -> None:
    ckpt = tmp_path / "timesformer.pth"
    reference_checkpoint(DIVST, SMALL, ckpt, seed=5)
    ours = our_model(DIVST, SMALL, ckpt)
    engine = build_engine(
        DIVST,
        ckpt,
        backend=backend,
        precision="fp32",
        cfg_options=SMALL,
        input_shape=(3, *CLIP),
        out_dir=tmp_path / backend,
    )
    batch = batch_for(ours, (3, *CLIP), batch=3, seed=9).numpy()
    assert_scores_match(engine.infer(batch), torch_scores(ours, batch))


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "space-only.pth"
    reference_checkpoint(DIVST, {**SMALL, "model.backbone.attention_type": "space_only"}, ckpt)
    model = build(mm_config(DIVST, SMALL).model.to_dict())
    with pytest.raises(CheckpointError, match=r"missing.*backbone\.time_embed.*unexpected.*norms\.0") as info:
        load_checkpoint(model, ckpt)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"attention_type": "axial"}, r"attention_type: expected one of .*'axial'"),
        ({"transformer_layers": {"type": "TransformerLayerSequence"}}, r"custom mmcv layer configs are not supported"),
        ({"img_size": 40}, r"img_size=40 must be a multiple of patch_size=16"),
        ({"num_heads": 5}, r"num_heads=5 does not divide embed_dims=32"),
        ({"norm_cfg": {"type": "BN"}}, r"norm_cfg.type: .*got 'BN'"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build({**BACKBONE, **cfg}, where="model.backbone")


@pytest.mark.parametrize("shape", [(1, 3, 8, 32, 32), (1, 3, 4, 48, 48)])
def test_wrong_clip_is_refused(shape: tuple[int, ...]) -> None:
    model = build(BACKBONE).eval()
    with pytest.raises(InputShapeError, match=r"built for 4 frames of 32x32"):
        model(torch.zeros(shape))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_is_mmaction2s_model(path: Path) -> None:
    ours = mm_config(path, {}).model.to_dict()
    theirs = mm_config(_mmaction_zoo_config(path.name), {}).model.to_dict()
    theirs["backbone"].pop("pretrained")  # ImageNet initialisation for training
    assert ours == theirs


def test_two_configs_are_shipped() -> None:
    assert len(CONFIGS) == 2
