"""2D recognizers (TSN, TSM): parity with MMAction2, shipped configs, bad configs, ONNX export."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import torch
from torch import nn

from engines.errors import InputShapeError, ModelConfigError, UnknownTypeError
from engines.models import build
from engines.models.heads import average_clip
from engines.models.resnet_tsm import TemporalShift

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "recognition").glob("ts[nm]/*.py"))
NUM_CLASSES = 7


def tsn_cfg(depth: int = 18, average_clips: str | None = "prob", **backbone: Any) -> dict[str, Any]:
    return dict(
        type="Recognizer2D",
        backbone=dict(type="ResNet", depth=depth, norm_eval=False, **backbone),
        cls_head=dict(
            type="TSNHead",
            num_classes=NUM_CLASSES,
            in_channels=512 if depth < 50 else 2048,
            consensus=dict(type="AvgConsensus", dim=1),
            dropout_ratio=0.4,
            average_clips=average_clips,
        ),
        data_preprocessor=dict(
            type="ActionDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            format_shape="NCHW",
        ),
    )


def tsm_cfg(
    depth: int = 18, num_segments: int = 8, average_clips: str | None = "prob", **backbone: Any
) -> dict[str, Any]:
    temporal_pool = backbone.get("temporal_pool", False)
    return dict(
        type="Recognizer2D",
        backbone=dict(type="ResNetTSM", depth=depth, num_segments=num_segments, norm_eval=False, **backbone),
        cls_head=dict(
            type="TSMHead",
            num_classes=NUM_CLASSES,
            in_channels=512 if depth < 50 else 2048,
            num_segments=num_segments,
            is_shift=True,
            temporal_pool=temporal_pool,
            average_clips=average_clips,
        ),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[1, 2, 3], std=[4, 5, 6]),
    )


def randomize_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every batch norm non-trivial statistics so the parity check covers them."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


def mmaction_scores(model: Any, inputs: torch.Tensor) -> torch.Tensor:
    """What MMAction2's ``predict`` stores as ``pred_score``, stacked over the batch."""
    from mmaction.structures import ActionDataSample

    samples = [ActionDataSample() for _ in range(inputs.shape[0])]
    with torch.no_grad():
        results = model.predict(inputs, samples)
    return torch.stack([r.pred_score for r in results])


PARITY_CASES = [
    pytest.param(tsn_cfg(average_clips=None), (2, 3), 32, id="tsn-r18-none"),
    pytest.param(tsn_cfg(average_clips="score"), (2, 3), 32, id="tsn-r18-score"),
    pytest.param(tsn_cfg(average_clips="prob"), (2, 3), 64, id="tsn-r18-prob"),
    pytest.param(tsn_cfg(depth=50, style="caffe"), (1, 2), 32, id="tsn-r50-caffe"),
    pytest.param(tsm_cfg(average_clips=None), (1, 24), 32, id="tsm-r18-3crop-none"),
    pytest.param(tsm_cfg(average_clips="score"), (1, 24), 32, id="tsm-r18-3crop-score"),
    pytest.param(tsm_cfg(average_clips="prob"), (2, 8), 32, id="tsm-r18-prob"),
    pytest.param(tsm_cfg(num_segments=4, shift_div=4), (2, 8), 32, id="tsm-r18-div4"),
    pytest.param(tsm_cfg(num_segments=4, shift_place="block"), (1, 8), 32, id="tsm-r18-block"),
    pytest.param(tsm_cfg(num_segments=4, temporal_pool=True), (1, 8), 32, id="tsm-r18-tpool"),
    pytest.param(
        tsm_cfg(
            depth=50,
            num_segments=4,
            non_local=((0, 0, 0), (1, 0, 1, 0), (1, 0, 0, 0, 0, 0), (0, 0, 0)),
            non_local_cfg=dict(
                sub_sample=True, use_scale=False, norm_cfg=dict(type="BN3d", requires_grad=True), mode="dot_product"
            ),
        ),
        (1, 4),
        64,
        id="tsm-r50-nl-dot",
    ),
]


@pytest.mark.parametrize(("cfg", "views", "size"), PARITY_CASES)
def test_parity_with_mmaction(cfg: dict[str, Any], views: tuple[int, int], size: int) -> None:
    from tests.engines.mmaction_ref import build_mmaction_model

    torch.manual_seed(0)
    ref = build_mmaction_model(copy.deepcopy(cfg))
    randomize_norms(ref)
    ours: Any = build(cfg)
    state = ref.state_dict()
    assert not any(k.startswith("data_preprocessor") for k in state)  # MMAction2's buffers are non-persistent
    ours.load_state_dict(state, strict=True)
    assert not ours.training

    x = torch.randn(*views, 3, size, size)
    expected = mmaction_scores(ref, x)
    with torch.no_grad():
        got = ours(x)
    n, v = views
    clips = ours.cls_head.clips_per_sample(v)
    folded = clips == 1 or cfg["cls_head"]["average_clips"] is not None
    assert got.shape == ((n, NUM_CLASSES) if folded else (n, clips, NUM_CLASSES))
    torch.testing.assert_close(got, expected.reshape(got.shape), rtol=0, atol=1e-5)


def test_average_clip_matches_mmaction_head() -> None:
    from tests.engines.mmaction_ref import build_mmaction_model

    scores = torch.randn(6, NUM_CLASSES)
    for mode in (None, "score", "prob"):
        ref: Any = build_mmaction_model(tsn_cfg(average_clips=mode))
        torch.testing.assert_close(average_clip(scores, 3, mode), ref.cls_head.average_clip(scores, 3))


def test_temporal_shift_matches_mmaction() -> None:
    from mmaction.models.backbones.resnet_tsm import TemporalShift as RefShift

    x = torch.randn(6, 17, 3, 5)
    for div in (3, 8):
        torch.testing.assert_close(TemporalShift.shift(x, 3, div), RefShift.shift(x, 3, shift_div=div))


