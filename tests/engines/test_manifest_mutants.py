"""manifest.json, as a user of an engine folder meets it: a manifest reads back as it was saved,
and a malformed, foreign or tampered one (engine folders are untrusted: docs/security.md) is
refused with one line that names the file and the key."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.clip_spec import ClipSpec
from engines.errors import EngineError
from engines.integrity import REBUILD, EnginePathError
from engines.manifest import FORMAT_VERSION, MANIFEST_NAME, Manifest, ManifestError, library_versions
from engines.tensors import TensorSpec

HASH = "ab" * 32


def fields(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = dict(
        model_type="Recognizer3D", backbone_type="ResNet3dSlowOnly", head_type="I3DHead", input_format="NCTHW",
        input_shape=(1, 3, 8, 224, 224), output_shape=(3,), num_classes=3, backend="onnxruntime",
    )  # fmt: skip
    data.update(changes)
    return data


def full() -> Manifest:
    return Manifest(
        **fields(
            precision="fp16", max_batch=4, input_name="clip", output_name="logits",
            class_names=["wave", "clap", "run"], mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
            normalize_folded=True, average_clips="prob", clip=ClipSpec(clip_len=8, frame_interval=4),
            files={"onnx": "model.onnx", "model": "model.json"}, sha256={"model.onnx": HASH, "model.json": HASH},
            onnx_sha256=HASH, opset=17, export_max_abs_diff=1.5e-6, validation={"batch": 2},
            source={"config": "/c.py"}, versions={"python": "3.11.7"},
        )
    )  # fmt: skip


def as_json(manifest: Manifest, **changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(manifest.to_dict()))
    data.update(changes)
    return data


def error(data: Any, where: str | None = None) -> str:
    """The message of the ManifestError ``from_dict`` raises (``where`` left to its default if None)."""
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(data) if where is None else Manifest.from_dict(data, where=where)
    return str(info.value)


# -- round trip --------------------------------------------------------------------------------


def test_save_and_load_give_back_the_same_manifest(tmp_path: Path) -> None:
    manifest = full()
    path = manifest.save(tmp_path)
    assert path == tmp_path / MANIFEST_NAME == tmp_path / "manifest.json"
    assert path.read_text() == json.dumps(manifest.to_dict(), indent=2) + "\n"
    loaded = Manifest.load(tmp_path)
    assert loaded == manifest and loaded.to_dict() == manifest.to_dict()
    data = json.loads(path.read_text())
    assert data["input_shape"] == [1, 3, 8, 224, 224] and data["output_shape"] == [3]
    assert data["clip"] == ClipSpec(clip_len=8, frame_interval=4).to_dict()
    assert data["inputs"] == [{"name": "clip", "shape": ["batch", 1, 3, 8, 224, 224], "dtype": "float32",
                               "layout": "NVCTHW"}]  # fmt: skip
    assert data["outputs"] == [{"name": "logits", "shape": ["batch", 3], "dtype": "float32", "layout": ""}]
    assert data["format_version"] == FORMAT_VERSION == 3 and data["class_names"] == ["wave", "clap", "run"]


def test_a_manifest_without_clip_keeps_none_and_shapes_come_back_as_ints() -> None:
    data = as_json(Manifest(**fields()), input_shape=["1", "3", "8", "224", "224"], output_shape=[3.0])
    assert data["clip"] is None
    loaded = Manifest.from_dict(data)
    assert loaded.clip is None and loaded.input_shape == (1, 3, 8, 224, 224) and loaded.output_shape == (3,)
    assert loaded.max_batch == 1 and loaded.precision == "fp32" and not loaded.legacy


@pytest.mark.parametrize(("input_format", "shape", "layout"), [("NCHW", (8, 3, 224, 224), "NVCHW"),
                                                               ("NCTHW", (1, 3, 8, 224, 224), "NVCTHW")])  # fmt: skip
def test_a_recognizer_has_its_one_input_and_output(input_format: str, shape: tuple[int, ...], layout: str) -> None:
    listed = [TensorSpec("other", ("batch", 5))]
    manifest = Manifest(**fields(input_format=input_format, input_shape=shape, input_dtype="float16"),
                        inputs=listed, outputs=listed)  # fmt: skip
    assert manifest.layout == layout
    assert manifest.inputs == [TensorSpec("inputs", ("batch", *shape), "float16", layout)]
    assert manifest.outputs == [TensorSpec("scores", ("batch", 3), "float32")]


def test_a_graph_engine_keeps_its_named_tensors() -> None:
    inputs = [{"name": "boxes", "shape": ["boxes", 4], "dtype": "float32", "layout": ""}]
    outputs = [{"name": "scores", "shape": ["boxes", 80], "dtype": "float32", "layout": ""}]
    manifest = Manifest(**fields(input_format="", input_shape=(), num_classes=0), inputs=inputs, outputs=outputs)
    assert manifest.inputs == [TensorSpec("boxes", ("boxes", 4))]
    assert manifest.outputs == [TensorSpec("scores", ("boxes", 80))]
    again = Manifest.from_dict(as_json(manifest))
    assert again.inputs == manifest.inputs and again.outputs == manifest.outputs


def test_format_2_is_read_but_marked_legacy_and_a_missing_version_is_the_current_one() -> None:
    assert Manifest.from_dict(as_json(full(), format_version=2)).legacy
    data = as_json(full())
    del data["format_version"]
    assert Manifest.from_dict(data).format_version == FORMAT_VERSION


def test_unknown_keys_are_ignored_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="engines.manifest"):
        manifest = Manifest.from_dict(as_json(full(), zeta=1, alpha=2), where="eng/manifest.json")
    assert manifest == full()
    assert caplog.messages == ["eng/manifest.json: ignoring unknown key(s) alpha, zeta"]


def test_class_names_that_do_not_match_the_class_count_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="engines.manifest"):
        manifest = Manifest(**fields(class_names=["wave", "clap"]))
    assert manifest.class_names is None
    assert caplog.messages == ["manifest: 2 class names for 3 classes; ignoring the names"]


def test_path_of_gives_the_file_inside_the_folder(tmp_path: Path) -> None:
    assert full().path_of(tmp_path, "onnx") == tmp_path.resolve() / "model.onnx"
    with pytest.raises(ManifestError) as info:
        full().path_of(tmp_path, "weights")
    assert str(info.value) == (
        f"engine {tmp_path}: manifest lists no 'weights' file (has: model, onnx); "
        "rebuild the engine with python -m engines.build"
    )
    with pytest.raises(ManifestError, match=r"lists no 'onnx' file \(has: none\);"):
        Manifest(**fields()).path_of(tmp_path, "onnx")
    escaping = Manifest(**fields(files={"onnx": "../model.onnx"}))
    with pytest.raises(EnginePathError) as path_info:
        escaping.path_of(tmp_path, "onnx")
    assert str(path_info.value) == (
        f"engine {tmp_path}: manifest files['onnx'] = '../model.onnx' climbs out of the folder with '..'; {REBUILD}"
    )


def test_library_versions_lists_python_and_what_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = library_versions()
    assert versions["python"] == platform.python_version() and versions["numpy"] == np.__version__
    from importlib import metadata

    def version(dist: str) -> str:
        if dist == "onnx":
            raise metadata.PackageNotFoundError(dist)
        return f"{dist}-1"

    monkeypatch.setattr(metadata, "version", version)
    assert library_versions() == {
        "python": platform.python_version(), "action-stream": "action-stream-1", "torch": "torch-1",
        "numpy": "numpy-1", "onnxruntime": "onnxruntime-1", "onnxruntime-gpu": "onnxruntime-gpu-1",
        "openvino": "openvino-1", "tensorrt": "tensorrt-1",
    }  # fmt: skip


# -- refused, in one line ----------------------------------------------------------------------


def test_manifest_error_is_an_engine_error_and_a_value_error() -> None:
    assert issubclass(ManifestError, EngineError) and issubclass(ManifestError, ValueError)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_format": "NHWC"}, "input_format: expected one of ('NCHW', 'NCTHW'), got 'NHWC'"),
        ({"input_shape": (3, 8, 224, 224)}, "input_shape: expected 5 positive ints for NCTHW, got (3, 8, 224, 224)"),
        ({"input_format": "NCHW"}, "input_shape: expected 4 positive ints for NCHW, got (1, 3, 8, 224, 224)"),
        (
            {"input_shape": (1, 3, 0, 224, 224)},
            "input_shape: expected 5 positive ints for NCTHW, got (1, 3, 0, 224, 224)",
        ),
        (
            {"input_shape": (1, 3, 8.0, 224, 224)},
            "input_shape: expected 5 positive ints for NCTHW, got (1, 3, 8.0, 224, 224)",
        ),
        ({"num_classes": 0}, "num_classes: expected a positive int, got 0"),
        ({"num_classes": "3"}, "num_classes: expected a positive int, got '3'"),
        ({"max_batch": 0}, "max_batch: expected a positive int, got 0"),
        ({"max_batch": 2.0}, "max_batch: expected a positive int, got 2.0"),
        ({"files": ["model.onnx"]}, "files: expected an object of role -> relative file name, got ['model.onnx']"),
        ({"files": {"onnx": 5}}, "files: expected an object of role -> relative file name, got {'onnx': 5}"),
        (
            {"files": {1: "model.onnx"}},
            "files: expected an object of role -> relative file name, got {1: 'model.onnx'}",
        ),
        ({"sha256": [HASH]}, "sha256: expected an object of relative file name -> 64 hex digits"),
        ({"sha256": {"model.onnx": HASH[:-1]}}, "sha256: expected an object of relative file name -> 64 hex digits"),
        ({"sha256": {"model.onnx": HASH + "0"}}, "sha256: expected an object of relative file name -> 64 hex digits"),
        ({"sha256": {"model.onnx": 7}}, "sha256: expected an object of relative file name -> 64 hex digits"),
        ({"sha256": {5: HASH}}, "sha256: expected an object of relative file name -> 64 hex digits"),
        ({"inputs": [{"name": "x", "shape": [1]}], "input_format": ""}, "outputs: a graph engine lists its outputs"),
        ({"inputs": [5]}, "inputs: expected tensor specs as JSON objects, got 5"),
        ({"outputs": [[1]]}, "outputs: expected tensor specs as JSON objects, got [1]"),
        ({"outputs": [{"name": "", "shape": [1]}]}, "outputs: TensorSpec: expected a name"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest(**fields(**changes))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_classes": 0}, "num_classes: expected a positive int, got 0"),
        ({"files": {"onnx": None}}, "files: expected an object of role -> relative file name, got {'onnx': None}"),
        ({"outputs": [{"shape": [1]}]}, "outputs: tensor spec {'shape': [1]}: 'name'"),
    ],
)
def test_from_dict_names_the_file_before_the_key(changes: dict[str, Any], message: str) -> None:
    assert error(as_json(full(), **changes), "e/manifest.json") == f"e/manifest.json: {message}"


@pytest.mark.parametrize("value", [1, 2, 3])
def test_a_positive_max_batch_and_class_count_are_accepted(value: int) -> None:
    manifest = Manifest(**fields(max_batch=value, num_classes=value, output_shape=(value,)))
    assert manifest.max_batch == manifest.num_classes == value


def test_a_foreign_document_is_refused_by_type_version_or_missing_key() -> None:
    assert error([1, 2], "x.json") == "x.json: expected a JSON object, got list"
    assert error(as_json(full(), format_version=4)) == (
        f"manifest: format_version 4 is not supported (expected 3); {REBUILD}"
    )
    assert error(as_json(full(), format_version=1)).startswith("manifest: format_version 1 is not supported")
    assert error(as_json(full(), format_version="3")).startswith("manifest: format_version '3' is not supported")
    data = as_json(full())
    del data["input_shape"]
    assert error(data) == f"manifest: missing key 'input_shape'; {REBUILD}"
    data = as_json(full())
    del data["output_shape"]
    assert error(data) == f"manifest: missing key 'output_shape'; {REBUILD}"
    data = as_json(full())
    del data["model_type"]
    assert error(data) == "manifest: Manifest.__init__() missing 1 required positional argument: 'model_type'"
    assert error(as_json(full(), input_shape=["a"])) == "manifest: invalid literal for int() with base 10: 'a'"
    assert error(as_json(full(), output_shape=None)) == "manifest: 'NoneType' object is not iterable"
    assert error(as_json(full(), clip={"clip_len": 8, "colour": 1})).startswith("manifest: ClipSpec: unknown keys")


def test_load_refuses_a_missing_folder_or_manifest_and_unreadable_json(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ManifestError) as info:
        Manifest.load(missing)
    assert str(info.value) == f"engine {missing}: no such directory; build one with python -m engines.build"
    with pytest.raises(ManifestError) as info:
        Manifest.load(tmp_path)
    assert str(info.value) == f"engine {tmp_path}: no manifest.json; build one with python -m engines.build"
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").rmdir()
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError) as info:
        Manifest.load(tmp_path)
    assert (
        str(info.value)
        == f"{path}: cannot read it: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ManifestError, match=r"manifest.json: cannot read it: 'utf-8' codec can't decode"):
        Manifest.load(tmp_path)
    path.write_text(json.dumps({**as_json(full()), "num_classes": -1}))
    with pytest.raises(ManifestError) as info:
        Manifest.load(tmp_path)
    assert str(info.value) == f"{path}: num_classes: expected a positive int, got -1"
