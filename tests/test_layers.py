"""The import rules of the layers (docs/architecture.md), checked on every module's source.

``core`` imports nothing of ours; ``engines`` only itself and ``core``; the ``stream``
runtime only itself and ``core``; ``detectors`` may add ``engines`` and the ``stream``
runtime; ``pipelines`` composes everything. Only the thin entry-point modules (those with a
``__main__`` guard) may import upward, and they stay short.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "engines", "stream", "detectors", "pipelines")
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "engines": {"core", "engines"},
    "stream": {"core", "stream"},
    "detectors": {"core", "engines", "stream", "detectors"},
    "pipelines": {"core", "engines", "stream", "detectors", "pipelines"},
}
#: An entry point parses flags, calls a graph builder and runs it: this many lines at most.
MAX_ENTRY_POINT_LINES = 120


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_entry_point(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return True
    return False


def _imports(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _forbidden_edges(path: Path) -> list[str]:
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if _is_entry_point(tree) and module.startswith("stream."):
        return []
    layer = module.split(".")[0]
    bad = []
    for line, target in _imports(tree, module):
        top = target.split(".")[0]
        if top in PACKAGES and top not in ALLOWED[layer]:
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
        if layer == "detectors" and top == "stream" and _is_stream_entry_point(target):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports the entry point {target}")
    return bad


def _is_stream_entry_point(module: str) -> bool:
    path = ROOT / (module.replace(".", "/") + ".py")
    return path.is_file() and _is_entry_point(ast.parse(path.read_text(encoding="utf-8")))


def test_every_package_is_checked() -> None:
    assert {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} >= set(PACKAGES)
    assert len(_modules()) > 60


def test_no_forbidden_import_edges() -> None:
    bad = [edge for path in _modules() for edge in _forbidden_edges(path)]
    assert not bad, "imports against the layering of docs/architecture.md:\n" + "\n".join(bad)


def test_the_checker_sees_a_forbidden_edge() -> None:
    """The walker itself: an upward import inside a function is found, as a relative one is."""
    source = "def f():\n    from pipelines.recognizer import open_recognizer\nfrom ..pipelines import x\n"
    tree = ast.parse(source)
    targets = sorted(t for _, t in _imports(tree, "engines.sub.mod"))
    assert targets == ["engines.pipelines", "pipelines.recognizer"]
    layer_of_target = {t.split(".")[0] for t in targets} - ALLOWED["engines"]
    assert layer_of_target == {"pipelines"}


@pytest.mark.parametrize("name", ["play", "webcam", "long_video", "rtsp", "people"])
def test_entry_points_are_thin(name: str) -> None:
    path = ROOT / "stream" / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _is_entry_point(tree)
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_ENTRY_POINT_LINES, f"{path.name}: {lines} lines; move composition into pipelines/graphs.py"
