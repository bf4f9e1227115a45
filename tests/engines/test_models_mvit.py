"""MViTv2: parity with MMAction2 1.2, shipped configs, checkpoints, ONNX Runtime / OpenVINO."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines.checkpoint import load_checkpoint
from engines.config import load_config, read_config, to_plain
from engines.engine import build_engine
from engines.errors import CheckpointError, ModelConfigError
from engines.models import build
from engines.models.mvit import ARCH_ZOO, MViT, rel_pos_index
from tests.engines.mmaction_ref import build_mmaction_model, import_reference, mmaction_registry
from tests.engines.test_models_x3d_c3d import _randomize

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/mvit").glob("*.py"))
SMALL = ROOT / "configs/recognition/mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb.py"
#: 4 layers, downscaling after the first and third: 3 scales of 16 / 32 / 64 channels.
TINY_ARCH = {"embed_dims": 16, "num_layers": 4, "num_heads": 1, "downscale_indices": [1, 3]}
#: MMAction2's configs whose test pipeline samples with UniformSample.
UNIFORM_SAMPLE = {
    "mvit-base-p244_u32_sthv2-rgb.py",
    "mvit-large-p244_u40_sthv2-rgb.py",
    "mvit-small-p244_k400-pre_16xb16-u16-100e_sthv2-rgb.py",
}


def mmaction_config_path(name: str) -> Path:
    mmaction = import_reference("mmaction")
    return Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "mvit" / name


def mmaction_config(name: str) -> Any:
    """MMAction2's own shipped config ``recognition/mvit/<name>``."""
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


def _flat(outputs: Any) -> list[torch.Tensor]:
    flat: list[torch.Tensor] = []
    for out in outputs:
        flat += list(out) if isinstance(out, (list, tuple)) else [out]
    return flat


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize(("q", "k"), [(8, 8), (8, 4), (4, 8), (14, 7), (7, 14), (28, 3), (5, 13), (1, 1)])
def test_rel_pos_index_is_mmactions(q: int, k: int) -> None:
    """The gather rows of the resized relative-position table, against MMAction2's float32 arithmetic."""
    mmaction_registry()  # imports MMAction2 with the packaging workaround first
    mvit = import_reference("mmaction.models.backbones.mvit")
    table = torch.arange(2 * max(q, k) - 1, dtype=torch.float32)[:, None]
    want = mvit.resize_decomposed_rel_pos(table, q, k)[..., 0].long()
    got = torch.from_numpy(rel_pos_index(q, k))
    assert torch.equal(got, want)


# --------------------------------------------------------------------------- backbone parity


