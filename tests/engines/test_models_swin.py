"""Video Swin Transformer: parity with MMAction2 1.2, shipped configs, checkpoints, ONNX Runtime / OpenVINO."""

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
from engines.models.swin import ARCH_ZOO, SwinTransformer3D, shifted_window_mask
from engines.models.transformer_blocks import relative_position_index
from tests.engines.mmaction_ref import build_mmaction_model, import_reference, mmaction_registry
from tests.engines.test_models_x3d_c3d import _randomize

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/swin").glob("*.py"))
TINY = ROOT / "configs/recognition/swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py"
#: Two stages of tiny widths; 8 frames of 64x64 give 4x16x16 tokens: shifted, padded windows.
SMALL_ARCH = {"embed_dims": 16, "depths": [2, 2], "num_heads": [2, 4]}
CLIP = (8, 64, 64)


def mmaction_config(name: str) -> Any:
    """MMAction2's own shipped config ``recognition/swin/<name>``."""
    mmengine_config = import_reference("mmengine.config")
    mmaction = import_reference("mmaction")
    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "swin" / name
    return mmengine_config.Config.fromfile(str(path))


def mmaction_names() -> list[str]:
    mmaction = import_reference("mmaction")
    root = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "swin"
    return sorted(p.name for p in root.glob("*.py"))


def swin_reference() -> Any:
    """MMAction2's ``mmaction.models.backbones.swin`` module."""
    mmaction_registry()  # imports MMAction2 with the packaging workaround first
    return import_reference("mmaction.models.backbones.swin")


