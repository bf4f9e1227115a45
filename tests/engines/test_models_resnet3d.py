"""ResNet3d family (I3D, SlowOnly, R(2+1)D) and SlowFast: parity with MMAction2 1.2, configs, errors, ONNX."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import torch
from torch import nn

from engines.errors import ModelConfigError
from engines.models import build
from engines.models.resnet3d_slowfast import take_every
from tests.engines.mmaction_ref import build_mmaction_model, mmaction_registry

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("i3d", "slowonly", "slowfast", "r2plus1d")
CONFIGS = sorted(p for family in FAMILIES for p in (ROOT / "configs/recognition" / family).glob("*.py"))
BASES = {
    "i3d": ROOT / "configs/_base_/models/i3d_r50.py",
    "slowonly": ROOT / "configs/_base_/models/slowonly_r50.py",
    "slowfast": ROOT / "configs/_base_/models/slowfast_r50.py",
    "r2plus1d": ROOT / "configs/_base_/models/r2plus1d_r34.py",
}

SMALL_SLOWFAST: dict[str, Any] = dict(
    type="ResNet3dSlowFast",
    resample_rate=8,
    speed_ratio=8,
    channel_ratio=8,
    slow_pathway=dict(
        type="resnet3d",
        depth=50,
        lateral=True,
        base_channels=16,
        stage_blocks=(1, 1, 1, 1),
        conv1_kernel=(1, 7, 7),
        inflate=(0, 0, 1, 1),
    ),
    fast_pathway=dict(
        type="resnet3d",
        depth=50,
        lateral=False,
        base_channels=2,
        stage_blocks=(1, 1, 1, 1),
        conv1_kernel=(5, 7, 7),
    ),
)


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Fill parameters and float buffers with random values that keep activations O(1)."""
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


