"""ONNX export and every backend against the torch reference, on a ResNet-18 TSN at 2 views x 3x64x64."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest
import torch

from engines import backends
from engines.backends import (
    BACKENDS,
    BackendOptionError,
    BackendOptions,
    InputSpec,
    UnknownBackendError,
    backend_class,
    select_backend,
)
from engines.checkpoint import save_checkpoint
from engines.config import load_config
from engines.engine import Engine, build_engine, compare, load_engine
from engines.errors import BackendUnavailable, InputShapeError, ModelConfigError
from engines.export import DeployModel, ExportError, export_onnx, sample_inputs, torch_scores
from engines.manifest import Manifest, ManifestError
from engines.models import build
from tests.engines.engine_helpers import MEAN, STD, make_checkpoint, random_model, randomize, write_tsn_config

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (2, 3, 64, 64)


def _has_trt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_trt = pytest.mark.skipif(not _has_trt(), reason="TensorRT is not installable on this workplace")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def config(work: Path) -> Path:
    return write_tsn_config(work / "tsn_r18.py", average_clips="score")


@pytest.fixture(scope="module")
def checkpoint(work: Path, config: Path) -> Path:
    return make_checkpoint(config, work / "tsn_r18.pth", seed=7, classes=[f"c{i}" for i in range(10)])


@pytest.fixture(scope="module")
def reference(config: Path, checkpoint: Path) -> torch.nn.Module:
    """The torch model the engines must reproduce (normalised input)."""
    model = random_model(config)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    return model.eval()


@pytest.fixture(scope="module")
def ort_engine(work: Path, config: Path, checkpoint: Path) -> Engine:
    return build_engine(config, checkpoint, backend="onnxruntime", max_batch=4, out_dir=work / "ort")


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return sample_inputs(SHAPE, 3, mean=MEAN, std=STD, seed=11)


# --------------------------------------------------------------------------- export + onnxruntime


def test_onnxruntime_matches_torch(ort_engine: Engine, reference: torch.nn.Module, batch: np.ndarray) -> None:
    manifest = ort_engine.manifest
    assert manifest.export_max_abs_diff is not None and manifest.export_max_abs_diff <= 1e-4
    assert manifest.validation["max_abs_diff"] <= 1e-4
    got = ort_engine.infer(batch)
    assert got.shape == (3, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch_scores(reference, batch), atol=1e-4, rtol=0)


@pytest.mark.parametrize("size", [1, 3, 6])  # 6 > max_batch 4: runs in two chunks
def test_dynamic_batch(ort_engine: Engine, reference: torch.nn.Module, size: int) -> None:
    x = sample_inputs(SHAPE, size, mean=MEAN, std=STD, seed=size)
    np.testing.assert_allclose(ort_engine.infer(x), torch_scores(reference, x), atol=1e-4, rtol=0)


def test_manifest_fields(ort_engine: Engine, work: Path) -> None:
    data = json.loads((work / "ort" / "manifest.json").read_text())
    assert data["model_type"] == "Recognizer2D" and data["backbone_type"] == "ResNet"
    assert data["head_type"] == "TSNHead"
    assert data["input_shape"] == list(SHAPE) and data["input_format"] == "NCHW"
    assert data["num_classes"] == 10 and data["class_names"][:2] == ["c0", "c1"]
    assert data["mean"] == MEAN and data["std"] == STD and data["normalize_folded"] is False
    assert data["clip"]["num_clips"] == 2 and data["clip"]["crop"] == "CenterCrop"
    assert data["backend"] == "onnxruntime" and data["precision"] == "fp32" and data["max_batch"] == 4
    assert data["files"] == {"onnx": "model.onnx", "model": "model.json"}
    assert set(data["sha256"]) == {"model.onnx", "model.json"}
    assert len(data["onnx_sha256"]) == 64 and data["opset"] >= 17
    assert {"torch", "onnx", "onnxruntime"} <= set(data["versions"])
    assert Manifest.from_dict(data).to_dict() == data
    spec = ort_engine.input_spec
    assert spec == InputSpec("inputs", "NVCHW", (None, *SHAPE), "float32")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(
            lambda: np.zeros((1, 3, 3, 64, 64), np.float32), r"expected shape \(N, 2, 3, 64, 64\)", id="views"
        ),
        pytest.param(lambda: np.zeros((2, 3, 64, 64), np.float32), r"got \(2, 3, 64, 64\)", id="rank"),
        pytest.param(lambda: np.zeros((0, *SHAPE), np.float32), "empty batch", id="empty"),
        pytest.param(lambda: np.zeros((1, *SHAPE), np.uint8), "expected dtype float32, got uint8", id="dtype"),
        pytest.param(lambda: [[0.0]], "expected a numpy.ndarray", id="list"),
    ],
)
def test_wrong_input_is_refused(ort_engine: Engine, make: Callable[[], Any], match: str) -> None:
    with pytest.raises(InputShapeError, match=match):
        ort_engine.infer(make())


def test_folded_normalisation_equals_manual(work: Path, config: Path, checkpoint: Path, ort_engine: Engine) -> None:
    folded = build_engine(config, checkpoint, backend="onnxruntime", out_dir=work / "folded", fold_normalize=True)
    assert folded.manifest.normalize_folded
    pixels = sample_inputs(SHAPE, 2, normalize=False, seed=5)
    assert pixels.min() >= 0 and pixels.max() <= 255 and pixels.max() > 100
    manual = (pixels - np.reshape(MEAN, (1, 1, 3, 1, 1))) / np.reshape(STD, (1, 1, 3, 1, 1))
    np.testing.assert_allclose(folded.infer(pixels), ort_engine.infer(manual.astype(np.float32)), atol=1e-4, rtol=0)


def test_average_clips_override(work: Path, config: Path, reference: torch.nn.Module) -> None:
    path = work / "prob.onnx"
    model = random_model(config)
    result = export_onnx(model, path, SHAPE, input_format="NCHW", average_clips="prob")
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    from engines.export import run_onnx

    probs = run_onnx(path, sample_inputs(SHAPE, 2, mean=MEAN, std=STD))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ModelConfigError, match="average_clips"):
        export_onnx(model, path, SHAPE, input_format="NCHW", average_clips="max")


def test_export_mismatch_raises(work: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engines.export as export

    real = export.run_onnx
    monkeypatch.setattr(export, "run_onnx", lambda path, batch: real(path, batch) + 1e-2)
    with pytest.raises(ExportError, match=r"does not match torch: max abs diff 0\.01"):
        export_onnx(random_model(config), work / "bad.onnx", SHAPE, input_format="NCHW")


def test_fold_without_stats_is_refused(work: Path, config: Path) -> None:
    model = random_model(config)
    model.mean = model.std = None  # type: ignore[assignment]
    with pytest.raises(ModelConfigError, match="no data_preprocessor mean/std"):
        export_onnx(model, work / "nostats.onnx", SHAPE, input_format="NCHW", fold_normalize=True)


# --------------------------------------------------------------------------- openvino


def test_openvino_fp32_and_bf16(
    work: Path,
    config: Path,
    checkpoint: Path,
    reference: torch.nn.Module,
    record_property: Callable[[str, object], None],
) -> None:
    engine = build_engine(config, checkpoint, backend="openvino", precision="fp32", out_dir=work / "ov")
    assert (work / "ov" / "openvino" / "model.xml").is_file()
    x = sample_inputs(SHAPE, 8, mean=MEAN, std=STD, seed=21)
    expected = torch_scores(reference, x)
    fp32 = compare(expected, engine.infer(x))
    assert fp32["max_abs_diff"] <= 1e-4 and fp32["top1_agreement"] == 1.0
    bf16 = load_engine(work / "ov", precision="bf16")
    report = compare(expected, bf16.infer(x))
    record_property("openvino_bf16", {**report, "compiled": bf16.backend.effective_precision})  # type: ignore[attr-defined]
    assert np.isfinite(report["max_abs_diff"])
    assert report["top1_agreement"] >= 0.5, report  # bf16 keeps ~3 significant digits


@pytest.mark.parametrize("min_top1", [0.0, 1.01])
def test_auto_precision_is_checked_and_falls_back_to_fp32(
    work: Path,
    config: Path,
    checkpoint: Path,
    reference: torch.nn.Module,
    monkeypatch: pytest.MonkeyPatch,
    min_top1: float,
) -> None:
    """``precision='auto'`` keeps the backend's fast precision only if top-1 labels survive it."""
    import engines.engine as engine_module
    from engines.backends.ov import OpenVinoBackend

    monkeypatch.setattr(OpenVinoBackend, "auto_precision", classmethod(lambda cls: "bf16"))
    monkeypatch.setattr(OpenVinoBackend, "auto_int8", classmethod(lambda cls: False))  # int8: test_int8.py
    monkeypatch.setattr(engine_module, "AUTO_MIN_TOP1", min_top1)
    out = work / f"auto-{min_top1}"
    engine = build_engine(config, checkpoint, backend="openvino", precision="auto", out_dir=out, validate=False)
    check = engine.manifest.validation["auto_precision"]
    assert check["tried"] == "bf16"
    assert check["kept"] == (check["top1_agreement"] >= min_top1), check  # the recorded check decided
    assert engine.manifest.validation["batch"] == engine_module.AUTO_CHECK_SAMPLES
    x = sample_inputs(SHAPE, 4, mean=MEAN, std=STD, seed=22)
    error = compare(torch_scores(reference, x), engine.infer(x))["max_abs_diff"]
    if min_top1 > 1:  # nothing passes: fp32, with fp32's accuracy, also after reloading
        assert not check["kept"] and engine.manifest.precision == "fp32" and error <= 1e-4
        assert load_engine(out).manifest.precision == "fp32"
    else:
        assert check["kept"] and engine.manifest.precision == "bf16"
        assert load_engine(out).manifest.precision == "bf16"


