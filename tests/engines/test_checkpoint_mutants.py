"""Checkpoint reading and loading as a user meets it: layouts, exact error lines, trust, class names.

Tiny ``nn.Module`` models keep this file fast (the mutation run executes it once per mutant).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engines import checkpoint as ckpt_mod
from engines.checkpoint import (
    Checkpoint,
    KeyReport,
    checkpoint_from_object,
    compare_keys,
    file_sha256,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from engines.errors import CheckpointError


class Head(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.fc_cls = nn.Linear(4, num_classes)


class Tiny(nn.Module):
    """A backbone with a BN layer and a classification head, keys as MMAction2 names them."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4))
        self.cls_head = Head(num_classes)


def _seeded(seed: int, num_classes: int = 3) -> Tiny:
    torch.manual_seed(seed)
    model = Tiny(num_classes)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _message(call: Any) -> str:
    with pytest.raises(CheckpointError) as info:
        call()
    return str(info.value)


# --------------------------------------------------------------------------- class names


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"dataset_meta": {"classes": ("run", "jump")}}, ["run", "jump"]),
        ({"dataset_meta": {"classes": [1, 2]}}, ["1", "2"]),
        ({"CLASSES": ["a", "b"]}, ["a", "b"]),
        # dataset_meta without classes, or not a dict: the old-style CLASSES key is used.
        ({"dataset_meta": {"other": 1}, "CLASSES": ["a"]}, ["a"]),
        ({"dataset_meta": ["x"], "CLASSES": ["a"]}, ["a"]),
        ({"dataset_meta": {"classes": ["new"]}, "CLASSES": ["old"]}, ["new"]),
        ({"dataset_meta": {"classes": "run"}}, None),
        ({"CLASSES": 7}, None),
        ({"CLASSES": np.array(["x", "y"])}, ["x", "y"]),
        ({}, None),
    ],
)
def test_class_names_from_meta(meta: dict[str, Any], expected: list[str] | None) -> None:
    assert Checkpoint(path=None, state_dict={}, meta=meta).classes == expected


def test_meta_defaults_to_empty() -> None:
    assert Checkpoint(path=None, state_dict={}).meta == {}


# --------------------------------------------------------------------------- key reports


def test_report_of_matching_keys() -> None:
    report = compare_keys(Tiny(), Tiny().state_dict())
    assert report.ok
    assert report.describe() == "all keys match"


@pytest.mark.parametrize("field", ["missing", "unexpected", "mis_shaped"])
def test_any_problem_makes_the_report_not_ok(field: str) -> None:
    kwargs: dict[str, Any] = {"missing": [], "unexpected": [], "mis_shaped": []}
    kwargs[field] = [("k", (1,), (2,))] if field == "mis_shaped" else ["k"]
    assert not KeyReport(**kwargs).ok


def test_describe_lists_five_names_then_counts_the_rest() -> None:
    report = KeyReport(
        missing=[f"m{i}" for i in range(7)],
        unexpected=[f"u{i}" for i in range(5)],
        mis_shaped=[(f"s{i}", (i, 2), (i, 3)) for i in range(6)],
    )
    assert report.describe() == (
        "6 mis-shaped: s0 (checkpoint (0, 2) vs model (0, 3)), s1 (checkpoint (1, 2) vs model (1, 3)), "
        "s2 (checkpoint (2, 2) vs model (2, 3)), s3 (checkpoint (3, 2) vs model (3, 3)), "
        "s4 (checkpoint (4, 2) vs model (4, 3)), ... (1 more); "
        "7 missing: m0, m1, m2, m3, m4, ... (2 more); "
        "5 unexpected: u0, u1, u2, u3, u4"
    )


def test_describe_one_category() -> None:
    assert KeyReport(missing=[], unexpected=["x", "y"], mis_shaped=[]).describe() == "2 unexpected: x, y"
    assert KeyReport(missing=["a"], unexpected=[], mis_shaped=[]).describe() == "1 missing: a"
    assert KeyReport(missing=[], unexpected=[], mis_shaped=[("w", [4], [5])]).describe() == (
        "1 mis-shaped: w (checkpoint (4,) vs model (5,))"
    )


