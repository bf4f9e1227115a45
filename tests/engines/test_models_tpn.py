"""TPN (neck + TPNHead) on SlowOnly and TSM: parity with MMAction2 1.2, engines, bad input."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.config import load_config, to_plain
from engines.engine import build_engine, load_engine
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.export import sample_inputs, torch_scores
from engines.models import build
from tests.engines.mmaction_ref import build_mmaction_model, import_reference
from tests.engines.test_models_mobile import mmaction_scores, randomize

ROOT = Path(__file__).resolve().parents[2]
TPN_DIR = ROOT / "configs" / "recognition" / "tpn"
SLOWONLY = "tpn-slowonly_imagenet-pretrained-r50_8xb8-8x8x1-150e_kinetics400-rgb.py"
TSM = "tpn-tsm_imagenet-pretrained-r50_8xb8-1x1x8-150e_sthv1-rgb.py"

#: ResNet-18 levels (256, 512 channels) and a TPN sized to them; 5 classes.
TINY = {
    "model.backbone.depth": 18,
    "model.neck.in_channels": (256, 512),
    "model.neck.out_channels": 256,
    "model.neck.spatial_modulation_cfg.in_channels": (256, 512),
    "model.neck.spatial_modulation_cfg.out_channels": 512,
    "model.neck.level_fusion_cfg.in_channels": (256, 256),
    "model.neck.level_fusion_cfg.mid_channels": (256, 256),
    "model.neck.level_fusion_cfg.out_channels": 512,
    "model.neck.aux_head_cfg.out_channels": 5,
    "model.cls_head.num_classes": 5,
}
TINY_TSM = {**TINY, "model.backbone.num_segments": 4, "model.neck.temporal_modulation_cfg.downsample_scales": (4, 4)}


def mmaction_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """MMAction2's shipped config ``tpn/<name>`` with ``options`` merged, as its ``model`` dict."""
    mmengine_config = import_reference("mmengine.config")
    mmaction = import_reference("mmaction")
    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition" / "tpn" / name
    cfg = mmengine_config.Config.fromfile(str(path))
    cfg.merge_from_dict(options)
    return dict(to_plain(cfg.model))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", [SLOWONLY, TSM])
def test_shipped_config_is_mmaction2s_model(name: str) -> None:
    ours = load_config(TPN_DIR / name)
    assert _plain(ours.model) == _plain(mmaction_config(name, {}))
    assert ours.model["test_cfg"] == {"fcn_test": True}


NO_FCN = {"model.test_cfg": None}
PARITY = [
    pytest.param(SLOWONLY, {}, (2, 1, 3, 4, 32, 32), id="slowonly-fcn"),
    pytest.param(SLOWONLY, {"model.neck.flow_type": "parallel"}, (1, 3, 3, 4, 32, 32), id="slowonly-parallel-3views"),
    pytest.param(
        SLOWONLY, {**NO_FCN, "model.cls_head.average_clips": "score"}, (1, 2, 3, 4, 32, 32), id="slowonly-nofcn"
    ),
    pytest.param(TSM, TINY_TSM, (1, 8, 3, 32, 32), id="tsm-fcn-2clips"),
    pytest.param(
        TSM, {**TINY_TSM, "model.test_cfg": {"fcn_test": True, "num_segs": 8}}, (1, 8, 3, 32, 32), id="tsm-num-segs"
    ),
    pytest.param(TSM, {**TINY_TSM, **NO_FCN}, (2, 4, 3, 32, 32), id="tsm-nofcn"),
    pytest.param(
        TSM,
        {**TINY_TSM, "model.neck.upsample_cfg": None, "model.neck.downsample_cfg": None},
        (1, 4, 3, 32, 32),
        id="tsm-no-flows",
    ),
]


