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
from typing import Any

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
    "ColorAction",
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


class ColorAction(argparse.Action):
    """A colour flag: one word (a name, ``#rrggbb`` or ``b,g,r``) or three numbers ``B G R``.

    Three numbers are what MMAction2's ``long_video_demo.py`` takes (``--label-color 255 255 0``,
    handed to ``cv2.putText`` as they are, so blue, green, red). The value is checked here (a bad
    one is a usage error, exit code 2) and stored as one string that
    :meth:`stream.annotate.style.Color.parse` reads (``"b,g,r"`` for three numbers).
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        if "nargs" not in kwargs:
            kwargs["nargs"] = "+"
        kwargs.setdefault("metavar", "COLOR")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from stream.annotate.style import Color

        words = [values] if isinstance(values, str) else list(values or [])
        if len(words) == 3:
            text = ",".join(words)
        elif len(words) == 1:
            text = words[0]
        else:
            parser.error(f"{option_string}: expected a colour name, #rrggbb, or three numbers B G R, got {words}")
        try:
            Color.parse(text)
        except ValueError as exc:  # ConfigError is a ValueError
            parser.error(f"{option_string}: {exc}")
        setattr(namespace, self.dest, text)


def add_drawing_args(
    parser: argparse.ArgumentParser, *, label_colors: bool = False, font_color_numbers: bool = False
) -> None:
    """MMAction2's drawing flags.

    Args:
        parser: The parser to extend.
        label_colors: Also long_video_demo.py's ``--label-color`` / ``--msg-color``, which take
            one word or three numbers ``B G R`` (``nargs='+'`` as there: put them after the
            positionals, which they would otherwise swallow).
        font_color_numbers: ``--font-color`` also takes three numbers (``stream.demo``, whose
            positionals come first); elsewhere it takes one word (a name, ``#rrggbb`` or
            ``b,g,r``), so that it can stand before positionals.
    """
    parser.add_argument(
        "--font-scale", type=positive, default=None, help="label font scale (default: from frame height)"
    )
    numbers = "three numbers B G R (as long_video_demo.py's --label-color)"
    word = "a name, #rrggbb or b,g,r"
    parser.add_argument(
        "--font-color",
        action=ColorAction,
        nargs="+" if font_color_numbers else None,
        default="white",
        help=f"label colour: {word}" + (f", or {numbers}" if font_color_numbers else ""),
    )
    if label_colors:
        parser.add_argument(
            "--label-color", action=ColorAction, default="white", help=f"label colour: {word}, or {numbers}"
        )
        parser.add_argument(
            "--msg-color",
            action=ColorAction,
            default="gray",
            help=f"colour of the message before the first label: {word}, or {numbers}",
        )


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
