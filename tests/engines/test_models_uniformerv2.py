"""UniFormerV2 (``UniFormerV2`` + ``UniFormerHead`` / ``TimeSformerHead``): parity with MMAction2 1.2."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.clip_spec import ClipSpec
from engines.config import read_config
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
CONFIGS = sorted((ROOT / "configs/recognition/uniformerv2").glob("*.py"))
BASE = ROOT / "configs/recognition/uniformerv2/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb.py"
#: UniFormerV2-B shrunk: 3 local blocks of width 32 (global blocks after the last two),
#: 32x32 frames (2x2 patches), 4 frames, 5 classes.
SMALL = {
    "model.backbone.input_resolution": 32,
    "model.backbone.width": 32,
    "model.backbone.layers": 3,
    "model.backbone.heads": 2,
    "model.backbone.t_size": 4,
    "model.backbone.return_list": [1, 2],
    "model.backbone.n_layers": 2,
    "model.backbone.n_dim": 32,
    "model.backbone.n_head": 2,
    "model.backbone.mlp_dropout": [0.5, 0.5],
    "model.cls_head.in_channels": 32,
    "model.cls_head.num_classes": 5,
}
CLIP = (3, 4, 32, 32)
BACKBONE: dict[str, Any] = {
    "type": "UniFormerV2",
    **{key.split(".")[-1]: value for key, value in SMALL.items() if key.startswith("model.backbone.")},
}
LMHRA = {"model.backbone.no_lmhra": False, "model.backbone.double_lmhra": True}


def _mmaction_zoo_config(name: str) -> Path:
    import mmaction

    return Path(mmaction.__file__).parent / ".mim/configs/recognition/uniformerv2" / name


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="zoo-no-lmhra"),
        pytest.param({"no_lmhra": False, "double_lmhra": True}, id="double-lmhra"),
        pytest.param(
            {"no_lmhra": False, "double_lmhra": False, "temporal_downsample": True, "t_size": 8}, id="lmhra-tdown"
        ),
        pytest.param({"backbone_drop_path_rate": 0.2, "drop_path_rate": 0.1, "mlp_factor": 2.0}, id="droppath-mlp2"),
    ],
)
def test_backbone_matches_mmaction(extra: dict[str, Any]) -> None:
    cfg = {**BACKBONE, **extra}
    ref = mmaction_registry().build({**copy.deepcopy(cfg), "clip_pretrained": False}).eval()
    randomize(ref)
    ours = build(cfg, where="model.backbone").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, cfg["t_size"], 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape == (2, 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_state_dict_layout() -> None:
    keys = build({**BACKBONE, "no_lmhra": False, "double_lmhra": True}).state_dict().keys()
    for key in (
        "conv1.weight",
        "class_embedding",
        "positional_embedding",
        "ln_pre.weight",
        "transformer.resblocks.0.lmhra1.pos_embed.0.running_var",
        "transformer.resblocks.0.lmhra2.pos_embed.2.weight",
        "transformer.resblocks.2.attn.in_proj_weight",
        "transformer.resblocks.2.mlp.c_fc.weight",
        "transformer.temporal_cls_token",
        "transformer.dpe.1.weight",
        "transformer.dec.1.attn.out_proj.weight",
        "transformer.dec.1.ln_3.bias",
        "transformer.dec.1.mlp.c_proj.bias",
        "transformer.balance",
        "transformer.norm.weight",
    ):
        assert key in keys, key
    assert "conv1.bias" not in keys


@pytest.mark.parametrize(
    ("overrides", "views"),
    [
        pytest.param({}, 1, id="zoo-1view"),
        pytest.param(LMHRA, 3, id="lmhra-3views"),
        pytest.param({"model.cls_head.type": "TimeSformerHead"}, 2, id="timesformer-head"),
    ],
)
def test_recognizer_loads_zoo_checkpoint_and_matches_mmaction(
    tmp_path: Path, overrides: dict[str, Any], views: int
) -> None:
    ckpt = tmp_path / "uniformerv2.pth"
    ref = reference_checkpoint(BASE, {**SMALL, **overrides}, ckpt)
    ours = our_model(BASE, {**SMALL, **overrides}, ckpt)
    x = batch_for(ours, (views, *CLIP))
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (2, 5)
    assert_scores_match(got, reference_scores(ref, x))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_torch(tmp_path: Path, backend: str) -> None:
    options = {**SMALL, **LMHRA}
    ckpt = tmp_path / "uniformerv2.pth"
    reference_checkpoint(BASE, options, ckpt, seed=5)
    ours = our_model(BASE, options, ckpt)
    engine = build_engine(
        BASE,
        ckpt,
        backend=backend,
        precision="fp32",
        cfg_options=options,
        input_shape=(2, *CLIP),
        out_dir=tmp_path / backend,
    )
    batch = batch_for(ours, (2, *CLIP), batch=3, seed=9).numpy()
    assert_scores_match(engine.infer(batch), torch_scores(ours, batch))


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "lmhra.pth"
    reference_checkpoint(BASE, {**SMALL, **LMHRA}, ckpt)
    model = build(mm_config(BASE, SMALL).model.to_dict())
    with pytest.raises(CheckpointError, match=r"unexpected.*backbone\.transformer\.resblocks\.0\.lmhra1") as info:
        load_checkpoint(model, ckpt)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"n_layers": 3}, r"n_layers=3 must equal len\(return_list\)=2"),
        ({"return_list": [1, 5]}, r"return_list: \[5\] are not block indices 0..2"),
        ({"mlp_dropout": [0.5]}, r"mlp_dropout: needs 2 values"),
        ({"n_dim": 64}, r"n_dim=64 must equal width=32"),
        ({"heads": 5}, r"heads=5 does not divide the width 32"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build({**BACKBONE, **cfg}, where="model.backbone")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 3, 8, 32, 32), r"4 token frames, got 8"),
        ((1, 3, 4, 48, 48), r"built for 32x32 frames, got a 3x3 patch grid"),
        ((3, 4, 32, 32), r"expects \(N, 3, T, H, W\)"),
    ],
)
def test_wrong_input_is_refused(shape: tuple[int, ...], match: str) -> None:
    model = build(BACKBONE).eval()
    with pytest.raises(InputShapeError, match=match):
        model(torch.zeros(shape))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_is_mmaction2s_model_and_test_pipeline(path: Path) -> None:
    ours = mm_config(path, {}).model.to_dict()
    theirs = mm_config(_mmaction_zoo_config(path.name), {}).model.to_dict()
    for model in (ours, theirs):  # training-only initialisation
        for section in ("backbone", "cls_head"):
            for key in ("clip_pretrained", "pretrained", "init_cfg", "channel_map"):
                model[section].pop(key, None)
    assert ours == theirs
    ours_spec = ClipSpec.from_config(read_config(path))
    theirs_spec = ClipSpec.from_config(read_config(_mmaction_zoo_config(path.name)))
    assert ours_spec == theirs_spec
    assert ours_spec.sampler == "UniformSample" and ours_spec.num_views == 12


def test_two_configs_are_shipped() -> None:
    assert len(CONFIGS) == 2
