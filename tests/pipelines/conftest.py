"""A small real engine for pipeline tests: the demo config with seeded random weights."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "configs" / "demo" / "demo_slowonly_r18_synthetic.py"


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Engines built by the tests go to a temporary cache, not the user's."""
    cache = tmp_path_factory.mktemp("engine-cache")
    old = os.environ.get("ACTION_STREAM_CACHE")
    os.environ["ACTION_STREAM_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("ACTION_STREAM_CACHE", None)
    else:
        os.environ["ACTION_STREAM_CACHE"] = old


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with seeded random weights, saved in MMAction2's checkpoint layout."""
    from mmengine.config import Config

    from engines.checkpoint import save_checkpoint
    from engines.models import build

    torch.manual_seed(0)
    cfg = Config.fromfile(str(DEMO_CONFIG))
    model = build(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "random_demo.pth"
    save_checkpoint(model, path, meta={"dataset_meta": {"classes": list(cfg.dataset_meta.classes)}})
    return path


@pytest.fixture(scope="session")
def labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(f"action_{i}" for i in range(8)) + "\n")
    return path


def assert_partial_segments(segments: Path, frames_done: int, labels: Path) -> None:
    """An interrupted run's segments: not empty, in order, before ``frames_done``, labels from the label file."""
    found = json.loads(segments.read_text())
    assert found, "no segment for the frames done before the interrupt"
    names = set(labels.read_text().splitlines())
    assert all(s["label"] in names for s in found), found
    spans = [(s["first_frame"], s["last_frame"]) for s in found]
    assert all(a <= b for a, b in spans) and all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(spans)), spans
    assert spans[-1][1] < frames_done, (spans, frames_done)
