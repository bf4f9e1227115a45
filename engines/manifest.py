"""The engine directory's ``manifest.json``: everything needed to feed and read an engine.

An engine directory looks like this (only the files its backend needs are present)::

    ENGINE_DIR/
      manifest.json     this file's contents (see :class:`Manifest`)
      model.onnx        the exported graph, input ``inputs`` -> output ``scores``
      model.json        the resolved ``model`` dict + test_pipeline as data (for torch backends)
      weights.pth       weights in MMAction2 layout (torch backends only)
      openvino/         OpenVINO IR (model.xml + model.bin)
      tensorrt/         serialized TensorRT engines, one per ONNX hash/TensorRT version/GPU

The manifest is plain JSON so a consumer in another language can read it; file
names in it are relative to the engine directory and must stay inside it, and
``sha256`` records the hash of every file the build wrote (checked on every open; see
:mod:`engines.integrity`). Format 2 folders kept the model as Python (``config.py``)
and had no hashes: they are read only with ``trusted=True`` (``--trust-engine``).
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.files import write_text
from engines.clip_spec import INPUT_FORMATS, ClipSpec
from engines.errors import EngineError
from engines.integrity import REBUILD, confined_path
from engines.tensors import TensorSpec

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
#: 3: ``sha256`` of every file, the model as data (``model.json``) instead of ``config.py``.
#: 2: ``clip`` holds :meth:`ClipSpec.to_dict` (1 held the older ``ClipSettings``).
FORMAT_VERSION = 3
#: Older formats still read, but only for trusted folders (they may carry Python code).
LEGACY_FORMATS = (2,)


class ManifestError(EngineError, ValueError):
    """An engine directory has no manifest, or the manifest is malformed."""


def _tensor(data: Any, key: str) -> TensorSpec:
    if not isinstance(data, Mapping):
        raise ManifestError(f"{key}: expected tensor specs as JSON objects, got {data!r}")
    try:
        return TensorSpec.from_dict(data)
    except ValueError as exc:
        raise ManifestError(f"{key}: {exc}") from exc


@dataclass
class Manifest:
    """What an engine directory holds and how to feed it.

    Attributes:
        model_type: Recognizer type, e.g. ``'Recognizer2D'``.
        backbone_type: Backbone type, e.g. ``'ResNet'`` (``None`` if the config has none).
        head_type: Head type, e.g. ``'TSNHead'``.
        input_name: Graph input name (``'inputs'``).
        input_format: MMAction2's ``format_shape``: ``'NCHW'`` or ``'NCTHW'``.
        input_shape: Per-sample input shape: ``(V, C, H, W)`` or ``(V, C, T, H, W)``;
            the batch axis in front is dynamic.
        input_dtype: Always ``'float32'``.
        output_name: Graph output name (``'scores'``).
        output_shape: Per-sample output shape, ``(num_classes,)`` (or ``(V, num_classes)``
            when ``average_clips`` is ``None``).
        num_classes: Number of classes.
        class_names: Class names from the checkpoint's ``meta``, if it had them.
        mean: Per-channel mean of the data preprocessor (0-255 scale, RGB), or ``None``.
        std: Per-channel std, or ``None``.
        normalize_folded: True if the graph normalises itself: feed raw RGB pixels 0-255.
            False: feed ``(pixels - mean) / std``, as MMAction2's data preprocessor does.
        average_clips: The head's view folding: ``'score'``, ``'prob'`` or ``None``.
        clip: :class:`~engines.clip_spec.ClipSpec` of the config's ``test_pipeline``
            (``None`` if it had none); JSON as :meth:`ClipSpec.to_dict`.
        backend: Backend the engine was built for.
        precision: ``'fp32'``, ``'fp16'``, ``'bf16'`` or ``'int8'`` (the quantized ``onnx_int8`` graph).
        max_batch: Largest batch the engine was built for; larger batches run in chunks.
        files: Role -> file name relative to the engine dir (``onnx``, ``model``, ...).
        sha256: Relative path -> SHA-256 of every file the build wrote (checked on open).
        onnx_sha256: SHA-256 of ``model.onnx``.
        opset: ONNX opset of the export.
        export_max_abs_diff: Max |ONNX Runtime - torch| measured right after export.
        validation: Backend vs torch on a check batch at build time
            (``max_abs_diff``, ``top1_agreement``, ``batch``).
        source: ``config``, ``checkpoint`` (absolute paths) and ``checkpoint_sha256``.
        versions: Library versions at build time.
        format_version: Manifest schema version.
    """

    model_type: str
    backbone_type: str | None
    head_type: str | None
    input_format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    num_classes: int
    backend: str
    precision: str = "fp32"
    max_batch: int = 1
    input_name: str = "inputs"
    input_dtype: str = "float32"
    output_name: str = "scores"
    class_names: list[str] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    normalize_folded: bool = False
    average_clips: str | None = None
    clip: ClipSpec | None = None
    files: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    onnx_sha256: str | None = None
    opset: int | None = None
    export_max_abs_diff: float | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = [t if isinstance(t, TensorSpec) else _tensor(t, "inputs") for t in self.inputs]
        self.outputs = [t if isinstance(t, TensorSpec) else _tensor(t, "outputs") for t in self.outputs]
        if self.inputs and not self.input_format:  # a general graph: its named tensors say it all
            if not self.outputs:
                raise ManifestError("outputs: a graph engine lists its outputs")
            return
        if self.input_format not in INPUT_FORMATS:
            raise ManifestError(f"input_format: expected one of {INPUT_FORMATS}, got {self.input_format!r}")
        rank = 4 if self.input_format == "NCHW" else 5
        if len(self.input_shape) != rank or not all(isinstance(d, int) and d > 0 for d in self.input_shape):
            raise ManifestError(
                f"input_shape: expected {rank} positive ints for {self.input_format}, got {self.input_shape!r}"
            )
        if not isinstance(self.num_classes, int) or self.num_classes <= 0:
            raise ManifestError(f"num_classes: expected a positive int, got {self.num_classes!r}")
        if not isinstance(self.max_batch, int) or self.max_batch <= 0:
            raise ManifestError(f"max_batch: expected a positive int, got {self.max_batch!r}")
        if not isinstance(self.files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.files.items()
        ):
            raise ManifestError(f"files: expected an object of role -> relative file name, got {self.files!r}")
        if not isinstance(self.sha256, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in self.sha256.items()
        ):
            raise ManifestError("sha256: expected an object of relative file name -> 64 hex digits")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            logger.warning(
                "manifest: %d class names for %d classes; ignoring the names", len(self.class_names), self.num_classes
            )
            self.class_names = None
        # A recognizer: one input and one output, always those of its recognizer fields (older
        # manifests did not list them; a listed pair that disagrees is overridden by the fields).
        self.inputs = [TensorSpec(self.input_name, ("batch", *self.input_shape), self.input_dtype, self.layout)]
        self.outputs = [TensorSpec(self.output_name, ("batch", *self.output_shape), "float32")]

    @property
    def layout(self) -> str:
        """Axes of the input array, batch and view included: ``'NVCHW'`` or ``'NVCTHW'``."""
        return "NV" + self.input_format[1:]

    @property
    def legacy(self) -> bool:
        """True for an older format (no hashes, model as Python): opened only when trusted."""
        return self.format_version != FORMAT_VERSION

    def path_of(self, engine_dir: str | Path, role: str) -> Path:
        """Absolute path of the file playing ``role`` (e.g. ``'onnx'``), confined to ``engine_dir``.

        Raises:
            ManifestError: If the manifest lists no such file.
            EnginePathError: If the entry is absolute, climbs out with ``..`` or resolves outside.
        """
        if role not in self.files:
            have = ", ".join(sorted(self.files)) or "none"
            raise ManifestError(
                f"engine {engine_dir}: manifest lists no {role!r} file (has: {have}); "
                "rebuild the engine with python -m engines.build"
            )
        return confined_path(Path(engine_dir), self.files[role], role)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        out["clip"] = self.clip.to_dict() if self.clip is not None else None
        out["inputs"] = [t.to_dict() for t in self.inputs]
        out["outputs"] = [t.to_dict() for t in self.outputs]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "manifest") -> Manifest:
        """Build from :meth:`to_dict`'s output.

        Raises:
            ManifestError: If a required key is missing, unknown keys are present, or a
                value is invalid.
        """
        if not isinstance(data, Mapping):
            raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION and version not in LEGACY_FORMATS:
            raise ManifestError(
                f"{where}: format_version {version!r} is not supported (expected {FORMAT_VERSION}); {REBUILD}"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            logger.warning("%s: ignoring unknown key(s) %s", where, ", ".join(unknown))
        kwargs = {k: v for k, v in data.items() if k in names}
        try:
            kwargs["input_shape"] = tuple(int(d) for d in kwargs["input_shape"])
            kwargs["output_shape"] = tuple(int(d) for d in kwargs["output_shape"])
            if kwargs.get("clip") is not None:
                kwargs["clip"] = ClipSpec.from_dict(kwargs["clip"])
            return cls(**kwargs)
        except KeyError as exc:
            raise ManifestError(f"{where}: missing key {exc}; {REBUILD}") from exc
        except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
            raise ManifestError(f"{where}: {exc}") from exc

    def save(self, engine_dir: str | Path) -> Path:
        """Write ``manifest.json`` into ``engine_dir`` (whole or not at all: it may be rewritten in place)."""
        return write_text(Path(engine_dir) / MANIFEST_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, engine_dir: str | Path) -> Manifest:
        """Read ``engine_dir/manifest.json``.

        Raises:
            ManifestError: If the directory or manifest is missing or malformed.
        """
        engine_dir = Path(engine_dir)
        path = engine_dir / MANIFEST_NAME
        if not engine_dir.is_dir():
            raise ManifestError(f"engine {engine_dir}: no such directory; build one with python -m engines.build")
        if not path.is_file():
            raise ManifestError(f"engine {engine_dir}: no {MANIFEST_NAME}; build one with python -m engines.build")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: cannot read it: {exc}") from exc
        return cls.from_dict(data, where=str(path))


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries an engine may depend on (those installed)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("action-stream", "torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
