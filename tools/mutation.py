"""Mutation testing per module: mutmut restricted to one module and the test files that cover it.

Usage::

    python tools/mutation.py                       # every module of MODULE_TESTS
    python tools/mutation.py stream/worker.py pipelines/events.py --json mutation.json
    python tools/mutation.py stream.wire --min-score 90 --jobs 2

For each module the script copies the sources, tests and configs into
``mutants/modules/<module>/`` (ignored by git), writes there a ``pyproject.toml`` whose
``[tool.mutmut]`` section is the repository's one narrowed to the module (``only_mutate``) and
its test files (``pytest_add_cli_args_test_selection``), runs ``mutmut run`` in that copy and
reads the verdicts back with ``mutmut results`` / ``mutmut show``. Each module starts from a
fresh copy, so a new or changed test always counts.

It prints one row per module (mutants, killed, survived, timeout, score) and, with ``--json``,
writes the same figures plus every mutant that was not killed (``file:line``, status, diff).
Score = (killed + timeout) / mutants: a mutant that makes the tests hang was detected. "Survived"
counts the mutants no test failed on, including those no selected test reached ("no tests").
The exit status is 1 if a module scores under ``--min-score`` or mutmut failed on it.

See docs/mutation.md for the figures and the survivors judged equivalent.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport mutmut itself depends on there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants" / "modules"

#: Each module under mutation and the test files that cover it (paths from the repository root).
MODULE_TESTS: dict[str, list[str]] = {
    "stream/worker.py": ["tests/stream/test_worker.py", "tests/stream/test_worker_mutants.py"],
    "stream/wire.py": [
        "tests/stream/test_wire.py",
        "tests/stream/test_wire_behaviour.py",
        "tests/stream/test_wire_mutants.py",
    ],
    "pipelines/scheduler.py": [
        "tests/pipelines/test_recognition.py",
        "tests/pipelines/test_recognition_behaviour.py",
        "tests/pipelines/test_scheduler_mutants.py",
    ],
    "pipelines/placement.py": [
        "tests/pipelines/test_recognition.py",
        "tests/pipelines/test_recognition_behaviour.py",
        "tests/pipelines/test_placement_mutants.py",
    ],
    "pipelines/events.py": ["tests/pipelines/test_events.py", "tests/pipelines/test_events_mutants.py"],
    "engines/sampling.py": [
        "tests/engines/test_sampling.py",
        "tests/pipelines/test_clip_buffer.py",
        "tests/engines/test_sampling_mutants.py",
    ],
    "engines/checkpoint.py": [
        "tests/engines/test_checkpoint.py",
        "tests/engines/test_checkpoint_behaviour.py",
        "tests/engines/test_checkpoint_mutants.py",
    ],
    "pipelines/skeleton.py": ["tests/pipelines/test_skeleton_stage.py", "tests/pipelines/test_skeleton_mutants.py"],
    "pipelines/stdet.py": ["tests/pipelines/test_stdet_stage.py", "tests/pipelines/test_stdet_mutants.py"],
    "stream/sinks/jsonl.py": ["tests/stream/test_sinks.py", "tests/stream/test_jsonl_mutants.py"],
    "engines/manifest.py": ["tests/engines/test_graph_engines.py", "tests/engines/test_manifest_mutants.py"],
    "stream/transport.py": ["tests/stream/test_transport.py", "tests/stream/test_transport_mutants.py"],
    "stream/runner.py": [
        "tests/stream/test_runner.py",
        "tests/stream/test_runner_behaviour.py",
        "tests/stream/test_runner_mutants.py",
    ],
    # test_sources.py's RTSP tests (about 13 s a mutant) are left out: the HTTP camera of
    # test_network_mutants.py drives the same paths in about 8 s (docs/mutation.md)
    "stream/sources/network.py": ["tests/stream/test_network_mutants.py", "tests/stream/test_sources_behaviour.py"],
    "stream/sinks/video.py": [
        "tests/stream/test_sinks.py",
        "tests/stream/test_sinks_behaviour.py",
        "tests/stream/test_video_mutants.py",
    ],
    "detectors/tracking.py": [
        "tests/detectors/test_tracking.py",
        "tests/detectors/test_stages.py",
        "tests/detectors/test_tracking_mutants.py",
    ],
    "detectors/stages.py": ["tests/detectors/test_stages.py", "tests/detectors/test_stages_mutants.py"],
    "pipelines/people.py": ["tests/pipelines/test_people.py", "tests/pipelines/test_people_mutants.py"],
}

#: What is copied into each module's working folder (tracked and new, not ignored, files).
COPIED = ["core", "stream", "engines", "detectors", "pipelines", "tests", "configs", "pyproject.toml"]

#: mutmut's status names, as `mutmut results` prints them, grouped for the table.
KILLED = {"killed", "caught by type check", "segfault"}
TIMEOUT = {"timeout"}
SURVIVED = {"survived", "no tests"}
IGNORED = {"skipped"}  # `# pragma: no mutate`

_RESULT_LINE = re.compile(r"^\s*(?P<name>\S+):\s*(?P<status>[a-z ]+?)\s*$")


class MutationToolError(RuntimeError):
    """mutmut could not run on a module (bad module name, failing clean tests, missing tool)."""


@dataclass
class Survivor:
    """A mutant the tests did not kill."""

    name: str
    status: str
    location: str
    diff: str


@dataclass
class ModuleResult:
    """The figures of one module."""

    module: str
    tests: list[str]
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    no_tests: int = 0
    other: int = 0
    seconds: float = 0.0
    error: str | None = None
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Percentage of mutants detected (killed or timed out); 0 when there are none."""
        if self.mutants == 0:
            return 0.0
        return 100.0 * (self.killed + self.timeout) / self.mutants

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["score"] = round(self.score, 1)
        return data


