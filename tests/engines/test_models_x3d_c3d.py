"""X3D and C3D: parity with MMAction2 1.2, shipped configs, bad inputs, ONNX export."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from engines.errors import InputShapeError, ModelConfigError, UnknownTypeError
from engines.models import build
from engines.models.c3d import C3D, c3d_feature_size
from engines.models.x3d import X3D
from tests.engines.mmaction_ref import build_mmaction_model, mmaction_registry

ROOT = Path(__file__).resolve().parents[2]
X3D_CONFIGS = sorted((ROOT / "configs/recognition/x3d").glob("*.py"))
C3D_CONFIGS = sorted((ROOT / "configs/recognition/c3d").glob("*.py"))
X3D_S_CONFIG = ROOT / "configs/recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py"
C3D_CONFIG = ROOT / "configs/recognition/c3d/c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb.py"
X3D_S_BACKBONE = {"type": "X3D", "gamma_w": 1, "gamma_b": 2.25, "gamma_d": 2.2}
C3D_CLIP = (16, 112, 112)


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Fill parameters and float buffers with random values that keep activations O(1).

    Conv/linear weights get a fan-in scaled uniform init, norm weights and variances
    lie in [0.5, 1.5), biases and means in [-0.2, 0.2).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=gen)
            if tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.copy_((values * 2 - 1) * (3 / fan_in) ** 0.5)
            elif name.endswith(("running_var", "weight")):
                tensor.copy_(0.5 + values)
            else:
                tensor.copy_((values - 0.5) * 0.4)


def _twin(ref: nn.Module, ours: nn.Module) -> nn.Module:
    """Randomize MMAction2's module and load its state dict into ours strictly."""
    _randomize(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval()


def _mm_backbone(cfg: dict[str, Any]) -> nn.Module:
    model = mmaction_registry().build(copy.deepcopy(cfg))
    model.eval()  # MMAction2's X3D.train() returns None, so eval() can't be chained
    return model


def _load_config(path: Path) -> Any:
    from mmengine import Config

    return Config.fromfile(str(path))


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(X3D_S_BACKBONE, id="x3d-s"),
        pytest.param({"type": "X3D", "se_style": "all"}, id="se-all"),
        pytest.param({"type": "X3D", "se_ratio": None, "gamma_w": 2}, id="no-se-wide"),
        pytest.param({"type": "X3D", "num_stages": 3, "spatial_strides": (1, 2, 2)}, id="3-stages"),
    ],
)
def test_x3d_backbone_matches_mmaction(cfg: dict[str, Any]) -> None:
    ref = _mm_backbone(cfg)
    ours = _twin(ref, build(cfg, where="model.backbone"))
    x = torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_x3d_s_layout() -> None:
    model = build(X3D_S_BACKBONE)
    assert isinstance(model, X3D)
    assert model.feat_dim == 432
    assert model.stage_blocks == [3, 5, 11, 7]
    keys = model.state_dict().keys()
    for key in (
        "conv1_s.conv.weight",
        "conv1_t.bn.running_var",
        "layer1.0.downsample.conv.weight",
        "layer1.0.se_module.fc1.bias",
        "layer1.2.se_module.fc2.weight",
        "layer4.6.conv3.bn.weight",
        "conv5.conv.weight",
    ):
        assert key in keys, key
    assert "layer1.1.se_module.fc1.weight" not in keys  # se_style='half': every other block
    assert model.conv1_t.conv.groups == 24  # depthwise temporal stem conv
    assert model.get_submodule("layer1.0.conv2.conv").groups == 54  # depthwise 3x3x3 conv
    out = model.eval()(torch.zeros(1, 3, 3, 64, 64))
    assert out.shape == (1, 432, 3, 2, 2)


@pytest.mark.parametrize("norm_cfg", [None, {"type": "BN3d"}], ids=["zoo", "bn"])
def test_c3d_backbone_matches_mmaction(norm_cfg: dict[str, Any] | None) -> None:
    cfg = {"type": "C3D", "norm_cfg": norm_cfg}
    ref = _mm_backbone(cfg)
    ours = _twin(ref, build(cfg, where="model.backbone"))
    x = torch.randn(1, 3, *C3D_CLIP, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == (1, 4096)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("clip", "features"),
    [((16, 112, 112), 8192), ((16, 128, 128), 512 * 25), ((32, 112, 112), 16384), ((8, 112, 112), 0)],
)
def test_c3d_feature_size(clip: tuple[int, int, int], features: int) -> None:
    assert c3d_feature_size(*clip) == features


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"type": "X3D", "gamma_x": 1}, ModelConfigError, r"unknown key\(s\) 'gamma_x'.*valid keys: .*gamma_w"),
        ({"type": "C3D", "out_channels": 3}, ModelConfigError, r"C3D: unknown key\(s\) 'out_channels'"),
        ({"type": "X3DD"}, UnknownTypeError, r"unknown model type 'X3DD'.*X3D"),
        ({"type": "X3D", "se_style": "third"}, ModelConfigError, r"se_style must be 'all' or 'half'"),
        ({"type": "X3D", "spatial_strides": (2, 2)}, ModelConfigError, r"one entry per stage \(4\)"),
        ({"type": "X3D", "norm_cfg": {"type": "GN"}}, ModelConfigError, r"unknown norm type 'GN'.*BN3d"),
        ({"type": "X3D", "act_cfg": {"type": "Mish"}}, ModelConfigError, r"unknown activation type 'Mish'"),
        ({"type": "X3D", "conv_cfg": {"type": "Conv2d"}}, ModelConfigError, r"only dict\(type='Conv3d'\)"),
        ({"type": "C3D", "out_dim": 1000}, ModelConfigError, r"out_dim must be a positive multiple of 512"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build(cfg, where="model.backbone")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 3, 16, 128, 128), r"16x128x128 \(TxHxW\) gives 12800 features but fc6 expects out_dim=8192"),
        ((1, 3, 8, 112, 112), r"8x112x112 .* gives 0 features.*16x112x112"),
        ((1, 1, 16, 112, 112), r"expects \(N, 3, T, H, W\) clips, got shape \(1, 1, 16, 112, 112\)"),
        ((3, 16, 112, 112), r"expects \(N, 3, T, H, W\)"),
    ],
)
def test_c3d_rejects_wrong_input_size(shape: tuple[int, ...], match: str) -> None:
    model = C3D().eval()
    with pytest.raises(InputShapeError, match=match):
        model(torch.zeros(shape))


