"""AVA spatio-temporal action detection: RoIAlign vs mmcv's kernel, parity with MMAction2 1.2, export, engine API."""

from __future__ import annotations

import contextlib
import copy
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines.checkpoint import save_checkpoint
from engines.errors import CheckpointError, EngineError, InputShapeError, ModelConfigError
from engines.models import build
from engines.models.roi_align import adaptive_avg_pool2d, roi_align
from engines.stdet import (
    SpatioTemporalDetector,
    StdetSpec,
    build_stdet_engine,
    build_stdet_model,
    example_feeds,
    graph_specs,
    load_stdet_config,
)
from tests.engines.mmaction_ref import mmaction_registry

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for d in ("slowonly", "slowfast", "acrn") for p in (ROOT / "configs/detection" / d).glob("*.py"))
SLOWONLY = ROOT / "configs/detection/slowonly/slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py"
SLOWFAST = ROOT / "configs/detection/slowfast/slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py"
ACRN = ROOT / "configs/detection/acrn/slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava21-rgb.py"


# --------------------------------------------------------------------------- mmcv's kernel, literally


def mmcv_roi_align_reference(
    feat: np.ndarray, rois: np.ndarray, out_h: int, out_w: int, scale: float, sampling_ratio: int, aligned: bool
) -> np.ndarray:
    """mmcv's CPU ``ROIAlignForward`` (avg mode) transcribed loop by loop, in float32."""
    f32 = np.float32
    _, channels, height, width = feat.shape
    out = np.zeros((len(rois), channels, out_h, out_w), np.float32)
    for n, roi in enumerate(rois.astype(np.float32)):
        data = feat[int(roi[0])]
        offset = f32(0.5) if aligned else f32(0.0)
        start_w, start_h = roi[1] * f32(scale) - offset, roi[2] * f32(scale) - offset
        end_w, end_h = roi[3] * f32(scale) - offset, roi[4] * f32(scale) - offset
        roi_w, roi_h = f32(end_w - start_w), f32(end_h - start_h)
        if not aligned:
            roi_w, roi_h = max(roi_w, f32(1)), max(roi_h, f32(1))
        bin_h, bin_w = f32(roi_h / f32(out_h)), f32(roi_w / f32(out_w))
        grid_h = sampling_ratio if sampling_ratio > 0 else int(np.ceil(f32(roi_h / f32(out_h))))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(np.ceil(f32(roi_w / f32(out_w))))
        count = f32(max(grid_h * grid_w, 1))
        for ph in range(out_h):
            for pw in range(out_w):
                total = np.zeros(channels, np.float32)
                for iy in range(grid_h):
                    y = f32(start_h + f32(ph) * bin_h + f32(f32(iy + 0.5) * bin_h) / f32(grid_h))
                    for ix in range(grid_w):
                        x = f32(start_w + f32(pw) * bin_w + f32(f32(ix + 0.5) * bin_w) / f32(grid_w))
                        if y < -1.0 or y > height or x < -1.0 or x > width:
                            continue
                        yy, xx = max(y, f32(0)), max(x, f32(0))
                        y_low, x_low = int(yy), int(xx)
                        if y_low >= height - 1:
                            y_low = y_high = height - 1
                            yy = f32(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= width - 1:
                            x_low = x_high = width - 1
                            xx = f32(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = f32(yy - y_low), f32(xx - x_low)
                        hy, hx = f32(1 - ly), f32(1 - lx)
                        total += (
                            hy * hx * data[:, y_low, x_low]
                            + hy * lx * data[:, y_low, x_high]
                            + ly * hx * data[:, y_high, x_low]
                            + ly * lx * data[:, y_high, x_high]
                        )
                out[n, :, ph, pw] = total / count
    return out


def _rois(rng: np.random.Generator, n: int, batch: int, h: int, w: int, stride: int, kind: str) -> np.ndarray:
    """Boxes in input pixels for an ``h × w`` feature map at ``stride``."""
    H, W = h * stride, w * stride
    if kind == "inside":
        xs, ys = np.sort(rng.uniform(0, W, (n, 2)), 1), np.sort(rng.uniform(0, H, (n, 2)), 1)
    elif kind == "partly-outside":
        xs, ys = np.sort(rng.uniform(-0.6 * W, 1.6 * W, (n, 2)), 1), np.sort(rng.uniform(-0.6 * H, 1.6 * H, (n, 2)), 1)
    elif kind == "tiny":
        x0, y0 = rng.uniform(-stride, W, n), rng.uniform(-stride, H, n)
        size = rng.uniform(0, 0.3 * stride, (n, 2))
        size[0] = 0.0  # a zero-size box: no samples in aligned mode, zeros
        xs, ys = np.stack([x0, x0 + size[:, 0]], 1), np.stack([y0, y0 + size[:, 1]], 1)
    else:  # large: bigger than the map, up to several samples per bin
        xs = np.stack([rng.uniform(-W, 0, n), rng.uniform(W, 2 * W, n)], 1)
        ys = np.stack([rng.uniform(-H, 0, n), rng.uniform(H, 2 * H, n)], 1)
    idx = rng.integers(0, batch, (n, 1))
    return np.concatenate([idx, xs[:, :1], ys[:, :1], xs[:, 1:], ys[:, 1:]], 1).astype(np.float32)


@pytest.mark.parametrize("kind", ["inside", "partly-outside", "tiny", "large"])
@pytest.mark.parametrize(
    "aligned, sampling_ratio, out", [(True, 0, (7, 7)), (True, 0, (4, 6)), (False, 0, (5, 5)), (True, 2, (3, 4))]
)
def test_roi_align_matches_mmcv_kernel(kind: str, aligned: bool, sampling_ratio: int, out: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((kind, aligned, sampling_ratio, out)) % 2**32)
    for batch, h, w in ((1, 11, 15), (2, 6, 9)):
        feat = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
        rois = _rois(rng, 6, batch, h, w, 16, kind)
        want = mmcv_roi_align_reference(feat, rois, *out, 1 / 16, sampling_ratio, aligned)
        got = roi_align(torch.from_numpy(feat), torch.from_numpy(rois), out, 1 / 16, sampling_ratio, aligned).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        if kind == "large":
            assert np.abs(want).max() > 0.1  # the boxes do sample the map


def test_roi_align_with_no_boxes_and_adaptive_grid_is_used() -> None:
    feat = torch.randn(1, 2, 12, 12)
    assert roi_align(feat, torch.zeros(0, 5), (4, 4), 1 / 16, 0, True).shape == (0, 2, 4, 4)
    # A box spanning the map: adaptive sampling (3x3 per bin) differs from one sample per bin.
    rois = torch.tensor([[0, 0, 0, 192, 192.0]])
    adaptive = roi_align(feat, rois, (4, 4), 1 / 16, 0, True)
    single = roi_align(feat, rois, (4, 4), 1 / 16, 1, True)
    assert float((adaptive - single).abs().max()) > 1e-3


@pytest.mark.parametrize("size, out", [((16, 23), (8, 8)), ((5, 7), (8, 8)), ((9, 9), (3, 4))])
def test_adaptive_avg_pool_matches_torch(size: tuple[int, int], out: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(
        adaptive_avg_pool2d(x, out), nn.functional.adaptive_avg_pool2d(x, out), atol=1e-6, rtol=0
    )


# --------------------------------------------------------------------------- MMAction2's own modules


@contextlib.contextmanager
def _stub_modules(stubs: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put stand-in modules into ``sys.modules`` while MMAction2's files import, then take them out."""
    added = [name for name in stubs if name not in sys.modules]
    sys.modules.update({name: stubs[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


class _NumpyRoIAlign(nn.Module):
    """mmcv.ops.RoIAlign's interface over :func:`mmcv_roi_align_reference` (mmcv-lite has no compiled ops)."""

    def __init__(self, output_size: Any, spatial_scale: float, sampling_ratio: int = 0, pool_mode: str = "avg",
                 aligned: bool = True) -> None:  # fmt: skip
        super().__init__()
        assert pool_mode == "avg"
        self.out = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.scale, self.ratio, self.aligned = spatial_scale, sampling_ratio, aligned

    def forward(self, feat: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        ref = mmcv_roi_align_reference(feat.numpy(), rois.numpy(), *self.out, self.scale, self.ratio, self.aligned)
        return torch.from_numpy(ref)


def _reference_classes() -> dict[str, Any]:
    """MMAction2's SingleRoIExtractor3D, BBoxHeadAVA and ACRNHead, imported without mmdet / mmcv ops.

    ``BBoxHeadAVA`` imports mmdet's ``SamplingResult`` only for training type hints, and
    ``SingleRoIExtractor3D`` takes ``RoIAlign`` from ``mmcv.ops`` when built; stand-ins serve both.
    """
    mmaction_registry()
    stubs = {
        name: types.ModuleType(name)
        for name in ("mmdet", "mmdet.models", "mmdet.models.task_modules", "mmdet.models.task_modules.samplers")
    }
    stubs["mmdet.models.task_modules.samplers"].SamplingResult = object  # type: ignore[attr-defined]
    with _stub_modules(stubs), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mmaction.models.roi_heads.bbox_heads.bbox_head import BBoxHeadAVA
        from mmaction.models.roi_heads.roi_extractors.single_straight3d import SingleRoIExtractor3D
        from mmaction.models.roi_heads.shared_heads.acrn_head import ACRNHead
    return {"SingleRoIExtractor3D": SingleRoIExtractor3D, "BBoxHeadAVA": BBoxHeadAVA, "ACRNHead": ACRNHead}


def _build_reference(cfg: dict[str, Any]) -> nn.Module:
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    cls = _reference_classes()[cfg["type"]]
    if cfg["type"] != "SingleRoIExtractor3D":
        return cls(**kwargs).eval()
    ops = types.ModuleType("mmcv.ops")
    ops.RoIAlign = _NumpyRoIAlign  # type: ignore[attr-defined]
    ops.RoIPool = None  # type: ignore[attr-defined]
    sys.modules.pop("mmcv.ops", None)  # a failed import of the real one may have left nothing usable
    with _stub_modules({"mmcv.ops": ops}):
        return cls(**kwargs).eval()


def _randomize(module: nn.Module, seed: int = 0) -> None:
    """Parameters and float buffers random, activations O(1)."""
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


def _feats(shapes: list[tuple[int, ...]], seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=gen) for s in shapes)


def _roi_tensor(n: int, batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    kinds = ("inside", "partly-outside", "tiny")
    rois = np.concatenate([_rois(rng, n, batch, h, w, 16, k) for k in kinds])
    return torch.from_numpy(rois)


EXTRACTORS = {
    "slowonly-avg": (dict(output_size=8, with_temporal_pool=True), [(2, 6, 4, 7, 9)]),
    "slowfast-avg": (dict(output_size=8, with_temporal_pool=True), [(2, 6, 4, 7, 9), (2, 2, 32, 7, 9)]),
    "slowfast-max-global": (
        dict(output_size=5, with_temporal_pool=True, temporal_pool_mode="max", with_global=True),
        [(1, 6, 3, 7, 9), (1, 2, 8, 7, 9)],
    ),
    "no-temporal-pool-global": (
        dict(output_size=(4, 3), with_temporal_pool=False, with_global=True),
        [(2, 5, 3, 6, 8)],
    ),
}


@pytest.mark.parametrize("cfg, shapes", EXTRACTORS.values(), ids=EXTRACTORS.keys())
def test_roi_extractor_matches_mmaction2(cfg: dict[str, Any], shapes: list[tuple[int, ...]]) -> None:
    full = dict(type="SingleRoIExtractor3D", roi_layer_type="RoIAlign", **cfg)
    ref, ours = _build_reference(copy.deepcopy(full)), build(copy.deepcopy(full)).eval()
    feats = _feats(shapes, seed=len(shapes))
    rois = _roi_tensor(3, shapes[0][0], shapes[0][3], shapes[0][4], seed=5)
    x = feats if len(feats) > 1 else feats[0]
    with torch.no_grad():
        want_roi, want_feat = ref(x, rois)
        got_roi, got_feat = ours(x, rois)
    assert got_roi.shape == want_roi.shape and got_feat.shape == want_feat.shape
    torch.testing.assert_close(got_feat, want_feat, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_roi, want_roi, atol=1e-5, rtol=0)


HEADS = {
    "avg-max": dict(background_class=True, in_channels=16, num_classes=7, dropout_ratio=0.5),
    "max-avg-softmax": dict(
        background_class=False, temporal_pool_type="max", spatial_pool_type="avg", in_channels=16, num_classes=7,
        multilabel=False, topk=3,
    ),
    "mlp": dict(background_class=True, in_channels=16, num_classes=7, mlp_head=True, topk=None),
}  # fmt: skip


@pytest.mark.parametrize("cfg", HEADS.values(), ids=HEADS.keys())
def test_bbox_head_matches_mmaction2(cfg: dict[str, Any]) -> None:
    full = dict(type="BBoxHeadAVA", **cfg)
    ref = _build_reference(copy.deepcopy(full))
    _randomize(ref)
    ours = build(copy.deepcopy(full)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    (x,) = _feats([(5, 16, 3, 4, 4)], seed=3)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=0)
        # No boxes: MMAction2's head fails (``view(0, -1)``; its demo skips such clips), ours gives (0, C).
        assert ours(x[:0]).shape == (0, cfg["num_classes"])


def test_acrn_head_matches_mmaction2() -> None:
    full = dict(type="ACRNHead", in_channels=12, out_channels=6, stride=2, num_convs=2)
    ref = _build_reference(copy.deepcopy(full))
    _randomize(ref)
    ours = build(copy.deepcopy(full)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    roi_feats, feat = _feats([(4, 6, 1, 5, 5), (2, 6, 1, 7, 9)], seed=4)
    rois = torch.tensor([[0, 1, 2, 3, 4], [1, 1, 2, 3, 4], [1, 0, 0, 9, 9], [0, 5, 5, 6, 6.0]])
    with torch.no_grad():
        torch.testing.assert_close(ours(roi_feats, feat, rois), ref(roi_feats, feat, rois), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- whole detector


def _small_model(path: Path) -> dict[str, Any]:
    """A shipped model section with one block per stage and few channels, 7 classes."""
    model, _ = load_stdet_config(path)
    backbone, roi_head = model["backbone"], model["roi_head"]
    if "slow_pathway" in backbone:
        backbone["slow_pathway"].update(base_channels=16, stage_blocks=(1, 1, 1, 1))  # channel_ratio 8
        backbone["fast_pathway"].update(base_channels=2, stage_blocks=(1, 1, 1, 1))
        channels = 16 * 8 * 4 + 2 * 8 * 4  # slow + fast channels of the last stage
    else:
        backbone.update(base_channels=8, stage_blocks=(1, 1, 1, 1))
        channels = 8 * 8 * 4
    extractor = roi_head["bbox_roi_extractor"]
    head_in = channels * (2 if extractor.get("with_global") else 1)
    if "shared_head" in roi_head:
        roi_head["shared_head"].update(in_channels=2 * channels, out_channels=channels)
        head_in = channels
    roi_head["bbox_head"].update(in_channels=head_in, num_classes=7)
    return model


class _Reference(nn.Module):
    """MMAction2's backbone and RoI-head parts, composed as FastRCNN + AVARoIHead compose them at test time."""

    def __init__(self, model: dict[str, Any]) -> None:
        super().__init__()
        backbone = dict(model["backbone"], type=model["backbone"]["type"].rpartition(".")[2])
        self.backbone = mmaction_registry().build(backbone)
        head = model["roi_head"]
        self.roi_head = nn.Module()
        self.roi_head.bbox_roi_extractor = _build_reference(dict(head["bbox_roi_extractor"]))
        if "shared_head" in head:
            self.roi_head.shared_head = _build_reference(dict(head["shared_head"]))
        self.roi_head.bbox_head = _build_reference(dict(head["bbox_head"]))

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        head = self.roi_head
        feats, clip = head.bbox_roi_extractor(self.backbone(x), rois)  # AVARoIHead._bbox_forward
        if hasattr(head, "shared_head"):
            feats = head.shared_head(feats, feat=clip, rois=rois)
        return head.bbox_head(feats).sigmoid()  # BBoxHeadAVA._predict_by_feat_single, multilabel


def _twins(path: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    model = _small_model(path)
    ref = _Reference(copy.deepcopy(model))
    ref.eval()
    _randomize(ref)
    ours = build_stdet_model(copy.deepcopy(model))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours, model


@pytest.mark.parametrize("path", [SLOWONLY, SLOWFAST, ACRN], ids=["slowonly", "slowfast", "slowfast-acrn"])
def test_fast_rcnn_matches_mmaction2_pieces(path: Path) -> None:
    ref, ours, _ = _twins(path)
    _, cfg = load_stdet_config(path)
    t = StdetSpec.from_config(cfg, ours).clip_len
    x = torch.randn(1, 3, t, 64, 96, generator=torch.Generator().manual_seed(7))
    rois = _roi_tensor(2, 1, 4, 6, seed=8)
    with torch.no_grad():
        want, got = ref(x, rois), ours(x, rois)
    assert got.shape == (len(rois), 7)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- export: torch vs ONNX Runtime vs OpenVINO


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_torch_for_any_boxes(tmp_path: Path, backend: str) -> None:
    from engines.graph import build_graph_engine

    _, model, _ = _twins(SLOWFAST)
    _, cfg = load_stdet_config(SLOWFAST)
    spec = StdetSpec.from_config(cfg, model)
    inputs, outputs = graph_specs(spec)
    engine = build_graph_engine(
        model, inputs=inputs, outputs=outputs, example=example_feeds(spec, 64, 80, 3),
        check=example_feeds(spec, 48, 96, 6, seed=1), out_dir=tmp_path / "e", backend=backend, model_type="FastRCNN",
        num_classes=7,
    )  # fmt: skip
    rng = np.random.default_rng(2)
    cases = {
        "none": np.zeros((0, 5), np.float32),
        "one": _rois(rng, 1, 1, 5, 7, 16, "inside"),
        "many": _rois(rng, 12, 1, 5, 7, 16, "inside"),
        "partly-outside": _rois(rng, 5, 1, 5, 7, 16, "partly-outside"),
        "tiny": _rois(rng, 5, 1, 5, 7, 16, "tiny"),
    }
    imgs = example_feeds(spec, 80, 112, 0, seed=3)["imgs"]  # another clip size than traced
    two_clips = np.concatenate([imgs, imgs[:, :, ::-1]])  # rois index the clip they belong to
    cases["two-clips"] = _rois(rng, 6, 2, 5, 7, 16, "inside")
    try:
        for name, rois in cases.items():
            imgs = two_clips if name == "two-clips" else two_clips[:1]
            got = engine.run({"imgs": imgs, "rois": rois})["scores"]
            with torch.no_grad():
                want = model(torch.from_numpy(imgs), torch.from_numpy(rois)).numpy()
            assert got.shape == (len(rois), 7), name
            if len(rois):
                assert float(np.abs(got - want).max()) <= 1e-4, name
    finally:
        engine.close()


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_builds_and_runs(path: Path) -> None:
    model_cfg, cfg = load_stdet_config(path)
    assert str(cfg.load_from).startswith("https://download.openmmlab.com/mmaction/v1.0/detection/")
    model = build_stdet_model(model_cfg)
    spec = StdetSpec.from_config(cfg, model)
    assert (spec.short_side, spec.num_classes, spec.background_class, spec.multilabel) == (256, 81, True, True)
    assert spec.clip_len * spec.frame_interval == 64
    with torch.no_grad():
        scores = model(torch.randn(1, 3, spec.clip_len, 32, 48), torch.tensor([[0, 2, 3, 30, 31.0]]))
    assert scores.shape == (1, 81) and bool(((scores > 0) & (scores < 1)).all())


def _mmaction_detection_configs() -> Path:
    mmaction_registry()
    import mmaction

    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "detection"
    if not path.is_dir():
        pytest.skip("MMAction2 was installed without its configs")
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_matches_mmaction2_model_zoo(path: Path) -> None:
    """Same model section (bar ``init_cfg``, training's Kinetics weights) and test pipeline (bar decoding)."""
    from mmengine import Config

    theirs = Config.fromfile(str(_mmaction_detection_configs() / path.parent.name / path.name))
    ours = Config.fromfile(str(path))
    want = {k: v for k, v in theirs.model.to_dict().items() if k != "init_cfg"}
    assert ours.model.to_dict() == want
    steps = [
        {k: v for k, v in s.items() if k != "io_backend"} for s in theirs.val_pipeline if s.type != "RawFrameDecode"
    ]
    assert [dict(s) for s in ours.test_pipeline] == steps


def test_mmaction2_own_config_file_builds_with_the_same_spec() -> None:
    """MMAction2's model-zoo file itself (``_base_`` runtime, ``val_pipeline`` with RawFrameDecode) loads."""
    theirs = _mmaction_detection_configs() / "slowonly" / SLOWONLY.name
    model_cfg, cfg = load_stdet_config(theirs)
    model_cfg["backbone"].update(base_channels=8, stage_blocks=(1, 1, 1, 1))
    model_cfg["roi_head"]["bbox_head"]["in_channels"] = 256
    ours_cfg = load_stdet_config(SLOWONLY)[1]
    model = build_stdet_model(model_cfg)
    assert StdetSpec.from_config(cfg, model) == StdetSpec.from_config(ours_cfg, model)


def test_spec_frame_offsets_and_input_size_follow_mmaction2_demo() -> None:
    spec = StdetSpec(4, 16, 256, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 81)
    assert spec.frame_offsets == (-16, 0, 16, 32)  # demo: start = key - (4 // 2 - 1) * 16
    assert StdetSpec(32, 2, 256, (0.0,) * 3, (1.0,) * 3, 81).frame_offsets[:2] == (-30, -28)
    assert spec.input_size(720, 1280) == (256, 455) and spec.input_size(480, 360) == (341, 256)
    assert spec.resize(np.zeros((720, 1280, 3), np.uint8)).shape == (256, 455, 3)


# --------------------------------------------------------------------------- engine API


def _tiny_config(tmp_path: Path) -> Path:
    """The shipped SlowOnly config with a small backbone, through ``_base_`` like a user override."""
    path = tmp_path / "tiny_slowonly_ava.py"
    path.write_text(
        f"_base_ = [{str(SLOWONLY)!r}]\n"
        "model = dict(backbone=dict(base_channels=8, stage_blocks=(1, 1, 1, 1)),\n"
        "             roi_head=dict(bbox_head=dict(in_channels=256, num_classes=7)),\n"
        "             test_cfg=dict(rcnn=dict(_delete_=True, action_thr=0.002)))\n"
    )
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, nn.Module]:
    tmp = tmp_path_factory.mktemp("stdet")
    config = _tiny_config(tmp)
    model = build_stdet_model(load_stdet_config(config)[0])
    _randomize(model, seed=11)
    checkpoint = save_checkpoint(
        model, tmp / "tiny.pth", meta={"dataset_meta": {"classes": [f"a{i}" for i in range(7)]}}
    )
    return config, checkpoint, model


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_detector_predicts_like_torch(tmp_path: Path, tiny_checkpoint: Any, backend: str) -> None:
    config, checkpoint, model = tiny_checkpoint
    detector = SpatioTemporalDetector.from_config(
        config, checkpoint, backend=backend, cache_dir=tmp_path, channel_order="bgr"
    )
    again = SpatioTemporalDetector.from_config(config, checkpoint, backend=backend, cache_dir=tmp_path)  # cached
    spec = detector.spec
    assert (spec.clip_len, spec.frame_interval, spec.short_side, spec.num_classes, spec.action_thr) == (
        4,
        16,
        256,
        7,
        0.002,
    )
    assert detector.class_names == [f"a{i}" for i in range(7)]
    rng = np.random.default_rng(5)
    clip = rng.integers(0, 256, (4, 96, 128, 3), dtype=np.uint8)
    boxes = np.array([[10, 12, 60, 90], [-20, 5, 140, 100], [50, 50, 50.5, 51]], np.float32)
    with detector, again:
        got = detector.predict(clip, boxes)
        same = again.predict(clip[..., ::-1].copy(), boxes)  # RGB into the RGB runner
        assert detector.predict(clip, np.zeros((0, 4))).shape == (0, 7)
        with pytest.raises(InputShapeError, match=r"clip: expected \(4, H, W, 3\)"):
            detector.predict(clip[:3], boxes)
        with pytest.raises(InputShapeError, match="x2 >= x1"):
            detector.predict(clip, boxes[:, [2, 1, 0, 3]])
    rgb = clip[..., ::-1].astype(np.float32)
    imgs = ((rgb - np.array(model.mean, np.float32)) / np.array(model.std, np.float32)).transpose(3, 0, 1, 2)[None]
    rois = np.concatenate([np.zeros((3, 1), np.float32), boxes], 1)
    with torch.no_grad():
        want = model(torch.from_numpy(np.ascontiguousarray(imgs)), torch.from_numpy(rois)).numpy()
    want[:, 0] = 0.0  # background column
    assert got.shape == (3, 7) and got[:, 0].max() == 0.0
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(got, same)


def test_wrong_checkpoint_is_one_clear_line(tmp_path: Path, tiny_checkpoint: Any) -> None:
    config, _, _ = tiny_checkpoint
    other = build_stdet_model(_small_model(SLOWFAST))
    wrong = save_checkpoint(other, tmp_path / "slowfast.pth")
    with pytest.raises(CheckpointError) as info:
        build_stdet_engine(config, wrong, cache_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(wrong) in message and "does not fit config" in message
    assert "missing: backbone." in message and "unexpected: backbone.slow_path." in message
    assert not list(tmp_path.glob("stdet-*"))  # nothing cached


BAD = {
    "roi-pool": (
        dict(type="SingleRoIExtractor3D", roi_layer_type="RoIPool"),
        r"roi_layer_type: only 'RoIAlign' is supported, got 'RoIPool'",
    ),
    "max-roi-align": (dict(type="SingleRoIExtractor3D", pool_mode="max"), r"RoIAlign.pool_mode: only 'avg'"),
    "temporal-mode": (
        dict(type="SingleRoIExtractor3D", temporal_pool_mode="median"),
        r"temporal_pool_mode: expected one of 'avg', 'max', got 'median'",
    ),
    "head-pool": (dict(type="BBoxHeadAVA", background_class=True, spatial_pool_type="sum"), r"spatial_pool_type"),
    "head-topk": (dict(type="BBoxHeadAVA", background_class=True, num_classes=5, topk=(3, 5)), r"BBoxHeadAVA.topk"),
    "head-unknown-key": (dict(type="BBoxHeadAVA", background_class=True, bogus=1), r"unknown key\(s\) 'bogus'"),
    "acrn-convs": (
        dict(type="ACRNHead", in_channels=4, out_channels=2, num_convs=0),
        r"num_convs: expected an int >= 1",
    ),
    "rpn": (
        dict(type="FastRCNN", backbone=dict(type="ResNet3dSlowOnly"), roi_head={}, rpn_head=dict(type="RPNHead")),
        r"neck / rpn_head are not supported",
    ),
    "roi-head-type": (
        dict(type="FastRCNN", backbone=dict(type="mmaction.ResNet3dSlowOnly", depth=18),
             roi_head=dict(type="mmdet.StandardRoIHead")),
        r"model.roi_head.type: unknown model type 'StandardRoIHead'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("cfg, message", BAD.values(), ids=BAD.keys())
def test_bad_config_is_reported(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(EngineError, match=message):  # ModelConfigError, or UnknownTypeError for a type
        build(cfg, where="model")


def test_config_without_ava_sampler_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(f"_base_ = [{str(SLOWONLY)!r}]\ntest_pipeline = [dict(type='SampleFrames', clip_len=4)]\n")
    _, cfg = load_stdet_config(path)
    with pytest.raises(ModelConfigError, match=r"test pipeline step 'SampleFrames' is not supported"):
        StdetSpec.from_config(cfg, build_stdet_model(_small_model(SLOWONLY)), where=str(path))
    with pytest.raises(ModelConfigError, match=r"model.type: expected 'FastRCNN'"):
        load_stdet_config(ROOT / "configs/recognition/slowonly" / next(iter(sorted(
            p.name for p in (ROOT / "configs/recognition/slowonly").glob("*.py")))))  # fmt: skip
