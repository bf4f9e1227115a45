"""Run an engine directory on a ``.npy`` batch and save the scores.

Usage::

    python -m engines.infer --engine ENGINE_DIR --input X.npy --output Y.npy [--backend ...]

``X.npy`` holds float32 ``(N, *input_shape)`` (or one sample without the batch axis),
normalised like MMAction2's data preprocessor, or raw RGB 0-255 for engines built with
``--fold-normalize``. ``Y.npy`` gets float32 ``(N, num_classes)`` scores; it must be a
``.npy`` file path other than the input, is checked before the engine loads, and is
written whole or not at all (a hidden temporary beside it, renamed into place).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import OutputError
from core.files import atomic_path, check_outputs
from engines.backends import BACKEND_CHOICES, COMPILE_MODES, PERFORMANCE_HINTS
from engines.cli import add_common, positive_int, run_main
from engines.errors import EngineError, InputShapeError


class InputFileError(EngineError, ValueError):
    """The input ``.npy`` file is missing or unreadable."""


def make_parser() -> argparse.ArgumentParser:
    """The ``engines.infer`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m engines.infer",
        description="Score a .npy batch with an engine built by python -m engines.build.",
    )
    parser.add_argument("--engine", required=True, help="engine directory (holds manifest.json)")
    parser.add_argument("--input", required=True, help="float32 .npy, (N, *input_shape) or one sample")
    parser.add_argument("--output", required=True, help=".npy file to write the (N, num_classes) scores to")
    parser.add_argument(
        "--backend",
        default=None,
        choices=BACKEND_CHOICES,
        help="run with another backend than the one in the manifest (auto: best for this machine)",
    )
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads for the backend")
    parser.add_argument(
        "--performance-hint",
        choices=PERFORMANCE_HINTS,
        default=None,
        help="openvino: optimise for one request's latency or for throughput",
    )
    parser.add_argument(
        "--compile",
        choices=[mode for mode in COMPILE_MODES if mode],
        default=None,
        help="torch / torch-cuda: torch.compile mode (reduce-overhead uses CUDA graphs)",
    )
    parser.add_argument(
        "--trust-engine",
        action="store_true",
        help="open engine folders of an older format, whose model is Python code (config.py) "
        "run when opened; only for folders whose origin you trust (see docs/security.md)",
    )
    parser.add_argument("--top", type=int, default=1, help="print the top-K classes per sample (0: print nothing)")
    add_common(parser)
    return parser


def read_batch(path: Path, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Load ``path`` and add a batch axis to a single sample.

    Raises:
        InputFileError: If the file is missing or not a numeric ``.npy`` array.
        InputShapeError: If its shape fits neither ``sample_shape`` nor ``(N, *sample_shape)``.
    """
    if not path.is_file():
        raise InputFileError(f"input {path}: no such file")
    try:
        batch = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"input {path}: not a .npy array ({exc})") from exc
    if not isinstance(batch, np.ndarray):
        raise InputFileError(f"input {path}: expected one .npy array, got {type(batch).__name__}")
    if batch.shape == sample_shape:
        batch = batch[None]
    elif batch.shape[1:] != sample_shape:
        expected = ", ".join(map(str, sample_shape))
        raise InputShapeError(f"input {path}: expected shape (N, {expected}) or ({expected}), got {batch.shape}")
    if np.issubdtype(batch.dtype, np.floating) and not np.isfinite(batch).all():
        bad = int(np.count_nonzero(~np.isfinite(batch)))
        raise InputFileError(f"input {path}: {bad} value(s) are NaN or infinite; the scores would be meaningless")
    return batch


def check_output(output: Path, input_path: Path) -> None:
    """Refuse an ``--output`` that is not a ``.npy`` file path, is the input, or cannot be written.

    Raises:
        OutputError: One line naming the path and what to do.
    """
    if output.is_dir():
        raise OutputError(f"--output {output} is a folder; expected a .npy file path such as {output / 'scores.npy'}")
    if output.suffix.lower() != ".npy":
        raise OutputError(f"--output {output}: expected a file path ending in .npy")
    check_outputs({"--output": output}, {"--input": input_path})


def _main(args: argparse.Namespace) -> int:
    from engines.engine import load_engine

    overrides: dict[str, Any] = {}
    if args.threads:
        overrides["num_threads"] = args.threads
    if args.performance_hint:
        overrides["performance_hint"] = args.performance_hint
    if args.compile:
        overrides["compile"] = args.compile
    output = Path(args.output)
    check_output(output, Path(args.input))
    engine = load_engine(args.engine, backend=args.backend, trusted=args.trust_engine, **overrides)
    with engine:
        batch = read_batch(Path(args.input), engine.input_spec.sample_shape)
        scores = engine.infer(batch)
    with atomic_path(output) as tmp:
        np.save(tmp, scores)
    if args.top > 0 and scores.ndim == 2:
        names = engine.class_names
        for index, row in enumerate(scores[:20]):
            best = np.argsort(row)[::-1][: args.top]
            shown = ", ".join(f"{names[i] if names else i}={row[i]:.4g}" for i in best)
            print(f"sample {index}: {shown}")
        if len(scores) > 20:
            print(f"... {len(scores) - 20} more samples in {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_main(_main, make_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
