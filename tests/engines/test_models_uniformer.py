"""UniFormer V1: parity with MMAction2 1.2, shipped configs, checkpoints, ONNX Runtime / OpenVINO."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines.checkpoint import load_checkpoint
from engines.config import read_config, to_plain
from engines.engine import build_engine
from engines.errors import CheckpointError, ModelConfigError
from engines.models import build
from engines.models.uniformer import UniFormer
from tests.engines.mmaction_ref import build_mmaction_model, import_reference, mmaction_registry
from tests.engines.test_models_x3d_c3d import _randomize

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/uniformer").glob("*.py"))
SMALL = ROOT / "configs/recognition/uniformer/uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb.py"


def mmaction_config_path(name: str) -> Path:
    mmaction = import_reference("mmaction")
    return Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "uniformer" / name


def mmaction_config(name: str) -> Any:
    """MMAction2's own shipped config ``recognition/uniformer/<name>``."""
    return import_reference("mmengine.config").Config.fromfile(str(mmaction_config_path(name)))


def mmaction_names() -> list[str]:
    return sorted(p.name for p in mmaction_config_path("x").parent.glob("*.py"))


def _pair(cfg: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    ref = mmaction_registry().build(copy.deepcopy(cfg))
    ref.eval()
    _randomize(ref, seed=1)
    ours = build(cfg, where="model.backbone")
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


# --------------------------------------------------------------------------- backbone parity


@pytest.mark.parametrize(
    ("cfg", "clip"),
    [
        pytest.param({"depth": [1, 2, 2, 1], "embed_dim": [8, 16, 32, 64], "head_dim": 16}, (8, 64, 64), id="2-heads"),
        pytest.param(
            {
                "depth": [1, 1, 1, 2],
                "embed_dim": [8, 16, 16, 32],
                "head_dim": 8,
                "qkv_bias": False,
                "qk_scale": 0.2,
                "mlp_ratio": 2.0,
            },
            (6, 96, 64),
            id="no-bias-scaled-odd-clip",
        ),
    ],
)
def test_backbone_matches_mmaction(cfg: dict[str, Any], clip: tuple[int, int, int]) -> None:
    ref, ours = _pair({"type": "UniFormer", "drop_path_rate": 0.3, "drop_rate": 0.2, **cfg})
    x = torch.randn(2, 3, *clip, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_state_dict_layout_of_small() -> None:
    with torch.device("meta"):
        model = build({"type": "UniFormer", "depth": [3, 4, 8, 3]})
    assert isinstance(model, UniFormer)
    keys = model.state_dict().keys()
    for key in (
        "patch_embed1.proj.weight",
        "patch_embed1.norm.bias",
        "blocks1.2.attn.weight",
        "blocks2.3.norm1.running_var",
        "blocks2.0.mlp.fc2.weight",
        "blocks3.7.attn.qkv.bias",
        "blocks4.2.mlp.fc1.weight",
        "norm.running_mean",
    ):
        assert key in keys, key
    assert "blocks1.3.pos_embed.weight" not in keys
    assert model.get_parameter("patch_embed1.proj.weight").shape == (64, 3, 3, 4, 4)
    assert model.get_submodule("blocks4.0.attn").num_heads == 8


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"depth": [1, 1, 1]}, r"depth and embed_dim need 4 entries \(one per stage\), got \[1, 1, 1\]"),
        ({"embed_dim": [8, 16, 32, 64]}, r"need embed_dim >= head_dim=64, got \[32, 64\]"),
        ({"window": 3}, r"UniFormer: unknown key\(s\) 'window'"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with torch.device("meta"), pytest.raises(ModelConfigError, match=match):
        build({"type": "UniFormer", **cfg}, where="model.backbone")


# --------------------------------------------------------------------------- MMAction2's configs


def _shrunk(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config's widths and heads at depths 1 / 1 / 2 / 1, 5 classes."""
    cfg = copy.deepcopy(model_cfg)
    cfg["backbone"]["depth"] = [1, 1, 2, 1]
    cfg["cls_head"]["num_classes"] = 5
    return cfg


@pytest.mark.parametrize("name", mmaction_names())
def test_mmaction_config_scores_match(name: str, tmp_path: Path) -> None:
    """MMAction2 builds the config's model (shallower); its random weights, saved as a model-zoo
    checkpoint, load strictly into ours and give the same scores over 2 views of 2 samples."""
    model_cfg = _shrunk(to_plain(mmaction_config(name).model))
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=3)
    path = tmp_path / "uniformer.pth"
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("data_preprocessor.")}
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": list("abcde")}}}, path)
    ours = build(model_cfg)
    load_checkpoint(ours, path)
    x = torch.randn(2, 2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = ref.cls_head.average_clip(ref(x, mode="tensor", stage="head"), num_segs=2)
        got = ours.eval()(x)
    assert got.shape == (2, 5)
    assert _rel_err(got, want) <= 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_shipped_configs_are_mmaction2s() -> None:
    assert [p.name for p in SHIPPED] == [
        "uniformer-base_imagenet1k-pre_16x4x1_kinetics400-rgb.py",
        "uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb.py",
    ]
    for path in SHIPPED:
        ours, ref = read_config(path), mmaction_config(path.name)
        assert to_plain(ours.model) == to_plain(ref.model)
        want = [step for step in to_plain(ref.test_pipeline) if step["type"] not in ("DecordInit", "DecordDecode")]
        assert to_plain(ours.test_pipeline) == want
        assert path.stem in ours.load_from


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    small = _shrunk(to_plain(read_config(SMALL).model))
    base = copy.deepcopy(small)
    base["backbone"]["depth"] = [1, 2, 2, 1]
    path = tmp_path / "base.pth"
    torch.save({"state_dict": build(base).state_dict(), "meta": {}}, path)
    with pytest.raises(CheckpointError, match=r"does not fit model Recognizer3D: \d+ unexpected: backbone.blocks2.1"):
        load_checkpoint(build(small), path)


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_mmaction(backend: str, tmp_path: Path) -> None:
    """The shipped UniFormer-S config (narrow, shallow, 5 classes) through build_engine: the backend
    scores equal MMAction2's."""
    options = {
        "model.backbone.depth": [1, 1, 2, 1],
        "model.backbone.embed_dim": [8, 16, 32, 64],
        "model.backbone.head_dim": 16,
        "model.cls_head.in_channels": 64,
        "model.cls_head.num_classes": 5,
    }
    model_cfg = to_plain(read_config(SMALL, options).model)
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=5)
    ckpt = tmp_path / "uniformer.pth"
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("data_preprocessor.")}
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": list("abcde")}}}, ckpt)
    shape = (2, 3, 8, 64, 64)
    with build_engine(
        SMALL,
        ckpt,
        backend=backend,
        precision="fp32",
        cfg_options=options,
        input_shape=shape,
        out_dir=tmp_path / "engine",
        num_threads=2,
    ) as engine:
        x = np.random.default_rng(6).standard_normal((3, *shape)).astype(np.float32)
        got = engine.infer(x)
        diff = engine.manifest.export_max_abs_diff
    with torch.no_grad():
        want = ref.cls_head.average_clip(ref(torch.from_numpy(x), mode="tensor", stage="head"), num_segs=2).numpy()
    assert got.shape == (3, 5)
    assert float(np.abs(got - want).max() / np.abs(want).max()) <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    assert diff is not None and diff <= 1e-4
