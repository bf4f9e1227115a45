"""MobileNetV2TSM and MobileOneTSM: parity, key layout, re-parameterization, engines, bad input.

MobileNetV2TSM is compared with MMAction2's own model built from its shipped config.
MMAction2's ``MobileOneTSM`` imports mmpretrain, which is not installed (and not a
dependency), so MMAction2 cannot build it here. For MobileOne the tests check what can be
checked without it: the key layout written out from mmpretrain 1.x's
``mmpretrain/models/backbones/mobileone.py`` source, the output shapes its docstring
documents, the parameter count MMAction2's metafile gives, the re-parameterization
identity (train-time branches == fused deploy conv) and the temporal-shift placement
against MMAction2's own ``TemporalShift.shift``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.config import load_config, to_plain
from engines.engine import build_engine, load_engine
from engines.errors import CheckpointError, ModelConfigError
from engines.export import sample_inputs, torch_scores
from engines.models import build
from engines.models.mobileone import MobileOne, MobileOneBlock
from tests.engines.mmaction_ref import build_mmaction_model, import_reference

ROOT = Path(__file__).resolve().parents[2]
TSM_DIR = ROOT / "configs" / "recognition" / "tsm"
MOBILENET = "tsm_imagenet-pretrained-mobilenetv2_8xb16-1x1x8-100e_kinetics400-rgb.py"
MOBILEONE = "tsm_imagenet-pretrained-mobileone-s4_8xb16-1x1x16-50e_kinetics400-rgb.py"
MOBILEONE_DEPLOY = "tsm_imagenet-pretrained-mobileone-s4_deploy_8xb16-1x1x16-50e_kinetics400-rgb.py"

#: A small MobileOne with every block kind: several conv branches, SE, identity-BN branches.
TINY_ARCH: dict[str, list[Any]] = {
    "num_blocks": [1, 2, 2, 1],
    "width_factor": [0.25, 0.25, 0.5, 0.5],
    "num_conv_branches": [2, 3, 1, 2],
    "num_se_blocks": [0, 1, 1, 1],
}
TINY_MOBILEONE = {  # 4 segments, 5 classes, tiny arch; the head's channels follow the arch
    "model.backbone.arch": {"_delete_": True, **TINY_ARCH},
    "model.backbone.num_segments": 4,
    "model.cls_head.num_segments": 4,
    "model.cls_head.in_channels": 256,
    "model.cls_head.num_classes": 5,
}
TINY_MOBILENET = {
    "model.backbone.num_segments": 4,
    "model.backbone.widen_factor": 0.5,
    "model.cls_head.num_segments": 4,
    "model.cls_head.num_classes": 5,
}


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every float parameter and buffer random, activations O(1): conv/linear fan-in scaled,
    norm weights and variances in [0.5, 1.5), biases and means in [-0.2, 0.2)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=gen)
            if tensor.dim() > 1:
                tensor.copy_((values * 2 - 1) * (3 / tensor[0].numel()) ** 0.5)
            elif name.endswith(("running_var", "weight")):
                tensor.copy_(0.5 + values)
            else:
                tensor.copy_((values - 0.5) * 0.4)
    return module.eval()


def mmaction_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """MMAction2's shipped config ``tsm/<name>``, with ``options`` merged, as its ``model`` dict."""
    mmengine_config = import_reference("mmengine.config")
    mmaction = import_reference("mmaction")
    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "tsm" / name
    cfg = mmengine_config.Config.fromfile(str(path))
    cfg.merge_from_dict(options)
    return dict(to_plain(cfg.model))


def mmaction_scores(model: Any, inputs: torch.Tensor) -> torch.Tensor:
    """What MMAction2's ``predict`` stores as ``pred_score``, stacked over the batch."""
    from mmaction.structures import ActionDataSample

    samples = [ActionDataSample() for _ in range(inputs.shape[0])]
    with torch.no_grad():
        results = model.predict(inputs, samples)
    return torch.stack([r.pred_score for r in results])


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", [MOBILENET, MOBILEONE, MOBILEONE_DEPLOY])
def test_shipped_config_is_mmaction2s_model(name: str) -> None:
    ours = load_config(TSM_DIR / name)
    ref = mmaction_config(name, {})
    ref["data_preprocessor"].setdefault("format_shape", "NCHW")  # MMAction2's default, spelled out in ours
    assert _plain(ours.model) == _plain(ref)
    assert ours.clip is not None and ours.clip.input_format == "NCHW"


# --------------------------------------------------------------------------- MobileNetV2TSM