def module_path(name: str) -> str:
    """``stream.wire`` or ``stream/wire.py`` -> ``stream/wire.py``.

    Raises:
        MutationToolError: if the module is not in :data:`MODULE_TESTS`.
    """
    path = name if name.endswith(".py") else name.replace(".", "/") + ".py"
    if path not in MODULE_TESTS:
        raise MutationToolError(f"unknown module {name!r}; expected one of: {', '.join(MODULE_TESTS)}")
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} into [tool.mutmut]")


def narrowed_pyproject(text: str, module: str, tests: list[str]) -> str:
    """The repository's pyproject.toml with ``[tool.mutmut]`` narrowed to ``module`` and ``tests``.

    The base selection's ``tests`` entry is replaced by the module's test files; its other
    arguments (markers) are kept.
    """
    base = dict(tomllib.loads(text).get("tool", {}).get("mutmut", {}))
    selection = [str(a) for a in base.get("pytest_add_cli_args_test_selection", [])]
    selection = [a for a in selection if a != "tests"]
    base["pytest_add_cli_args_test_selection"] = [*tests, *selection]
    base["only_mutate"] = [module]
    section = "\n".join(["[tool.mutmut]", *(f"{key} = {_toml_value(v)}" for key, v in base.items())])
    # drop the original section: from its header up to the next table header
    stripped = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", text)
    if stripped == text and "[tool.mutmut]" in text:  # it was the last table
        stripped = text[: text.index("[tool.mutmut]")]
    return stripped.rstrip("\n") + "\n\n" + section + "\n"


def prepare(module: str, tests: list[str]) -> Path:
    """A fresh working folder for ``module``: the repository's files and a narrowed pyproject."""
    work = WORK / module.removesuffix(".py").replace("/", ".")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *COPIED],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree
            continue
        dst = work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(narrowed_pyproject(pyproject.read_text(), module, tests))
    return work


def _mutmut(work: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _function_span(source: str, mutant: str) -> tuple[int, int] | None:
    """First and last line of the function a mutant name points at (``mod.xǁClassǁmethod__mutmut_3``)."""
    local = mutant.rsplit(".", 1)[-1]
    local = re.sub(r"__mutmut_\d+$", "", local)
    if local.startswith("xǁ"):
        _, cls, func = local.split("ǁ", 2)
    elif local.startswith("x_"):
        cls, func = None, local[2:]
    else:
        return None
    body = ast.parse(source).body
    if cls is not None:
        owner = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == cls), None)
        if owner is None:
            return None
        body = owner.body
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return first, node.end_lineno or node.lineno
    return None


