"""Skeleton GCNs (ST-GCN, ST-GCN++, 2s-AGCN): parity with MMAction2 1.2, configs, errors, engines."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines.checkpoint import save_checkpoint
from engines.config import read_config, to_plain
from engines.engine import load_engine
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.models import build
from engines.models.gcn_graph import Graph
from engines.skeleton.gcn_engine import GCNInputSpec, build_gcn_engine, gcn_input_spec
from tests.engines.mmaction_ref import import_reference, mmaction_registry
from tests.engines.test_models_resnet3d import _randomize

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("stgcn", "stgcnpp", "2s-agcn")
ZOO = {family: f"{family}_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py" for family in FAMILIES}
JOINTS = {"coco": 17, "nturgb+d": 25, "openpose": 18}
CUSTOM_LAYOUT = {"num_node": 5, "inward": [(1, 0), (2, 1), (3, 0), (4, 3)], "center": 0}


def _config(family: str, name: str | None = None) -> Any:
    return read_config(ROOT / "configs/skeleton" / family / (name or ZOO[family]))


def _reference(module: str) -> Any:
    """A module of MMAction2 (importing its package needs the placeholder :func:`mmaction_registry` sets up)."""
    mmaction_registry()
    return import_reference(module)


def _keypoints(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * 2 - 1


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    assert actual.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    assert float((actual - expected).abs().max()) <= tol * scale


def _twins(cfg: dict[str, Any], seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """MMAction2's module (randomized, eval) and ours from the same dict, with its weights loaded strictly."""
    ref = mmaction_registry().build(copy.deepcopy(cfg))
    ref.eval()
    _randomize(ref, seed)
    ours = build(copy.deepcopy(cfg), where="model")
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


# --------------------------------------------------------------------------- graph


@pytest.mark.parametrize("layout", [*JOINTS, "custom"])
@pytest.mark.parametrize("mode", ["stgcn_spatial", "spatial", "binary_adj"])
@pytest.mark.parametrize("max_hop", [1, 2])
def test_graph_adjacency_equals_mmaction(layout: str, mode: str, max_hop: int) -> None:
    graph_mod = _reference("mmaction.models.utils.graph")
    spec: Any = CUSTOM_LAYOUT if layout == "custom" else layout
    ours, ref = Graph(spec, mode, max_hop), graph_mod.Graph(spec, mode, max_hop)
    assert ours.A.dtype == ref.A.dtype and ours.A.shape == ref.A.shape
    np.testing.assert_array_equal(ours.A, ref.A)
    assert ours.num_node == JOINTS.get(layout, 5)


