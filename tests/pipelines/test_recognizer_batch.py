"""The recognizer runs the batch its engine's probe preferred (cache entries), or the max batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pipelines.recognizer as recognizer_module
from pipelines.clip_buffer import ClipBuffer
from pipelines.recognizer import open_recognizer
from tests.engines.engine_helpers import make_checkpoint, write_tiny_tsn_config
from tests.pipelines.test_frame_reuse import clips_of, frames, packet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("batch")
    config = write_tiny_tsn_config(folder / "tsn.py", views=2)
    return config, make_checkpoint(config, folder / "tsn.pth", seed=3)


@pytest.mark.parametrize(("preferred", "calls"), [(1, [1] * 6), (4, [4, 2])])
def test_scores_run_in_chunks_of_the_preferred_batch(
    engine_cache: Path, tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, preferred: int, calls: list[int]
) -> None:
    monkeypatch.setattr(recognizer_module, "batch_probe", lambda engine: {"preferred": preferred})
    config, checkpoint = tiny
    rec = open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32", max_batch=4, reuse=False)
    try:
        assert rec.max_batch == preferred
        clips = clips_of(
            ClipBuffer(rec.spec, source_id="cam", stride=0.5), [packet(f, i) for i, f in enumerate(frames(7))]
        )
        assert len(clips) == 6
        sizes: list[int] = []
        infer = rec.engine.infer

        def spy(batch: np.ndarray) -> Any:
            sizes.append(len(batch))
            return infer(batch)

        monkeypatch.setattr(rec.engine, "infer", spy)
        got = rec.scores(clips)
        assert sizes == calls
        np.testing.assert_allclose(got, infer(rec.inputs(clips)), atol=1e-5, rtol=0)  # same scores either way
    finally:
        rec.close()


def test_a_cache_entry_records_its_probe_and_a_users_engine_folder_is_not_probed(
    engine_cache: Path, tiny: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, checkpoint = tiny
    rec = open_recognizer(config, checkpoint, backend="onnxruntime", precision="fp32", max_batch=4, reuse=False)
    folder = rec.engine.engine_dir
    rec.close()
    probe = json.loads((folder / "manifest.json").read_text())["validation"]["batch_probe"]
    assert probe["max_batch"] == 4 and rec.max_batch == probe["preferred"] in (1, 4)
    # --engine DIR: not ours to write into, and not timed: the max batch, as built
    monkeypatch.setattr(recognizer_module, "batch_probe", lambda engine: pytest.fail("probed a user's engine"))
    before = (folder / "manifest.json").read_bytes()
    user = open_recognizer(config, engine_dir=folder, backend="onnxruntime", max_batch=4)
    user.close()
    assert user.max_batch == 4 and user.batch is None
    assert (folder / "manifest.json").read_bytes() == before
