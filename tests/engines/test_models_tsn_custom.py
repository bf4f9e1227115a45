"""TSN with MMAction2's custom (external-library) backbones: MobileOne, ResNeXt, DenseNet-161.

MMAction2 builds these backbones from mmpretrain / mmcls / torchvision / timm, none of which
is installed (or a dependency); MMAction2 itself refuses to build these configs here (tested
below), so there is no MMAction2 reference output. What is tested instead: the shipped
configs are MMAction2's, the recognizer takes the backbone's features as MMAction2's
``Recognizer2D.extract_feat`` does (the one-map tuple of an mmpretrain backbone unpacked) and
scores them as TSN does, model-zoo-layout checkpoints load strictly, the deploy form loads
the re-parameterized train form with the same scores, and the engines match torch.
MobileOne's own layout and arithmetic are tested in ``test_models_mobile.py``; ResNeXt's
layout against mmcls's source (keys, shapes, MMAction2's metafile parameter count) and its
arithmetic against MMAction2's own ResNet-50 (a ResNeXt with one group is a ResNet);
DenseNet's layout against torchvision's source and its documented parameter counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.config import load_config
from engines.engine import build_engine, load_engine
from engines.errors import CheckpointError, ModelConfigError
from engines.export import sample_inputs, torch_scores
from engines.models import build
from tests.engines.mmaction_ref import build_mmaction_model, import_reference, mmaction_registry
from tests.engines.test_models_mobile import TINY_ARCH, _plain, randomize

ROOT = Path(__file__).resolve().parents[2]
CUSTOM = ROOT / "configs" / "recognition" / "tsn" / "custom_backbones"
MOBILEONE = "tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb.py"
MOBILEONE_DEPLOY = "tsn_imagenet-pretrained-mobileone-s4_deploy_8xb32-1x1x8-100e_kinetics400-rgb.py"
RESNEXT = "tsn_imagenet-pretrained-rn101-32x4d_8xb32-1x1x3-100e_kinetics400-rgb.py"
TINY_RESNEXT = {  # two stages of ResNeXt-101 32x4d
    "model.backbone.num_stages": 2,
    "model.backbone.strides": (1, 2),
    "model.backbone.dilations": (1, 1),
    "model.backbone.out_indices": (1,),
    "model.cls_head.in_channels": 512,
    "model.cls_head.num_classes": 5,
}
DENSENET = "tsn_imagenet-pretrained-dense161_8xb32-1x1x3-100e_kinetics400-rgb.py"
TINY_DENSENET = {  # DenseNet-121 (the smallest torchvision DenseNet) with a 5-class head
    "model.backbone.type": "torchvision.densenet121",
    "model.cls_head.in_channels": 1024,
    "model.cls_head.num_classes": 5,
}
TINY_MOBILEONE = {
    "model.backbone.arch": {"_delete_": True, **TINY_ARCH},
    "model.cls_head.in_channels": 256,
    "model.cls_head.num_classes": 5,
}


def mmaction_config_file(path: Path) -> Any:
    return import_reference("mmengine.config").Config.fromfile(str(path))


def mmaction_config(name: str) -> Any:
    """MMAction2's shipped config ``tsn/custom_backbones/<name>``."""
    mmaction = import_reference("mmaction")
    root = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "tsn" / "custom_backbones"
    return mmaction_config_file(root / name)


@pytest.mark.parametrize("name", [MOBILEONE, MOBILEONE_DEPLOY, RESNEXT, DENSENET])
def test_shipped_config_is_mmaction2s(name: str) -> None:
    ours = load_config(CUSTOM / name)
    ref = mmaction_config(name)
    model = ref.model.to_dict()
    model["data_preprocessor"].setdefault("format_shape", "NCHW")
    assert _plain(ours.model) == _plain(model)
    ref_val = [step for step in ref.val_pipeline if not step["type"].startswith("Decord")]  # frames come decoded
    ours_val = mmaction_config_file(CUSTOM / name).val_pipeline
    assert _plain([dict(s) for s in ours_val]) == _plain([dict(s) for s in ref_val])


@pytest.mark.parametrize(
    ("name", "package"), [(MOBILEONE, "mmpretrain"), (RESNEXT, "mmcls"), (DENSENET, "torchvision")]
)
def test_mmaction2_cannot_build_it_here(name: str, package: str) -> None:
    """Why there is no reference: MMAction2 needs mmpretrain / mmcls for these backbones."""
    with pytest.raises(ImportError, match=f"install {package}"):
        build_mmaction_model(mmaction_config(name).model.to_dict())


