"""Under CI=true a skip fails unless it needs a GPU/CUDA or TensorRT (tests/ci_skips.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci_skips import skip_allowed_in_ci

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import pytest

@pytest.fixture
def camera():
    pytest.skip("no camera plugged in")

def test_plain_skip():
    pytest.skip("MMAction2 reference not installed")

def test_importorskip():
    pytest.importorskip("surely_not_a_module_xyz")

def test_fixture_skip(camera):
    pass

@pytest.mark.skipif(True, reason="the shipped config is not there")
def test_skipif_mark():
    pass

def test_needs_gpu():
    pytest.skip("needs a CUDA GPU")

@pytest.mark.skipif(True, reason="TensorRT is not installable on this workplace")
def test_needs_tensorrt():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False

@pytest.mark.slow
def test_deselected():
    pytest.skip("never collected with -m 'not slow'")

def test_passes():
    pass
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("surely_not_a_module_xyz")

def test_never_runs():
    pass
"""


@pytest.mark.parametrize(
    ("reason", "allowed"),
    [
        ("needs a CUDA GPU", True),
        ("a CUDA GPU is present", True),
        ("TensorRT is not installable on this workplace", True),
        ("needs a gpu", True),
        ("MMAction2 reference not installed", False),
        ("GStreamer RTSP server unavailable", False),
        ("could not import 'openvino'", False),
        ("gpuless build", False),  # a word, not a substring
    ],
)
def test_skip_allowed_in_ci(reason: str, allowed: bool) -> None:
    assert skip_allowed_in_ci(reason) is allowed


def _run(tmp_path: Path, source: str, ci: str | None) -> tuple[dict[str, str], str]:
    """Run pytest with the CI skip hooks on one generated file; outcome per test name, and the output."""
    (tmp_path / "test_sample.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")  # keep the project's ini out
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider", "-rA", "-v",
         "-m", "not slow", "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    outcomes: dict[str, str] = {}
    for line in proc.stdout.splitlines():  # -v: "test_sample.py::test_x PASSED  [ 10%]"
        if line.startswith("test_sample.py::"):
            name, word = line.removeprefix("test_sample.py::").split()[:2]
            outcomes.setdefault(name, word)
    return outcomes, proc.stdout + proc.stderr


def test_without_ci_skips_stay_skips(tmp_path: Path) -> None:
    outcomes, output = _run(tmp_path, SAMPLE, ci=None)
    skipped = {"test_plain_skip", "test_importorskip", "test_fixture_skip", "test_skipif_mark"}
    skipped |= {"test_needs_gpu", "test_needs_tensorrt"}
    assert {name for name, word in outcomes.items() if word == "SKIPPED"} == skipped, output
    assert outcomes["test_passes"] == "PASSED" and outcomes["test_expected_failure"] == "XFAIL", output
    assert "test_deselected" not in output and "1 deselected" in output, output


def test_under_ci_a_skip_fails_with_its_reason(tmp_path: Path) -> None:
    outcomes, output = _run(tmp_path, SAMPLE, ci="true")
    failed = {"test_plain_skip", "test_importorskip", "test_fixture_skip", "test_skipif_mark"}
    assert {name for name, word in outcomes.items() if word in {"FAILED", "ERROR"}} == failed, output
    assert outcomes["test_needs_gpu"] == outcomes["test_needs_tensorrt"] == "SKIPPED", output
    assert outcomes["test_passes"] == "PASSED" and outcomes["test_expected_failure"] == "XFAIL", output
    assert "test_deselected" not in output and "1 deselected" in output, output
    assert "skipped under CI=true" in output and "MMAction2 reference not installed" in output, output
    assert "surely_not_a_module_xyz" in output and "no camera plugged in" in output, output


def test_under_ci_a_module_level_skip_fails(tmp_path: Path) -> None:
    _, relaxed = _run(tmp_path, MODULE_SKIP, ci=None)
    assert "1 skipped" in relaxed and "error" not in relaxed.lower(), relaxed
    _, strict = _run(tmp_path, MODULE_SKIP, ci="TRUE")
    assert "1 error" in strict and "surely_not_a_module_xyz" in strict, strict


@pytest.mark.parametrize(("missing", "skips"), [("mmaction", True), ("mmcv", True), ("scipy", False)])
def test_reference_skips_only_when_mmaction2_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, missing: str, skips: bool
) -> None:
    """A missing MMAction2 is a skip; a missing dependency of an installed one is an error."""
    import importlib

    from tests.engines import mmaction_ref

    def fail(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(importlib, "import_module", fail)
    if skips:
        with pytest.raises(pytest.skip.Exception, match="MMAction2 reference not installed"):
            mmaction_ref.import_reference("mmaction.datasets.transforms")
    else:
        with pytest.raises(ModuleNotFoundError, match="scipy"):
            mmaction_ref.import_reference("mmaction.datasets.transforms")
