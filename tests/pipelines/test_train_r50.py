"""The ResNet-50 training script: initialisation, the head's learning rate, argument checks, a tiny run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pipelines.demo import DEMO_CONFIG
from pipelines.demo.synthetic import ACTIONS
from pipelines.demo.train_r50 import from_scratch, main, train_r50


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential()
        self.conv1.add_module("conv", nn.Conv3d(2, 4, 1))
        self.conv1.add_module("bn", nn.BatchNorm3d(4))
        self.conv3 = nn.Sequential()
        self.conv3.add_module("conv", nn.Conv3d(4, 2, 1))
        self.conv3.add_module("bn", nn.BatchNorm3d(2))


@pytest.mark.parametrize(("zero_init_residual", "last_gamma"), [(False, 1.0), (True, 0.0)])
def test_from_scratch_sets_gammas_and_he_weights(zero_init_residual: bool, last_gamma: float) -> None:
    torch.manual_seed(0)
    block = _Block()
    for module in block.modules():
        if isinstance(module, nn.BatchNorm3d):
            nn.init.constant_(module.weight, 0.5)
            nn.init.constant_(module.bias, 0.5)
    from_scratch(block, zero_init_residual=zero_init_residual)
    bns = {name: module for name, module in block.named_modules() if isinstance(module, nn.BatchNorm3d)}
    assert set(bns) == {"conv1.bn", "conv3.bn"}
    assert torch.all(bns["conv1.bn"].weight == 1.0)
    assert torch.all(bns["conv3.bn"].weight == last_gamma)
    assert all(torch.all(bn.bias == 0.0) for bn in bns.values())
    big = nn.Conv3d(64, 256, (1, 3, 3))
    from_scratch(big)  # He fan-out: std sqrt(2 / (256 * 9)), not torch's default (about 0.024 here)
    assert big.weight.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)


@pytest.mark.parametrize(("option", "value"), [("precision", "fp16"), ("optimizer", "lamb")])
def test_unknown_option_is_refused_before_any_work(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{option}: expected one of"):
        options: dict[str, Any] = {option: value}
        train_r50(DEMO_CONFIG, **options)


def test_head_runs_at_a_fraction_of_the_backbone_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[float]] = []
    original = torch.optim.AdamW.__init__

    def spy(self: torch.optim.AdamW, params: object, **kwargs: object) -> None:
        original(self, params, **kwargs)  # type: ignore[arg-type]
        seen.append([group["lr"] for group in self.param_groups])

    monkeypatch.setattr(torch.optim.AdamW, "__init__", spy)
    _, metrics = train_r50(
        DEMO_CONFIG, steps=1, batch_size=2, train_clips=8, val_clips=8, lr=1e-3, head_lr_scale=0.1, warmup=1
    )
    assert seen == [[1e-3, pytest.approx(1e-4)]]
    assert metrics["steps"] == 1


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_quick_cli_writes_a_loadable_checkpoint(tmp_path: Path, precision: str) -> None:
    out = tmp_path / "r.pth"
    # The demo R18 config runs the same code path as the R50 (SlowOnly, I3D head), in a second.
    assert main(["--quick", "--config", str(DEMO_CONFIG), "--out", str(out), "--precision", precision]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["dataset_meta"]["classes"] == list(ACTIONS)
    assert saved["meta"]["steps"] == 2
    assert all(value.dtype != torch.bfloat16 for value in saved["state_dict"].values())
    assert [path.name for path in tmp_path.iterdir()] == ["r.pth"]  # no temporary file left beside it