def test_auto_precision_without_a_faster_one_is_fp32_unchecked(
    work: Path, config: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines.backends.ort import OnnxRuntimeBackend

    monkeypatch.setattr(OnnxRuntimeBackend, "auto_int8", classmethod(lambda cls: False))  # int8: test_int8.py
    engine = build_engine(config, checkpoint, backend="onnxruntime", precision="auto", out_dir=work / "ort-auto")
    assert engine.manifest.precision == "fp32"
    assert "auto_precision" not in engine.manifest.validation


# CPU flags (Linux names) with which OpenVINO computes bf16 natively: AVX-512 BF16, AMX, AVX-NE-CONVERT.
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "avx_ne_convert"}


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_openvino_auto_precision_follows_the_cpu() -> None:
    """Checked against the CPU's own flags, not against the OpenVINO query the backend uses."""
    from engines.backends.ov import OpenVinoBackend

    native = bool(_cpu_flags() & NATIVE_BF16_FLAGS)
    assert OpenVinoBackend.auto_precision() == ("bf16" if native else "fp32"), sorted(_cpu_flags() & NATIVE_BF16_FLAGS)


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [(["FP32", "INT8"], "fp32"), (["BF16", "FP32"], "bf16"), (RuntimeError("no CPU plugin"), "fp32")],
)
def test_openvino_auto_precision_from_the_capabilities(
    monkeypatch: pytest.MonkeyPatch, capabilities: list[str] | Exception, expected: str
) -> None:
    from engines.backends.ov import OpenVinoBackend

    def get_property(self: Any, device: str, name: str) -> list[str]:
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        if isinstance(capabilities, Exception):
            raise capabilities
        return capabilities

    monkeypatch.setattr(ov.Core, "get_property", get_property)
    assert OpenVinoBackend.auto_precision() == expected