@pytest.mark.parametrize(
    ("options", "views"),
    [
        pytest.param({}, (1, 12), id="3clips-prob"),
        pytest.param({"model.cls_head.average_clips": "score"}, (2, 4), id="score"),
        pytest.param({"model.backbone.is_shift": False, "model.backbone.shift_div": 4}, (1, 8), id="no-shift"),
        pytest.param({"model.backbone.shift_div": 4, "model.backbone.widen_factor": 1.0}, (1, 4), id="div4-wide"),
    ],
)
def test_mobilenet_v2_tsm_matches_mmaction(tmp_path: Path, options: dict[str, Any], views: tuple[int, int]) -> None:
    options = {**TINY_MOBILENET, **options}
    ref = randomize(build_mmaction_model(mmaction_config(MOBILENET, options)), seed=1)
    torch.save({"state_dict": ref.state_dict(), "meta": {}}, tmp_path / "zoo.pth")
    ours = build(load_config(TSM_DIR / MOBILENET, options).model)
    load_checkpoint(ours, tmp_path / "zoo.pth")
    x = torch.randn(*views, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    expected = mmaction_scores(ref, x)
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (views[0], 5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_mobilenet_v2_tsm_key_layout() -> None:
    keys = build({"type": "MobileNetV2TSM"}).state_dict().keys()
    assert "layer1.0.conv.0.conv.weight" in keys  # expand_ratio=1: no expand conv, never shifted
    assert "layer2.0.conv.0.conv.weight" in keys  # stride 2: no residual, not shifted
    assert "layer2.1.conv.0.net.conv.weight" in keys  # residual block: the expand conv is shifted
    assert "layer7.0.conv.0.conv.weight" in keys  # 160 -> 320: no residual
    assert "conv2.bn.running_var" in keys
    assert sum(k.endswith(".net.conv.weight") for k in keys) == 10  # 1 + 2 + 3 + 2 + 2 residual blocks


# --------------------------------------------------------------------------- MobileOne


def test_mobileone_s0_shapes_from_mmpretrain_docstring() -> None:
    model = MobileOne("s0", out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 48, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 1024, 7, 7)]


def test_mobileone_s4_tsm_layout_and_size() -> None:
    model: Any = build(load_config(TSM_DIR / MOBILEONE).model)
    keys = model.backbone.state_dict().keys()
    # stem: 3 -> 64 at stride 2, so no identity branch; one 3x3 branch and the 1x1 scale branch
    assert {"stage0.net.branch_conv_list.0.conv.weight", "stage0.net.branch_scale.norm.running_var"} <= keys
    assert not any(k.startswith("stage0.net.branch_norm") for k in keys)
    # stage1 block 1: depthwise (192 ch, stride 1) has the identity BN; its pointwise 192 -> 192 too
    assert {"stage1.2.net.branch_norm.weight", "stage1.3.net.branch_norm.running_mean"} <= keys
    assert "stage1.3.net.branch_scale.conv.weight" not in keys  # 1x1 blocks have no scale branch
    # s4: SE in the last 5 of stage3's 10 blocks (both convs of each) and in stage4's one block
    se_blocks = sorted({k.split(".net.")[0] for k in keys if ".se." in k})
    assert se_blocks == [f"stage3.{i}" for i in range(10, 20)] + ["stage4.0", "stage4.1"]
    assert tuple(model.backbone.state_dict()["stage3.10.net.se.conv1.conv.weight"].shape) == (
        56,
        896,
        1,
        1,
    )  # 896 // 16
    assert "stage3.10.net.se.conv1.conv.bias" in keys
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6, 2) == 13.72  # MMAction2's metafile: "Parameters: 13.72M" (train form, with head)