@pytest.mark.parametrize(("name", "options", "shape"), PARITY)
def test_tpn_matches_mmaction(tmp_path: Path, name: str, options: dict[str, Any], shape: tuple[int, ...]) -> None:
    options = {**TINY, **options}
    ref = randomize(build_mmaction_model(mmaction_config(name, options)), seed=1)
    torch.save({"state_dict": ref.state_dict(), "meta": {}}, tmp_path / "zoo.pth")
    ours: Any = build(load_config(TPN_DIR / name, options).model)
    load_checkpoint(ours, tmp_path / "zoo.pth")
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    expected = mmaction_scores(ref, x)
    with torch.no_grad():
        got = ours(x)
    assert got.shape == (shape[0], 5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_tpn_keys() -> None:
    keys = build(load_config(TPN_DIR / SLOWONLY).model).state_dict().keys()
    for key in (
        "neck.spatial_modulation.spatial_modulation.0.0.conv.weight",  # 1024 -> 2048, stride 2
        "neck.temporal_modulation_ops.1.conv.conv.weight",  # no norm in the temporal conv
        "neck.downsample_ops.0.conv.conv.weight",
        "neck.level_fusion_1.downsamples.1.conv.bn.running_var",
        "neck.level_fusion_2.fusion_conv.conv.weight",
        "neck.pyramid_fusion.bn.weight",
        "neck.aux_head.conv.bn.running_mean",  # training-only, but in the checkpoints
        "neck.aux_head.fc.bias",
        "cls_head.fc_cls.weight",
    ):
        assert key in keys, key
    assert not any(k.startswith("neck.spatial_modulation.spatial_modulation.1") for k in keys)  # identity
    assert not any(k.startswith("neck.temporal_modulation_ops.0.conv.bn") for k in keys)


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [
        pytest.param(SLOWONLY, TINY, (1, 3, 4, 32, 32), id="slowonly"),
        pytest.param(TSM, TINY_TSM, (8, 3, 32, 32), id="tsm"),
    ],
)
def test_engines_match_torch(tmp_path: Path, name: str, options: dict[str, Any], shape: tuple[int, ...]) -> None:
    config = TPN_DIR / name
    model = randomize(build(load_config(config, options).model), seed=3)
    ckpt = save_checkpoint(model, tmp_path / "model.pth")
    engine = build_engine(
        config,
        ckpt,
        backend="onnxruntime",
        precision="fp32",
        out_dir=tmp_path / "ort",
        cfg_options=options,
        input_shape=shape,
    )
    batch = sample_inputs(shape, 2, mean=engine.manifest.mean, std=engine.manifest.std, seed=4)
    expected = torch_scores(model, batch)
    got = engine.infer(batch)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    on_openvino = load_engine(tmp_path / "ort", backend="openvino")
    np.testing.assert_allclose(on_openvino.infer(batch), expected, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- bad input


def test_checkpoint_without_the_aux_head_is_refused(tmp_path: Path) -> None:
    no_aux = build(load_config(TPN_DIR / SLOWONLY, {**TINY, "model.neck.aux_head_cfg": None}).model)
    save_checkpoint(no_aux, tmp_path / "no_aux.pth")
    model = build(load_config(TPN_DIR / SLOWONLY, TINY).model)
    with pytest.raises(CheckpointError, match=r"missing.*neck\.aux_head\.") as info:
        load_checkpoint(model, tmp_path / "no_aux.pth", config_name=SLOWONLY)
    assert "\n" not in str(info.value)


def test_bad_inputs_and_configs() -> None:
    tsm = build(load_config(TPN_DIR / TSM, TINY_TSM).model)
    with pytest.raises(InputShapeError, match=r"multiple of num_segs=4, got 6"):
        tsm(torch.zeros(1, 6, 3, 32, 32))
    no_fcn = build(load_config(TPN_DIR / TSM, {**TINY_TSM, "model.test_cfg": None}).model)
    with pytest.raises(InputShapeError, match=r"pool the 8 views to one time step, got 2; set model.test_cfg.fcn_test"):
        no_fcn(torch.zeros(1, 8, 3, 32, 32))
    model = load_config(TPN_DIR / SLOWONLY, TINY).model
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {**model, "neck": {**model["neck"], "flow_type": "serial"}},
            r"TPN.flow_type: expected 'cascade' or 'parallel'",
        ),
        ({**model, "neck": {**model["neck"], "level_fusion_cfg": None}}, r"TPN.level_fusion_cfg: expected a dict"),
        (
            {**model, "neck": {**model["neck"], "temporal_modulation_cfg": {"downsample_scales": (8,)}}},
            r"downsample_scales: expected 2 entries",
        ),
        (
            {**model, "cls_head": {"type": "I3DHead", "num_classes": 5, "in_channels": 2048}},
            r"fcn_test: fully-convolutional testing is supported only with a neck and TPNHead",
        ),
    ]
    for cfg, match in cases:
        with pytest.raises(ModelConfigError, match=match):
            build(copy.deepcopy(cfg))
