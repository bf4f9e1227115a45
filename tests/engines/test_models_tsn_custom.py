"""TSN with MMAction2's custom (external-library) backbones: ``mmpretrain.MobileOne``.

MMAction2 builds these backbones from mmpretrain / mmcls / torchvision / timm, none of which
is installed (or a dependency); MMAction2 itself refuses to build these configs here (tested
below), so there is no MMAction2 reference output. What is tested instead: the shipped
configs are MMAction2's, the recognizer takes the backbone's features as MMAction2's
``Recognizer2D.extract_feat`` does (the one-map tuple of an mmpretrain backbone unpacked) and
scores them as TSN does, model-zoo-layout checkpoints load strictly, the deploy form loads
the re-parameterized train form with the same scores, and the engines match torch.
MobileOne's own layout and arithmetic are tested in ``test_models_mobile.py``.
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
from engines.errors import CheckpointError
from engines.export import sample_inputs, torch_scores
from engines.models import build
from tests.engines.mmaction_ref import build_mmaction_model, import_reference
from tests.engines.test_models_mobile import TINY_ARCH, _plain, randomize

ROOT = Path(__file__).resolve().parents[2]
CUSTOM = ROOT / "configs" / "recognition" / "tsn" / "custom_backbones"
MOBILEONE = "tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb.py"
MOBILEONE_DEPLOY = "tsn_imagenet-pretrained-mobileone-s4_deploy_8xb32-1x1x8-100e_kinetics400-rgb.py"
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


@pytest.mark.parametrize("name", [MOBILEONE, MOBILEONE_DEPLOY])
def test_shipped_config_is_mmaction2s(name: str) -> None:
    ours = load_config(CUSTOM / name)
    ref = mmaction_config(name)
    model = ref.model.to_dict()
    model["data_preprocessor"].setdefault("format_shape", "NCHW")
    assert _plain(ours.model) == _plain(model)
    ref_val = [step for step in ref.val_pipeline if not step["type"].startswith("Decord")]  # frames come decoded
    ours_val = mmaction_config_file(CUSTOM / name).val_pipeline
    assert _plain([dict(s) for s in ours_val]) == _plain([dict(s) for s in ref_val])


def test_mmaction2_cannot_build_it_here() -> None:
    """Why there is no reference: MMAction2 needs mmpretrain for this backbone."""
    with pytest.raises(ImportError, match="install mmpretrain"):
        build_mmaction_model(mmaction_config(MOBILEONE).model.to_dict())


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


@pytest.mark.parametrize("name", [MOBILEONE, MOBILEONE_DEPLOY], ids=["train", "deploy"])
def test_engines_match_torch(tmp_path: Path, name: str) -> None:
    config = CUSTOM / name
    model = randomize(build(load_config(config, TINY_MOBILEONE).model), seed=5)
    ckpt = save_checkpoint(model, tmp_path / "model.pth")
    shape = (3, 3, 32, 32)
    engine = build_engine(
        config,
        ckpt,
        backend="onnxruntime",
        precision="fp32",
        out_dir=tmp_path / "ort",
        cfg_options=TINY_MOBILEONE,
        input_shape=shape,
    )
    batch = sample_inputs(shape, 2, mean=engine.manifest.mean, std=engine.manifest.std, seed=6)
    expected = torch_scores(model, batch)
    np.testing.assert_allclose(engine.infer(batch), expected, atol=1e-4, rtol=0)
    on_openvino = load_engine(tmp_path / "ort", backend="openvino")
    np.testing.assert_allclose(on_openvino.infer(batch), expected, atol=1e-4, rtol=0)
