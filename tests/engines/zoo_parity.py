"""Model-zoo parity helpers: MMAction2 1.2 builds a shipped config, we load its checkpoint, scores compared.

A test names one of MMAction2's shipped recognition configs (relative to its
``configs/recognition``) and dotted overrides that shrink it. :func:`zoo_twins` builds
MMAction2's model from that config, fills it with random weights, saves them as a model-zoo
checkpoint (``{'state_dict', 'meta'}``), builds ours from the same ``model`` dict and loads
the file strictly with :func:`engines.checkpoint.load_checkpoint`. :func:`mmaction_scores`
is what MMAction2's ``predict`` stores in ``pred_score``; :func:`check_scores` compares
(≤ 1e-4 relative, identical top-1); :func:`backend_errors` exports ours to ONNX and runs it
on ONNX Runtime and OpenVINO (fp32).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engines.checkpoint import load_checkpoint
from engines.export import export_onnx, model_mean_std, run_onnx, sample_inputs, torch_scores
from engines.models import build
from tests.engines.mmaction_ref import build_mmaction_model, mmaction_registry

#: Largest accepted relative difference (max |ours - theirs| / max |theirs|).
REL_TOL = 1e-4


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
    from mmengine import Config

    cfg = Config.fromfile(str(mmaction_config_root() / name))
    if overrides:
        cfg.merge_from_dict(overrides)
    return cfg


def randomize(module: nn.Module, seed: int = 0) -> None:
    """Fill parameters and float buffers with random values that keep activations O(1).

    Conv/linear weights get a fan-in scaled uniform init, norm weights and variances lie in
    [0.5, 1.5), biases and means in [-0.2, 0.2).
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


def check_scores(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Assert ≤ :data:`REL_TOL` relative difference and the same top-1; return the relative difference."""
    assert got.shape == expected.shape
    error = float((got - expected).abs().max()) / max(float(expected.abs().max()), 1e-12)
    assert error <= REL_TOL, f"relative difference {error:.3g} > {REL_TOL}"
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    return error


def backend_errors(
    model: nn.Module, sample_shape: tuple[int, ...], input_format: str, tmp_path: Path
) -> dict[str, float]:
    """Export ``model`` to ONNX; max |backend - torch| for ONNX Runtime and OpenVINO (fp32) on 2 samples."""
    import openvino as ov

    path = tmp_path / "model.onnx"
    export_onnx(model, path, sample_shape, input_format=input_format, check=False)
    mean, std = model_mean_std(model)
    batch = sample_inputs(sample_shape, 2, mean=mean, std=std, seed=5)  # another batch size than the traced one
    expected = torch_scores(model, batch)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
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
