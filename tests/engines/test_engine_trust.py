"""Engine folders are untrusted input: no code runs, paths stay inside, hashes and graph are checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines import infer as infer_cli
from engines.engine import build_engine, load_engine
from engines.errors import ModelConfigError
from engines.export import sample_inputs
from engines.integrity import EngineFileError, EngineMismatchError, EnginePathError, EngineTrustError, file_sha256
from engines.manifest import FORMAT_VERSION, ManifestError
from engines.model_json import read_model_json, write_model_json
from tests.engines.engine_helpers import MEAN, STD, make_checkpoint, write_tsn_config

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 64, 64)
REBUILD = "rebuild the engine with python -m engines.build"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine with ONNX + model.json + weights; tests tamper with copies of it."""
    work = tmp_path_factory.mktemp("trust")
    config = write_tsn_config(work / "tsn.py", average_clips="prob")
    checkpoint = make_checkpoint(config, work / "tsn.pth", seed=5)
    out = work / "engine"
    build_engine(config, checkpoint, backend="onnxruntime", max_batch=2, out_dir=out, copy_weights=True, validate=False)
    return out


@pytest.fixture
def engine_dir(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "engine"
    shutil.copytree(built, copy)
    return copy


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return sample_inputs(SHAPE, 2, mean=MEAN, std=STD, seed=4)


def _manifest(engine_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((engine_dir / "manifest.json").read_text())
    return data


def _save(engine_dir: Path, data: dict[str, Any]) -> None:
    (engine_dir / "manifest.json").write_text(json.dumps(data))


def _infer_args(engine_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    pixels = tmp_path / "x.npy"
    np.save(pixels, sample_inputs(SHAPE, 1, mean=MEAN, std=STD, seed=1))
    output = tmp_path / "y.npy"
    return ["--engine", str(engine_dir), "--input", str(pixels), "--output", str(output), "--top", "0", *extra]


def _infer_cli(engine_dir: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m engines.infer`` in a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "engines.infer", *_infer_args(engine_dir, tmp_path, *extra)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)


def _infer_main(
    engine_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """The same command line in this process (``engines.infer.main``), for the cheaper cases."""
    capsys.readouterr()
    code = infer_cli.main(_infer_args(engine_dir, tmp_path, *extra))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["engines.infer"], code, out, err)


def _one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING ")]  # logs
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("python -m engines.infer: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- what the build records ----------------------------------------------------------------------


def test_build_records_a_hash_of_every_file_and_no_python(built: Path) -> None:
    data = _manifest(built)
    assert data["format_version"] == FORMAT_VERSION
    assert data["files"] == {"onnx": "model.onnx", "model": "model.json", "weights": "weights.pth"}
    on_disk = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert sorted(data["sha256"]) == [p for p in on_disk if p != "manifest.json"]
    for rel, digest in data["sha256"].items():
        assert file_sha256(built / rel) == digest
    assert data["sha256"]["model.onnx"] == data["onnx_sha256"]
    assert not list(built.glob("*.py"))


def test_torch_backend_rebuilds_the_model_from_json(built: Path, batch: np.ndarray) -> None:
    with load_engine(built) as ort, load_engine(built, backend="torch") as ref:
        np.testing.assert_allclose(ort.infer(batch), ref.infer(batch), atol=1e-4, rtol=0)


def test_model_json_keeps_tuples_and_refuses_non_data(tmp_path: Path) -> None:
    model = {"type": "R", "backbone": {"out_indices": (3,), "strides": [(1, 2), (2, 2)]}, "x": None}
    path = write_model_json(tmp_path / "model.json", model, [{"type": "Resize", "scale": (-1, 256)}])
    assert read_model_json(path) == (model, [{"type": "Resize", "scale": (-1, 256)}])
    with pytest.raises(ModelConfigError, match=r"model\.act: type value"):
        write_model_json(tmp_path / "bad.json", {"type": "R", "act": type}, [])
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(EngineFileError, match="not readable JSON"):
        read_model_json(tmp_path / "junk.json")


# -- no code from the folder ------------------------------------------------------------------------


def _legacy_with_code(engine_dir: Path, marker: Path) -> None:
    """Turn the copy into a format 2 engine whose config.py would create ``marker`` when executed."""
    model, pipeline = read_model_json(engine_dir / "model.json")
    (engine_dir / "config.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nmodel = {model!r}\ntest_pipeline = {pipeline!r}\n"
    )
    (engine_dir / "model.json").unlink()
    data = _manifest(engine_dir)
    data.update(format_version=2, files={"onnx": "model.onnx", "config": "config.py", "weights": "weights.pth"})
    del data["sha256"]
    _save(engine_dir, data)


def test_code_in_an_old_engine_folder_runs_only_with_trust_engine(
    engine_dir: Path, tmp_path: Path, batch: np.ndarray
) -> None:
    marker = tmp_path / "code-ran"
    _legacy_with_code(engine_dir, marker)
    with pytest.raises(EngineTrustError, match="--trust-engine"):
        load_engine(engine_dir, backend="torch")
    line = _one_line_exit_2(_infer_cli(engine_dir, tmp_path, "--backend", "torch"), "config.py", "--trust-engine")
    assert REBUILD in line
    assert not marker.exists()  # the folder's Python never ran
    with load_engine(engine_dir, backend="torch", trusted=True) as engine:  # the flag is what gates it
        assert engine.infer(batch).shape == (2, 10)
    assert marker.read_text() == "ran"


def test_a_new_format_manifest_cannot_point_the_torch_backend_at_python(engine_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    (engine_dir / "config.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nmodel = dict(type='X')\n")
    data = _manifest(engine_dir)
    data["files"] = {"onnx": "model.onnx", "config": "config.py", "weights": "weights.pth"}
    data["sha256"]["config.py"] = file_sha256(engine_dir / "config.py")
    _save(engine_dir, data)
    with pytest.raises(ManifestError, match="lists no 'model' file"):
        load_engine(engine_dir, backend="torch")
    assert not marker.exists()


# -- hashes ------------------------------------------------------------------------------------------


def test_a_changed_onnx_is_one_line_exit_2(engine_dir: Path, tmp_path: Path) -> None:
    onnx = engine_dir / "model.onnx"
    raw = bytearray(onnx.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    onnx.write_bytes(bytes(raw))
    _one_line_exit_2(_infer_cli(engine_dir, tmp_path), "model.onnx", "differs from the sha256", REBUILD)


def test_changed_weights_are_caught_before_the_torch_backend_reads_them(engine_dir: Path) -> None:
    with open(engine_dir / "weights.pth", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(EngineFileError, match=r"weights\.pth differs from the sha256"):
        load_engine(engine_dir, backend="torch")


def test_an_unrecorded_file_entry_is_refused(engine_dir: Path) -> None:
    data = _manifest(engine_dir)
    del data["sha256"]["model.json"]
    _save(engine_dir, data)
    with pytest.raises(EngineFileError, match=r"model\.json \(files\['model'\]\) has no recorded sha256"):
        load_engine(engine_dir)


# -- paths ---------------------------------------------------------------------------------------------


def _escape_dotdot(engine_dir: Path) -> str:
    return "../../etc/passwd"


def _escape_absolute(engine_dir: Path) -> str:
    return "/etc/passwd"


def _escape_symlink(engine_dir: Path) -> str:
    outside = engine_dir.parent / "outside.onnx"
    shutil.copy(engine_dir / "model.onnx", outside)
    (engine_dir / "link.onnx").symlink_to(outside)
    return "link.onnx"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(_escape_dotdot, "climbs out of the folder", id="dotdot"),
        pytest.param(_escape_absolute, "is not a relative path inside the folder", id="absolute"),
        pytest.param(_escape_symlink, "resolves outside the folder", id="symlink"),
    ],
)
def test_files_entries_must_stay_inside_the_folder(
    engine_dir: Path, tmp_path: Path, make: Callable[[Path], str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = make(engine_dir)
    data = _manifest(engine_dir)
    data["files"]["onnx"] = entry
    data["sha256"][entry] = "0" * 64
    _save(engine_dir, data)
    with pytest.raises(EnginePathError, match=match):
        load_engine(engine_dir)
    _one_line_exit_2(_infer_main(engine_dir, tmp_path, capsys), "files['onnx']", match)


# -- manifest vs graph -----------------------------------------------------------------------------------


CLASSES = ({"num_classes": 7, "output_shape": [7]}, "num_classes 7 but the graph outputs 10")
SHAPE_HW = ({"input_shape": [2, 3, 32, 32]}, r"input_shape \[2, 3, 32, 32\] does not match")
SHAPE_VIEWS = ({"input_shape": [3, 3, 64, 64]}, r"does not match the graph's \(2, 3, 64, 64\)")


@pytest.mark.parametrize(
    ("backend", "change", "match"),
    [
        *[pytest.param(b, *case, id=f"{b}-{name}") for b in ("onnxruntime", "openvino")
          for name, case in (("classes", CLASSES), ("hw", SHAPE_HW), ("views", SHAPE_VIEWS))],
        pytest.param("torch", *CLASSES, id="torch-classes"),  # torch rebuilds the model for any input size
    ],
)  # fmt: skip
def test_manifest_and_graph_must_agree(
    engine_dir: Path, backend: str, change: dict[str, Any], match: str, batch: np.ndarray
) -> None:
    data = _manifest(engine_dir)
    data.update(change)
    data["class_names"] = None
    _save(engine_dir, data)
    with pytest.raises(EngineMismatchError, match=match):
        # the class count is checked at open where the graph states it, else on the first result
        # (ONNX Runtime: the exported output is symbolic); never silently passed on
        with load_engine(engine_dir, backend=backend) as engine:
            engine.infer(batch)


# -- corrupt or missing files ------------------------------------------------------------------------------


def test_a_missing_onnx_is_one_line(engine_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (engine_dir / "model.onnx").unlink()
    _one_line_exit_2(_infer_main(engine_dir, tmp_path, capsys), "model.onnx is missing", REBUILD)


@pytest.mark.parametrize("trusted", [False, True])
def test_a_corrupt_onnx_is_one_line_even_when_its_hash_was_recorded(
    engine_dir: Path, tmp_path: Path, trusted: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file the backend cannot parse (hash rewritten to match, or a trusted old engine without hashes)."""
    onnx = engine_dir / "model.onnx"
    onnx.write_bytes(b"\x08\x07garbage" * 100)
    data = _manifest(engine_dir)
    if trusted:
        data["format_version"] = 2
        del data["sha256"]
    else:
        data["sha256"]["model.onnx"] = data["onnx_sha256"] = file_sha256(onnx)
    _save(engine_dir, data)
    with pytest.raises(EngineFileError, match=r"model\.onnx: onnxruntime cannot load it"):
        load_engine(engine_dir, trusted=trusted)
    extra = ("--trust-engine",) if trusted else ()
    _one_line_exit_2(_infer_main(engine_dir, tmp_path, capsys, *extra), "cannot load it", REBUILD)
