"""open_skeleton_recognizer: a skeleton config + model-zoo checkpoint scoring people's windows.

The expected scores are computed the long way: MMAction2's test pipeline (our transforms,
equal to MMAction2's by tests/engines/test_skeleton_transforms.py) on one person, then the
torch model loaded from the same checkpoint. A glue bug (two people mixed in one sample, the
score channel dropped, the config's 10 clips instead of one, a wrong batch order) changes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.config import read_config, to_plain
from engines.models import build
from engines.skeleton.transforms import SkeletonPipeline
from pipelines.skeleton import PersonWindow
from pipelines.skeleton_model import check_skeleton_model, open_skeleton_recognizer
from stream.errors import SourceNotFound

ROOT = Path(__file__).resolve().parents[2]
STGCNPP = ROOT / "configs/skeleton/stgcnpp/stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py"
POSEC3D = ROOT / "configs/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py"


def user_config(tmp: Path, kind: str) -> Path:
    """A user's config on top of a model-zoo one (``_base_``), at test sizes."""
    path = tmp / f"my_{kind}.py"
    if kind == "gcn":
        body = (
            "model = dict(backbone=dict(base_channels=16), cls_head=dict(num_classes=4, in_channels=64))\n"
            "test_pipeline = [dict(type='UniformSampleFrames', clip_len=12, num_clips=10, test_mode=True),\n"
            "    dict(type='PoseDecode'), dict(type='PreNormalize2D'), dict(type='GenSkeFeat', dataset='coco',"
            " feats=['j']),\n"
            "    dict(type='FormatGCNInput', num_person=2), dict(type='PackActionInputs')]\n"
        )
        base = STGCNPP
    else:
        body = (
            "model = dict(backbone=dict(base_channels=8, stage_blocks=(1, 1, 1)),"
            " cls_head=dict(in_channels=128, num_classes=4))\n"
            "test_pipeline = [dict(type='UniformSampleFrames', clip_len=8, num_clips=10, test_mode=True),\n"
            "    dict(type='PoseDecode'), dict(type='PoseCompact', hw_ratio=1.0, allow_imgpad=True),\n"
            "    dict(type='Resize', scale=(-1, 32)), dict(type='CenterCrop', crop_size=32),\n"
            "    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False,"
            " double=True),\n"
            "    dict(type='FormatShape', input_format='NCTHW_Heatmap'), dict(type='PackActionInputs')]\n"
        )
        base = POSEC3D
    path.write_text(f"_base_ = [{str(base)!r}]\n{body}")
    return path


@pytest.fixture(scope="module", params=["gcn", "posec3d"])
def model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, torch.nn.Module]:
    tmp = tmp_path_factory.mktemp(request.param)
    config = user_config(tmp, request.param)
    torch.manual_seed(1)
    net = build(to_plain(read_config(config).model))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    checkpoint = tmp / "model.pth"
    save_checkpoint(net, checkpoint, meta={"dataset_meta": {"classes": ["sit", "stand", "wave", "walk"]}})
    return config, checkpoint, net.eval()


def people(n: int, seed: int = 0) -> list[PersonWindow]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = 5 + 9 * i  # shorter and longer than clip_len
        kp = np.concatenate([rng.uniform(40, 300, (t, 17, 2)), rng.uniform(0.1, 1, (t, 17, 1))], -1).astype(np.float32)
        out.append(PersonWindow("cam", i, kp, (240, 320), np.zeros(4, np.float32), 0.0, 1.0, 0))
    return out


def test_scores_equal_mmaction2s_pipeline_and_the_torch_model(
    model: tuple[Path, Path, torch.nn.Module], tmp_path: Path
) -> None:
    config, checkpoint, _ = model
    recognizer = open_skeleton_recognizer(config, str(checkpoint), backend="onnxruntime", cache_dir=tmp_path)
    try:
        assert list(recognizer.class_names) == ["sit", "stand", "wave", "walk"]
        windows = people(3)
        got = recognizer.scores(windows)
        cfg = read_config(config)
        steps = [to_plain(s) for s in cfg.test_pipeline]
        steps[0]["num_clips"] = 1  # one clip per live window
        pipeline = SkeletonPipeline.from_config(steps)
        batch = np.stack(
            [pipeline(w.keypoints[None, :, :, :2], w.keypoints[None, :, :, 2], w.img_shape) for w in windows]
        )
        assert batch.shape[1] == (2 if "Heatmap" in str(steps) else 1)  # PoseC3D: one clip + its flip
        reference = build(to_plain(cfg.model))
        load_checkpoint(reference, checkpoint)
        with torch.no_grad():
            want = reference.eval()(torch.from_numpy(batch)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        np.testing.assert_allclose(recognizer.scores(windows[1:2])[0], got[1], atol=1e-5)  # batching changes nothing
        assert recognizer.scores([]).shape == (0, 4)
    finally:
        recognizer.close()


def test_label_map_and_checks(model: tuple[Path, Path, torch.nn.Module], tmp_path: Path) -> None:
    config, checkpoint, _ = model
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    recognizer = open_skeleton_recognizer(config, str(checkpoint), label_map=str(labels), cache_dir=tmp_path)
    with recognizer:
        assert list(recognizer.class_names) == ["a", "b", "c", "d"]
    labels.write_text("a\nb\n")
    with pytest.raises(ConfigError, match="2 names for a model with 4 classes"):
        open_skeleton_recognizer(config, str(checkpoint), label_map=str(labels), cache_dir=tmp_path)
    with pytest.raises(SourceNotFound, match=r"nope\.pth: no such file"):
        check_skeleton_model(config, str(tmp_path / "nope.pth"), None, {})
    with pytest.raises(ConfigError, match="downloads nothing"):
        check_skeleton_model(STGCNPP, None, None, {})  # the zoo config's load_from is a URL
    recognition = ROOT / "configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py"
    with pytest.raises(ConfigError, match="not a skeleton recognizer"):
        check_skeleton_model(recognition, str(checkpoint), None, {})
    with pytest.raises(ConfigError, match="--backend torch"):
        open_skeleton_recognizer(config, str(checkpoint), backend="torch", cache_dir=tmp_path)
