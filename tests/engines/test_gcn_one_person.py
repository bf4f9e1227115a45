"""One-person GCN engines: the scores of FormatGCNInput's padded sample from its first person alone.

The reference is always the whole recognizer on the padded sample (zeros, or copies of the
person with ``mode='loop'``), as MMAction2 scores it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.config import read_config, to_plain
from engines.engine import load_engine
from engines.errors import InputShapeError, ModelConfigError
from engines.models import build
from engines.skeleton.gcn_engine import GCNInputSpec, OnePersonGCN, build_gcn_engine
from tests.engines.test_models_gcn import BACKBONES, JOINTS, ROOT, SMALL, ZOO, ZOO_BACKBONES, _zoo_checkpoint
from tests.engines.test_models_resnet3d import _randomize

#: Every backbone kind: ST-GCN, ST-GCN++, 2s-AGCN, AAGCN with attention; data norms 'VC', 'MVC', None.
ONE_PERSON_BACKBONES: dict[str, dict[str, Any]] = {
    "stgcn-vc": dict(ZOO_BACKBONES["stgcn"], base_channels=8, num_stages=4, inflate_stages=[3], down_stages=[3]),
    "stgcn-mvc": BACKBONES["stgcn-mvc-post-offset-ratio3"],
    "stgcn-none": BACKBONES["stgcn-no-input-stage-per-stage-lists"],
    "stgcnpp-vc": BACKBONES["stgcnpp-mstcn-mid-ms_cfg"],
    "2s-agcn-mvc": dict(ZOO_BACKBONES["2s-agcn"], base_channels=8, num_stages=4, inflate_stages=[3], down_stages=[3]),
    "aagcn-attention-mvc": dict(
        type="AAGCN", graph_cfg=dict(layout="coco", mode="spatial"), base_channels=8, num_stages=4,
        inflate_stages=[3], down_stages=[3],
    ),
    "aagcn-attention-vc": BACKBONES["aagcn-attention-vc"],
    "aagcn-none": BACKBONES["aagcn-fixed-graph-per-stage"],
}  # fmt: skip


def _recognizer(backbone_cfg: dict[str, Any], num_person: int, seed: int = 0) -> Any:
    backbone_cfg = dict(backbone_cfg, num_person=num_person)
    width = build(copy.deepcopy(backbone_cfg)).out_channels
    model = build(
        dict(
            type="RecognizerGCN", backbone=backbone_cfg, cls_head=dict(type="GCNHead", num_classes=7, in_channels=width)
        )
    )
    _randomize(model, seed)
    return model.eval()


def _padded(first: np.ndarray, num_person: int, mode: str) -> np.ndarray:
    """FormatGCNInput's sample of one person: zeros or copies after it."""
    out = np.repeat(first, num_person, axis=2)
    if mode == "zero":
        out[:, :, 1:] = 0
    return out


@pytest.mark.parametrize("num_person", [2, 3])
@pytest.mark.parametrize("mode", ["zero", "loop"])
@pytest.mark.parametrize("name", list(ONE_PERSON_BACKBONES))
def test_one_person_scores_equal_the_model_on_the_padded_sample(name: str, mode: str, num_person: int) -> None:
    cfg = ONE_PERSON_BACKBONES[name]
    model = _recognizer(cfg, num_person)
    channels = cfg.get("in_channels", 3)
    spec = GCNInputSpec(2, num_person, 12, JOINTS[cfg["graph_cfg"]["layout"]], channels)
    if mode == "loop" and model.backbone.data_bn_type == "MVC":
        # Each copy of the person gets its own slice of the data norm: the copies' features differ.
        with pytest.raises(ModelConfigError, match="data_bn_type 'MVC' and mode 'loop'"):
            OnePersonGCN(model, spec, mode)
        with torch.no_grad():
            feats = model.backbone(
                torch.from_numpy(_padded(np.ones((1, 1, 1, *spec.shape[2:]), np.float32), num_person, mode))[0]
            )
        assert float((feats[:, 1] - feats[:, 0]).abs().max()) > 1e-3
        return
    one = OnePersonGCN(model, spec, mode).eval()
    model64 = copy.deepcopy(model).double()
    one64 = OnePersonGCN(model64, spec, mode).eval()  # its padding computed in float64 too
    gen = torch.Generator().manual_seed(3)
    first = (torch.rand((3, 2, 1, *spec.shape[2:]), generator=gen) * 2 - 1).numpy()
    padded = torch.from_numpy(_padded(first, num_person, mode))
    for average_clips in ("score", "prob"):
        model.cls_head.average_clips = average_clips
        with torch.no_grad():
            model64.cls_head.average_clips = average_clips
            got64, want64 = one64(torch.from_numpy(first).double()), model64(padded.double())
            got, want = one(torch.from_numpy(first)), model(padded)
        assert got.shape == want.shape == (3, 7)
        if average_clips == "score":
            assert float(want64.std()) > 1e-3  # the scores differ between classes (the comparison means something)
        scale = max(1.0, float(want64.abs().max()))
        assert float((got64 - want64).abs().max()) <= 1e-10 * scale  # the same sums: exact up to rounding
        assert float((got - want).abs().max()) <= 1e-5 * scale


