"""Config loading and checkpoint reading/loading: layouts, prefixes, mismatches, broken files."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.checkpoint import (
    Checkpoint,
    checkpoint_from_object,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from engines.clip_spec import ClipSpec, ResizeSpec
from engines.config import load_config
from engines.config import read_config as load_stream_config
from engines.errors import CheckpointError, EngineError, ModelConfigError
from engines.manifest import Manifest
from tests.engines.engine_helpers import MEAN, STD, make_checkpoint, random_model, write_tsn_config
from tests.engines.mmaction_ref import import_reference

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- config


@pytest.fixture(scope="module")
def tsn_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tsn_config(tmp_path_factory.mktemp("cfg") / "tsn_r18.py")


def test_config_gives_model_and_clip_spec(tsn_config: Path) -> None:
    cfg = load_config(tsn_config)
    assert cfg.model["type"] == "Recognizer2D"
    assert cfg.input_format == "NCHW"
    assert cfg.clip == ClipSpec(
        clip_len=1,
        num_clips=2,
        resize=ResizeSpec((-1, 72)),
        crop="CenterCrop",
        crop_size=(64, 64),
        input_format="NCHW",
        mean=tuple(MEAN),  # type: ignore[arg-type]
        std=tuple(STD),  # type: ignore[arg-type]
    )
    assert cfg.clip.fixed_hw == (64, 64)
    assert cfg.clip.input_shape(64, 64) == (2, 3, 64, 64)
    assert ClipSpec.from_dict(cfg.clip.to_dict()) == cfg.clip


def test_cfg_options_override(tsn_config: Path) -> None:
    cfg = load_config(tsn_config, {"model.cls_head.num_classes": 7, "test_pipeline.1.num_clips": 5})
    assert cfg.model["cls_head"]["num_classes"] == 7
    assert cfg.clip is not None and cfg.clip.num_views == 5


def test_base_chain_resolves(tmp_path: Path, tsn_config: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(f"_base_ = [{str(tsn_config)!r}]\nmodel = dict(cls_head=dict(num_classes=3))\n")
    cfg = load_config(child)
    assert cfg.model["cls_head"]["num_classes"] == 3
    assert cfg.model["backbone"]["depth"] == 18


def test_mmaction2_own_config_loads() -> None:
    """A config from MMAction2's package, with its whole ``_base_`` chain (runtime, schedules)."""
    mmaction = import_reference("mmaction")
    path = (
        Path(mmaction.__file__).parent
        / ".mim/configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py"
    )
    if not path.is_file():
        pytest.skip("this MMAction2 install ships no configs")
    cfg = load_config(path)
    assert cfg.model["backbone"]["depth"] == 50
    assert cfg.clip is not None and cfg.clip.input_shape(240, 320) == (250, 3, 224, 224)


@pytest.mark.parametrize(
    ("pipeline", "views", "shape"),
    [
        pytest.param(
            [
                dict(type="SampleFrames", clip_len=1, num_clips=25, test_mode=True),
                dict(type="Resize", scale=(-1, 256)),
                dict(type="TenCrop", crop_size=224),
                dict(type="FormatShape", input_format="NCHW"),
            ],
            250,
            (250, 3, 224, 224),
            id="tsn-25x10crop",
        ),
        pytest.param(
            [
                dict(type="SampleFrames", clip_len=32, frame_interval=2, num_clips=10, test_mode=True),
                dict(type="Resize", scale=(-1, 256)),
                dict(type="ThreeCrop", crop_size=256),
                dict(type="FormatShape", input_format="NCTHW"),
            ],
            30,
            (30, 3, 32, 256, 256),
            id="slowfast-10x3crop",
        ),
        pytest.param(
            [
                dict(type="SampleFrames", clip_len=8, num_clips=1, test_mode=True),
                dict(type="Resize", scale=(160, 128), keep_ratio=False),
                dict(type="FormatShape", input_format="NCTHW"),
            ],
            1,
            (1, 3, 8, 128, 160),
            id="fixed-resize-no-crop",
        ),
    ],
)
def test_default_input_shape_from_pipelines(tmp_path: Path, pipeline: list[dict], views: int, shape: tuple) -> None:
    path = tmp_path / "cfg.py"
    fmt = pipeline[-1]["input_format"]
    model = "Recognizer2D" if fmt == "NCHW" else "Recognizer3D"
    path.write_text(f"model = dict(type={model!r})\ntest_pipeline = {pipeline!r}\n")
    clip = load_config(path).clip
    assert clip is not None and clip.num_views == views
    assert clip.fixed_hw is not None and clip.input_shape(*clip.fixed_hw) == shape


# TSM's twice_sample and I3D's dense sampling: views the old engine-side parser miscounted.
MULTI_VIEW = [
    pytest.param("tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py", 48, id="tsm-twice-sample"),
    pytest.param("i3d/i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb.py", 30, id="i3d-dense"),
]


