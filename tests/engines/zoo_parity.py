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

from engines.export import build_recognizer, sample_inputs
from tests.engines.mmaction_ref import build_mmaction_model, import_reference

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
