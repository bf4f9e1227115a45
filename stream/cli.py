"""Shared plumbing of the stream command lines: common flags and the usual outputs.

Exit codes and error lines follow :mod:`core.cli` (0 done, 1 failure naming the stage, 2 bad
input, 130 interrupted).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from core.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ArgumentParser,
    number,
    positive,
    run_main,
    setup_logging,
)
from stream.runner import RunReport

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "ArgumentParser",
    "add_common_args",
    "add_drawing_args",
    "exit_code",
    "run_main",
    "setup_logging",
]

log = logging.getLogger("stream")


def exit_code(report: RunReport) -> int:
    """0 for a finished run, 130 for one stopped by Ctrl-C / SIGTERM (outputs still valid)."""
    return EXIT_INTERRUPTED if report.status == "interrupted" else EXIT_OK


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags every entry point shares."""
    parser.add_argument(
        "--metrics", type=Path, metavar="FILE.json", help="write per-stage metrics (fps, p50/p95, drops) here"
    )
    parser.add_argument(
        "--metrics-interval",
        type=number(minimum=0),
        default=5.0,
        metavar="S",
        help="log metrics every S seconds (0: never)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def add_drawing_args(parser: argparse.ArgumentParser) -> None:
    """MMAction2's drawing flags."""
    parser.add_argument(
        "--font-scale", type=positive, default=None, help="label font scale (default: from frame height)"
    )
    parser.add_argument("--font-color", default="white", help="label colour: a name, #rrggbb or b,g,r")