@pytest.mark.parametrize(("name", "views"), MULTI_VIEW)
def test_manifest_clip_views_match_the_runtime_spec(name: str, views: int) -> None:
    path = ROOT / "configs/recognition" / name
    runtime = ClipSpec.from_config(load_stream_config(path))
    cfg = load_config(path)
    assert cfg.clip == runtime and runtime.num_views == views
    assert cfg.clip.fixed_hw is not None
    shape = cfg.clip.input_shape(*cfg.clip.fixed_hw)
    manifest = Manifest(
        model_type=str(cfg.model["type"]),
        backbone_type=None,
        head_type=None,
        input_format=cfg.input_format,
        input_shape=shape,
        output_shape=(400,),
        num_classes=400,
        backend="onnxruntime",
        clip=cfg.clip,
    )
    loaded = Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert loaded.clip == runtime
    assert loaded.clip is not None and loaded.clip.num_views == loaded.input_shape[0] == views


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("model = dict(type='Recognizer2D'\n", "syntax error", id="syntax"),
        pytest.param("x = 1\n", "no 'model' dict", id="no-model"),
        pytest.param("_base_ = ['missing_base.py']\n", "missing_base", id="missing-base"),
        pytest.param(
            "model = dict(type='Recognizer2D')\ntest_pipeline = [dict(type='Resize', scale=(-1, 256))]\n",
            "no frame sampler",
            id="no-sampler",
        ),
        pytest.param(
            "model = dict(type='Recognizer2D')\ntest_pipeline = [dict(type='SampleFrames', clip_len=1, test_mode=True),"
            " dict(type='RandomCrop', size=3), dict(type='FormatShape', input_format='NCHW')]\n",
            r"test_pipeline\[1\]: unsupported transform 'RandomCrop'",
            id="bad-crop",
        ),
    ],
)
def test_bad_configs_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="no such file"):
        load_config(tmp_path / "nope.py")


# --------------------------------------------------------------------------- checkpoints


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_model_zoo_layout_round_trips(tmp_path: Path, tsn_config: Path) -> None:
    classes = [f"action_{i}" for i in range(10)]
    path = make_checkpoint(tsn_config, tmp_path / "ckpt.pth", seed=1, classes=classes)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "meta"}
    fresh = random_model(tsn_config, seed=99)
    ckpt = load_checkpoint(fresh, path)
    _assert_same_weights(fresh, random_model(tsn_config, seed=1))
    assert ckpt.classes == classes
    assert ckpt.meta["dataset_meta"]["classes"] == classes


def test_bare_state_dict_and_module_prefix(tmp_path: Path, tsn_config: Path) -> None:
    source = random_model(tsn_config, seed=2)
    bare = tmp_path / "bare.pth"
    torch.save(source.state_dict(), bare)
    prefixed = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "meta": {}}, prefixed)
    for path in (bare, prefixed):
        target = random_model(tsn_config, seed=3)
        ckpt = load_checkpoint(target, path)
        _assert_same_weights(target, source)
        assert ckpt.classes is None


def test_preprocessor_buffers_and_missing_bn_counters_are_tolerated(tsn_config: Path) -> None:
    source = random_model(tsn_config, seed=4)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["data_preprocessor.mean"] = torch.zeros(3, 1, 1)
    target = random_model(tsn_config, seed=5)
    load_checkpoint(target, checkpoint_from_object({"state_dict": state}))
    key = "cls_head.fc_cls.weight"
    torch.testing.assert_close(target.state_dict()[key], source.state_dict()[key])


def test_numpy_meta_loads_without_trust(tmp_path: Path, tsn_config: Path) -> None:
    path = tmp_path / "np_meta.pth"
    torch.save({"state_dict": random_model(tsn_config).state_dict(), "meta": {"seed": np.int64(3)}}, path)
    assert read_checkpoint(path).meta["seed"] == 3


def test_other_pickles_need_trust(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"args": argparse.Namespace(lr=0.1)}}, path)
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*trusted=True") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    with caplog.at_level(logging.WARNING, logger="engines.checkpoint"):
        ckpt = read_checkpoint(path, trusted=True)
    assert ckpt.meta["args"].lr == 0.1
    assert "weights_only=False" in caplog.text


def test_wrong_num_classes_names_the_key_and_config(tmp_path: Path, tsn_config: Path) -> None:
    path = make_checkpoint(tsn_config, tmp_path / "ckpt.pth")
    other = write_tsn_config(tmp_path / "tsn_7.py", num_classes=7)
    model = random_model(other)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path, config_name=other)
    message = str(info.value)
    assert "cls_head.fc_cls.weight (checkpoint (10, 512) vs model (7, 512))" in message
    assert "2 mis-shaped" in message
    assert str(other) in message and str(path) in message
    assert "num_classes" in message


def test_missing_and_unexpected_keys_are_counted(tsn_config: Path) -> None:
    state = dict(random_model(tsn_config).state_dict())
    dropped = [k for k in state if k.startswith("backbone.layer4.")]
    for key in dropped:
        del state[key]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing: backbone\.layer4\..*1 unexpected: extra\.weight"):
        load_checkpoint(random_model(tsn_config), Checkpoint(path=None, state_dict=state))


@pytest.mark.parametrize("kind", ["truncated", "text", "tensor", "no-tensors", "missing"])
def test_broken_files_name_the_file(tmp_path: Path, tsn_config: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pth"
    if kind == "truncated":
        good = make_checkpoint(tsn_config, tmp_path / "good.pth")
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "no-tensors":
        torch.save({"state_dict": {"a": 1}}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, EngineError) and isinstance(info.value, ValueError)


def test_save_checkpoint_writes_weights_only_loadable_file(tmp_path: Path, tsn_config: Path) -> None:
    path = save_checkpoint(random_model(tsn_config), tmp_path / "sub" / "w.pth", meta={"note": "x"})
    assert torch.load(path, weights_only=True)["meta"] == {"note": "x"}