def test_compare_keys_in_model_order() -> None:
    state = dict(Tiny().state_dict())
    del state["backbone.0.weight"], state["cls_head.fc_cls.bias"]
    del state["backbone.1.num_batches_tracked"]  # tolerated: unused at inference
    state["extra.b"] = torch.zeros(1)
    state["extra.a"] = torch.zeros(1)
    state["cls_head.fc_cls.weight"] = torch.zeros(5, 4)
    report = compare_keys(Tiny(), state)
    assert report.missing == ["backbone.0.weight", "cls_head.fc_cls.bias"]
    assert report.unexpected == ["extra.b", "extra.a"]
    assert report.mis_shaped == [("cls_head.fc_cls.weight", (5, 4), (3, 4))]


# --------------------------------------------------------------------------- loading into a model


def test_load_gives_the_model_the_checkpoint_weights() -> None:
    source, target = _seeded(1), _seeded(2)
    ckpt = Checkpoint(path=None, state_dict=source.state_dict(), meta={"CLASSES": ["a", "b", "c"]})
    assert load_checkpoint(target, ckpt) is ckpt
    assert _same(source, target)


def test_missing_bn_counter_and_foreign_preprocessor_are_tolerated() -> None:
    source, target = _seeded(1), _seeded(2)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["data_preprocessor.mean"] = torch.zeros(3)
    load_checkpoint(target, Checkpoint(path=None, state_dict=state))
    assert torch.equal(target.state_dict()["backbone.0.weight"], source.state_dict()["backbone.0.weight"])


def test_preprocessor_keys_the_model_has_are_checked() -> None:
    class WithPre(Tiny):
        def __init__(self) -> None:
            super().__init__()
            self.data_preprocessor = nn.Linear(1, 1)

    state = dict(WithPre().state_dict())
    state["data_preprocessor.weight"] = torch.zeros(2, 2)
    state["data_preprocessor.extra"] = torch.zeros(1)
    message = _message(lambda: load_checkpoint(WithPre(), Checkpoint(path=None, state_dict=state)))
    assert message == (
        "checkpoint does not fit model WithPre: 1 mis-shaped: data_preprocessor.weight "
        "(checkpoint (2, 2) vs model (1, 1))"
    )


def test_error_line_names_model_or_config_and_file(tmp_path: Path) -> None:
    state = dict(Tiny().state_dict())
    del state["backbone.0.bias"]
    state["neck.weight"] = torch.zeros(1)
    ckpt = Checkpoint(path=None, state_dict=state)
    assert _message(lambda: load_checkpoint(Tiny(), ckpt)) == (
        "checkpoint does not fit model Tiny: 1 missing: backbone.0.bias; 1 unexpected: neck.weight"
    )
    path = tmp_path / "w.pth"
    torch.save({"state_dict": state}, path)
    assert _message(lambda: load_checkpoint(Tiny(), path, config_name="configs/tsn.py")) == (
        f"checkpoint {path} does not fit config configs/tsn.py: 1 missing: backbone.0.bias; 1 unexpected: neck.weight"
    )


def test_wrong_num_classes_gets_the_cfg_options_hint() -> None:
    ckpt = Checkpoint(path=None, state_dict=Tiny(num_classes=5).state_dict())
    assert _message(lambda: load_checkpoint(Tiny(), ckpt, config_name=Path("c.py"))) == (
        "checkpoint does not fit config c.py: 2 mis-shaped: "
        "cls_head.fc_cls.weight (checkpoint (5, 4) vs model (3, 4)), "
        "cls_head.fc_cls.bias (checkpoint (5,) vs model (3,)) "
        "(a different num_classes? override it with --cfg-options model.cls_head.num_classes=N)"
    )


def test_no_hint_when_the_backbone_is_mis_shaped() -> None:
    state = dict(Tiny().state_dict())
    state["backbone.0.weight"] = torch.zeros(4, 3, 1, 1)
    message = _message(lambda: load_checkpoint(Tiny(), Checkpoint(path=None, state_dict=state)))
    assert message == (
        "checkpoint does not fit model Tiny: 1 mis-shaped: backbone.0.weight "
        "(checkpoint (4, 3, 1, 1) vs model (4, 2, 1, 1))"
    )


