"""PoseC3D: our configs are MMAction2's, our model matches MMAction2's, and its engine matches torch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.checkpoint import save_checkpoint
from engines.config import to_plain
from engines.errors import CheckpointError, InputShapeError, ModelConfigError
from engines.models import build
from engines.skeleton.posec3d import PersonWindow, SkeletonConfig, build_posec3d_engine, load_skeleton_config
from tests.engines.mmaction_ref import build_mmaction_model, import_reference

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "configs" / "skeleton" / "posec3d"
CONFIGS = sorted(CONFIG_DIR.glob("*.py"))


def mmaction_config(name: str) -> Any:
    mmengine_config = import_reference("mmengine.config")
    mmaction = import_reference("mmaction")
    path = Path(mmaction.__file__).parent / ".mim" / "configs" / "skeleton" / "posec3d" / name
    if not path.is_file():
        pytest.skip(f"MMAction2's config {name} is not shipped with this install")
    return mmengine_config.Config.fromfile(str(path))


def _plain(value: Any) -> Any:
    """Tuples → lists, so configs compare by value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_mmaction2s_model_and_test_pipeline(path: Path) -> None:
    ours = load_skeleton_config(path)
    ref = mmaction_config(path.name)
    assert _plain(ours.model) == _plain(to_plain(ref.model))
    want = _plain(to_plain(ref.test_pipeline))
    got = _plain(ours.test_pipeline)
    for step in want:  # keys MMAction2 lists that change nothing (gym-limb's unused left_kp / right_kp)
        if step["type"] == "GeneratePoseTarget" and not step.get("with_kp", True):
            step.pop("left_kp", None), step.pop("right_kp", None)
    assert got == want
    assert ours.load_from and ours.load_from.startswith("https://download.openmmlab.com/mmaction/v1.0/skeleton/")


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)


@pytest.mark.parametrize(
    "name",
    ["slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint", "slowonly_r50_8xb32-u48-240e_k400-keypoint"],
)
def test_model_matches_mmaction_with_its_state_dict(name: str) -> None:
    model_cfg = load_skeleton_config(CONFIG_DIR / f"{name}.py").model
    ref = build_mmaction_model(model_cfg)
    randomize_norms(ref)
    ours = build(model_cfg)
    ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("data_preprocessor.")})
    x = torch.rand(2, 4, 17, 8, 32, 32) ** 4  # 2 samples x 4 views, reduced T / H / W
    with torch.no_grad():
        got = ours(x)
        feats, _ = ref.extract_feat(x)
        want = ref.cls_head.average_clip(ref.cls_head(feats), num_segs=4)
    assert got.shape == (2, ours.num_classes)  # type: ignore[attr-defined]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def small_config(num_classes: int = 5) -> SkeletonConfig:
    """The NTU-60 keypoint config at test sizes: 1 clip of 8 frames + flip, 32x32, a thin backbone."""
    cfg = load_skeleton_config(CONFIG_DIR / "slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py")
    model = dict(cfg.model)
    model["backbone"] = {**model["backbone"], "base_channels": 8, "stage_blocks": (1, 1, 1)}
    model["cls_head"] = {**model["cls_head"], "in_channels": 128, "num_classes": num_classes}
    pipeline = [dict(step) for step in cfg.test_pipeline]
    pipeline[0].update(clip_len=8, num_clips=1)
    pipeline[3]["scale"] = (-1, 32)
    pipeline[4]["crop_size"] = 32
    return dataclasses.replace(cfg, model=model, test_pipeline=pipeline)


def make_checkpoint(cfg: SkeletonConfig, path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build(cfg.model)
    randomize_norms(model)
    classes = [f"action{i}" for i in range(model.num_classes)]  # type: ignore[attr-defined]
    save_checkpoint(model, path, meta={"dataset_meta": {"classes": classes}})
    return model.eval()


def windows(n: int, v: int = 17) -> list[PersonWindow]:
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        t = 6 + 7 * i  # shorter and longer than clip_len
        kp = rng.uniform(40, 200, size=(t, v, 2)).astype(np.float32)
        out.append(PersonWindow(kp, rng.uniform(0, 1, size=(t, v)).astype(np.float32), (240, 320)))
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_matches_torch_on_people(tmp_path: Path, backend: str) -> None:
    cfg = small_config()
    model = make_checkpoint(cfg, tmp_path / "posec3d.pth")
    with build_posec3d_engine(cfg, tmp_path / "posec3d.pth", backend=backend, cache_dir=tmp_path / "cache") as rec:
        assert rec.input_shape == (2, 17, 8, 32, 32)
        assert rec.class_names == [f"action{i}" for i in range(5)]
        people = windows(3)
        scores = rec.predict(people)
        batch = np.stack([rec.pipeline(w.keypoint, w.keypoint_score, w.img_shape) for w in people])
        with torch.no_grad():
            want = model(torch.from_numpy(batch)).numpy()
        assert scores.shape == (3, 5)
        np.testing.assert_allclose(scores, want, atol=1e-4, rtol=0)
        np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)  # average_clips='prob': mean softmax
        assert rec.predict([]).shape == (0, 5)
        with pytest.raises(InputShapeError, match="need 17 keypoints, got 12"):
            rec.predict(windows(1, v=12))
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1
    # the second call opens the cached engine instead of exporting again
    with build_posec3d_engine(cfg, tmp_path / "posec3d.pth", backend=backend, cache_dir=tmp_path / "cache") as again:
        np.testing.assert_allclose(again.predict(people), scores, atol=1e-6)
    assert list((tmp_path / "cache").iterdir()) == entries


def test_average_clips_score_and_bad_checkpoints(tmp_path: Path) -> None:
    cfg = small_config()
    cfg_score = dataclasses.replace(
        cfg, model={**cfg.model, "cls_head": {**cfg.model["cls_head"], "average_clips": "score"}}
    )
    model = make_checkpoint(cfg_score, tmp_path / "ok.pth")
    rec = build_posec3d_engine(cfg_score, tmp_path / "ok.pth", cache_dir=tmp_path / "cache")
    people = windows(2)
    batch = np.stack([rec.preprocess(w) for w in people])
    with torch.no_grad():
        views = model.cls_head(model.backbone(torch.from_numpy(batch).flatten(0, 1)))  # type: ignore[operator]
    np.testing.assert_allclose(rec.predict(people), views.reshape(2, 2, -1).mean(1).numpy(), atol=1e-4)
    rec.close()
    make_checkpoint(small_config(num_classes=7), tmp_path / "seven.pth")
    with pytest.raises(
        CheckpointError, match=r"mis-shaped: cls_head.fc_cls.weight \(checkpoint \(7, 128\) vs model \(5, 128\)"
    ):
        build_posec3d_engine(cfg, tmp_path / "seven.pth", cache_dir=tmp_path / "cache")
    with pytest.raises(ModelConfigError, match="average_clips is None"):
        no_avg = {**cfg.model, "cls_head": {**cfg.model["cls_head"], "average_clips": None}}
        build_posec3d_engine(dataclasses.replace(cfg, model=no_avg), tmp_path / "ok.pth", cache_dir=tmp_path / "cache")
    with pytest.raises(ModelConfigError, match="takes 18 channels but the pipeline makes 17"):
        wide = {**cfg.model, "backbone": {**cfg.model["backbone"], "in_channels": 18}}
        build_posec3d_engine(dataclasses.replace(cfg, model=wide), tmp_path / "ok.pth", cache_dir=tmp_path / "cache")
