"""Shared plumbing of the ``engines.build`` / ``engines.infer`` command lines.

Errors follow the one exit-code contract of :mod:`core.cli`: user errors (missing files,
bad config, checkpoint mismatch, wrong shapes, missing backend) print one line on stderr
and exit with code 2, no traceback; Ctrl-C exits 130; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mmengine.config import DictAction

from core.cli import EXIT_BAD_INPUT
from core.cli import run_main as core_run_main

EXIT_USER_ERROR = EXIT_BAD_INPUT


class CfgOptionsAction(DictAction):
    """mmengine's ``--cfg-options`` parser, with a malformed ``KEY=VALUE`` reported as a usage error."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        bad = [value for value in values if "=" not in value]
        if bad:
            parser.error(f"{option_string}: expected KEY=VALUE, got {' '.join(bad)!r}")
        try:
            super().__call__(parser, namespace, values, option_string)
        except (ValueError, AssertionError) as exc:  # mmengine validates brackets with assert
            parser.error(f"{option_string}: cannot parse {' '.join(values)!r}: {exc}")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Logging flags shared by both commands."""
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO) on stderr")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def shape_arg(text: str) -> tuple[int, ...]:
    """argparse type: ``'2,3,224,224'`` -> ``(2, 3, 224, 224)``."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes like 8,3,224,224, got {text!r}") from exc
    if not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 8,3,224,224, got {text!r}")
    return shape


def run_main(
    main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``main`` under the exit-code contract of :mod:`core.cli`."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return core_run_main(lambda: main(args), prog=parser.prog)
