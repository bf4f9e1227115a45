"""``average_clips`` as MMAction2's head applies it, through the recognizer the entry points use.

MMAction2 1.2's ``BaseHead.average_clip``: ``'prob'`` averages softmax probabilities, ``'score'``
averages the raw scores (no softmax: its demos threshold and print them as they are), ``None``
folds nothing, so several clips give one score row per clip (which no demo can label: refused
at start-up with the key and the fix).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from pipelines.recognizer import Recognizer, open_recognizer
from tests.engines.mmaction_ref import build_mmaction_model
from tests.pipelines.conftest import DEMO_CONFIG

CLIP = (3, 8, 64, 112)  # C, T, H, W of the demo config


def _pixels(views: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.uniform(0, 255, size=(2, views, *CLIP)).astype(np.float32)


def _normalized(pixels: np.ndarray, recognizer: Recognizer) -> np.ndarray:
    manifest = recognizer.engine.manifest
    mean = np.asarray(manifest.mean, np.float32).reshape(3, 1, 1, 1)
    std = np.asarray(manifest.std, np.float32).reshape(3, 1, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


def _mmaction_scores(checkpoint: Path, average_clips: str | None, inputs: np.ndarray) -> np.ndarray:
    """What MMAction2's own model puts in ``pred_score`` for normalised ``inputs``."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(DEMO_CONFIG))
    model_cfg = cfg.model.to_dict()
    model_cfg["cls_head"]["average_clips"] = average_clips
    model_cfg.pop("data_preprocessor")  # inputs are normalised here, as its preprocessor would
    ref = build_mmaction_model(model_cfg)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    ref.load_state_dict(state, strict=True)
    from mmaction.structures import ActionDataSample

    with torch.no_grad():
        samples = ref.predict(torch.from_numpy(inputs), [ActionDataSample() for _ in range(len(inputs))])
    return torch.stack([s.pred_score for s in samples]).numpy()


def _our_scores(recognizer: Recognizer, pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    batch = _normalized(pixels, recognizer) if recognizer.normalize else pixels
    monkeypatch.setattr(recognizer, "inputs", lambda clips: batch[: len(clips)])
    return recognizer.scores([None] * len(pixels))  # type: ignore[list-item]


@pytest.mark.parametrize(
    "average_clips, views",
    [pytest.param("score", 2, id="score-2-clips"), pytest.param("prob", 2, id="prob-2-clips"),
     pytest.param(None, 1, id="none-1-clip")],
)  # fmt: skip
def test_scores_match_mmaction2_head(
    engine_cache: Path,
    random_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    average_clips: str | None,
    views: int,
) -> None:
    recognizer = open_recognizer(
        DEMO_CONFIG, random_checkpoint, backend="onnxruntime", precision="fp32", num_clips=views,
        cfg_options={"model.cls_head.average_clips": average_clips}, max_batch=2,
    )  # fmt: skip
    try:
        pixels = _pixels(views)
        ours = _our_scores(recognizer, pixels, monkeypatch)
        expected = _mmaction_scores(random_checkpoint, average_clips, _normalized(pixels, recognizer))
    finally:
        recognizer.close()
    expected = expected.reshape(ours.shape)  # None: MMAction2 keeps a clip axis of 1
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-4)
    assert recognizer.probabilities == (average_clips == "prob")
    if average_clips != "prob":  # raw scores as the head gives them: not softmaxed
        assert not np.allclose(ours.sum(axis=1), 1.0, atol=1e-3)


def test_unfolded_clips_are_refused_at_start_up(engine_cache: Path, random_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.cls_head\.average_clips=None.*average_clips=prob"):
        open_recognizer(
            DEMO_CONFIG, random_checkpoint, backend="onnxruntime", precision="fp32", num_clips=2,
            cfg_options={"model.cls_head.average_clips": None},
        )  # fmt: skip


def test_long_video_with_unfolded_clips_exits_2_naming_the_key(
    engine_cache: Path, random_checkpoint: Path, labels_file: Path, tmp_path: Path
) -> None:
    from tests.media import make_video
    from tests.pipelines.test_entry_points import run

    video = make_video(tmp_path / "v.mp4", frames=40, fps=25, size=(160, 120)).path
    result = run(
        "stream.long_video", str(DEMO_CONFIG), str(random_checkpoint), str(video), str(labels_file),
        str(tmp_path / "out.json"), "--backend", "onnxruntime", "--num-clips", "2",
        "--cfg-options", "model.cls_head.average_clips=None", cache=engine_cache,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "model.cls_head.average_clips=None" in result.stderr
    assert "IndexError" not in result.stderr
    assert not (tmp_path / "out.json").exists()