def test_one_person_backbone_shares_the_weights_and_cuts_the_mvc_norm() -> None:
    model = _recognizer(ONE_PERSON_BACKBONES["2s-agcn-mvc"], 2)
    one = OnePersonGCN(model, GCNInputSpec(1, 2, 12, 17, 3))
    assert one.backbone.data_bn.num_features == 17 * 3 and model.backbone.data_bn.num_features == 2 * 17 * 3
    torch.testing.assert_close(one.backbone.data_bn.running_mean, model.backbone.data_bn.running_mean[:51])
    assert one.padding.shape == (1, 1, 16, 6, 17)  # person 1's features (C', T', V) of an all-zero sample
    vc = _recognizer(ONE_PERSON_BACKBONES["stgcn-vc"], 2)
    assert OnePersonGCN(vc, GCNInputSpec(1, 2, 12, 17, 3)).backbone is vc.backbone


@pytest.mark.parametrize(
    ("spec", "mode", "match"),
    [
        (GCNInputSpec(1, 1, 12, 17, 3), "zero", "num_person is 1, nothing is padded"),
        (GCNInputSpec(1, 2, 12, 17, 3), "repeat", r"mode: expected one of \('zero', 'loop'\)"),
    ],
)
def test_one_person_model_refuses(spec: GCNInputSpec, mode: str, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        OnePersonGCN(_recognizer(ONE_PERSON_BACKBONES["stgcn-vc"], 2), spec, mode)


def test_one_person_model_takes_one_person() -> None:
    one = OnePersonGCN(_recognizer(ONE_PERSON_BACKBONES["stgcn-vc"], 2), GCNInputSpec(1, 2, 12, 17, 3))
    with pytest.raises(InputShapeError, match=r"expects \(N, num_clips, 1, T, V, C\) input, got shape \(1, 1, 2,"):
        one(torch.zeros(1, 1, 2, 12, 17, 3))


# --------------------------------------------------------------------------- engines


@pytest.mark.parametrize(
    ("family", "mode"), [("stgcn", "zero"), ("stgcnpp", "zero"), ("2s-agcn", "zero"), ("stgcnpp", "loop")]
)
def test_one_person_engine_equals_the_model_on_padded_samples_on_both_backends(
    family: str, mode: str, tmp_path: Path
) -> None:
    ckpt = _zoo_checkpoint(family, tmp_path / f"{family}.pth")
    config = ROOT / "configs/skeleton" / family / ZOO[family]
    options = dict(SMALL, **{"test_pipeline.4.mode": mode})
    kwargs: dict[str, Any] = dict(
        backend="openvino", cfg_options=options, num_clips=2, cache_dir=tmp_path / "cache", num_threads=1
    )
    engine = build_gcn_engine(config, ckpt, people_per_sample=1, **kwargs)
    assert engine.spec.shape == (2, 2, 12, 17, 3) and engine.input_shape == (2, 1, 12, 17, 3)
    assert (engine.people_per_sample, engine.pad_mode) == (1, mode)
    assert engine.engine.inputs[0].shape == ("batch", 2, 1, 12, 17, 3)
    manifest = json.loads((engine.engine.engine_dir / "manifest.json").read_text())
    validation = manifest["validation"]
    assert (validation["people_per_sample"], validation["num_person"], validation["pad_mode"]) == (1, 2, mode)
    assert validation["max_abs_diff_padded"] <= 1e-4

    torch_model = build(to_plain(read_config(config, options).model))
    load_checkpoint(torch_model, ckpt)
    gen = torch.Generator().manual_seed(2)
    first = (torch.rand((3, 2, 1, 12, 17, 3), generator=gen) * 2 - 1).numpy()
    samples = _padded(first, 2, mode)
    with torch.no_grad():
        want = torch_model.eval()(torch.from_numpy(samples)).numpy()
    got_ov = engine.infer_padded(samples)
    np.testing.assert_array_equal(engine.infer(first), got_ov)
    with load_engine(engine.engine.engine_dir, "onnxruntime", num_threads=1) as ort_engine:
        got_ort = ort_engine.run({"keypoints": first})["scores"]
    assert float(np.abs(got_ov - want).max()) <= 1e-4
    assert float(np.abs(got_ort - want).max()) <= 1e-4

    bad = samples.copy()
    bad[1, 0, 1, 3, 4, 0] += 0.5  # sample 1's second person is no padding
    with pytest.raises(InputShapeError, match=r"people 1\.\.1 of sample\(s\) \[1\] are not FormatGCNInput's padding"):
        engine.infer_padded(bad)
    with pytest.raises(InputShapeError, match=r"expected \(N, 2, 2, 12, 17, 3\)"):
        engine.infer_padded(first)
    with pytest.raises(InputShapeError, match=r"expected \(N, 2, 1, 12, 17, 3\)"):
        engine.infer(samples)
    engine.close()
    if mode == "zero":
        with build_gcn_engine(config, ckpt, **kwargs) as whole:  # the whole-sample engine is cached apart
            assert whole.engine.engine_dir != engine.engine.engine_dir
            assert whole.people_per_sample == 2 and whole.engine.inputs[0].shape == ("batch", 2, 2, 12, 17, 3)
            assert float(np.abs(whole.infer_padded(samples) - want).max()) <= 1e-4


def test_one_person_engine_falls_back_to_the_whole_sample_engine(tmp_path: Path) -> None:
    ckpt = _zoo_checkpoint("stgcn", tmp_path / "stgcn.pth")
    config = ROOT / "configs/skeleton/stgcn" / ZOO["stgcn"]
    kwargs: dict[str, Any] = dict(
        backend="onnxruntime", cfg_options=dict(SMALL, **{"test_pipeline.4.num_person": 1}), num_clips=1,
        cache_dir=tmp_path / "cache", num_threads=1,
    )  # fmt: skip
    with build_gcn_engine(config, ckpt, people_per_sample=1, **kwargs) as one:
        assert one.people_per_sample == one.spec.num_person == 1
        with build_gcn_engine(config, ckpt, **kwargs) as whole:
            assert whole.engine.engine_dir == one.engine.engine_dir
    with pytest.raises(ModelConfigError, match=r"people_per_sample: expected None .* or 1 .*, got 3"):
        build_gcn_engine(config, ckpt, people_per_sample=3, **dict(kwargs, cfg_options=SMALL))
    # 2s-AGCN's 'MVC' data norm with mode 'loop': no one-person engine, the whole sample is scored.
    ckpt = _zoo_checkpoint("2s-agcn", tmp_path / "agcn.pth")
    config = ROOT / "configs/skeleton/2s-agcn" / ZOO["2s-agcn"]
    loop = dict(kwargs, cfg_options=dict(SMALL, **{"test_pipeline.4.mode": "loop"}))
    with build_gcn_engine(config, ckpt, people_per_sample=1, **loop) as whole:
        assert whole.people_per_sample == whole.spec.num_person == 2 and whole.pad_mode == "loop"
        samples = _padded(np.full((1, 1, 1, 12, 17, 3), 0.5, np.float32), 2, "loop")
        assert whole.infer_padded(samples).shape == (1, 60)