def test_a_failed_load_leaves_the_model_as_it_was() -> None:
    target = _seeded(2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = dict(_seeded(1).state_dict())
    state["x"] = torch.zeros(1)
    with pytest.raises(CheckpointError):
        load_checkpoint(target, Checkpoint(path=None, state_dict=state))
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


# --------------------------------------------------------------------------- layouts


def _prefixed(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in state.items()}


def test_mmaction2_layout_keeps_meta_and_ignores_training_keys(tmp_path: Path) -> None:
    source = _seeded(1)
    meta = {"dataset_meta": {"classes": ["a", "b", "c"]}, "epoch": 12}
    path = tmp_path / "zoo.pth"
    torch.save({"state_dict": source.state_dict(), "meta": meta, "optimizer": {"lr": 0.1}}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.path == path
    assert ckpt.meta == meta
    assert ckpt.classes == ["a", "b", "c"]
    assert sorted(ckpt.state_dict) == sorted(source.state_dict())


def test_meta_that_is_not_a_dict_is_dropped() -> None:
    ckpt = checkpoint_from_object({"state_dict": {"w": torch.ones(1)}, "meta": ["x"]})
    assert ckpt.meta == {} and ckpt.path is None


def test_state_dict_entry_that_is_not_a_dict_means_a_bare_state_dict() -> None:
    ckpt = checkpoint_from_object({"state_dict": torch.ones(2), "w": torch.zeros(1), "meta": {"a": 1}})
    assert sorted(ckpt.state_dict) == ["state_dict", "w"]
    assert ckpt.meta == {}


def test_model_layout_and_bare_layout() -> None:
    state = _seeded(1).state_dict()
    for obj in ({"model": state, "epoch": 3}, state):
        ckpt = checkpoint_from_object(obj)
        assert list(ckpt.state_dict) == list(state) and ckpt.meta == {}
    bare = checkpoint_from_object({"model": torch.ones(2), "head": torch.zeros(1)})
    assert sorted(bare.state_dict) == ["head", "model"]


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model"])
def test_data_parallel_prefix_is_removed(wrap: str) -> None:
    state = _prefixed(_seeded(1).state_dict())
    obj = {"bare": state, "state_dict": {"state_dict": state}, "model": {"model": state}}[wrap]
    target = _seeded(2)
    load_checkpoint(target, checkpoint_from_object(obj))
    assert _same(target, _seeded(1))


def test_prefix_kept_unless_every_key_has_it() -> None:
    state = {"module.a": torch.ones(1), "b": torch.ones(1)}
    assert sorted(checkpoint_from_object(state).state_dict) == ["b", "module.a"]
    # MMAction2 saves 'backbone.' / 'cls_head.' keys: those are model keys, never stripped.
    backbone_only = _prefixed({"conv.weight": torch.ones(1)}, "backbone.")
    assert list(checkpoint_from_object(backbone_only).state_dict) == ["backbone.conv.weight"]
    assert list(checkpoint_from_object({"module.backbone.w": torch.ones(1)}).state_dict) == ["backbone.w"]


def test_non_tensor_entries_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engines.checkpoint"):
        ckpt = checkpoint_from_object({"w": torch.ones(1), "step": 3, "note": "x"}, Path("a.pth"))
    assert list(ckpt.state_dict) == ["w"]
    assert "checkpoint a.pth: ignored 2 non-tensor entries of the state dict" in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engines.checkpoint"):
        checkpoint_from_object({"w": torch.ones(1)})
    assert caplog.messages == []


def test_integer_keys_become_strings() -> None:
    assert list(checkpoint_from_object({0: torch.ones(1)}).state_dict) == ["0"]


@pytest.mark.parametrize(
    ("obj", "path", "expected"),
    [
        ([1], None, "checkpoint: expected a dict (state dict or {'state_dict': ...}), got list"),
        (
            torch.ones(1),
            Path("x.pth"),
            "checkpoint x.pth: expected a dict (state dict or {'state_dict': ...}), got Tensor",
        ),
        (
            {"state_dict": {"a": 1}},
            Path("x.pth"),
            "checkpoint x.pth: holds no tensors; expected a state dict or {'state_dict': ..., 'meta': ...}",
        ),
        ({}, None, "checkpoint: holds no tensors; expected a state dict or {'state_dict': ..., 'meta': ...}"),
    ],
)
def test_objects_that_are_not_checkpoints(obj: Any, path: Path | None, expected: str) -> None:
    assert _message(lambda: checkpoint_from_object(obj, path)) == expected


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    assert _message(lambda: read_checkpoint(path)) == f"checkpoint {path}: no such file"
    assert _message(lambda: read_checkpoint(tmp_path)) == f"checkpoint {tmp_path}: no such file"


@pytest.mark.parametrize("data", [b"", b"PK\x03", b"PK\x03\x05rest", b"\x81\x80abc", b"hello"])
def test_files_of_another_kind(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(data)
    assert _message(lambda: read_checkpoint(str(path))) == (
        f"checkpoint {path}: not a PyTorch checkpoint (neither a torch.save zip nor a pickle); "
        "pass a .pth file saved by torch.save / MMAction2"
    )


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"PK\x03\x04junk", "RuntimeError: PytorchStreamReader failed reading zip archive: not a ZIP archive."),
        (pickle.dumps({"w": 1}, protocol=2), "RuntimeError: Invalid magic number; corrupt file?"),
    ],
)
def test_corrupt_files(tmp_path: Path, data: bytes, detail: str) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(data)
    message = _message(lambda: read_checkpoint(path))
    assert message.startswith(f"checkpoint {path}: cannot read it, the file is truncated or corrupt ({detail}")
    assert message.endswith("); download or save it again")
    assert "\n" not in message