@pytest.mark.parametrize(
    ("cfg", "clip"),
    [
        pytest.param({}, (8, 64, 64), id="cls-token"),
        pytest.param({"out_scales": [0, 1, 2], "dim_mul_in_attention": False}, (8, 64, 64), id="mlp-widens-3-scales"),
        pytest.param({}, (6, 48, 48), id="resized-rel-pos"),
        pytest.param(
            {"use_abs_pos_embed": True, "with_cls_token": False, "output_cls_token": False, "residual_pooling": False},
            (8, 48, 48),
            id="abs-pos-no-cls",
        ),
        pytest.param(
            {"rel_pos_embed": False, "output_cls_token": False, "adaptive_kv_stride": (2, 4, 4), "head_mul": 1},
            (8, 64, 64),
            id="no-rel-pos",
        ),
    ],
)
def test_backbone_matches_mmaction(cfg: dict[str, Any], clip: tuple[int, int, int]) -> None:
    full = {"type": "MViT", "arch": TINY_ARCH, "spatial_size": 64, "temporal_size": 8, "drop_path_rate": 0.3, **cfg}
    ref, ours = _pair(full)
    x = torch.randn(2, 3, *clip, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = _flat(ref(x)), _flat(ours(x))
    assert len(got) == len(want) >= 1
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_state_dict_layout_of_small() -> None:
    with torch.device("meta"):
        model = build({"type": "MViT", "arch": "small"})
    assert isinstance(model, MViT)
    keys = model.state_dict().keys()
    for key in (
        "cls_token",
        "patch_embed.projection.weight",
        "blocks.0.attn.rel_pos_t",
        "blocks.1.attn.pool_q.weight",
        "blocks.1.attn.norm_k.bias",
        "blocks.1.proj.weight",
        "blocks.15.mlp.fc2.weight",
        "norm3.weight",
    ):
        assert key in keys, key
    assert "blocks.2.proj.weight" not in keys
    assert model.get_parameter("blocks.0.attn.rel_pos_h").shape == (2 * 56 - 1, 96)
    # the first downscale: queries pooled to 28x28, 2 heads of 96 channels (192 wide)
    assert model.get_parameter("blocks.1.attn.rel_pos_h").shape == (2 * 28 - 1, 96)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"arch": "huge"}, r"unknown arch 'huge'; valid archs: tiny, small, base, large"),
        ({"arch": {"embed_dims": 8, "num_layers": 2}}, r"keys downscale_indices, embed_dims, num_heads, num_layers"),
        ({"out_scales": 4}, r"out_scales: expected indices below 4, got 4"),
        ({"with_cls_token": False}, r"output_cls_token=True needs with_cls_token=True"),
        ({"patch_cfg": {"padding": "same"}}, r"only explicit \(t, h, w\) padding works, got 'same'"),
        ({"patch_cfg": {"kernel": 3}}, r"patch_cfg: unknown key\(s\) 'kernel'"),
        ({"norm_cfg": {"type": "BN"}}, r"take a layer norm \('LN'\), got 'BN'"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with torch.device("meta"), pytest.raises(ModelConfigError, match=match):
        build({"type": "MViT", **cfg}, where="model.backbone")


# --------------------------------------------------------------------------- MMAction2's configs


def _shrunk(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config's own widths, heads, clip/crop sizes and options at 4 layers (2 downscales), 5 classes."""
    cfg = copy.deepcopy(model_cfg)
    arch = ARCH_ZOO[cfg["backbone"].get("arch", "base")]
    cfg["backbone"]["arch"] = {**arch, "num_layers": 4, "downscale_indices": [1, 3]}
    cfg["cls_head"]["in_channels"] = arch["embed_dims"] * 4
    cfg["cls_head"]["num_classes"] = 5
    return cfg


@pytest.mark.parametrize("name", mmaction_names())
def test_mmaction_config_scores_match(name: str, tmp_path: Path) -> None:
    """MMAction2 builds the config's model (4 layers; tables sized for the config's clip, so 8x64x64
    clips resize them); its random weights, saved as a model-zoo checkpoint, load strictly into ours
    and give the same scores over 2 views of 2 samples."""
    model_cfg = _shrunk(to_plain(mmaction_config(name).model))
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=3)
    path = tmp_path / "mvit.pth"
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


@pytest.mark.parametrize("name", sorted(UNIFORM_SAMPLE))
def test_uniform_sample_configs_load_and_build(name: str) -> None:
    """The Something-Something configs sample with UniformSample; their whole config loads."""
    cfg = load_config(mmaction_config_path(name))
    assert cfg.model["backbone"]["type"] == "MViT"
    with torch.device("meta"):
        model = build(cfg.model)
    assert model.backbone.__class__.__name__ == "MViT"


def test_shipped_configs_are_mmaction2s() -> None:
    assert [p.name for p in SHIPPED] == [
        "mvit-base-p244_32x3x1_kinetics400-rgb.py",
        "mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb.py",
    ]
    for path in SHIPPED:
        ours, ref = read_config(path), mmaction_config(path.name)
        assert to_plain(ours.model) == to_plain(ref.model)
        want = [step for step in to_plain(ref.test_pipeline) if step["type"] not in ("DecordInit", "DecordDecode")]
        assert to_plain(ours.test_pipeline) == want
        assert path.stem.split("_")[0] in ours.load_from


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    small = _shrunk(to_plain(read_config(SMALL).model))
    large = copy.deepcopy(small)
    large["backbone"]["arch"]["num_layers"] = 5
    path = tmp_path / "large.pth"
    torch.save({"state_dict": build(large).state_dict(), "meta": {}}, path)
    with pytest.raises(CheckpointError, match=r"does not fit model Recognizer3D: \d+ unexpected: backbone.blocks.4"):
        load_checkpoint(build(small), path)


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_mmaction(backend: str, tmp_path: Path) -> None:
    """The shipped MViTv2-S config (4 layers, 5 classes) through build_engine: the pooling attention,
    the relative-position gathers and einsums export, and the backend scores equal MMAction2's."""
    options = {
        "model.backbone.arch": {"_delete_": True, **TINY_ARCH},
        "model.backbone.spatial_size": 64,
        "model.backbone.temporal_size": 8,
        "model.cls_head.in_channels": 64,
        "model.cls_head.num_classes": 5,
    }
    model_cfg = to_plain(read_config(SMALL, options).model)
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=5)
    ckpt = tmp_path / "mvit.pth"
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