# --------------------------------------------------------------------------- torch backends, registry, auto


def test_torch_backend_is_the_reference(work: Path, config: Path, checkpoint: Path, batch: np.ndarray) -> None:
    engine = build_engine(config, checkpoint, backend="torch", out_dir=work / "torch")
    assert "weights" in engine.manifest.files
    expected = torch_scores(DeployModel(_loaded(config, checkpoint), "NCHW"), batch)
    np.testing.assert_allclose(engine.infer(batch), expected, atol=1e-6, rtol=0)


def _loaded(config: Path, checkpoint: Path) -> torch.nn.Module:
    model = random_model(config)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    return model.eval()


def test_onnx_engine_runs_on_torch_backend_from_recorded_checkpoint(ort_engine: Engine, batch: np.ndarray) -> None:
    other = load_engine(ort_engine.engine_dir, backend="torch")
    np.testing.assert_allclose(other.infer(batch), ort_engine.infer(batch), atol=1e-4, rtol=0)


def test_unknown_backend_lists_names(ort_engine: Engine) -> None:
    with pytest.raises(UnknownBackendError, match="valid backends: auto, onnxruntime, openvino, tensorrt, torch"):
        load_engine(ort_engine.engine_dir, backend="tflite")
    with pytest.raises(KeyError):
        backend_class("tflite")