def test_truncated_zip_is_reported_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"state_dict": Tiny().state_dict()}, path)
    path.write_bytes(path.read_bytes()[:200])
    message = _message(lambda: read_checkpoint(path))
    assert message.startswith(f"checkpoint {path}: cannot read it, the file is truncated or corrupt (")
    assert "\n" not in message


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError(),
        EOFError(),
        OSError(),
        zipfile.BadZipFile(),
        ValueError(),
        IndexError(),
        KeyError(),
        struct.error(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_read_errors_without_text_say_no_detail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(1)}, path)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(torch, "load", fail)
    assert _message(lambda: read_checkpoint(path)) == (
        f"checkpoint {path}: cannot read it, the file is truncated or corrupt ({type(exc).__name__}: no detail); "
        "download or save it again"
    )


# --------------------------------------------------------------------------- safe loading and trust


def _refusal(path: Path, shown: str) -> str:
    return (
        f"checkpoint {path}: holds pickled objects beyond tensors{shown}, which weights_only loading "
        "refuses; if you trust where the file comes from, pass trusted=True (CLI: --trust-checkpoint)"
    )


def test_numpy_meta_loads_without_trust(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "np.pth"
    meta = {"seed": np.int64(3), "mean": np.array([1.5, 2.5], np.float32), "dt": np.dtype("int16")}
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": meta}, path)
    with caplog.at_level(logging.WARNING, logger="engines.checkpoint"):
        ckpt = read_checkpoint(path)
    assert ckpt.meta["seed"] == 3
    assert ckpt.meta["mean"].tolist() == [1.5, 2.5] and ckpt.meta["mean"].dtype == np.float32
    assert ckpt.meta["dt"] == np.dtype("int16")
    assert caplog.messages == []  # no trusted fallback was needed


def test_pickled_objects_are_refused_unless_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "old.pth"
    meta = {"args": argparse.Namespace(lr=0.1), "seed": np.int64(3)}
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": meta}, path)
    # Only the non-numpy object is named: numpy values alone would be allowed.
    assert _message(lambda: read_checkpoint(path)) == _refusal(path, " (argparse.Namespace)")
    with caplog.at_level(logging.WARNING, logger="engines.checkpoint"):
        ckpt = read_checkpoint(path, trusted=True)
    assert ckpt.meta["args"].lr == 0.1 and ckpt.meta["seed"] == 3
    assert caplog.messages == [
        f"checkpoint {path}: loading with weights_only=False because trusted=True; this runs pickled code"
    ]


def test_refusal_lists_five_names(tmp_path: Path) -> None:
    path = tmp_path / "many.pth"
    objs = [argparse.Namespace(), types.SimpleNamespace(), Path("p"), pytest.MonkeyPatch, argparse.ArgumentParser]
    objs += [collections_ordered_counter(), logging.Logger]
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"objs": objs}}, path)
    names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert len(names) > 5
    assert _message(lambda: read_checkpoint(path)) == _refusal(path, f" ({', '.join(names[:5])})")


def collections_ordered_counter() -> Any:
    import collections

    return collections.Counter("ab")


def test_refusal_without_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"a": argparse.Namespace()}}, path)

    def unreadable(_path: Any) -> Any:
        raise RuntimeError("cannot scan")

    monkeypatch.setattr(torch.serialization, "get_unsafe_globals_in_checkpoint", unreadable)
    assert _message(lambda: read_checkpoint(path)) == _refusal(path, "")


def test_trusted_file_whose_classes_are_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("gone_mod_for_ckpt")

    class Cfg:
        pass

    Cfg.__module__ = "gone_mod_for_ckpt"
    Cfg.__qualname__ = "Cfg"
    module.Cfg = Cfg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gone_mod_for_ckpt", module)
    path = tmp_path / "cfg.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"cfg": Cfg()}}, path)
    monkeypatch.delitem(sys.modules, "gone_mod_for_ckpt")
    assert _message(lambda: read_checkpoint(path)) == _refusal(path, " (gone_mod_for_ckpt.Cfg)")
    assert _message(lambda: read_checkpoint(path, trusted=True)) == (
        f"checkpoint {path}: cannot unpickle it: No module named 'gone_mod_for_ckpt'"
    )


