"""Every checkpoint layout the loader accepts gives the model the same weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint, read_checkpoint
from engines.errors import CheckpointError
from tests.engines.engine_helpers import random_model, write_tsn_config

META = {"dataset_meta": {"classes": [f"action_{i}" for i in range(10)]}}


def prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"module.{key}": value for key, value in state.items()}


# How trainers and tools save a model: what goes into torch.save for a state dict.
LAYOUTS: dict[str, Callable[[dict[str, torch.Tensor]], Any]] = {
    "mmaction2 state_dict + meta": lambda state: {"state_dict": state, "meta": META, "optimizer": {"lr": 0.1}},
    "state_dict only": lambda state: {"state_dict": state},
    "model": lambda state: {"model": state, "epoch": 3},
    "bare state dict": lambda state: state,
    "bare, DataParallel prefix": prefixed,
    "state_dict, DataParallel prefix": lambda state: {"state_dict": prefixed(state), "meta": META},
    "model, DataParallel prefix": lambda state: {"model": prefixed(state)},
}


@pytest.fixture(scope="module")
def tsn_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tsn_config(tmp_path_factory.mktemp("cfg") / "tsn_r18.py")


@pytest.fixture(scope="module")
def trained(tsn_config: Path) -> torch.nn.Module:
    return random_model(tsn_config, seed=7)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_loads_the_same_weights(layout: str, tmp_path: Path, tsn_config: Path, trained: Any) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(LAYOUTS[layout](trained.state_dict()), path)
    fresh = random_model(tsn_config, seed=99)
    ckpt = load_checkpoint(fresh, path)
    expected, got = trained.state_dict(), fresh.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    assert set(ckpt.state_dict) == set(expected)  # no 'module.' prefix and no training keys left
    assert ckpt.classes == (META["dataset_meta"]["classes"] if "meta" in LAYOUTS[layout]({}) else None)


def test_a_model_entry_that_is_not_a_state_dict_is_not_taken_for_one(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"model": "resnet", "note": "no weights here"}, path)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        read_checkpoint(path)