def test_unsupported_precision_is_refused(config: Path, checkpoint: Path, work: Path) -> None:
    with pytest.raises(BackendOptionError, match="supports precision fp32, int8; got 'fp16'"):
        build_engine(config, checkpoint, backend="onnxruntime", precision="fp16", out_dir=work / "x")
    with pytest.raises(BackendOptionError, match="precision: expected one of"):
        BackendOptions(precision="int4")


def test_missing_engine_dir(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such directory"):
        load_engine(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("gpu", "trt", "intel", "ov", "expected"),
    [
        (True, True, False, False, "tensorrt"),
        (True, False, True, True, "torch-cuda"),
        (False, True, True, True, "openvino"),
        (False, False, True, False, "onnxruntime"),
        (False, False, False, True, "onnxruntime"),
    ],
)
def test_auto_selection(
    monkeypatch: pytest.MonkeyPatch, gpu: bool, trt: bool, intel: bool, ov: bool, expected: str
) -> None:
    monkeypatch.setattr(backends, "cuda_available", lambda: gpu)
    monkeypatch.setattr(backends, "is_x86_cpu", lambda: intel)
    monkeypatch.setattr(backend_class("tensorrt"), "is_available", classmethod(lambda cls: trt))
    monkeypatch.setattr(backend_class("openvino"), "is_available", classmethod(lambda cls: ov))
    assert select_backend() == expected


def test_every_backend_is_registered() -> None:
    assert set(BACKENDS) == {"onnxruntime", "openvino", "tensorrt", "torch", "torch-cuda"}
    for name in BACKENDS:
        assert backend_class(name).name == name


# --------------------------------------------------------------------------- GPU backends


@pytest.mark.skipif(_has_trt(), reason="TensorRT is installed here")
def test_tensorrt_missing_gives_install_hint() -> None:
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        backend_class("tensorrt").check_available()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_torch_cuda_missing_gpu_is_reported() -> None:
    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        backend_class("torch-cuda").check_available()


@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_torch(
    work: Path, config: Path, checkpoint: Path, reference: torch.nn.Module, precision: str
) -> None:
    engine = build_engine(
        config, checkpoint, backend="tensorrt", precision=precision, out_dir=work / f"trt_{precision}"
    )
    x = sample_inputs(SHAPE, 3, mean=MEAN, std=STD, seed=31)
    report = compare(torch_scores(reference, x), engine.infer(x))
    assert report["max_abs_diff"] <= (1e-3 if precision == "fp32" else 5e-2), report
    assert any(p.suffix == ".plan" for p in (work / f"trt_{precision}" / "tensorrt").iterdir())


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_matches_torch(
    work: Path, config: Path, checkpoint: Path, reference: torch.nn.Module, precision: str
) -> None:
    engine = build_engine(
        config, checkpoint, backend="torch-cuda", precision=precision, out_dir=work / f"tc_{precision}"
    )
    x = sample_inputs(SHAPE, 3, mean=MEAN, std=STD, seed=32)
    report = compare(torch_scores(reference, x), engine.infer(x))
    assert report["max_abs_diff"] <= (1e-3 if precision == "fp32" else 5e-2), report


# --------------------------------------------------------------------------- 3D


I3D_CONFIG = ROOT / "configs/recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"
TINY_I3D = {  # ResNet3d-18 with MMAction2's I3D inflation pattern, 5 classes
    "model.backbone.depth": 18,
    "model.backbone.inflate": ((1, 1), (1, 0), (1, 0), (0, 1)),
    "model.cls_head.in_channels": 512,
    "model.cls_head.num_classes": 5,
}
SHAPE_3D = (2, 3, 8, 32, 32)


def test_3d_engine_folded_on_onnxruntime_and_openvino(work: Path) -> None:
    cfg = load_config(I3D_CONFIG, TINY_I3D)
    model = randomize(build(cfg.model), seed=3).eval()
    ckpt = save_checkpoint(model, work / "i3d18.pth")
    engine = build_engine(
        I3D_CONFIG,
        ckpt,
        backend="onnxruntime",
        out_dir=work / "i3d",
        cfg_options=TINY_I3D,
        input_shape=SHAPE_3D,
        fold_normalize=True,
    )
    assert engine.input_spec.layout == "NVCTHW" and engine.manifest.clip is not None
    assert engine.manifest.clip.input_format == "NCTHW"
    pixels = sample_inputs(SHAPE_3D, 3, normalize=False, seed=8)
    mean, std = engine.manifest.mean, engine.manifest.std
    expected = torch_scores(model, sample_inputs(SHAPE_3D, 3, mean=mean, std=std, seed=8))
    np.testing.assert_allclose(engine.infer(pixels), expected, atol=1e-4, rtol=0)
    on_openvino = load_engine(work / "i3d", backend="openvino")
    np.testing.assert_allclose(on_openvino.infer(pixels), expected, atol=1e-4, rtol=0)


I3D_DENSE_CONFIG = I3D_CONFIG.with_name("i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb.py")
TINY_DENSE = {  # 2 dense start positions x 1 clip x 3 crops = 6 views of 8x32x32
    **TINY_I3D,
    "test_pipeline.0.clip_len": 8,
    "test_pipeline.0.num_sample_positions": 2,
    "test_pipeline.1.scale": (-1, 36),
    "test_pipeline.2.crop_size": 32,
}


def test_dense_engine_manifest_has_the_runtime_views(work: Path) -> None:
    from engines.clip_spec import ClipSpec
    from engines.config import read_config as load_stream_config

    runtime = ClipSpec.from_config(load_stream_config(I3D_DENSE_CONFIG, TINY_DENSE))
    model = randomize(build(load_config(I3D_DENSE_CONFIG, TINY_DENSE).model), seed=4).eval()
    ckpt = save_checkpoint(model, work / "i3d18_dense.pth")
    engine = build_engine(
        I3D_DENSE_CONFIG, ckpt, backend="onnxruntime", out_dir=work / "i3d_dense", cfg_options=TINY_DENSE
    )
    assert runtime.num_views == 6
    assert engine.manifest.input_shape == runtime.input_shape(32, 32) == (6, 3, 8, 32, 32)
    loaded = Manifest.load(work / "i3d_dense")
    assert loaded.clip == runtime and loaded.clip.num_views == runtime.num_views


def test_no_fixed_size_asks_for_the_input_shape(work: Path, checkpoint: Path) -> None:
    path = write_tsn_config(work / "tsn_no_crop.py")  # Resize(-1, 72) keeps the ratio: the size follows the frame
    path.write_text(path.read_text().replace("    dict(type='CenterCrop', crop_size=64),\n", ""))
    with pytest.raises(ModelConfigError, match=r"cannot tell the input shape.*--input-shape"):
        build_engine(path, checkpoint, backend="onnxruntime", out_dir=work / "no_crop")


def test_tensorrt_plan_key_covers_what_a_plan_depends_on(ort_engine: Engine) -> None:
    from engines.backends.trt import plan_key

    manifest, options = ort_engine.manifest, BackendOptions(precision="fp16", max_batch=4)
    key = plan_key(manifest, options, "10.3.0", "NVIDIA H100")
    assert key == plan_key(manifest, options, "10.3.0", "NVIDIA H100")
    assert key != plan_key(manifest, options, "10.4.0", "NVIDIA H100")
    assert key != plan_key(manifest, options, "10.3.0", "NVIDIA A100")
    assert key != plan_key(manifest, BackendOptions(precision="fp32", max_batch=4), "10.3.0", "NVIDIA H100")
    assert key != plan_key(manifest, BackendOptions(precision="fp16", max_batch=8), "10.3.0", "NVIDIA H100")
