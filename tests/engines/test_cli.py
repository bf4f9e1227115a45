"""``python -m engines.build`` / ``python -m engines.infer``: end to end, error handling, MMAction2 parity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines import build as build_cli
from engines import infer as infer_cli
from engines.config import load_config
from engines.export import sample_inputs
from tests.engines.engine_helpers import MEAN, STD, make_checkpoint, random_model, write_tsn_config

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 64, 64)


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=240
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def config(work: Path) -> Path:
    return write_tsn_config(work / "tsn_r18.py", average_clips="prob")


@pytest.fixture(scope="module")
def checkpoint(work: Path, config: Path) -> Path:
    path = make_checkpoint(config, work / "tsn_r18.pth", seed=3)
    assert set(torch.load(path, weights_only=True)) == {"state_dict", "meta"}
    return path


@pytest.fixture(scope="module")
def folded_engine(work: Path, config: Path, checkpoint: Path) -> Path:
    """An engine built in a subprocess, taking raw RGB pixels."""
    out = work / "engine"
    result = _run(
        "engines.build",
        *("--config", str(config), "--checkpoint", str(checkpoint), "--out", str(out)),
        *("--backend", "onnxruntime", "--fold-normalize", "--max-batch", "2"),
    )
    assert result.returncode == 0, result.stderr
    assert "built" in result.stdout and "backend=onnxruntime" in result.stdout
    return out


@pytest.fixture(scope="module")
def pixels(work: Path) -> Path:
    path = work / "pixels.npy"
    np.save(path, sample_inputs(SHAPE, 3, normalize=False, seed=17))
    return path


def _torch_reference(config: Path, checkpoint: Path, pixels: np.ndarray) -> np.ndarray:
    model = random_model(config)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    shape = (1, 1, 3, 1, 1)
    normalised = (pixels - np.reshape(MEAN, shape)) / np.reshape(STD, shape)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(normalised.astype(np.float32))).numpy()


def test_build_and_infer_end_to_end(
    work: Path, config: Path, checkpoint: Path, folded_engine: Path, pixels: Path
) -> None:
    out = work / "scores.npy"
    result = _run("engines.infer", "--engine", str(folded_engine), "--input", str(pixels), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sample ") == 3
    scores = np.load(out)
    assert scores.shape == (3, 10) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, _torch_reference(config, checkpoint, np.load(pixels)), atol=1e-5, rtol=0)


def test_infer_matches_mmaction2(work: Path, config: Path, checkpoint: Path, folded_engine: Path, pixels: Path) -> None:
    """The end-to-end check: same scores as MMAction2's own model, preprocessor included."""
    from mmaction.structures import ActionDataSample

    from tests.engines.mmaction_ref import build_mmaction_model

    ref = build_mmaction_model(load_config(config).model)
    ref.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    raw = np.load(pixels)
    data = {
        "inputs": [torch.from_numpy(sample) for sample in raw],
        "data_samples": [ActionDataSample() for _ in raw],
    }
    with torch.no_grad():
        results = ref.test_step(data)  # type: ignore[operator]
    expected = torch.stack([r.pred_score for r in results]).numpy()

    out = work / "scores_mm.npy"
    assert (
        infer_cli.main(["--engine", str(folded_engine), "--input", str(pixels), "--output", str(out), "--top", "0"])
        == 0
    )
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5, rtol=0)


def test_single_sample_and_backend_override(work: Path, folded_engine: Path, pixels: Path) -> None:
    one = work / "one.npy"
    np.save(one, np.load(pixels)[0])
    out = work / "one_scores.npy"
    assert (
        infer_cli.main(["--engine", str(folded_engine), "--input", str(one), "--output", str(out), "--top", "0"]) == 0
    )
    ort = np.load(out)
    assert ort.shape == (1, 10)
    code = infer_cli.main(
        ["--engine", str(folded_engine), "--input", str(one), "--output", str(out), "--backend", "torch", "--top", "0"]
    )
    assert code == 0
    np.testing.assert_allclose(np.load(out), ort, atol=1e-5, rtol=0)


def test_user_error_in_subprocess_is_one_line(work: Path, folded_engine: Path) -> None:
    bad = work / "bad.npy"
    np.save(bad, np.zeros((1, 3, 3, 64, 64), np.float32))
    result = _run("engines.infer", "--engine", str(folded_engine), "--input", str(bad), "--output", str(work / "o.npy"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "expected shape (N, 2, 3, 64, 64)" in lines[0] and "got (1, 3, 3, 64, 64)" in lines[0]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing-config", "no such file"),
        ("missing-checkpoint", "no such file"),
        ("bad-config", "syntax error"),
        ("wrong-classes", "cls_head.fc_cls.weight"),
        ("not-a-checkpoint", "not a PyTorch checkpoint"),
        ("no-backend", "needs TensorRT"),
        ("bad-shape", "expected 4 positive sizes"),
    ],
)
def test_build_user_errors(
    work: Path, config: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], case: str, match: str
) -> None:
    cfg, ckpt, extra = str(config), str(checkpoint), ["--backend", "onnxruntime"]
    if case == "missing-config":
        cfg = str(work / "nope.py")
    elif case == "missing-checkpoint":
        ckpt = str(work / "nope.pth")
    elif case == "bad-config":
        (work / "broken.py").write_text("model = dict(\n")
        cfg = str(work / "broken.py")
    elif case == "wrong-classes":
        extra += ["--cfg-options", "model.cls_head.num_classes=5"]
    elif case == "not-a-checkpoint":
        ckpt = cfg
    elif case == "no-backend":
        if _trt_installed():
            pytest.skip("TensorRT is installed here")
        extra = ["--backend", "tensorrt"]
    elif case == "bad-shape":
        extra += ["--input-shape", "2,3,64"]
    code = build_cli.main(["--config", cfg, "--checkpoint", ckpt, "--out", str(work / f"err_{case}"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert match in err


def _trt_installed() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("case", ["missing-engine", "missing-input", "pickle-input", "int-input"])
def test_infer_user_errors(
    work: Path, folded_engine: Path, pixels: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    engine, source = str(folded_engine), str(pixels)
    if case == "missing-engine":
        engine = str(work / "no_engine")
    elif case == "missing-input":
        source = str(work / "no.npy")
    elif case == "pickle-input":
        np.save(work / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        source = str(work / "obj.npy")
    elif case == "int-input":
        np.save(work / "int.npy", np.zeros((1, *SHAPE), np.uint8))
        source = str(work / "int.npy")
    code = infer_cli.main(["--engine", engine, "--input", source, "--output", str(work / "o.npy")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("python -m engines.infer: error:"), err


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_cli.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--config", "--checkpoint", "--backend", "--fp16", "--bf16", "--max-batch", "--cfg-options",
        "--fold-normalize", "--out", "--average-clips", "--input-shape", "--trust-checkpoint",
    ):  # fmt: skip
        assert flag in text
    for name in ("auto", "onnxruntime", "openvino", "tensorrt", "torch-cuda", "torch"):
        assert name in text
    with pytest.raises(SystemExit):
        infer_cli.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--engine", "--input", "--output", "--backend"):
        assert flag in text


@pytest.mark.parametrize("option", ["foo", "a=[1,2"])
def test_malformed_cfg_options_are_usage_errors(capsys: pytest.CaptureFixture[str], option: str) -> None:
    with pytest.raises(SystemExit) as info:
        build_cli.main(["--config", "c.py", "--checkpoint", "c.pth", "--out", "o", "--cfg-options", option])
    assert info.value.code == 2
    assert "--cfg-options" in capsys.readouterr().err.strip().splitlines()[-1]