def locate(source_file: Path, mutant: str, diff: str) -> int | None:
    """The line of ``source_file`` the mutant changes: its first removed line, found in the function."""
    source = source_file.read_text()
    span = _function_span(source, mutant)
    removed = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    if span is None:
        return None
    if not removed:
        return span[0]
    lines = source.splitlines()
    for number in range(span[0], span[1] + 1):
        if lines[number - 1].strip() == removed[0]:
            return number
    # the first removed line is the def itself, written differently (signature over several lines)
    return span[0]


def run_module(module: str, jobs: int) -> ModuleResult:
    """Run mutmut on one module and gather its figures."""
    tests = MODULE_TESTS[module]
    result = ModuleResult(module=module, tests=tests)
    missing = [t for t in tests if not (ROOT / t).is_file()]
    if missing:
        result.error = f"missing test files: {', '.join(missing)}"
        return result
    start = time.monotonic()
    work = prepare(module, tests)
    run = _mutmut(work, "run", "--max-children", str(jobs))
    (work / "mutmut-run.log").write_text(run.stdout + run.stderr)
    result.seconds = round(time.monotonic() - start, 1)
    if run.returncode != 0:
        tail = (run.stdout + run.stderr)[-2000:]
        result.error = f"mutmut run exited with {run.returncode} (log: {work / 'mutmut-run.log'}):\n{tail}"
        return result
    listed = _mutmut(work, "results", "--all", "true")
    for line in listed.stdout.splitlines():
        match = _RESULT_LINE.match(line)
        if match is None:
            continue
        name, status = match["name"], match["status"]
        if status in IGNORED:
            continue
        result.mutants += 1
        if status in KILLED:
            result.killed += 1
            continue
        if status in TIMEOUT:
            result.timeout += 1
            continue
        if status == "no tests":
            result.no_tests += 1
        if status in SURVIVED:
            result.survived += 1
        else:
            result.other += 1  # "suspicious", "not checked", interrupted
        shown = _mutmut(work, "show", name).stdout
        diff = "\n".join(ln for ln in shown.splitlines() if not ln.startswith("# "))
        line_no = locate(ROOT / module, name, diff)
        result.survivors.append(
            Survivor(name=name, status=status, location=f"{module}:{line_no or '?'}", diff=diff.strip())
        )
    return result


def cpu_name() -> str:
    """The CPU model as lscpu names it (platform.processor() is empty on Linux)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def format_table(results: list[ModuleResult]) -> str:
    header = f"{'module':<26} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'score %':>7}"
    rows = [header, "-" * len(header)]
    for r in results:
        if r.error is not None:
            rows.append(f"{r.module:<26} error: {r.error.splitlines()[0]}")
            continue
        rows.append(f"{r.module:<26} {r.mutants:>7} {r.killed:>6} {r.survived:>8} {r.timeout:>7} {r.score:>7.1f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "modules", nargs="*", metavar="MODULE", help="e.g. stream/wire.py or stream.wire (default: all)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the figures and the survivors here")
    parser.add_argument("--min-score", type=float, default=85.0, help="fail under this score %% (default: 85)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default: 1)")
    args = parser.parse_args(argv)

    try:
        modules = [module_path(m) for m in args.modules] or list(MODULE_TESTS)
    except MutationToolError as exc:
        parser.error(str(exc))
    if importlib.util.find_spec("mutmut") is None:
        parser.error("mutmut is not installed; install the dev extra: pip install -e '.[dev]'")
    if shutil.which("git") is None:
        parser.error("git is needed to list the files to copy")

    results: list[ModuleResult] = []
    for module in modules:
        print(f"mutating {module} against {' '.join(MODULE_TESTS[module])} ...", file=sys.stderr, flush=True)
        results.append(run_module(module, max(1, args.jobs)))
        r = results[-1]
        if r.error is None:
            print(f"  {r.mutants} mutants, score {r.score:.1f}% in {r.seconds:.0f} s", file=sys.stderr, flush=True)
        else:
            print(f"  {r.error}", file=sys.stderr, flush=True)

    print(format_table(results))
    for r in results:
        for s in r.survivors:
            print(f"{s.status}: {s.location} {s.name}")

    if args.json is not None:
        report = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_name(),
            "python": platform.python_version(),
            "mutmut": _version("mutmut"),
            "min_score": args.min_score,
            "modules": [r.to_json() for r in results],
        }
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, args.json)

    failed = [r for r in results if r.error is not None or r.score < args.min_score]
    return 1 if failed else 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