def test_a_trusted_plain_file_loads_safely(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}}, path)
    with caplog.at_level(logging.WARNING, logger="engines.checkpoint"):
        assert list(read_checkpoint(path, trusted=True).state_dict) == ["w"]
    assert caplog.messages == []


def test_unpickling_errors_other_than_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(1)}, path)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("invalid load key, 'x'.")

    monkeypatch.setattr(torch, "load", fail)
    expected = (
        f"checkpoint {path}: not a PyTorch checkpoint or corrupt (invalid load key, 'x'.); "
        "pass a .pth file saved by torch.save / MMAction2"
    )
    assert _message(lambda: read_checkpoint(path)) == expected
    assert _message(lambda: read_checkpoint(path, trusted=True)) == expected


def test_numpy_names_resolve_only_from_the_allow_list() -> None:
    assert ckpt_mod._resolve_numpy("numpy.ndarray") is np.ndarray
    assert ckpt_mod._resolve_numpy("numpy.dtype") is np.dtype
    assert ckpt_mod._resolve_numpy("numpy.dtypes.Float32DType") is np.dtypes.Float32DType
    assert ckpt_mod._resolve_numpy("numpy.dtypes.NoSuchDType") is None
    assert ckpt_mod._resolve_numpy("numpy.load") is None
    assert ckpt_mod._resolve_numpy("os.system") is None
    assert np.dtypes.Float64DType in ckpt_mod._numpy_dtype_classes()


# --------------------------------------------------------------------------- hashing and saving


def test_file_sha256_reads_every_chunk(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(path) == expected
    assert file_sha256(str(path), chunk=1000) == expected


def test_save_writes_the_model_zoo_layout(tmp_path: Path) -> None:
    model = _seeded(1)
    path = save_checkpoint(model, str(tmp_path / "sub" / "w.pth"))
    assert path == tmp_path / "sub" / "w.pth"
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "meta"} and raw["meta"] == {}
    assert list(raw["state_dict"]) == list(model.state_dict())
    assert not any(t.requires_grad for t in raw["state_dict"].values())
    target = _seeded(2)
    ckpt = load_checkpoint(target, path)
    assert _same(target, model) and ckpt.path == path
    save_checkpoint(model, path, meta={"CLASSES": ["a", "b", "c"]})
    assert read_checkpoint(path).classes == ["a", "b", "c"]
    assert [p.name for p in path.parent.iterdir()] == ["w.pth"]


def test_load_checkpoint_passes_trust_on(tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    source = _seeded(1)
    torch.save({"state_dict": source.state_dict(), "meta": {"args": argparse.Namespace(lr=0.1)}}, path)
    assert _message(lambda: load_checkpoint(_seeded(2), path)) == _refusal(path, " (argparse.Namespace)")
    target = _seeded(2)
    assert load_checkpoint(target, path, trusted=True).meta["args"].lr == 0.1
    assert _same(target, source)


@pytest.mark.parametrize(
    "name",
    [
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",  # files saved under numpy 1.x
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    ],
)
def test_numpy_rebuilders_of_both_numpy_generations_are_allowed(name: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns on numpy.core
        assert callable(ckpt_mod._resolve_numpy(name))


def _as_if_saved_on_gpu(path: Path) -> None:
    """Retag every storage of a torch.save zip as ``cuda:0``, as a checkpoint saved from a GPU is."""
    with zipfile.ZipFile(path) as zin:
        entries = [(info, zin.read(info)) for info in zin.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)


@pytest.mark.parametrize(
    ("meta", "trusted"),
    [({}, False), ({"seed": np.int64(3)}, False), ({"args": argparse.Namespace(lr=0.1)}, True)],
    ids=["plain", "numpy-meta", "trusted"],
)
def test_a_checkpoint_saved_on_a_gpu_loads_on_the_cpu(tmp_path: Path, meta: dict[str, Any], trusted: bool) -> None:
    path = tmp_path / "gpu.pth"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "meta": meta}, path, pickle_protocol=2)
    _as_if_saved_on_gpu(path)
    weight = read_checkpoint(path, trusted=trusted).state_dict["w"]
    assert weight.device.type == "cpu"
    assert weight.tolist() == [0.0, 1.0, 2.0]
