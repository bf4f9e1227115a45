"""``engines.build`` / ``engines.infer`` never lose a user's file: fault injection.

The tiny TSN config with random weights. Refusals and the rebuild run the commands'
``main(argv)`` in-process (the code path of ``python -m``, without paying torch's import
per case); interruptions are real ``python -m engines.build`` processes sent SIGINT /
SIGKILL once the build has started writing its temporary folder. Each case checks the
exit code, the one-line message, that existing files are byte-identical afterwards, and
that engines still load and run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines import build as build_cli
from engines import infer as infer_cli
from engines.engine import load_engine
from engines.export import sample_inputs
from tests.engines.engine_helpers import make_checkpoint, write_tsn_config
from tests.processes import Watched

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 64, 64)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def build_cmd(config: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "engines.build", "--config", str(config), "--checkpoint", str(checkpoint),
            "--out", str(out), "--backend", "onnxruntime", "--fp32", *extra]  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def build(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    """``python -m engines.build ARGV`` in-process: exit code and stderr."""
    capsys.readouterr()
    rc = build_cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def build_args(config: Path, checkpoint: Path, out: Path, *extra: str) -> list[str | Path]:
    return build_cmd(config, checkpoint, out, *extra)[3:]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def runs(engine_dir: Path, batch: np.ndarray) -> np.ndarray:
    with load_engine(engine_dir) as engine:
        return engine.infer(batch)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("fi-model")
    config = write_tsn_config(work / "tsn.py")
    return config, make_checkpoint(config, work / "tsn.pth", seed=5)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, model: tuple[Path, Path]) -> Path:
    """An engine directory built once (max batch 2); tests work on copies."""
    out = tmp_path_factory.mktemp("fi-engine") / "engine"
    assert build_cli.main([str(a) for a in build_args(*model, out, "--max-batch", "2")]) == 0
    return out


@pytest.fixture
def batch() -> np.ndarray:
    return sample_inputs(SHAPE, 2, seed=1)


@pytest.fixture
def engine_copy(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "engine"
    shutil.copytree(built, out)
    return out


def test_build_refuses_a_folder_with_other_files(
    model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.py").write_text("# the user's own config\n")
    (out / "weights.pth").write_bytes(b"the user's weights")
    (out / "openvino").mkdir()
    (out / "openvino" / "model.xml").write_text("<xml/>")
    before = snapshot(tmp_path)
    rc, err = build(capsys, *build_args(*model, out))
    assert rc == 2, err
    assert "is a non-empty folder that is not an engine folder" in one_error_line(err)
    assert snapshot(tmp_path) == before


def test_build_refuses_an_engine_folder_holding_the_config(
    engine_copy: Path, model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Rebuilding an engine from the config copy it holds (as format-2 engines and older caches did).
    config = engine_copy / "config.py"
    shutil.copy(model[0], config)
    before = snapshot(engine_copy.parent)
    rc, err = build(capsys, *build_args(config, model[1], engine_copy))
    assert rc == 2, err
    assert f"config {config} lies inside out {engine_copy}" in one_error_line(err)
    assert snapshot(engine_copy.parent) == before


def test_build_refuses_an_engine_folder_with_foreign_files(
    engine_copy: Path, model: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (engine_copy / "notes.txt").write_text("results of last week's benchmark")
    before = snapshot(engine_copy.parent)
    rc, err = build(capsys, *build_args(*model, engine_copy))
    assert rc == 2, err
    assert "not part of an engine (notes.txt)" in one_error_line(err)
    assert snapshot(engine_copy.parent) == before


def test_build_refuses_a_file(model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "engine"
    out.write_bytes(b"precious")
    rc, err = build(capsys, *build_args(*model, out))
    assert rc == 2 and "is a file" in one_error_line(err)
    assert out.read_bytes() == b"precious"


def test_build_over_an_engine_folder_replaces_it_whole(
    engine_copy: Path, model: tuple[Path, Path], batch: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    old_scores = runs(engine_copy, batch)
    rc, err = build(capsys, *build_args(*model, engine_copy, "--max-batch", "3"))
    assert rc == 0, err
    manifest = json.loads((engine_copy / "manifest.json").read_text())
    assert manifest["max_batch"] == 3 and manifest["validation"]["batch"] == 2
    np.testing.assert_allclose(runs(engine_copy, batch), old_scores, atol=1e-5)  # loads and runs
    assert sorted(p.name for p in engine_copy.parent.iterdir()) == ["engine"]  # no temporaries left


def _wait_for_partial(proc: Watched, parent: Path, name: str) -> Path:
    """The build's temporary folder once it holds the exported model (observed progress)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [p for p in parent.glob(f".{name}.partial-*") if (p / "model.onnx").exists()]
        if found:
            return found[0]
        if proc.proc.poll() is not None:
            break
        time.sleep(0.02)  # polling the file system: the build reports nothing finer
    raise AssertionError(f"the build never wrote model.onnx:\n{proc.stderr[-3000:]}")


def test_ctrl_c_during_a_build_leaves_the_old_engine(
    engine_copy: Path, model: tuple[Path, Path], batch: np.ndarray
) -> None:
    before = snapshot(engine_copy.parent)
    with Watched(build_cmd(*model, engine_copy, "--max-batch", "3"), cwd=ROOT, env=env()) as proc:
        _wait_for_partial(proc, engine_copy.parent, "engine")
        proc.send(signal.SIGINT)
        rc, err = proc.finish()
    assert rc == 130 and "interrupted" in err, err
    assert snapshot(engine_copy.parent) == before  # the temporary folder is gone too
    runs(engine_copy, batch)


def test_kill_9_during_a_build_then_the_next_build(
    engine_copy: Path, model: tuple[Path, Path], batch: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(engine_copy)
    with Watched(build_cmd(*model, engine_copy, "--max-batch", "3"), cwd=ROOT, env=env()) as proc:
        partial = _wait_for_partial(proc, engine_copy.parent, "engine")
        proc.send(signal.SIGKILL)
        rc, _ = proc.finish()
    assert rc == -signal.SIGKILL
    assert snapshot(engine_copy) == before  # the old engine is whole and still loads
    assert json.loads((engine_copy / "manifest.json").read_text())["max_batch"] == 2
    runs(engine_copy, batch)
    assert partial.exists()  # what the killed build left, beside it
    rc, err = build(capsys, *build_args(*model, engine_copy, "--max-batch", "3"))
    assert rc == 0, err
    assert json.loads((engine_copy / "manifest.json").read_text())["max_batch"] == 3
    assert sorted(p.name for p in engine_copy.parent.iterdir()) == ["engine"]  # swept


@pytest.mark.parametrize("case", ["folder", "not-npy", "is-input"])
def test_infer_output_must_be_a_new_npy_file(
    built: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pixels = tmp_path / "x.npy"
    np.save(pixels, sample_inputs(SHAPE, 1, seed=2))
    folder = tmp_path / "results"
    folder.mkdir()
    output = {"folder": folder, "not-npy": tmp_path / "scores.txt", "is-input": pixels}[case]
    message = {"folder": "is a folder; expected a .npy file path", "not-npy": "expected a file path ending in .npy",
               "is-input": f"--output {pixels} is the input --input {pixels}"}[case]  # fmt: skip
    before = snapshot(tmp_path)
    capsys.readouterr()
    rc = infer_cli.main(["--engine", str(built), "--input", str(pixels), "--output", str(output)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in one_error_line(err)
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["results", "x.npy"]
