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
#: tests/engines/test_models_stdet.py).
CONFIGS = sorted(
    p
    for p in (ROOT / "configs").rglob("*.py")
    if "_base_" not in p.parts and p.relative_to(ROOT / "configs").parts[0] not in ("detection", "pose")
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