@pytest.mark.parametrize("views", [1, 3])
def test_mobileone_tsn_scores_like_tsn(tmp_path: Path, views: int) -> None:
    model: Any = randomize(build(load_config(CUSTOM / MOBILEONE, TINY_MOBILEONE).model), seed=1)
    assert model.backbone_from == "mmpretrain"
    save_checkpoint(model, tmp_path / "zoo.pth")
    again: Any = build(load_config(CUSTOM / MOBILEONE, TINY_MOBILEONE).model)
    load_checkpoint(again, tmp_path / "zoo.pth")
    x = torch.randn(2, views, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        scores = again(x)
        (features,) = model.backbone(x.flatten(0, 1))  # mmpretrain's tuple of one map
        pooled = features.mean((2, 3)).reshape(2, views, -1).mean(1)  # TSN: spatial, then segment average
        expected = model.cls_head.fc_cls(pooled).softmax(-1)  # average_clips='prob' over one clip
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)


def test_deploy_config_takes_the_fused_checkpoint(tmp_path: Path) -> None:
    train: Any = randomize(build(load_config(CUSTOM / MOBILEONE, TINY_MOBILEONE).model), seed=3)
    x = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = train(x)
    save_checkpoint(train, tmp_path / "train.pth")
    deploy: Any = build(load_config(CUSTOM / MOBILEONE_DEPLOY, TINY_MOBILEONE).model)
    with pytest.raises(CheckpointError, match=r"missing.*backbone\.stage0\.branch_reparam\.weight"):
        load_checkpoint(deploy, tmp_path / "train.pth")
    train.backbone.switch_to_deploy()
    save_checkpoint(train, tmp_path / "fused.pth")
    load_checkpoint(deploy, tmp_path / "fused.pth")
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        (MOBILEONE, TINY_MOBILEONE),
        (MOBILEONE_DEPLOY, TINY_MOBILEONE),
        (RESNEXT, TINY_RESNEXT),
        (DENSENET, TINY_DENSENET),
    ],
    ids=["mobileone", "mobileone-deploy", "resnext", "densenet"],
)
def test_engines_match_torch(tmp_path: Path, name: str, options: dict[str, Any]) -> None:
    config = CUSTOM / name
    model = randomize(build(load_config(config, options).model), seed=5)
    ckpt = save_checkpoint(model, tmp_path / "model.pth")
    shape = (3, 3, 32, 32)
    engine = build_engine(
        config,
        ckpt,
        backend="onnxruntime",
        precision="fp32",
        out_dir=tmp_path / "ort",
        cfg_options=options,
        input_shape=shape,
    )
    batch = sample_inputs(shape, 2, mean=engine.manifest.mean, std=engine.manifest.std, seed=6)
    expected = torch_scores(model, batch)
    np.testing.assert_allclose(engine.infer(batch), expected, atol=1e-4, rtol=0)
    on_openvino = load_engine(tmp_path / "ort", backend="openvino")
    np.testing.assert_allclose(on_openvino.infer(batch), expected, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- ResNeXt


def test_resnext101_32x4d_layout_and_size() -> None:
    model: Any = build(load_config(CUSTOM / RESNEXT).model)
    assert model.backbone_from == "mmcls"
    state = model.backbone.state_dict()
    shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "layer1.0.conv1.weight": (128, 64, 1, 1),  # 32 groups x 4 = 128 wide at base_channels 64
        "layer1.0.conv2.weight": (128, 4, 3, 3),  # grouped: 128 / 32 inputs per group
        "layer1.0.conv3.weight": (256, 128, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.weight": (256,),
        "layer3.22.bn3.bias": (1024,),
        "layer4.0.conv2.weight": (1024, 32, 3, 3),
        "layer4.2.conv3.weight": (2048, 1024, 1, 1),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "layer1.1.downsample.0.weight" not in state
    assert sum(k.endswith("downsample.0.weight") for k in state) == 4
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6, 2) == 42.95  # MMAction2's metafile: "Parameters: 42.95M" (with the 400-class head)


def _mmaction_to_mmcls(key: str) -> str:
    """MMAction2 ResNet key -> mmcls ResNet key (``conv1.conv`` -> ``conv1``, ``conv1.bn`` -> ``bn1``)."""
    for i in (1, 2, 3):
        key = key.replace(f"conv{i}.conv.", f"conv{i}.").replace(f"conv{i}.bn.", f"bn{i}.")
    return key.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")


def test_resnext_with_one_group_is_mmaction2s_resnet50() -> None:
    ref = mmaction_registry().build({"type": "ResNet", "depth": 50, "out_indices": (1, 3)})
    ref.eval()  # MMAction2's ResNet.train() returns None, so eval() can't be chained
    randomize(ref, seed=7)
    ours: Any = build({"type": "mmcls.ResNeXt", "depth": 50, "groups": 1, "out_indices": (1, 3)})
    ours.load_state_dict({_mmaction_to_mmcls(k): v for k, v in ref.state_dict().items()}, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        for got, want in zip(ours.eval()(x), ref(x), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_resnext_tsn_scores_like_tsn(tmp_path: Path) -> None:
    model: Any = randomize(build(load_config(CUSTOM / RESNEXT, TINY_RESNEXT).model), seed=9)
    save_checkpoint(model, tmp_path / "zoo.pth")
    again: Any = build(load_config(CUSTOM / RESNEXT, TINY_RESNEXT).model)
    load_checkpoint(again, tmp_path / "zoo.pth")
    x = torch.randn(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        scores = again(x)
        (features,) = model.backbone(x.flatten(0, 1))
        expected = model.cls_head.fc_cls(features.mean((2, 3)).mean(0, keepdim=True)).softmax(-1)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(CheckpointError, match=r"unexpected.*backbone\.stage0"):  # a MobileOne checkpoint
        mobileone = build(load_config(CUSTOM / MOBILEONE, TINY_MOBILEONE).model)
        save_checkpoint(mobileone, tmp_path / "mobileone.pth")
        load_checkpoint(again, tmp_path / "mobileone.pth")


def test_resnext_bad_configs() -> None:
    with pytest.raises(ModelConfigError, match=r"ResNeXt.depth: unsupported depth 18; valid depths: 50, 101, 152"):
        build({"type": "mmcls.ResNeXt", "depth": 18})
    with pytest.raises(ModelConfigError, match=r"deep_stem=True and avg_down=True are not supported"):
        build({"type": "mmcls.ResNeXt", "depth": 50, "deep_stem": True})
    with pytest.raises(ModelConfigError, match=r"out_indices: expected stages below 4"):
        build({"type": "mmcls.ResNeXt", "depth": 50, "out_indices": (4,)})


# --------------------------------------------------------------------------- DenseNet


@pytest.mark.parametrize(
    ("arch", "params"),  # torchvision's documented sizes, less the 1000-class classifier MMAction2 drops
    [(121, 7_978_856 - 1_025_000), (161, 28_681_000 - 2_209_000), (169, 14_149_480 - 1_665_000)],
)
def test_densenet_sizes_are_torchvisions(arch: int, params: int) -> None:
    model = build({"type": f"torchvision.densenet{arch}", "pretrained": True})
    assert sum(p.numel() for p in model.parameters()) == params


def test_densenet161_layout() -> None:
    model: Any = build(load_config(CUSTOM / DENSENET).model)
    assert model.backbone_from == "torchvision"
    state = model.backbone.state_dict()
    shapes = {
        "features.conv0.weight": (96, 3, 7, 7),
        "features.denseblock1.denselayer1.norm1.weight": (96,),
        "features.denseblock1.denselayer1.conv1.weight": (192, 96, 1, 1),  # bn_size 4 x growth 48
        "features.denseblock1.denselayer6.conv2.weight": (48, 192, 3, 3),
        "features.transition1.conv.weight": (192, 384, 1, 1),  # 96 + 6 x 48 = 384 halved
        "features.denseblock4.denselayer24.norm1.running_var": (1056 + 23 * 48,),
        "features.norm5.weight": (2208,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("classifier", "fc")) for k in state)  # MMAction2 sets both to nn.Identity
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 27.36  # MMAction2's metafile


def test_densenet_tsn_pools_the_features_before_the_final_relu(tmp_path: Path) -> None:
    model: Any = randomize(build(load_config(CUSTOM / DENSENET, TINY_DENSENET).model), seed=11)
    save_checkpoint(model, tmp_path / "zoo.pth")
    again: Any = build(load_config(CUSTOM / DENSENET, TINY_DENSENET).model)
    load_checkpoint(again, tmp_path / "zoo.pth")
    x = torch.randn(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        scores = again(x)
        features = model.backbone.features(x.flatten(0, 1))  # ends at norm5: can be negative
        expected = model.cls_head.fc_cls(features.mean((2, 3)).mean(0, keepdim=True)).softmax(-1)
        after_relu = model.cls_head.fc_cls(model.backbone(x.flatten(0, 1)).mean(0, keepdim=True)).softmax(-1)
    assert (features < 0).any()
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(scores, after_relu)  # torchvision's own forward (with ReLU) is not what MMAction2 uses
    with pytest.raises(ModelConfigError, match=r"growth_rate is fixed by the architecture"):
        build({"type": "torchvision.densenet161", "growth_rate": 12})


def test_feature_shape_of_torchvision_backbones() -> None:
    """``feature_shape`` (popped from the backbone config, as MMAction2 does) picks the pooled axes."""
    x = torch.randn(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(13))
    scores = {}
    for shape in (None, "NCHW", "NHWC"):
        cfg = load_config(CUSTOM / DENSENET, TINY_DENSENET).model
        if shape is not None:
            cfg["backbone"]["feature_shape"] = shape
        model: Any = randomize(build(cfg), seed=14)
        assert model.feature_shape == shape
        if shape == "NHWC":  # pools H and C of an NCHW map: W values, not 1024 channels, reach the head
            with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
                model(x)
            continue
        with torch.no_grad():
            scores[shape] = model(x)
    torch.testing.assert_close(scores["NCHW"], scores[None], rtol=0, atol=0)
    bad = load_config(CUSTOM / DENSENET, TINY_DENSENET).model
    bad["backbone"]["feature_shape"] = "NTHWC"
    with pytest.raises(ModelConfigError, match=r"feature_shape: expected one of \('NCHW', 'NHWC', 'NLC'\)"):
        build(bad)