@pytest.mark.parametrize(
    ("graph_cfg", "match"),
    [
        (dict(layout="h36m"), "unknown layout 'h36m'; valid: openpose, nturgb\\+d, coco"),
        (dict(layout="coco", mode="distance"), "unknown mode 'distance'"),
        (dict(layout={"num_node": 3}), "needs the key\\(s\\) \\['inward', 'center'\\]"),
        (dict(layout="coco", strategy="x"), "unknown key\\(s\\) \\['strategy'\\]"),
    ],
)
def test_bad_graph_configs(graph_cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        build(dict(type="STGCN", graph_cfg=graph_cfg))


# --------------------------------------------------------------------------- backbones

_COCO = dict(layout="coco", mode="spatial")
ZOO_BACKBONES: dict[str, dict[str, Any]] = {
    "stgcn": dict(type="STGCN", graph_cfg=dict(layout="coco", mode="stgcn_spatial")),
    "2s-agcn": dict(type="AAGCN", graph_cfg=_COCO, gcn_attention=False),
}
#: Reduced widths and depths with every other option; the model-zoo configs are compared whole below.
BACKBONES: dict[str, dict[str, Any]] = {
    "stgcn-mvc-post-offset-ratio3": dict(
        type="STGCN", graph_cfg=dict(layout="openpose", mode="stgcn_spatial", max_hop=2), data_bn_type="MVC",
        base_channels=8, ch_ratio=3, num_stages=6, inflate_stages=[3, 5], down_stages=[4],
        gcn_conv_pos="post", gcn_adaptive="offset", tcn_dropout=0.1, tcn_dilation=2,
    ),
    "stgcn-no-input-stage-per-stage-lists": dict(
        type="STGCN", graph_cfg=dict(layout="nturgb+d", mode="spatial"), in_channels=8, base_channels=8,
        data_bn_type=None, num_stages=4, inflate_stages=[3], down_stages=[3],
        gcn_adaptive=[None, "importance", "init", "offset"], gcn_with_res=(True, False, True, True),
    ),
    "stgcnpp-mstcn-mid-ms_cfg": dict(
        type="STGCN", graph_cfg=_COCO, base_channels=16, num_stages=5, inflate_stages=[3], down_stages=[3, 4],
        gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn", tcn_mid_channels=0.25,
        tcn_ms_cfg=[(5, 1), (3, 2), ("max", 3), "1x1"],
    ),
    "aagcn-attention-vc": dict(
        type="AAGCN", graph_cfg=dict(layout="nturgb+d", mode="spatial"), data_bn_type="VC", base_channels=16,
        num_stages=5, inflate_stages=[3], down_stages=[4],
    ),
    "aagcn-fixed-graph-per-stage": dict(
        type="AAGCN", graph_cfg=dict(layout="openpose", mode="stgcn_spatial"), data_bn_type=None, base_channels=8,
        num_stages=3, inflate_stages=[2], down_stages=[3], gcn_adaptive=False, gcn_attention=(True, True, False),
        gcn_coff_embedding=2,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_matches_mmaction(name: str) -> None:
    cfg = BACKBONES[name]
    ref, ours = _twins(cfg)
    layout = cfg["graph_cfg"]["layout"]
    channels = cfg.get("in_channels", 3)
    x = _keypoints((2, 2, 12, JOINTS[layout], channels))
    with torch.no_grad():
        want, got = ref(x), ours(x)
        want64, got64 = ref.double()(x.double()), ours.double()(x.double())
    assert want.abs().max() > 1e-3  # the features are not all zero (the comparison means something)
    _assert_close(got64, want64, tol=1e-10)  # the same arithmetic
    # float32: within 1e-5, or within twice MMAction2's own float32 rounding where deep random
    # stacks (AAGCN's attention doubles its features each block) reach values in the thousands.
    rounding = float((want.double() - want64).abs().max()) / max(1.0, float(want64.abs().max()))
    _assert_close(got, want, tol=max(1e-5, 2 * rounding))


def _zoo_model_cfg(family: str) -> dict[str, Any]:
    """The model section of MMAction2's own model-zoo config (shipped in its wheel)."""
    mmaction = _reference("mmaction")
    from mmengine import Config

    path = Path(mmaction.__file__).parent / ".mim/configs/skeleton" / family / ZOO[family]
    return to_plain(Config.fromfile(str(path)).model)


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_configs_carry_the_model_zoo_model(family: str) -> None:
    zoo = _zoo_model_cfg(family)
    for path in sorted((ROOT / "configs/skeleton" / family).glob("*.py")):
        assert to_plain(read_config(path).model) == zoo, path.name


@pytest.mark.parametrize("family", FAMILIES)
def test_recognizer_matches_mmaction_predict(family: str) -> None:
    """MMAction2's ``predict`` (backbone, head, ``predict_by_feat``) with each ``average_clips``."""
    structures = _reference("mmaction.structures")
    ref, ours = _twins(_zoo_model_cfg(family))
    batch, clips = 2, 2
    x = _keypoints((batch, clips, 2, 8, 17, 3), seed=1)
    for average_clips in ("prob", "score", None):
        ref.cls_head.average_clips = ours.cls_head.average_clips = average_clips
        with torch.no_grad():
            samples = ref(x, [structures.ActionDataSample() for _ in range(batch)], mode="predict")
            got = ours(x)
        want = torch.stack([s.pred_score for s in samples])
        assert got.shape == ((batch, 60) if average_clips else (batch, clips, 60))
        if average_clips != "prob":  # raw scores vary (probabilities of random weights may saturate)
            assert float(want.std()) > 1e-3
        _assert_close(got, want)


def test_recognizer_takes_six_axis_input() -> None:
    model = build(_config("stgcn").model)
    with pytest.raises(
        InputShapeError, match=r"expects \(N, num_clips, M, T, V, C\) input, got shape \(2, 16, 17, 3\)"
    ):
        model(torch.zeros(2, 16, 17, 3))


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (dict(gcn_adaptive="learned"), ModelConfigError, "gcn_adaptive: expected one of"),
        (dict(gcn_conv_pos="mid"), ModelConfigError, "gcn_conv_pos: expected one of"),
        (dict(tcn_type="tcn3"), ModelConfigError, "tcn_type: expected one of \\('unit_tcn', 'mstcn'\\)"),
        (dict(tcn_ms_cfg=[(3, 1), "1x1"]), ModelConfigError, "unit_tcn takes no \\['tcn_ms_cfg'\\]"),
        (dict(tcn_type="mstcn", tcn_ms_cfg=[(3, 1), "3x3"]), ModelConfigError, "tcn_ms_cfg\\[1\\]: expected"),
        (dict(tcn_type="mstcn", tcn_mid_channels=2), ModelConfigError, "tcn_mid_channels: expected a positive float"),
        (dict(gcn_type="unit_aagcn"), ModelConfigError, "gcn_type: only 'unit_gcn' is supported"),
        (dict(gcn_norm="LN"), ModelConfigError, "unknown norm type 'LN'"),
        (dict(data_bn_type="NVC"), ModelConfigError, "data_bn_type: expected 'MVC', 'VC' or None"),
        (dict(gcn_dropout=0.1), ModelConfigError, "unknown key\\(s\\) 'gcn_dropout'"),
        (dict(inflate_stages="five"), ModelConfigError, "inflate_stages: expected a list of ints"),
    ],
)
def test_bad_stgcn_configs(overrides: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build(dict(ZOO_BACKBONES["stgcn"], **overrides), where="model.backbone")


def test_aagcn_refuses_mstcn_which_mmaction_cannot_run() -> None:
    with pytest.raises(ModelConfigError, match=r"AAGCN\.tcn_type: only 'unit_tcn' works, got 'mstcn'"):
        build(dict(ZOO_BACKBONES["2s-agcn"], tcn_type="mstcn"))


def test_mvc_backbone_checks_the_number_of_people() -> None:
    model = build(ZOO_BACKBONES["2s-agcn"])
    with pytest.raises(InputShapeError, match="built for num_person=2, got M=3"):
        model(torch.zeros(1, 3, 8, 17, 3))


def test_recognizer_gcn_refuses_pixel_normalisation() -> None:
    cfg = dict(_config("stgcn").model, data_preprocessor=dict(type="ActionDataPreprocessor", mean=[0.0], std=[1.0]))
    with pytest.raises(ModelConfigError, match="unknown or unsupported key\\(s\\) \\['mean', 'std'\\]"):
        build(cfg)


# --------------------------------------------------------------------------- input spec


def test_input_spec_comes_from_the_test_pipeline() -> None:
    cfg = _config("stgcnpp")
    spec = gcn_input_spec(to_plain(cfg.model), to_plain(cfg.test_pipeline))
    assert spec == GCNInputSpec(num_clips=10, num_person=2, clip_len=100, num_joints=17, channels=3)
    assert spec.shape == (10, 2, 100, 17, 3)
    assert gcn_input_spec(to_plain(cfg.model), to_plain(cfg.test_pipeline), num_clips=1).num_clips == 1


@pytest.mark.parametrize(
    ("model_patch", "pipeline_patch", "match"),
    [
        ({"type": "Recognizer3D"}, None, "model.type is 'Recognizer3D'; GCN engines take RecognizerGCN"),
        (None, {2: None}, "no UniformSampleFrames step"),
        (None, {2: dict(type="UniformSampleFrames", clip_len=0)}, "clip_len: expected a positive int, got 0"),
        (None, {4: dict(type="FormatGCNInput", num_person=3)}, "num_person=3 but model.backbone.num_person=2"),
    ],
)
def test_bad_input_specs(model_patch: dict[str, Any] | None, pipeline_patch: dict[int, Any] | None, match: str) -> None:
    cfg = _config("2s-agcn")
    model = dict(to_plain(cfg.model), **(model_patch or {}))
    pipeline = list(to_plain(cfg.test_pipeline))
    for index, step in (pipeline_patch or {}).items():
        pipeline[index] = step
    with pytest.raises(ModelConfigError, match=match):
        gcn_input_spec(model, [s for s in pipeline if s is not None])


# --------------------------------------------------------------------------- engines

SMALL = {"test_pipeline.2.clip_len": 12}  # T = 12 keeps the export quick; the structure is the zoo's


def _zoo_checkpoint(family: str, path: Path, num_classes: int = 60, seed: int = 0) -> Path:
    """A random-weight checkpoint in model-zoo layout: {'state_dict': backbone.* / cls_head.*, 'meta'}."""
    model_cfg = to_plain(_config(family).model)
    model_cfg["cls_head"]["num_classes"] = num_classes
    model = build(model_cfg)
    _randomize(model, seed)
    classes = [f"action {i}" for i in range(num_classes)]
    save_checkpoint(model, path, meta={"dataset_meta": {"classes": classes}, "mmaction_version": "1.2.0"})
    state = torch.load(path, weights_only=True)["state_dict"]
    assert {key.split(".")[0] for key in state} == {"backbone", "cls_head"}
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_from_zoo_checkpoint_matches_torch_on_both_backends(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engines.skeleton.gcn_engine as gcn_engine
    from engines.checkpoint import load_checkpoint

    ckpt = _zoo_checkpoint(family, tmp_path / f"{family}.pth")
    config = ROOT / "configs/skeleton" / family / ZOO[family]
    kwargs: dict[str, Any] = dict(
        backend="openvino", cfg_options=SMALL, num_clips=2, cache_dir=tmp_path / "cache", num_threads=1
    )
    engine = build_gcn_engine(config, ckpt, **kwargs)
    assert engine.spec.shape == (2, 2, 12, 17, 3)
    assert engine.num_classes == 60 and engine.class_names is not None and engine.class_names[7] == "action 7"
    assert [t.name for t in engine.engine.inputs] == ["keypoints"]
    assert engine.engine.inputs[0].shape == ("batch", 2, 2, 12, 17, 3)
    assert engine.engine.outputs[0].shape == ("batch", 60)

    torch_model = build(to_plain(read_config(config, SMALL).model))
    load_checkpoint(torch_model, ckpt)
    x = _keypoints((3, *engine.spec.shape), seed=2).numpy()
    with torch.no_grad():
        want = torch_model(torch.from_numpy(x)).numpy()
    got_ov = engine.infer(x)
    with load_engine(engine.engine.engine_dir, "onnxruntime", num_threads=1) as ort_engine:
        got_ort = ort_engine.run({"keypoints": x})["scores"]
    engine.close()
    assert got_ov.shape == got_ort.shape == (3, 60)
    np.testing.assert_allclose(want.sum(axis=1), 1.0, rtol=1e-5)  # 'prob': mean softmax over the clips
    assert float(np.abs(got_ort - want).max()) <= 1e-4
    assert float(np.abs(got_ov - want).max()) <= 1e-4
    with pytest.raises(InputShapeError, match=r"expected \(N, 2, 2, 12, 17, 3\) \(N, num_clips, M, T, V, C\)"):
        engine.infer(x[:, :1])

    def no_rebuild(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the cached engine was rebuilt")

    monkeypatch.setattr(gcn_engine, "export_gcn_engine", no_rebuild)
    with build_gcn_engine(config, ckpt, **kwargs) as again:  # the second call opens the cached engine
        assert again.engine.engine_dir == engine.engine.engine_dir
        np.testing.assert_array_equal(again.infer(x), got_ov)


@pytest.mark.parametrize(
    ("family", "num_classes", "match"),
    [
        # An ST-GCN checkpoint for the ST-GCN++ config: other units, other shapes.
        ("stgcn", 60, r"does not fit config .*stgcnpp_.*: \d+ missing: backbone\.gcn\.0\.gcn\.down\..*; "
                      r"\d+ unexpected: backbone\.gcn\.0\.gcn\.PA, "),
        ("stgcnpp", 120, r"2 mis-shaped: cls_head.fc.weight \(checkpoint \(120, 256\) vs model \(60, 256\)\), "
                         r"cls_head.fc.bias .*a different num_classes\?"),
    ],
)  # fmt: skip
def test_checkpoint_that_does_not_fit_is_one_clear_line(
    family: str, num_classes: int, match: str, tmp_path: Path
) -> None:
    ckpt = _zoo_checkpoint(family, tmp_path / "other.pth", num_classes=num_classes)
    config = ROOT / "configs/skeleton/stgcnpp" / ZOO["stgcnpp"]
    with pytest.raises(CheckpointError, match=match) as info:
        build_gcn_engine(config, ckpt, backend="onnxruntime", cfg_options=SMALL, cache_dir=tmp_path / "c")
    assert "\n" not in str(info.value)
    assert not any((tmp_path / "c").glob("*/manifest.json"))  # nothing half-built was cached


def test_engine_refuses_a_video_recognizer_config(tmp_path: Path) -> None:
    config = ROOT / "configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"
    with pytest.raises(ModelConfigError, match=r"model\.type is 'Recognizer2D'; GCN engines take RecognizerGCN"):
        build_gcn_engine(config, tmp_path / "missing.pth", backend="onnxruntime", cache_dir=tmp_path)
