"""The batch probe: on a CPU a cached engine runs the batch that measured cheaper per clip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engines.engine as engine_module
from engines.engine import Engine, batch_probe, build_engine, load_engine
from tests.engines.engine_helpers import make_checkpoint, write_tiny_tsn_config


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny TSN engine (ONNX Runtime, max batch 4), kept unopened: each test opens its own copy."""
    folder = tmp_path_factory.mktemp("probe")
    config = write_tiny_tsn_config(folder / "tsn.py", views=2)
    checkpoint = make_checkpoint(config, folder / "tsn.pth", seed=1)
    build_engine(config, checkpoint, backend="onnxruntime", precision="fp32", max_batch=4,
                 out_dir=folder / "engine").close()  # fmt: skip
    return config, checkpoint, folder / "engine"


def _copy(src: Path, dst: Path) -> Engine:
    import shutil

    shutil.copytree(src, dst)
    return load_engine(dst, "onnxruntime")


@pytest.mark.parametrize(
    ("one_ms", "full_ms", "preferred"),
    [(1.0, 2.0, 1), (2.0, 1.0, 4), (0.97, 1.0, 4), (0.94, 1.0, 1)],
    ids=["batch-1-cheaper", "max-batch-cheaper", "within-the-margin", "just-past-the-margin"],
)
def test_the_batch_cheaper_per_clip_is_preferred_and_recorded(
    built: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_ms: float,
    full_ms: float,
    preferred: int,
) -> None:
    sizes: list[int] = []

    def timed(engine: Engine, clips: np.ndarray, repeats: int = 3) -> float:
        sizes.append(len(clips))
        return (one_ms if len(clips) == 1 else full_ms) / 1e3

    monkeypatch.setattr(engine_module, "time_per_clip", timed)
    engine = _copy(built[2], tmp_path / "engine")
    try:
        probe = batch_probe(engine)
    finally:
        engine.close()
    assert sizes == [1, 4] * engine_module.BATCH_PROBE_ROUNDS  # interleaved rounds
    assert probe == {"ms_per_clip": {"1": one_ms, "4": full_ms}, "max_batch": 4, "preferred": preferred}
    saved = json.loads((tmp_path / "engine" / "manifest.json").read_text())["validation"]["batch_probe"]
    assert saved == probe
    # read back on the next open, not timed again
    monkeypatch.setattr(engine_module, "time_per_clip", lambda *a, **k: pytest.fail("timed again"))
    again = load_engine(tmp_path / "engine", "onnxruntime")
    try:
        assert batch_probe(again) == probe
    finally:
        again.close()


def test_no_probe_for_batch_one_engines_or_other_backends(
    built: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "time_per_clip", lambda *a, **k: pytest.fail("timed"))
    config, checkpoint, _ = built
    single = build_engine(config, checkpoint, backend="onnxruntime", precision="fp32", max_batch=1,
                          out_dir=tmp_path / "one")  # fmt: skip
    eager = build_engine(config, checkpoint, backend="torch", precision="fp32", max_batch=4, out_dir=tmp_path / "t")
    try:
        assert batch_probe(single) is None and batch_probe(eager) is None
        assert "batch_probe" not in single.manifest.validation
    finally:
        single.close()
        eager.close()


def test_unrecorded_probe_leaves_the_folder_alone(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """``record=False`` (an engine folder that is not ours): measured, kept in memory only."""
    engine = _copy(built[2], tmp_path / "engine")
    before = (tmp_path / "engine" / "manifest.json").read_bytes()
    try:
        probe: Any = batch_probe(engine, record=False)
    finally:
        engine.close()
    assert probe["max_batch"] == 4 and probe["preferred"] in (1, 4)
    assert probe["ms_per_clip"]["1"] > 0 and probe["ms_per_clip"]["4"] > 0
    assert (tmp_path / "engine" / "manifest.json").read_bytes() == before
