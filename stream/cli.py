"""Shared plumbing of the stream command lines: common flags and output checks.

Exit codes and error lines follow :mod:`core.cli` (0 done, 1 failure naming the stage, 2 bad
input — also an output path that is an input or cannot be written, checked by
:func:`check_output_paths` before any work —, 130 interrupted).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
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
from core.files import check_outputs
from stream.runner import RunReport

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "ArgumentParser",
    "add_common_args",
    "add_drawing_args",
    "add_fragmented_arg",
    "check_output_paths",
    "exit_code",
    "run_command",
    "run_main",
    "setup_logging",
]

log = logging.getLogger("stream")


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    job: Callable[[argparse.Namespace], int],
    prepare: Callable[[argparse.ArgumentParser, argparse.Namespace], None] | None = None,
) -> int:
    """Parse ``argv``, set up logging and run ``job(args)`` under :func:`core.cli.run_main`.

    Args:
        parser: The command's parser (``-v`` / ``-q`` from :func:`add_common_args`).
        argv: The arguments; None for ``sys.argv``.
        job: The work; returns the exit code.
        prepare: Checks and merges that need the parser (usage errors), run after parsing.

    Returns:
        The process exit code.
    """
    args = parser.parse_args(argv)
    if prepare is not None:
        prepare(parser, args)
    setup_logging(args.verbose, args.quiet)
    return run_main(lambda: job(args))


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


def add_fragmented_arg(parser: argparse.ArgumentParser) -> None:
    """``--fragmented``: record a fragmented MP4 that a killed process leaves playable."""
    parser.add_argument(
        "--fragmented",
        action="store_true",
        help="write the video as a fragmented MP4: if the process is killed (kill -9, power loss) the "
        "hidden .NAME.partial-PID-N.mp4 beside the output stays playable (for long live recordings)",
    )


def check_output_paths(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None]) -> None:
    """Before any work: refuse an output that is an input (or another output) or cannot be written.

    Args:
        outputs: flag or argument name (``--out-file``, ``OUT_FILE``) -> path, None if not given.
        inputs: the same for the inputs; names that are not existing files (camera indices,
            URLs) are skipped.

    Raises:
        OutputError: One line naming the output (and the input it would overwrite).
    """
    check_outputs(outputs, {what: p for what, p in inputs.items() if p is not None and Path(p).exists()})
