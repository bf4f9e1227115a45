"""The benchmarks' shared helpers: what every JSON result records about the machine."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import cpu_name, write_json


def test_results_name_the_cpu_and_the_load(tmp_path: Path) -> None:
    out = tmp_path / "results" / "bench.json"
    write_json(out, {"rows": [{"fps": 1.0}]})
    data = json.loads(out.read_text())
    model = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    assert data["machine"]["cpu"].startswith(model) and data["machine"]["cpu"] == cpu_name()
    assert len(data["machine"]["load_average"]) == 3
    assert data["rows"] == [{"fps": 1.0}]


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    write_json(None, {"rows": []})
    assert list(tmp_path.iterdir()) == []