def test_c3d_other_clip_size_with_matching_out_dim() -> None:
    model = C3D(out_dim=c3d_feature_size(16, 128, 128)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 16, 128, 128)).shape == (1, 4096)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("path", X3D_CONFIGS + C3D_CONFIGS, ids=lambda p: p.stem)
def test_config_loads_with_mmaction_schema(path: Path) -> None:
    cfg = _load_config(path)
    assert cfg.model.data_preprocessor.type == "ActionDataPreprocessor"
    assert cfg.model.data_preprocessor.format_shape == "NCTHW"
    assert cfg.test_pipeline[0].type == "SampleFrames"
    assert cfg.test_pipeline[0].test_mode is True
    assert cfg.test_pipeline[-2:] == [
        {"type": "FormatShape", "input_format": "NCTHW"},
        {"type": "PackActionInputs"},
    ]
    backbone = build(cfg.model.backbone, where="model.backbone")
    assert backbone.__class__.__name__ == cfg.model.backbone.type


def test_model_zoo_names_are_shipped() -> None:
    names = {p.name for p in X3D_CONFIGS + C3D_CONFIGS}
    assert {
        "x3d_s_13x6x1_facebook-kinetics400-rgb.py",
        "x3d_m_16x5x1_facebook-kinetics400-rgb.py",
        "c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb.py",
    } <= names


@pytest.mark.parametrize("path", X3D_CONFIGS + C3D_CONFIGS, ids=lambda p: p.stem)
def test_config_builds_full_model(path: Path) -> None:
    cfg = _load_config(path)
    model = build(cfg.model)
    assert model.backbone.__class__.__name__ == cfg.model.backbone.type


# --------------------------------------------------------------------------- full models


def _full_model_pair(path: Path) -> tuple[Any, Any]:
    cfg = _load_config(path).model.to_dict()
    ref = build_mmaction_model(cfg)
    ours = build(cfg)
    return ref, _twin(ref, ours)


@pytest.mark.parametrize(
    ("path", "views", "clip"),
    [
        pytest.param(X3D_S_CONFIG, 1, (4, 64, 64), id="x3d-1view"),
        pytest.param(X3D_S_CONFIG, 3, (4, 64, 64), id="x3d-3views"),
        pytest.param(C3D_CONFIG, 2, C3D_CLIP, id="c3d-2views"),
    ],
)
def test_recognizer_matches_mmaction(path: Path, views: int, clip: tuple[int, int, int]) -> None:
    ref, ours = _full_model_pair(path)
    batch = 2 if views == 1 else 1
    x = torch.randn(batch, views, 3, *clip, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        raw = ref(x, mode="tensor", stage="head")  # (batch * views, classes), before clip averaging
        expected = ref.cls_head.average_clip(raw, num_segs=views)
        got = ours(x)
        raw_ours = ours.cls_head(ours.backbone(x.flatten(0, 1)))
    torch.testing.assert_close(raw_ours, raw, atol=1e-5, rtol=1e-5)
    assert got.shape == (batch, raw.shape[-1])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- ONNX


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter (no onnxscript here)
def test_x3d_onnx_export_matches_onnxruntime(tmp_path: Path) -> None:
    model = build({"type": "X3D", "gamma_b": 2.25, "gamma_d": 1}).eval()
    _randomize(model, seed=4)
    onnx_path = tmp_path / "x3d.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 4, 64, 64),),
        onnx_path,
        dynamo=False,
        opset_version=17,
        input_names=["clips"],
        output_names=["features"],
        dynamic_axes={"clips": {0: "batch"}, "features": {0: "batch"}},
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 4, 64, 64, generator=torch.Generator().manual_seed(5))  # batch != export batch
    (got,) = session.run(None, {"clips": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
