"""ResNetTIN (temporal interlace): MMAction2 1.2's model with mmcv's CUDA-only ``tin_shift`` replaced by a
transcription of its kernel, against ours (plain-torch shift); the shift itself against the transcription; ONNX.

MMAction2's own TIN cannot run on a CPU: ``mmcv.ops.tin_shift`` has only a CUDA kernel (and mmcv-lite
ships no compiled ops). So the parity tests run MMAction2's model code with ``mmcv.ops`` stubbed by
:func:`kernel_tin_shift`, a line-by-line transcription of ``tin_shift_forward_cuda_kernel``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from engines.checkpoint import load_checkpoint
from engines.errors import CheckpointError, ModelConfigError
from engines.models import build
from engines.models.resnet_tin import tin_shift
from tests.engines.zoo_parity import (
    assert_matches_zoo_config,
    assert_scores_match,
    backend_errors,
    mmaction_config,
    mmaction_scores,
    save_zoo_checkpoint,
    zoo_twins,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs/recognition/tin").glob("*.py"))
ZOO = [
    "tin/tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv1-rgb.py",
    "tin/tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv2-rgb.py",
    "tin/tin_kinetics400-pretrained-tsm-r50_1x1x8-50e_kinetics400-rgb.py",
]
#: ResNet-18 blocks (an interlace before every block's conv1 still), few classes.
SHRINK = {"model.backbone.depth": 18, "model.cls_head.in_channels": 512, "model.cls_head.num_classes": 7}
FRAME = (3, 32, 32)


def kernel_tin_shift(data: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """mmcv's ``tin_shift`` forward: its Python wrapper and CUDA kernel transcribed (one thread = one (n, j, hw))."""
    if data.size(2) % shift.size(1) != 0:
        raise ValueError("C should be a multiple of num_segments")  # the wrapper's check
    output = torch.zeros_like(data)  # the wrapper: output = input.new_zeros(input.size())
    batch_size, t_size, channels, _ = data.shape
    group_size = shift.size(1)
    group_channel = channels // group_size
    for n_index in range(batch_size):
        for j in range(channels):  # hw_index runs as a vector: every element of it does the same
            group_id = j // group_channel
            t_shift = int(shift[n_index, group_id])
            for i in range(t_size):
                now_t = i + t_shift
                if now_t < 0 or now_t >= t_size:
                    continue
                output[n_index, now_t, j, :] = data[n_index, i, j, :]
    return output


@pytest.fixture
def mmcv_ops_with_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """``from mmcv.ops import tin_shift`` (inside MMAction2's linear_sampler) gets the transcription."""
    stub = types.ModuleType("mmcv.ops")
    stub.tin_shift = kernel_tin_shift  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mmcv.ops", stub)


def _small(name: str, **extra: Any) -> dict[str, Any]:
    return mmaction_config(name, {**SHRINK, **extra}).model.to_dict()


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tin_shift_matches_the_kernel(groups: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(3, 6, 8, 5, generator=gen)
    shift = torch.randint(-8, 9, (3, groups), generator=gen, dtype=torch.int32)  # past both ends too
    assert torch.equal(tin_shift(data, shift), kernel_tin_shift(data, shift))


def test_tin_shift_refuses_groups_that_do_not_divide_channels() -> None:
    with pytest.raises(ValueError, match=r"C \(6\) must be divisible by the shift groups \(4\)"):
        tin_shift(torch.zeros(1, 2, 6, 1), torch.zeros(1, 4, dtype=torch.int32))


def test_mmaction_tin_cannot_run_on_cpu_without_the_op() -> None:
    """Why the parity tests stub ``mmcv.ops``: MMAction2's TIN imports a CUDA-only op.

    mmcv-lite has no compiled ops (the import fails); a full mmcv build has only the CUDA kernel.
    """
    try:
        from mmcv.ops import tin_shift as mmcv_tin_shift
    except ImportError:
        return
    with pytest.raises((RuntimeError, NotImplementedError)):
        mmcv_tin_shift(torch.zeros(1, 2, 4, 1), torch.zeros(1, 2, dtype=torch.int32))


@pytest.mark.usefixtures("mmcv_ops_with_kernel")
@pytest.mark.parametrize(
    ("name", "extra", "views"),
    [
        pytest.param(ZOO[0], {}, 8, id="sthv1-1clip"),
        pytest.param(ZOO[1], {}, 16, id="sthv2-2clips"),
        pytest.param(ZOO[2], {"model.backbone.depth": 50, "model.cls_head.in_channels": 2048}, 8, id="k400-r50"),
    ],
)
def test_zoo_config_scores_match_mmaction(name: str, extra: dict[str, Any], views: int, tmp_path: Path) -> None:
    ref, ours = zoo_twins(_small(name, **extra), tmp_path / "tin.pth")
    x = torch.randn(2, views, *FRAME, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ours(x)
    error = assert_scores_match(got, mmaction_scores(ref, x))
    print(f"parity {Path(name).stem} {extra} views={views}: relative {error:.2e}")


def test_tin_exports_to_onnxruntime_and_openvino(tmp_path: Path) -> None:
    ours = build(_small(ZOO[0])).eval()
    from tests.engines.zoo_parity import randomize

    randomize(ours)
    errors = backend_errors(ours, (8, *FRAME), "NCHW", tmp_path)
    print(f"backends tin: {errors}")
    assert max(errors.values()) <= 1e-4, errors


def test_tsm_checkpoint_is_refused_by_tin(tmp_path: Path) -> None:
    tsm = build(dict(_small(ZOO[0]), backbone={"type": "ResNetTSM", "depth": 18, "num_segments": 8, "shift_div": 4}))
    path = save_zoo_checkpoint(tsm, tmp_path / "tsm.pth")
    with pytest.raises(CheckpointError, match=r"does not fit .*conv1\.conv\.net1\.offset_net") as info:
        load_checkpoint(build(_small(ZOO[0])), path)
    assert "\n" not in str(info.value)


def test_channels_the_interlace_cannot_split_are_refused() -> None:
    with pytest.raises(ModelConfigError, match=r"64 channels / shift_div=32 = 2 interlaced channels"):
        build({"type": "ResNetTIN", "depth": 18, "shift_div": 32}, where="model.backbone")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_matches_mmaction_model_zoo(path: Path) -> None:
    assert_matches_zoo_config(path)
