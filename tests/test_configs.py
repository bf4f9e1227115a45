"""Every shipped config loads, builds its model, and yields clip settings the runtime can use."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.clip_spec import ClipSpec
from engines.config import read_config
from engines.models import build

ROOT = Path(__file__).resolve().parents[1]
#: Recognition configs; detector / pose configs (configs/detection, configs/pose) have no clip
#: pipeline and are built by their own tests (tests/detectors/; the AVA action detectors under
#: configs/detection/{slowonly,slowfast,acrn}, which take a clip plus person boxes, by
#: tests/engines/test_models_stdet.py); skeleton configs take keypoints.
#: The demo skeleton model (configs/demo, with a shipped checkpoint) is a skeleton config too.
DEMO_SKELETON_CONFIGS = [ROOT / "configs" / "demo" / "demo_stgcn_coco_synthetic.py"]
CONFIGS = sorted(
    p
    for p in (ROOT / "configs").rglob("*.py")
    if "_base_" not in p.parts
    and p.relative_to(ROOT / "configs").parts[0] not in ("detection", "pose", "skeleton")
    and p not in DEMO_SKELETON_CONFIGS
)
#: Skeleton GCN configs (ST-GCN, ST-GCN++, 2s-AGCN): fed a keypoint input, not a video clip.
GCN_CONFIGS = sorted(
    p for family in ("stgcn", "stgcnpp", "2s-agcn") for p in (ROOT / "configs/skeleton" / family).glob("*.py")
)
SKELETON_CONFIGS = sorted(
    [p for p in (ROOT / "configs" / "skeleton").rglob("*.py") if "_base_" not in p.parts] + DEMO_SKELETON_CONFIGS
)


def test_configs_are_found() -> None:
    assert len(CONFIGS) >= 30


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_builds_and_its_test_pipeline_is_supported(path: Path) -> None:
    cfg = read_config(path)
    model = build(cfg.model)
    spec = ClipSpec.from_config(cfg)
    assert spec.input_format == model.input_format  # type: ignore[attr-defined]
    assert spec.window_frames >= spec.clip_len >= 1
    shape = spec.input_shape(360, 640)
    assert shape[1] == 3 and len(shape) == (4 if spec.input_format == "NCHW" else 5)
    if cfg.get("load_from") and "://" not in str(cfg.load_from):  # shipped checkpoints must exist
        assert Path(cfg.load_from).is_file(), cfg.load_from


@pytest.mark.parametrize("path", SKELETON_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_skeleton_config_builds_and_its_pipeline_feeds_the_model(path: Path) -> None:
    import numpy as np
    import torch

    from engines.clip_spec import find_pipeline
    from engines.skeleton.transforms import HEATMAP_FORMAT, SkeletonPipeline

    cfg = read_config(path)
    model = build(cfg.model)
    pipeline = SkeletonPipeline.from_config(find_pipeline(cfg) or [])
    rng = np.random.default_rng(0)
    kp = rng.uniform(50, 250, size=(2, 60, 17, 2)).astype(np.float32)
    out = pipeline(kp, rng.uniform(0, 1, size=(2, 60, 17)).astype(np.float32), (300, 400))
    assert out.shape == pipeline.output_shape(17, 2)
    if pipeline.output_format == HEATMAP_FORMAT:  # one view, 8 frames: the model takes the pipeline's layout
        with torch.no_grad():
            scores = model(torch.from_numpy(out[None, :1, :, :8].copy()))
        assert scores.shape == (1, model.num_classes)  # type: ignore[attr-defined]
    load_from = str(cfg.get("load_from", "://"))  # model-zoo URLs, or a shipped checkpoint that exists
    assert "://" in load_from or Path(load_from).is_file(), load_from


@pytest.mark.parametrize("path", GCN_CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_gcn_config_builds_and_scores_a_keypoint_input(path: Path) -> None:
    import numpy as np
    import torch

    from engines.config import to_plain
    from engines.skeleton.gcn_engine import gcn_input_spec

    cfg = read_config(path)
    model = build(cfg.model)
    spec = gcn_input_spec(to_plain(cfg.model), to_plain(cfg.test_pipeline), num_clips=2, where=str(path))
    assert spec.shape == (2, 2, 100, 17, 3)  # 2 of the 10 test clips: 2 people x 100 frames x 17 joints x (x, y, score)
    keypoints = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, *spec.shape)).astype(np.float32))
    with torch.no_grad():
        scores = model(keypoints)
    assert scores.shape == (1, model.num_classes)  # type: ignore[attr-defined]
    assert torch.allclose(scores.sum(), torch.tensor(1.0))  # average_clips='prob': mean softmax over the clips