def test_attributes_from_data_preprocessor() -> None:
    model = build(tsn_cfg())
    assert model.input_format == "NCHW"
    assert model.num_classes == NUM_CLASSES
    assert model.mean == (123.675, 116.28, 103.53)
    assert model.std == (58.395, 57.12, 57.375)
    assert model.to_rgb is False
    bare = build({**tsn_cfg(), "data_preprocessor": None})
    assert (bare.mean, bare.std, bare.input_format) == (None, None, "NCHW")
    assert all(k.startswith(("backbone.", "cls_head.")) for k in model.state_dict())


def test_blockres_shifts_every_other_block_from_depth_101() -> None:
    model: Any = build(tsm_cfg(depth=101))
    shifted = [isinstance(b.conv1.conv, TemporalShift) for b in model.backbone.layer3]
    assert shifted == [i % 2 == 0 for i in range(23)]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_builds_and_runs(path: Path) -> None:
    from mmengine.config import Config

    cfg = Config.fromfile(str(path))
    model = build(cfg.model.to_dict(), where="model")
    num_segments = cfg.model.cls_head.get("num_segments", 8)
    assert model.input_format == "NCHW" and model.mean is not None and model.std is not None
    assert any(step["type"] == "SampleFrames" for step in cfg.test_pipeline)
    with torch.no_grad():
        out = model(torch.randn(1, num_segments, 3, 32, 32))
    assert out.shape == (1, cfg.model.cls_head.num_classes)


def test_shipped_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert "tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py" in names
    assert "tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py" in names


def _with(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    *parents, leaf = path.split(".")
    node = cfg
    for key in parents:
        node = node[key]
    node[leaf] = value
    return cfg


BAD_CONFIGS = [
    pytest.param(
        _with(tsn_cfg(), "backbone.type", "ResNeXt"),
        UnknownTypeError,
        r"model\.backbone\.type: unknown model type 'ResNeXt'; valid types: .*\bResNet, .*\bResNetTSM\b",
        id="unknown-backbone",
    ),
    pytest.param(
        _with(tsn_cfg(), "backbone.widht", 2), ModelConfigError, r"unknown key\(s\) 'widht'", id="unknown-key"
    ),
    pytest.param(_with(tsn_cfg(), "backbone.depth", 42), ModelConfigError, r"depth 42; valid depths", id="bad-depth"),
    pytest.param(_with(tsn_cfg(), "cls_head.type", "NoSuchHead"), UnknownTypeError, r"'NoSuchHead'", id="unknown-head"),
    pytest.param(
        _with(tsn_cfg(), "neck", dict(type="TPN")),
        ModelConfigError,
        r"model.neck: cannot build TPN: .*in_channels",
        id="neck",
    ),
    pytest.param(_with(tsn_cfg(), "test_cfg", dict(fcn_test=True)), ModelConfigError, r"fcn_test", id="fcn-test"),
    pytest.param(
        _with(tsn_cfg(), "cls_head.average_clips", "max"), ModelConfigError, r"average_clips", id="average-clips"
    ),
    pytest.param(
        _with(tsn_cfg(), "cls_head.consensus", dict(type="TRNConsensus")),
        ModelConfigError,
        r"AvgConsensus",
        id="consensus",
    ),
    pytest.param(
        _with(tsn_cfg(), "data_preprocessor.format_shape", "NCTHW"),
        ModelConfigError,
        r"format_shape: Recognizer2D takes 'NCHW'",
        id="format-shape",
    ),
    pytest.param(
        _with(tsn_cfg(), "data_preprocessor.std", None), ModelConfigError, r"both mean and std", id="mean-no-std"
    ),
    pytest.param(
        _with(tsn_cfg(), "backbone.norm_cfg", dict(type="GN", num_groups=8)),
        ModelConfigError,
        r"norm_cfg\.type",
        id="norm-type",
    ),
    pytest.param(_with(tsm_cfg(), "backbone.shift_place", "stage"), ModelConfigError, r"shift_place", id="shift-place"),
    pytest.param(
        _with(tsm_cfg(), "backbone.non_local_cfg", dict(mode="dot_product")),
        ModelConfigError,
        r"depth >= 50",
        id="non-local-r18",
    ),
]


@pytest.mark.parametrize(("cfg", "error", "match"), BAD_CONFIGS)
def test_bad_config_is_reported(cfg: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build(cfg)


def test_bad_input_shapes_are_reported() -> None:
    tsm = build(tsm_cfg(num_segments=4))
    with pytest.raises(InputShapeError, match="multiple of num_segments=4"):
        tsm(torch.randn(1, 6, 3, 32, 32))
    with pytest.raises(InputShapeError, match=r"\(N, V, C, H, W\)"):
        tsm(torch.randn(4, 3, 32, 32))


@pytest.mark.parametrize(
    "cfg", [tsn_cfg(), tsm_cfg(num_segments=4, shift_div=4, temporal_pool=True)], ids=["tsn-r18", "tsm-r18"]
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(cfg: dict[str, Any]) -> None:
    """Legacy TorchScript exporter (``dynamo=False``): the dynamo one needs onnxscript."""
    model = build(cfg)
    randomize_norms(model)
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.randn(1, 8, 3, 32, 32),),
        buffer,  # type: ignore[arg-type]  # file-like objects work
        opset_version=17,
        input_names=["inputs"],
        output_names=["scores"],
        dynamic_axes={"inputs": {0: "batch"}, "scores": {0: "batch"}},
        dynamo=False,
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 8, 3, 32, 32)  # another batch size than at export
    (got,) = session.run(None, {"inputs": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=1e-4)