def _twins(cfg: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """MMAction2's backbone (randomized) and ours built from the same dict, with equal weights."""
    ref = mmaction_registry().build(copy.deepcopy(cfg))
    ref.eval()  # MMAction2's ResNet3d.train() returns None, so eval() can't be chained
    _randomize(ref)
    ours = build(copy.deepcopy(cfg), where="backbone")
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


def _as_tuple(x: Any) -> tuple[torch.Tensor, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (x,)


def _assert_close(actual: Any, expected: Any, tol: float = 1e-5) -> None:
    actual, expected = _as_tuple(actual), _as_tuple(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        scale = max(1.0, float(e.abs().max()))
        assert float((a - e).abs().max()) <= tol * scale


def _load_config(path: Path) -> Any:
    from mmengine import Config

    return Config.fromfile(str(path))


# --------------------------------------------------------------------------- backbone parity

_NL = dict(norm_cfg=dict(type="BN3d", requires_grad=True))
_SMALL_R50 = dict(type="ResNet3d", depth=50, base_channels=8, stage_blocks=(1, 2, 1, 1))

BACKBONES = {
    "i3d-r18": (dict(type="ResNet3d", depth=18, base_channels=8, pretrained2d=False), (2, 3, 8, 32, 32)),
    "i3d-r50-caffe-3x3x3-dilated-2outs": (
        dict(
            _SMALL_R50,
            style="caffe",
            inflate_style="3x3x3",
            inflate=((1,), (0, 1), 1, 0),
            dilations=(1, 1, 2, 2),
            spatial_strides=(1, 2, 2, 1),
            temporal_strides=(1, 2, 1, 1),
            out_indices=(1, 3),
            with_pool1=False,
        ),
        (2, 3, 8, 32, 32),
    ),
    "i3d-r18-3-stages-no-pool2": (
        dict(
            type="ResNet3d",
            depth=18,
            base_channels=8,
            num_stages=3,
            spatial_strides=(1, 2, 2),
            temporal_strides=(1, 1, 2),
            dilations=(1, 1, 1),
            out_indices=(0, 2),
            with_pool2=False,
            conv1_kernel=3,
            conv1_stride_s=1,
            non_local=(0, 0, 1),
            non_local_cfg=dict(sub_sample=False, mode="embedded_gaussian"),
        ),
        (1, 3, 4, 16, 16),
    ),
    **{
        f"nl-{mode}{'-sub' if sub else ''}": (
            dict(_SMALL_R50, non_local=(0, (0, 1), 1, 0), non_local_cfg=dict(_NL, sub_sample=sub, mode=mode)),
            (2, 3, 8, 32, 32),
        )
        for mode, sub in (
            ("dot_product", True),
            ("embedded_gaussian", True),
            ("embedded_gaussian", False),
            ("gaussian", True),
            ("gaussian", False),
            ("concatenation", True),
        )
    },
    "slowonly-r18": (dict(type="ResNet3dSlowOnly", depth=18, base_channels=8, lateral=False), (2, 3, 4, 32, 32)),
    "r2plus1d-r18": (
        dict(
            type="ResNet2Plus1d",
            depth=18,
            base_channels=8,
            pretrained2d=False,
            conv_cfg=dict(type="Conv2plus1d"),
            norm_cfg=dict(type="SyncBN", requires_grad=True, eps=1e-3),
            temporal_strides=(1, 2, 2, 2),
        ),
        (2, 3, 8, 32, 32),
    ),
    "slowfast-small-tau8": (SMALL_SLOWFAST, (2, 3, 16, 32, 32)),
    "slowfast-small-tau4-fusion7-lateral-norm": (
        dict(
            SMALL_SLOWFAST,
            resample_rate=4,
            speed_ratio=4,
            slow_pathway=dict(SMALL_SLOWFAST["slow_pathway"], fusion_kernel=7, lateral_norm=True),
        ),
        (2, 3, 12, 32, 32),
    ),
    # The real depth-50 layouts (full widths and block counts) at a small clip size.
    "i3d-r50-model-zoo-layout": (
        dict(
            type="ResNet3d",
            depth=50,
            conv1_kernel=(5, 7, 7),
            conv1_stride_t=2,
            pool1_stride_t=2,
            inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
        ),
        (1, 3, 8, 32, 32),
    ),
    "slowfast-r50-model-zoo-layout": (dict(type="ResNet3dSlowFast"), (1, 3, 16, 32, 32)),
}


@pytest.mark.parametrize("cfg, shape", BACKBONES.values(), ids=BACKBONES.keys())
def test_backbone_matches_mmaction2(cfg: dict[str, Any], shape: tuple[int, ...]) -> None:
    ref, ours = _twins(cfg)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _assert_close(ours(x), ref(x))


@pytest.mark.parametrize("frames", [8, 12, 13, 16, 31, 32])
@pytest.mark.parametrize("rate", [1, 2, 3, 4, 8])
def testtake_every_equals_nearest_interpolation(frames: int, rate: int) -> None:
    x = torch.arange(frames, dtype=torch.float32).reshape(1, 1, frames, 1, 1)
    expected = nn.functional.interpolate(x, mode="nearest", scale_factor=(1.0 / rate, 1.0, 1.0))
    assert torch.equal(take_every(x, rate), expected)


# --------------------------------------------------------------------------- full recognizers


def _small_model(family: str) -> dict[str, Any]:
    """The family's shipped base model with few blocks and channels, 5 classes, raw scores."""
    model = copy.deepcopy(_load_config(BASES[family]).model.to_dict())
    backbone, head = model["backbone"], model["cls_head"]
    head.update(num_classes=5, average_clips=None)
    if family == "slowfast":
        backbone["slow_pathway"].update(base_channels=16, stage_blocks=(1, 1, 1, 1))
        backbone["fast_pathway"].update(base_channels=2, stage_blocks=(1, 1, 1, 1))
        head["in_channels"] = 16 * 8 * 4 + 2 * 8 * 4
    elif family == "r2plus1d":
        backbone.update(base_channels=8, stage_blocks=(1, 1, 1, 1))
        head["in_channels"] = 64
    else:
        inflate = ((1,), (0,), (1,), (0,)) if family == "i3d" else (0, 0, 1, 1)
        backbone.update(base_channels=8, stage_blocks=(1, 1, 1, 1), inflate=inflate)
        head["in_channels"] = 256
    return model


def _recognizer_twins(model_cfg: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    ref = build_mmaction_model(copy.deepcopy(model_cfg))
    _randomize(ref)
    ours = build(copy.deepcopy(model_cfg))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_recognizer_raw_scores_match_mmaction2(family: str) -> None:
    ref, ours = _recognizer_twins(_small_model(family))
    x = torch.randn(2, 1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = ref.extract_feat(x, stage="head")  # raw head scores, one row per view
        actual = ours(x)
    assert actual.shape == (2, 5)
    _assert_close(actual, expected)


@pytest.mark.parametrize("family, average_clips", [("slowfast", "prob"), ("i3d", "score")])
def test_recognizer_multi_view_average_matches_mmaction2(family: str, average_clips: str) -> None:
    cfg = _small_model(family)
    cfg["cls_head"]["average_clips"] = average_clips
    ref, ours = _recognizer_twins(cfg)
    views = 3
    x = torch.randn(2, views, 3, 16, 32, 32, generator=torch.Generator().manual_seed(3))
    from mmaction.structures import ActionDataSample

    with torch.no_grad():
        predictions = ref.predict(x, [ActionDataSample() for _ in range(len(x))])
        expected = torch.stack([p.pred_score for p in predictions])
        actual = ours(x)
    assert actual.shape == (2, 5)
    _assert_close(actual, expected)


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_builds_and_runs(path: Path) -> None:
    cfg = _load_config(path)
    steps = [step["type"] for step in cfg.test_pipeline]
    assert steps[-2:] == ["FormatShape", "PackActionInputs"]
    assert steps[0] in ("SampleFrames", "DenseSampleFrames")
    assert cfg.load_from.startswith("https://download.openmmlab.com/mmaction/v1.0/recognition/")
    model = _build_reusing_last(cfg.model.to_dict())
    assert model.input_format == "NCTHW"
    # A tiny clip is enough to run every layer (T=8 fits every stride; 32x32 keeps it cheap).
    with torch.no_grad():
        scores = model(torch.randn(1, 1, 3, 8, 32, 32))
    assert scores.shape == (1, cfg.model.cls_head.num_classes)


_LAST_BUILT: dict[str, nn.Module] = {}


def _build_reusing_last(model_cfg: dict[str, Any]) -> nn.Module:
    """Build a model section, reusing the previous model when the section is the same.

    Sibling configs often differ only in their test pipeline; keeping one model bounds memory.
    """
    key = repr(model_cfg)
    if key not in _LAST_BUILT:
        _LAST_BUILT.clear()
        _LAST_BUILT[key] = build(model_cfg).eval()
    return _LAST_BUILT[key]


def _mmaction_config_dir() -> Path:
    mmaction_registry()  # skips when MMAction2 is missing
    import mmaction

    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition"
    if not path.is_dir():
        pytest.skip("MMAction2 was installed without its configs")
    return path


def _without_training_keys(model: dict[str, Any]) -> dict[str, Any]:
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "pretrained"}
        return list(map(strip, node)) if isinstance(node, list | tuple) else node

    return strip(model)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_matches_mmaction2_model_zoo(path: Path) -> None:
    """Same model section (bar ImageNet ``pretrained`` URLs) and test pipeline (bar decoding)."""
    theirs_path = _mmaction_config_dir() / path.parent.name / path.name
    ours, theirs = _load_config(path), _load_config(theirs_path)
    assert _without_training_keys(ours.model.to_dict()) == _without_training_keys(theirs.model.to_dict())
    their_steps = [
        {k: v for k, v in step.items() if k != "io_backend"}
        for step in theirs.test_pipeline
        if step["type"] not in ("DecordInit", "DecordDecode")
    ]
    assert [dict(step) for step in ours.test_pipeline] == their_steps


# --------------------------------------------------------------------------- bad configs

BAD = {
    "depth": (dict(type="ResNet3d", depth=42), r"depth: expected one of \[18, 34, 50, 101, 152\], got 42"),
    "inflate-per-block": (
        dict(type="ResNet3d", depth=50, inflate=((1, 1, 1), (1, 0, 1), 1, 1)),
        r"inflate\[1\]: expected 4 entries \(one per block\), got 3",
    ),
    "inflate-per-stage": (dict(type="ResNet3d", depth=18, inflate=(1, 1)), r"inflate: expected 4 entries"),
    "unknown-key": (dict(type="ResNet3d", depth=50, bogus=1), r"unknown key\(s\) 'bogus'"),
    "slowonly-unknown-key": (dict(type="ResNet3dSlowOnly", bogus=1), r"ResNet3dSlowOnly: unknown key\(s\) 'bogus'"),
    "strides-length": (
        dict(type="ResNet3d", depth=18, spatial_strides=(1, 2, 2)),
        r"spatial_strides: expected 4 entries",
    ),
    "out-indices": (dict(type="ResNet3d", depth=18, num_stages=2, out_indices=(3,)), r"out_indices"),
    "style": (dict(type="ResNet3d", depth=18, style="tf"), r"style: expected 'pytorch' or 'caffe'"),
    "inflate-style": (dict(type="ResNet3d", inflate_style="3x2x2"), r"inflate_style"),
    "norm": (
        dict(type="ResNet3d", depth=18, norm_cfg=dict(type="GN")),
        r"norm_cfg\.type: unknown norm type 'GN'; valid types for 3D features: BN3d, SyncBN",
    ),
    "non-local-mode": (
        dict(type="ResNet3d", depth=18, non_local=(0, 0, 1, 0), non_local_cfg=dict(mode="cosine")),
        r"non_local_cfg.mode",
    ),
    "slowonly-lateral": (dict(type="ResNet3dSlowOnly", lateral=True), r"lateral must be False"),
    "r2plus1d-conv3d": (
        dict(type="ResNet2Plus1d", depth=34),
        r"ResNet2Plus1d\.conv_cfg: only dict\(type='Conv2plus1d'\) is supported",
    ),
    "slowfast-pathway-type": (
        dict(SMALL_SLOWFAST, fast_pathway=dict(type="bninception")),
        r"fast_pathway.type: unknown pathway type 'bninception'; valid types: resnet3d",
    ),
    "slowfast-pathway-key": (
        dict(SMALL_SLOWFAST, slow_pathway=dict(SMALL_SLOWFAST["slow_pathway"], lateral_kernel=3)),
        r"slow_pathway: ResNet3dPathway: unknown key\(s\) 'lateral_kernel'",
    ),
    "slowfast-rates": (dict(SMALL_SLOWFAST, resample_rate=4), r"resample_rate >= speed_ratio"),
    "slowfast-lateral-activate": (
        dict(SMALL_SLOWFAST, slow_pathway=dict(SMALL_SLOWFAST["slow_pathway"], lateral_activate=(1, 0, 1, 1))),
        r"needs every lateral connection",
    ),
}


@pytest.mark.parametrize("cfg, message", BAD.values(), ids=BAD.keys())
def test_bad_config_is_reported(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        build(cfg, where="model.backbone")


def test_bad_config_message_starts_with_the_key() -> None:
    with pytest.raises(ModelConfigError, match=r"^(model\.backbone: cannot build ResNet3d: )?depth: expected"):
        build(dict(type="ResNet3d", depth=42), where="model.backbone")


# --------------------------------------------------------------------------- ONNX export


@pytest.mark.parametrize(
    "cfg, shape",
    [
        (
            dict(
                type="ResNet3d",
                depth=18,
                base_channels=8,
                non_local=(0, 1, 0, 0),
                non_local_cfg=dict(sub_sample=True, mode="embedded_gaussian"),
            ),
            (8, 32, 32),
        ),
        (dict(type="ResNet2Plus1d", depth=18, base_channels=8, conv_cfg=dict(type="Conv2plus1d")), (8, 32, 32)),
        (SMALL_SLOWFAST, (16, 32, 32)),
    ],
    ids=["i3d-r18-nonlocal", "r2plus1d-r18", "slowfast-small"],
)
def test_onnx_export_matches_onnxruntime(cfg: dict[str, Any], shape: tuple[int, ...]) -> None:
    model = build(cfg).eval()
    _randomize(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (torch.randn(1, 3, *shape),),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["clips"],
            dynamic_axes={"clips": {0: "batch"}},
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, *shape, generator=torch.Generator().manual_seed(4))  # another batch size
    outputs = session.run(None, {"clips": x.numpy()})
    with torch.no_grad():
        expected = _as_tuple(model(x))
    assert len(outputs) == len(expected)
    for out, ref in zip(outputs, expected, strict=True):
        assert out.shape == tuple(ref.shape)
        assert float(abs(out - ref.numpy()).max()) <= 1e-4