def test_reparameterization_identity(tmp_path: Path) -> None:
    """Train-time branches and their fused conv give the same features; keys are the deploy model's."""
    train = randomize(MobileOne(TINY_ARCH, out_indices=(1, 3)), seed=3)
    deploy_built = MobileOne(TINY_ARCH, out_indices=(1, 3), deploy=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = train(x)
    assert isinstance(train, MobileOne)
    train.switch_to_deploy()
    assert all(m.deploy for m in train.modules() if isinstance(m, MobileOneBlock))
    assert train.state_dict().keys() == deploy_built.state_dict().keys()
    save_checkpoint(train, tmp_path / "fused.pth")
    load_checkpoint(deploy_built.eval(), tmp_path / "fused.pth")
    with torch.no_grad():
        fused, loaded = train(x), deploy_built(x)
    for want, got, again in zip(expected, fused, loaded, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(again, got, rtol=0, atol=0)


def test_mobileone_tsm_shifts_before_every_block() -> None:
    """MobileOneTSM == plain MobileOne whose every block input goes through MMAction2's own shift."""
    shift = import_reference("mmaction.models.backbones.resnet_tsm").TemporalShift.shift
    tsm = randomize(build({"type": "MobileOneTSM", "arch": TINY_ARCH, "num_segments": 4, "shift_div": 4}), seed=5)
    plain = MobileOne(TINY_ARCH).eval()
    plain.load_state_dict({k.replace(".net.", "."): v for k, v in tsm.state_dict().items()}, strict=True)
    blocks = [m for m in plain.modules() if isinstance(m, MobileOneBlock)]
    for block in blocks:
        block.register_forward_pre_hook(lambda _m, args: (shift(args[0], 4, 4),))
    assert len(blocks) == 1 + 2 * sum(TINY_ARCH["num_blocks"])
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(tsm(x), plain(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
def test_mobileone_tsm_recognizer(tmp_path: Path, deploy: bool) -> None:
    """The shipped config's recognizer (tiny arch) loads a zoo-layout checkpoint and scores like TSM."""
    name = MOBILEONE_DEPLOY if deploy else MOBILEONE
    model: Any = randomize(build(load_config(TSM_DIR / name, TINY_MOBILEONE).model), seed=7)
    save_checkpoint(model, tmp_path / "zoo.pth")
    again = build(load_config(TSM_DIR / name, TINY_MOBILEONE).model)
    load_checkpoint(again, tmp_path / "zoo.pth")
    x = torch.randn(1, 8, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        scores = again(x)
        features = model.backbone(x.flatten(0, 1)).mean((2, 3))
        logits = model.cls_head.fc_cls(features).reshape(2, 4, 5).mean(1)  # two clips of 4 segments
    torch.testing.assert_close(scores, logits.softmax(-1).mean(0, keepdim=True), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize(
    ("name", "options"),
    [
        pytest.param(MOBILENET, TINY_MOBILENET, id="mobilenetv2"),
        pytest.param(MOBILEONE, TINY_MOBILEONE, id="mobileone"),
        pytest.param(MOBILEONE_DEPLOY, TINY_MOBILEONE, id="mobileone-deploy"),
    ],
)
def test_engines_match_torch(tmp_path: Path, name: str, options: dict[str, Any]) -> None:
    config = TSM_DIR / name
    model = randomize(build(load_config(config, options).model), seed=9)
    ckpt = save_checkpoint(model, tmp_path / "model.pth")
    shape = (4, 3, 32, 32)
    engine = build_engine(
        config,
        ckpt,
        backend="onnxruntime",
        precision="fp32",
        out_dir=tmp_path / "ort",
        cfg_options=options,
        input_shape=shape,
    )
    batch = sample_inputs(shape, 2, mean=engine.manifest.mean, std=engine.manifest.std, seed=10)
    expected = torch_scores(model, batch)
    got = engine.infer(batch)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    on_openvino = load_engine(tmp_path / "ort", backend="openvino")
    np.testing.assert_allclose(on_openvino.infer(batch), expected, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- bad input


def test_train_form_checkpoint_is_refused_by_the_deploy_model(tmp_path: Path) -> None:
    train = build(load_config(TSM_DIR / MOBILEONE, TINY_MOBILEONE).model)
    save_checkpoint(train, tmp_path / "train.pth")
    deploy = build(load_config(TSM_DIR / MOBILEONE_DEPLOY, TINY_MOBILEONE).model)
    with pytest.raises(CheckpointError, match=r"missing.*branch_reparam.*unexpected.*branch_conv_list") as info:
        load_checkpoint(deploy, tmp_path / "train.pth", config_name=MOBILEONE_DEPLOY)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"type": "MobileOneTSM", "arch": "s9"}, r"MobileOneTSM.arch: unknown arch 's9'; valid archs: s0, s1"),
        ({"type": "MobileOneTSM", "arch": {"num_blocks": [1, 1]}}, r"arch: expected the keys num_blocks, width"),
        (
            {"type": "MobileOneTSM", "arch": {**TINY_ARCH, "num_se_blocks": [0, 0, 3, 0]}},
            r"stage 3 has 3 SE blocks but 2 blocks",
        ),
        ({"type": "MobileOneTSM", "arch": "s0", "out_indices": (2, 3)}, r"out_indices: expected one stage"),
        ({"type": "MobileOneTSM", "arch": "s0", "out_indices": (4,)}, r"out_indices: expected stage indices in -4..3"),
        (
            {"type": "MobileOneTSM", "arch": "s0", "se_cfg": {"reduction": 4}},
            r"se_cfg: unknown key\(s\) \['reduction'\]",
        ),
        ({"type": "MobileNetV2TSM", "num_segments": 0}, r"MobileNetV2TSM.num_segments: expected a positive int"),
        ({"type": "MobileNetV2TSM", "out_indices": (8,)}, r"out_indices: expected indices in 0..7"),
    ],
)
def test_bad_configs(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build(copy.deepcopy(cfg), where="model.backbone")
