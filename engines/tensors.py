"""Named tensors: what an engine takes and gives, by name, shape, dtype and layout.

Every engine lists its inputs and outputs as :class:`TensorSpec`\\ s in its manifest. A size
is an ``int`` or the name of a dynamic axis (``"batch"``, ``"boxes"``, ``"people"``); an axis
name used by several tensors must have one size in a call (``rois`` and ``scores`` share
``"boxes"``). A recognizer has one input (``inputs``: ``("batch", V, C, H, W)``) and one
output (``scores``); a spatio-temporal detector adds ``rois`` ``("boxes", 5)``; a detector
returns ``boxes``, ``scores`` and ``labels``. The same export / parity-check / backend code
serves all of them (:func:`export_graph`, :meth:`engines.engine.Engine.run`).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import ExportError, InputShapeError

#: NumPy dtype names a tensor may have.
#: torch.onnx.export keeps global state: two stages building engines at once (a detector and
#: a pose model set up in parallel) would trip over each other, so exports take turns.
ONNX_EXPORT_LOCK = threading.RLock()

DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bool")


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of an engine.

    Attributes:
        name: The graph's tensor name.
        shape: Sizes; a ``str`` names a dynamic axis (e.g. ``"batch"``).
        dtype: NumPy dtype name (one of :data:`DTYPES`).
        layout: Optional axis letters, e.g. ``"NVCHW"`` (same length as ``shape`` when given).
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    layout: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("TensorSpec: expected a name")
        object.__setattr__(self, "shape", tuple(self.shape))
        for d in self.shape:
            if isinstance(d, bool) or not ((isinstance(d, str) and d) or (isinstance(d, int) and d > 0)):
                raise ValueError(f"TensorSpec {self.name!r}: expected positive ints or axis names, got {self.shape}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TensorSpec {self.name!r}: dtype expected one of {DTYPES}, got {self.dtype!r}")
        if self.layout and len(self.layout) != len(self.shape):
            raise ValueError(f"TensorSpec {self.name!r}: layout {self.layout!r} does not match shape {self.shape}")

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """``{axis index: axis name}`` of the dynamic axes."""
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def describe(self) -> str:
        return "(" + ", ".join(str(d) for d in self.shape) + f") {self.dtype}"

    def check(self, value: object, sizes: dict[str, int]) -> np.ndarray:
        """Validate ``value`` against this spec and bind its dynamic axes into ``sizes``.

        Returns:
            A C-contiguous array of this spec's dtype (floats of another width are cast;
            anything else of the wrong kind is refused).

        Raises:
            InputShapeError: Wrong type, rank, fixed size, dynamic size that disagrees with
                another tensor's, or dtype kind.
        """
        if not isinstance(value, np.ndarray):
            raise InputShapeError(f"input {self.name!r}: expected a numpy.ndarray, got {type(value).__name__}")
        if value.ndim != len(self.shape):
            raise InputShapeError(
                f"input {self.name!r}: expected {len(self.shape)} axes {self.describe()}, got shape {value.shape}"
            )
        for axis, (want, got) in enumerate(zip(self.shape, value.shape, strict=True)):
            if isinstance(want, int):
                if got != want:
                    raise InputShapeError(
                        f"input {self.name!r}: axis {axis} must be {want} {self.describe()}, got shape {value.shape}"
                    )
            elif sizes.setdefault(want, got) != got:
                raise InputShapeError(
                    f"input {self.name!r}: axis {axis} ({want!r}) is {got}, but another input has {want}={sizes[want]}"
                )
        want_dtype = np.dtype(self.dtype)
        if value.dtype != want_dtype:
            same_kind = np.issubdtype(value.dtype, np.floating) and np.issubdtype(want_dtype, np.floating)
            same_kind |= np.issubdtype(value.dtype, np.integer) and np.issubdtype(want_dtype, np.integer)
            if not same_kind:
                raise InputShapeError(f"input {self.name!r}: expected dtype {self.dtype}, got {value.dtype}")
        return np.ascontiguousarray(value, dtype=want_dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        """Build from :meth:`to_dict`'s output.

        Raises:
            ValueError: If a key is missing or a value is invalid.
        """
        try:
            shape = tuple(d if isinstance(d, str) else int(d) for d in data["shape"])
            return cls(str(data["name"]), shape, str(data.get("dtype", "float32")), str(data.get("layout", "")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tensor spec {dict(data)!r}: {exc}") from exc


def check_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Validate a dict of inputs against the engine's input specs (names, shapes, shared axes).

    Raises:
        InputShapeError: A missing or unknown input, or one that does not fit its spec.
    """
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feeds]
    unknown = sorted(set(feeds) - set(names))
    if missing or unknown:
        raise InputShapeError(
            f"engine inputs are {', '.join(names)}; "
            + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                    f"unknown {', '.join(unknown)}" if unknown else "") if p)
        )  # fmt: skip
    sizes: dict[str, int] = {}
    return {s.name: s.check(feeds[s.name], sizes) for s in specs}


