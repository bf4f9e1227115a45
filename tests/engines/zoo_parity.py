"""Parity harness for a model-zoo family: MMAction2's model vs ours vs the exported engines.

One shrunk config (MMAction2's shipped config plus ``--cfg-options``-style overrides) is
built by MMAction2, given random weights and saved as a model-zoo checkpoint
(``{'state_dict', 'meta'}``); our recognizer loads that file strictly through
:func:`engines.export.build_recognizer`, and the engines are built from the same config
file and checkpoint through :func:`engines.engine.build_engine`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.checkpoint import load_checkpoint
from engines.export import build_recognizer, export_onnx, model_mean_std, run_onnx, sample_inputs, torch_scores
from engines.models import build
from tests.engines.mmaction_ref import build_mmaction_model, import_reference, mmaction_registry

#: fp32 scores may differ from MMAction2's by this much, relative to the largest score.
REL_TOL = 1e-4


def randomize(module: nn.Module, seed: int = 0) -> None:
    """Random parameters and float buffers that keep activations O(1).

    Matrices and convolutions get a fan-in scaled uniform init; 1-D weights and variances
    lie in [0.5, 1.5); other vectors (biases, means, tokens) in [-0.2, 0.2).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=gen)
            if tensor.dim() > 1:
                tensor.copy_((values * 2 - 1) * (3 / tensor[0].numel()) ** 0.5)
            elif name.endswith(("running_var", "weight")):
                tensor.copy_(0.5 + values)
            else:
                tensor.copy_((values - 0.5) * 0.4)


def mm_config(path: Path, overrides: Mapping[str, Any]) -> Any:
    """MMAction2's ``Config`` of ``path`` with dotted-key ``overrides`` merged in (as ``--cfg-options``)."""
    config = import_reference("mmengine.config").Config
    cfg = config.fromfile(str(path))
    cfg.merge_from_dict(dict(overrides))
    return cfg


def reference_checkpoint(path: Path, overrides: Mapping[str, Any], out: Path, seed: int = 0) -> nn.Module:
    """Build MMAction2's model of the overridden config, randomize it, save it as a model-zoo file at ``out``."""
    model_cfg = mm_config(path, overrides).model.to_dict()
    ref = build_mmaction_model(copy.deepcopy(model_cfg))
    randomize(ref, seed)
    state = {key: value.detach().clone() for key, value in ref.state_dict().items()}
    torch.save({"state_dict": state, "meta": {"seed": seed}}, out)
    return ref.eval()


def our_model(path: Path, overrides: Mapping[str, Any], checkpoint: Path) -> nn.Module:
    """Our recognizer of the same overridden config, loaded strictly from ``checkpoint``."""
    model_cfg = mm_config(path, overrides).model.to_dict()
    model, _ = build_recognizer(model_cfg, checkpoint)
    return model


def reference_scores(ref: Any, x: torch.Tensor) -> torch.Tensor:
    """MMAction2's scores of a preprocessed batch ``(N, V, ...)``: head output folded by its ``average_clips``."""
    views = x.shape[1]
    with torch.no_grad():
        raw = ref(x, mode="tensor", stage="head")
        return ref.cls_head.average_clip(raw, num_segs=views)


def batch_for(model: nn.Module, shape: Sequence[int], batch: int = 2, seed: int = 3) -> torch.Tensor:
    """A smooth random batch normalised with the model's data-preprocessor statistics."""
    mean, std = getattr(model, "mean", None), getattr(model, "std", None)
    return torch.from_numpy(sample_inputs(shape, batch, mean=mean, std=std, seed=seed))


def relative_error(got: np.ndarray | torch.Tensor, expected: np.ndarray | torch.Tensor) -> float:
    """max |got - expected| / max |expected|."""
    got_a, exp_a = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got_a.shape == exp_a.shape, (got_a.shape, exp_a.shape)
    return float(np.max(np.abs(got_a - exp_a)) / max(float(np.max(np.abs(exp_a))), 1e-12))


def assert_scores_match(got: np.ndarray | torch.Tensor, expected: np.ndarray | torch.Tensor) -> float:
    """Relative error within :data:`REL_TOL` and the same top-1 per sample; returns the error."""
    err = relative_error(got, expected)
    assert err <= REL_TOL, f"relative error {err:.3g} > {REL_TOL:g}"
    np.testing.assert_array_equal(np.asarray(got).argmax(-1), np.asarray(expected).argmax(-1))
    return err


