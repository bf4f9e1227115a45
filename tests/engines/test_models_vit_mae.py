"""VideoMAE / VideoMAE V2 ViT (``VisionTransformer`` + ``TimeSformerHead``): parity with MMAction2 1.2."""

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
CONFIGS = sorted(
    [*(ROOT / "configs/recognition/videomae").glob("*.py"), *(ROOT / "configs/recognition/videomaev2").glob("*.py")]
)
VIT_B = ROOT / "configs/recognition/videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py"
#: ViT-B shrunk: 2 blocks of width 32, 32x32 frames (2x2 patches), 4 frames (2 tubelets), 5 classes.
SMALL = {
    "model.backbone.img_size": 32,
    "model.backbone.embed_dims": 32,
    "model.backbone.depth": 2,
    "model.backbone.num_heads": 2,
    "model.backbone.num_frames": 4,
    "model.cls_head.in_channels": 32,
    "model.cls_head.num_classes": 5,
}
CLIP = (3, 4, 32, 32)
BACKBONE = {
    "type": "VisionTransformer",
    "img_size": 32,
    "patch_size": 16,
    "embed_dims": 32,
    "depth": 2,
    "num_heads": 2,
    "num_frames": 4,
}


def _mmaction_zoo_config(name: str) -> Path:
    import mmaction

    return Path(mmaction.__file__).parent / ".mim/configs/recognition" / name


@pytest.mark.parametrize(
    ("extra", "size"),
    [
        pytest.param({}, 32, id="sinusoid-meanpool"),
        pytest.param({}, 48, id="resized-pos-embed"),
        pytest.param({"use_learnable_pos_emb": True}, 32, id="learned-pos"),
        pytest.param({"use_mean_pooling": False}, 32, id="cls-norm"),
        pytest.param({"init_values": 0.1, "qkv_bias": False, "drop_path_rate": 0.2}, 32, id="layer-scale-nobias"),
        pytest.param({"return_feat_map": True}, 32, id="feat-map"),
    ],
)
def test_backbone_matches_mmaction(extra: dict[str, Any], size: int) -> None:
    cfg = {**BACKBONE, **extra}
    ref = mmaction_registry().build(copy.deepcopy(cfg)).eval()
    randomize(ref)
    ours = build(cfg, where="model.backbone").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 4, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_state_dict_layout() -> None:
    keys = build(BACKBONE).state_dict().keys()
    for key in (
        "patch_embed.projection.weight",
        "pos_embed",
        "blocks.0.attn.q_bias",
        "blocks.0.attn.v_bias",
        "blocks.0.attn.qkv.weight",
        "blocks.1.mlp.layers.0.0.weight",
        "blocks.1.mlp.layers.1.bias",
        "fc_norm.weight",
    ):
        assert key in keys, key
    assert "blocks.0.attn.qkv.bias" not in keys
    assert "norm.weight" not in keys  # mean pooling: norm is the identity


@pytest.mark.parametrize("views", [1, 3])
def test_recognizer_loads_zoo_checkpoint_and_matches_mmaction(tmp_path: Path, views: int) -> None:
    ckpt = tmp_path / "vit.pth"
    ref = reference_checkpoint(VIT_B, SMALL, ckpt)
    ours = our_model(VIT_B, SMALL, ckpt)
    x = batch_for(ours, (views, *CLIP))
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (2, 5)
    assert_scores_match(got, reference_scores(ref, x))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_torch(tmp_path: Path, backend: str) -> None:
    ckpt = tmp_path / "vit.pth"
    reference_checkpoint(VIT_B, SMALL, ckpt, seed=5)
    ours = our_model(VIT_B, SMALL, ckpt)
    engine = build_engine(
        VIT_B,
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
    ckpt = tmp_path / "cls-norm.pth"
    reference_checkpoint(VIT_B, {**SMALL, "model.backbone.use_mean_pooling": False}, ckpt)
    model = build(mm_config(VIT_B, SMALL).model.to_dict())
    with pytest.raises(CheckpointError, match=r"missing.*fc_norm.*unexpected.*backbone\.norm\.") as info:
        load_checkpoint(model, ckpt)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"norm_cfg": {"type": "BN"}}, ModelConfigError, r"layer norm \('LN'\), got 'BN'"),
        ({"num_heads": 5}, ModelConfigError, r"num_heads=5 does not divide embed_dims=32"),
        ({"num_frames": 1}, ModelConfigError, r"give no patches"),
        ({"qkv_bais": True}, ModelConfigError, r"unknown key\(s\) 'qkv_bais'"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build({**BACKBONE, **cfg}, where="model.backbone")


def test_wrong_frame_count_is_refused() -> None:
    model = build(BACKBONE).eval()
    with pytest.raises(InputShapeError, match=r"num_frames=4 .* got clips of 8 frames"):
        model(torch.zeros(1, 3, 8, 32, 32))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_is_mmaction2s_model(path: Path) -> None:
    ours = mm_config(path, {}).model.to_dict()
    theirs = mm_config(_mmaction_zoo_config(f"{path.parent.name}/{path.name}"), {}).model.to_dict()
    assert ours == theirs


def test_two_configs_are_shipped() -> None:
    assert [p.parent.name for p in CONFIGS] == ["videomae", "videomaev2"]