def export_graph(
    module: Any,
    path: str | Path,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    example: Mapping[str, np.ndarray],
    *,
    opset: int = 17,
    check: Mapping[str, np.ndarray] | None = None,
    atol: float = 1e-4,
) -> float:
    """Export a torch module with named inputs / outputs and dynamic axes, then check it.

    Args:
        module: ``module(*inputs) -> output`` or a tuple of outputs, in the order of ``outputs``.
        path: The ``.onnx`` file to write.
        inputs: Input specs, in the order ``module`` takes them.
        outputs: Output specs, in the order ``module`` returns them.
        example: Inputs to trace with.
        opset: ONNX opset.
        check: Other inputs (other dynamic sizes than ``example``, so a size baked into the
            graph shows up) on which ONNX Runtime must agree with torch; default ``example``.
        atol: Largest accepted max abs difference.

    Returns:
        The measured max abs difference between ONNX Runtime and torch.

    Raises:
        ExportError: If the export fails or ONNX Runtime disagrees with torch.
    """
    import torch

    path = Path(path)
    dynamic = {s.name: s.dynamic_axes for s in (*inputs, *outputs) if s.dynamic_axes}
    args = tuple(torch.from_numpy(check_feeds(inputs, example)[s.name]) for s in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with ONNX_EXPORT_LOCK, torch.no_grad():
                torch.onnx.export(
                    module.eval(),
                    args,
                    str(path),
                    input_names=[s.name for s in inputs],
                    output_names=[s.name for s in outputs],
                    dynamic_axes=dynamic,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ExportError(f"ONNX export of {type(module).__name__} failed: {exc}") from exc
    return parity(module, path, inputs, outputs, check or example, atol=atol)


def parity(
    module: Any,
    path: Path,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    feeds: Mapping[str, np.ndarray],
    *,
    atol: float = 1e-4,
) -> float:
    """Max abs difference of ONNX Runtime against torch on ``feeds``; raises past ``atol``.

    Raises:
        ExportError: If an output's shape or values disagree.
    """
    import onnxruntime as ort
    import torch

    feeds = check_feeds(inputs, feeds)
    with torch.no_grad():
        ref = module.eval()(*(torch.from_numpy(feeds[s.name]) for s in inputs))
    ref_list = [r.detach().numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([s.name for s in outputs], dict(feeds))
    worst = 0.0
    for spec, want, have in zip(outputs, ref_list, got, strict=True):
        if want.shape != have.shape:
            raise ExportError(f"output {spec.name!r}: ONNX Runtime gives shape {have.shape}, torch {want.shape}")
        if want.size:
            diff = float(np.max(np.abs(want.astype(np.float64) - have.astype(np.float64))))
            worst = max(worst, diff)
            if not diff <= atol:
                raise ExportError(f"output {spec.name!r}: ONNX Runtime differs from torch by {diff:.3g} (> {atol})")
    return worst