# --------------------------------------------------------------------------- by config name, ONNX backends
# The CNN families (CSN, C2D, TRN, TANet, OmniSource, TIN) name MMAction2's shipped configs relative
# to its configs/recognition, load ours through engines.checkpoint, and check ONNX Runtime and OpenVINO.


def mmaction_config_root() -> Path:
    """MMAction2's shipped ``configs/recognition`` (skips without MMAction2)."""
    mmaction_registry()
    import mmaction

    root = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition"
    if not root.is_dir():
        raise FileNotFoundError(f"MMAction2 is installed without its configs: {root} is missing")
    return root


def mmaction_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """A shipped MMAction2 config (mmengine ``Config``) with dotted ``overrides`` merged in."""
    return mm_config(mmaction_config_root() / name, overrides or {})


def save_zoo_checkpoint(model: nn.Module, path: Path) -> Path:
    """Save MMAction2's model as its model zoo does: ``{'state_dict': ..., 'meta': ...}``."""
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": {"mmaction_version": "1.2.0"}}, path)
    return path


def zoo_twins(model_cfg: dict[str, Any], checkpoint: Path, seed: int = 0) -> tuple[Any, Any]:
    """MMAction2's model with random weights, and ours loaded from its saved checkpoint, both in eval.

    Typed ``Any``: tests reach into family-specific submodules of both.
    """
    ref = build_mmaction_model(copy.deepcopy(model_cfg))
    randomize(ref, seed)
    save_zoo_checkpoint(ref, checkpoint)
    ours = build(copy.deepcopy(model_cfg), where="model")
    load_checkpoint(ours, checkpoint)
    return ref, ours.eval()


def mmaction_scores(ref: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """What MMAction2's ``predict`` stores in ``pred_score``, stacked: ``(N, num_classes)``.

    One sample per call: MMAction2 asserts a batch of one with ``test_cfg.max_testing_views``.
    """
    from mmaction.structures import ActionDataSample

    def predict(sample: torch.Tensor) -> Any:
        if type(ref).__name__ == "RecognizerOmni":  # takes one {'inputs', 'data_samples'} per data source
            return ref.predict([{"inputs": sample[None], "data_samples": [ActionDataSample()]}])[0]  # type: ignore[operator]
        return ref.predict(sample[None], [ActionDataSample()])[0]  # type: ignore[operator]

    with torch.no_grad():
        predictions = [predict(sample) for sample in inputs]
    return torch.stack([p.pred_score for p in predictions])


def backend_errors(
    model: nn.Module, sample_shape: tuple[int, ...], input_format: str, tmp_path: Path
) -> dict[str, float]:
    """Export ``model`` to ONNX; max |backend - torch| for ONNX Runtime and OpenVINO (fp32) on 2 samples."""
    from engines.backends.ov import shared_core

    path = tmp_path / "model.onnx"
    export_onnx(model, path, sample_shape, input_format=input_format, check=False)
    mean, std = model_mean_std(model)
    batch = sample_inputs(sample_shape, 2, mean=mean, std=std, seed=5)  # another batch size than the traced one
    expected = torch_scores(model, batch)
    compiled = shared_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    outputs = {"onnxruntime": run_onnx(path, batch), "openvino": np.asarray(compiled(batch)[0])}
    errors = {}
    for name, got in outputs.items():
        assert got.shape == expected.shape, name
        errors[name] = float(np.max(np.abs(got - expected)))
    return errors


def _without_pretrained(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_pretrained(v) for k, v in node.items() if k != "pretrained"}
    return list(map(_without_pretrained, node)) if isinstance(node, list | tuple) else node


def assert_matches_zoo_config(path: Path) -> None:
    """A shipped config has MMAction2's model section (bar ``pretrained`` URLs) and test pipeline (bar decoding).

    The MMAction2 config is the one with the same file name in the same family folder.
    """
    from mmengine import Config

    ours = Config.fromfile(str(path))
    theirs = Config.fromfile(str(mmaction_config_root() / path.parent.name / path.name))
    assert _without_pretrained(ours.model.to_dict()) == _without_pretrained(theirs.model.to_dict())
    their_steps = [
        {k: v for k, v in step.items() if k != "io_backend"}
        for step in theirs.test_pipeline
        if step["type"] not in ("DecordInit", "DecordDecode", "RawFrameDecode")
    ]
    assert [dict(step) for step in ours.test_pipeline] == their_steps
