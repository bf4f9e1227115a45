"""Shared helpers of the benchmark scripts: tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.files import write_text


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as an aligned text table."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_json(path: str | Path | None, payload: dict[str, Any]) -> None:
    """Write the results with the machine's description."""
    if not path:
        return
    machine = {"python": platform.python_version(), "cpu": cpu_name(), "load_average": list(os.getloadavg())}
    payload = {"machine": machine, **payload}  # platform.processor() is empty on Linux
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(payload, indent=2))  # a run that dies leaves the previous results
    print(f"wrote {path}")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, and the cores this process may use."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({len(os.sched_getaffinity(0))} cores)"


def rss_mb() -> float:
    """The process's resident memory in MiB (psutil when installed, else /proc/self/status)."""
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        pass
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