def _pair(cfg: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    ref = mmaction_registry().build(copy.deepcopy(cfg))
    ref.eval()
    _randomize(ref, seed=1)
    ours = build(cfg, where="model.backbone")
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("window", [(8, 7, 7), (2, 3, 4), (5,), (7, 7)])
def test_relative_position_index_is_swins(window: tuple[int, ...]) -> None:
    """The 3D windows against MMAction2's buffer; other ranks against a direct count of offsets."""
    index = relative_position_index(window)
    n = int(np.prod(window))
    assert index.shape == (n, n) and index.dtype == torch.int64
    if len(window) == 3:
        attention = swin_reference().WindowAttention3D(8, window, 2)
        torch.testing.assert_close(index, attention.relative_position_index, rtol=0, atol=0)
    coords = np.stack(np.unravel_index(np.arange(n), window), 1)
    radix = [2 * w - 1 for w in window]
    for a, b in [(0, n - 1), (n - 1, 0), (n // 2, 1)]:
        offset = coords[a] - coords[b] + np.array(window) - 1
        assert index[a, b] == np.ravel_multi_index(tuple(offset), radix)
    assert int(index.max()) == int(np.prod(radix)) - 1


@pytest.mark.parametrize(
    ("size", "window", "shift"),
    [((8, 14, 14), (4, 7, 7), (2, 3, 3)), ((4, 21, 14), (4, 7, 7), (0, 3, 3)), ((16, 8, 8), (8, 4, 4), (4, 2, 2))],
)
def test_shifted_window_mask_is_mmactions(
    size: tuple[int, int, int], window: tuple[int, int, int], shift: tuple[int, int, int]
) -> None:
    want = swin_reference().compute_mask(*size, window, shift, torch.device("cpu"))
    got = shifted_window_mask(size, window, shift)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert set(got.unique().tolist()) <= {0.0, -100.0}


# --------------------------------------------------------------------------- backbone parity


@pytest.mark.parametrize(
    ("cfg", "clip"),
    [
        pytest.param({"arch": SMALL_ARCH, "window_size": (8, 7, 7)}, (8, 64, 64), id="shift-hw-pad"),
        pytest.param({"arch": SMALL_ARCH, "window_size": (2, 3, 3), "qk_scale": 0.3}, (8, 40, 40), id="shift-thw"),
        pytest.param(
            {"arch": SMALL_ARCH, "patch_norm": False, "patch_size": (1, 4, 4), "out_indices": (0, 1)},
            (5, 54, 42),
            id="odd-sizes-two-outputs",
        ),
        pytest.param(
            {
                "arch": {"embed_dims": 8, "depths": [1, 2, 2], "num_heads": [1, 2, 2]},
                "out_indices": (0, 2),
                "out_after_downsample": True,
                "window_size": (4, 3, 3),
                "mlp_ratio": 2.0,
                "qkv_bias": False,
            },
            (8, 48, 48),
            id="after-downsample",
        ),
    ],
)
def test_backbone_matches_mmaction(cfg: dict[str, Any], clip: tuple[int, int, int]) -> None:
    cfg = {"type": "SwinTransformer3D", "drop_path_rate": 0.3, "drop_rate": 0.2, "out_indices": (1,), **cfg}
    ref, ours = _pair(cfg)
    x = torch.randn(2, 3, *clip, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    wants = want if isinstance(want, tuple) else (want,)
    gots = got if isinstance(got, tuple) else (got,)
    assert len(gots) == len(wants) == len(cfg["out_indices"])
    for g, w in zip(gots, wants, strict=True):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_state_dict_layout_of_tiny() -> None:
    with torch.device("meta"):
        model = build({"type": "SwinTransformer3D", "arch": "tiny"})
    assert isinstance(model, SwinTransformer3D)
    keys = model.state_dict().keys()
    for key in (
        "patch_embed.proj.weight",
        "patch_embed.norm.bias",
        "layers.0.blocks.1.attn.relative_position_bias_table",
        "layers.0.blocks.1.attn.relative_position_index",
        "layers.2.blocks.5.mlp.fc2.weight",
        "layers.2.downsample.reduction.weight",
        "layers.2.downsample.norm.weight",
        "norm3.weight",
    ):
        assert key in keys, key
    assert "layers.3.downsample.reduction.weight" not in keys
    assert model.get_parameter("layers.0.blocks.0.attn.relative_position_bias_table").shape == (15 * 13 * 13, 3)
    assert model.num_features[3] == 768


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"arch": "huge"}, r"unknown arch 'huge'; valid archs: t, tiny, s, small"),
        ({"arch": {"embed_dims": 8, "depths": [1]}}, r"exactly the keys depths, embed_dims, num_heads"),
        ({"arch": {"embed_dims": 8, "depths": [1, 1], "num_heads": [1]}}, r"differ in length"),
        ({"arch": "tiny", "out_indices": (4,)}, r"out_indices: expected stage indices in \[0, 4\)"),
        ({"arch": "tiny", "window_size": (8, 7)}, r"window_size: expected an int or 3 ints"),
        ({"arch": "tiny", "norm_cfg": {"type": "BN"}}, r"take a layer norm \('LN'\), got 'BN'"),
        ({"arch": "tiny", "act_cfg": {"type": "Mish"}}, r"unknown activation type 'Mish'"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with torch.device("meta"), pytest.raises(ModelConfigError, match=match):
        build({"type": "SwinTransformer3D", **cfg}, where="model.backbone")


# --------------------------------------------------------------------------- MMAction2's configs


def _shrunk(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config's own arch (widths, heads) at depths 2 / 1 / 1 / 0 (the widest stage only merges and
    normalises, keeping the test fast) and 5 classes."""
    cfg = copy.deepcopy(model_cfg)
    arch = ARCH_ZOO[cfg["backbone"]["arch"]]
    cfg["backbone"]["arch"] = {"embed_dims": arch["embed_dims"], "depths": [2, 1, 1, 0], "num_heads": arch["num_heads"]}
    cfg["cls_head"]["num_classes"] = 5
    return cfg


@pytest.mark.parametrize("name", mmaction_names())
def test_mmaction_config_scores_match(name: str, tmp_path: Path) -> None:
    """MMAction2 builds the config's model (shallower); its random weights, saved as a model-zoo
    checkpoint, load strictly into ours and give the same scores over 2 views of 2 samples."""
    model_cfg = _shrunk(to_plain(mmaction_config(name).model))
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=3)
    path = tmp_path / "swin.pth"
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("data_preprocessor.")}
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": list("abcde")}}}, path)
    ours = build(model_cfg)
    load_checkpoint(ours, path)
    x = torch.randn(2, 2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = ref.cls_head.average_clip(ref(x, mode="tensor", stage="head"), num_segs=2)
        got = ours.eval()(x)
    assert got.shape == (2, 5)
    assert _rel_err(got, want) <= 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_shipped_configs_are_mmaction2s() -> None:
    assert [p.name for p in SHIPPED] == [
        "swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py",
        "swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py",
    ]
    for path in SHIPPED:
        ours, ref = read_config(path), mmaction_config(path.name)
        assert to_plain(ours.model) == to_plain(ref.model)
        want = [step for step in to_plain(ref.test_pipeline) if step["type"] not in ("DecordInit", "DecordDecode")]
        assert to_plain(ours.test_pipeline) == want
        assert path.stem in ours.load_from


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    tiny = _shrunk(to_plain(read_config(TINY).model))
    small = copy.deepcopy(tiny)
    small["backbone"]["arch"]["depths"] = [2, 1, 2, 0]
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": build(tiny).state_dict(), "meta": {}}, path)
    with pytest.raises(
        CheckpointError, match=r"does not fit model Recognizer3D: \d+ missing: backbone.layers.2.blocks.1"
    ):
        load_checkpoint(build(small), path)


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_mmaction(backend: str, tmp_path: Path) -> None:
    """The shipped Swin-T config (shallow, 5 classes) through build_engine: torch.roll, the shifted-window
    mask and the relative-position gather export, and the backend scores equal MMAction2's."""
    options = {
        "model.backbone.arch": {"_delete_": True, "embed_dims": 16, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4]},
        "model.backbone.window_size": (4, 3, 3),
        "model.cls_head.in_channels": 128,
        "model.cls_head.num_classes": 5,
    }
    model_cfg = to_plain(read_config(TINY, options).model)
    ref: Any = build_mmaction_model(model_cfg)
    _randomize(ref, seed=5)
    ckpt = tmp_path / "swin.pth"
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("data_preprocessor.")}
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": list("abcde")}}}, ckpt)
    with build_engine(
        TINY,
        ckpt,
        backend=backend,
        precision="fp32",
        cfg_options=options,
        input_shape=(2, 3, *CLIP),
        out_dir=tmp_path / "engine",
        num_threads=2,
    ) as engine:
        x = np.random.default_rng(6).standard_normal((3, 2, 3, *CLIP)).astype(np.float32)
        got = engine.infer(x)
        diff = engine.manifest.export_max_abs_diff
    with torch.no_grad():
        want = ref.cls_head.average_clip(ref(torch.from_numpy(x), mode="tensor", stage="head"), num_segs=2).numpy()
    assert got.shape == (3, 5)
    assert float(np.abs(got - want).max() / np.abs(want).max()) <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    assert diff is not None and diff <= 1e-4
