# ruff: noqa: E501  (one config per line: the table is read and merged line by line)
"""Every recognition config MMAction2 1.2 ships either runs here or is refused, with the reason.

The scan walks ``configs/recognition/**`` of the installed MMAction2 (its wheel ships them
under ``mmaction/.mim``), loads each with :func:`engines.config.load_config` (test pipeline
included) and builds its model on the ``meta`` device (no memory, no weights). ``EXPECTED``
says, per config, ``RUNS`` or a piece of the one-line error that refuses it, so the count of
runnable configs cannot drop (or rise) without this table changing. Parity with MMAction2's
outputs is tested per family in ``tests/engines/test_models_*.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from engines.config import load_config
from engines.errors import EngineError
from engines.models import build
from tests.engines.mmaction_ref import mmaction_registry

RUNS = "runs"

#: MMAction2 1.2 config (relative to its configs/recognition) -> RUNS, or a piece of the refusal.
EXPECTED: dict[str, str] = {
    "c2d/c2d_r101-in1k-pre-nopool_8xb32-8x8x1-100e_kinetics400-rgb.py": RUNS,
    "c2d/c2d_r50-in1k-pre-nopool_8xb32-8x8x1-100e_kinetics400-rgb.py": RUNS,
    "c2d/c2d_r50-in1k-pre_8xb32-16x4x1-100e_kinetics400-rgb.py": RUNS,
    "c2d/c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb.py": RUNS,
    "c3d/c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb.py": RUNS,
    "csn/ipcsn_ig65m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py": RUNS,
    "csn/ipcsn_r152_32x2x1-180e_kinetics400-rgb.py": RUNS,
    "csn/ipcsn_sports1m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py": RUNS,
    "csn/ircsn_ig65m-pretrained-r152-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb.py": RUNS,
    "csn/ircsn_ig65m-pretrained-r152_8xb12-32x2x1-58e_kinetics400-rgb.py": RUNS,
    "csn/ircsn_ig65m-pretrained-r50-bnfrozen_8xb12-32x2x1-58e_kinetics400-rgb.py": RUNS,
    "csn/ircsn_r152_32x2x1-180e_kinetics400-rgb.py": RUNS,
    "csn/ircsn_sports1m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50-heavy_8xb8-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "i3d/i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb.py": RUNS,
    "mvit/mvit-base-p244_32x3x1_kinetics400-rgb.py": RUNS,
    "mvit/mvit-base-p244_u32_sthv2-rgb.py": RUNS,
    "mvit/mvit-large-p244_40x3x1_kinetics400-rgb.py": RUNS,
    "mvit/mvit-large-p244_u40_sthv2-rgb.py": RUNS,
    "mvit/mvit-small-p244_32xb16-16x4x1-200e_kinetics400-rgb.py": RUNS,
    "mvit/mvit-small-p244_k400-maskfeat-pre_8xb32-16x4x1-100e_kinetics400-rgb.py": RUNS,
    "mvit/mvit-small-p244_k400-pre_16xb16-u16-100e_sthv2-rgb.py": RUNS,
    "omnisource/slowonly_r50_8xb16-8x8x1-256e_imagenet-kinetics400-rgb.py": RUNS,
    "r2plus1d/r2plus1d_r34_8xb8-32x2x1-180e_kinetics400-rgb.py": RUNS,
    "r2plus1d/r2plus1d_r34_8xb8-8x8x1-180e_kinetics400-rgb.py": RUNS,
    "slowfast/slowfast_r101-r50_32xb8-4x16x1-256e_kinetics400-rgb.py": RUNS,
    "slowfast/slowfast_r101_8xb8-8x8x1-256e_kinetics400-rgb.py": RUNS,
    "slowfast/slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py": RUNS,
    "slowfast/slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.py": RUNS,
    "slowfast/slowfast_r50_8xb8-8x8x1-steplr-256e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_imagenet-pretrained-r50_16xb16-4x16x1-steplr-150e_kinetics700-rgb.py": RUNS,
    "slowonly/slowonly_imagenet-pretrained-r50_16xb16-8x8x1-steplr-150e_kinetics700-rgb.py": RUNS,
    "slowonly/slowonly_imagenet-pretrained-r50_32xb8-8x8x1-steplr-150e_kinetics710-rgb.py": RUNS,
    "slowonly/slowonly_imagenet-pretrained-r50_8xb16-4x16x1-steplr-150e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_imagenet-pretrained-r50_8xb16-8x8x1-steplr-150e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_r50-in1k-pre-nl-embedded-gaussian_8xb16-4x16x1-steplr-150e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_r50-in1k-pre-nl-embedded-gaussian_8xb16-8x8x1-steplr-150e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_r50_8xb16-16x4x1-256e_kinetics400-flow.py": "an optical-flow model",
    "slowonly/slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py": RUNS,
    "slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py": RUNS,
    "swin/swin-base-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py": RUNS,
    "swin/swin-large-p244-w877_in22k-pre_16xb8-amp-32x2x1-30e_kinetics700-rgb.py": RUNS,
    "swin/swin-large-p244-w877_in22k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py": RUNS,
    "swin/swin-small-p244-w877_in1k-pre_32xb4-amp-32x2x1-30e_kinetics710-rgb.py": RUNS,
    "swin/swin-small-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py": RUNS,
    "swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py": RUNS,
    "tanet/tanet_imagenet-pretrained-r50_8xb6-1x1x16-50e_sthv1-rgb.py": RUNS,
    "tanet/tanet_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py": RUNS,
    "tanet/tanet_imagenet-pretrained-r50_8xb8-dense-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "timesformer/timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb.py": RUNS,
    "timesformer/timesformer_jointST_8xb8-8x32x1-15e_kinetics400-rgb.py": RUNS,
    "timesformer/timesformer_spaceOnly_8xb8-8x32x1-15e_kinetics400-rgb.py": RUNS,
    "tin/tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv1-rgb.py": RUNS,
    "tin/tin_imagenet-pretrained-r50_8xb6-1x1x8-40e_sthv2-rgb.py": RUNS,
    "tin/tin_kinetics400-pretrained-tsm-r50_1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tpn/tpn-slowonly_imagenet-pretrained-r50_8xb8-8x8x1-150e_kinetics400-rgb.py": RUNS,
    "tpn/tpn-slowonly_r50_8xb8-8x8x1-150e_kinetics400-rgb.py": RUNS,
    "tpn/tpn-tsm_imagenet-pretrained-r50_8xb8-1x1x8-150e_sthv1-rgb.py": RUNS,
    "trn/trn_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv1-rgb.py": RUNS,
    "trn/trn_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-mobilenetv2_8xb16-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-mobileone-s4_8xb16-1x1x16-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-mobileone-s4_deploy_8xb16-1x1x16-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r101_8xb16-1x1x8-50e_sthv2-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50-nl-dot-product_8xb16-1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50-nl-embedded-gaussian_8xb16-1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50-nl-gaussian_8xb16-1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x16-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x16-50e_sthv2-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_sthv2-rgb.py": RUNS,
    "tsm/tsm_imagenet-pretrained-r50_8xb16-dense-1x1x8-50e_kinetics400-rgb.py": RUNS,
    "tsn/custom_backbones/tsn_imagenet-pretrained-dense161_8xb32-1x1x3-100e_kinetics400-rgb.py": RUNS,
    "tsn/custom_backbones/tsn_imagenet-pretrained-mobileone-s4_8xb32-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsn/custom_backbones/tsn_imagenet-pretrained-mobileone-s4_deploy_8xb32-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsn/custom_backbones/tsn_imagenet-pretrained-rn101-32x4d_8xb32-1x1x3-100e_kinetics400-rgb.py": RUNS,
    "tsn/custom_backbones/tsn_imagenet-pretrained-swin-transformer_32xb8-1x1x8-50e_kinetics400-rgb.py": "timm backbone 'timm.swin_base_patch4_window7_224' is not supported",
    "tsn/custom_backbones/tsn_imagenet-pretrained-swin-transformer_8xb32-1x1x3-100e_kinetics400-rgb.py": "timm backbone 'timm.swin_base_patch4_window7_224' is not supported",
    "tsn/tsn_imagenet-pretrained-r101_8xb32-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x16-50e_sthv2-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x3-100e_kinetics400-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x5-100e_kinetics400-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-100e_kinetics400-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-1x1x8-50e_sthv2-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32-dense-1x1x5-100e_kinetics400-rgb.py": RUNS,
    "tsn/tsn_imagenet-pretrained-r50_8xb32_5x1x3-110e_kinetics400-flow.py": "an optical-flow model",
    "uniformer/uniformer-base_imagenet1k-pre_16x4x1_kinetics400-rgb.py": RUNS,
    "uniformer/uniformer-base_imagenet1k-pre_32x4x1_kinetics400-rgb.py": RUNS,
    "uniformer/uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-kinetics-k400-pre_16xb32-u8_mitv1-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics600-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-base-p16-res224_clip_u8_kinetics710-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u16_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u16_kinetics600-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u16_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u32_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u32_kinetics600-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u32_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics600-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res224_clip-pre_u8_kinetics710-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics400-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics600-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics700-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p14-res336_clip-pre_u8_kinetics710-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p16-res224_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb.py": RUNS,
    "uniformerv2/uniformerv2-large-p16-res336_clip-kinetics710-kinetics-k400-pre_u8_mitv1-rgb.py": RUNS,
    "videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py": RUNS,
    "videomae/vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400.py": RUNS,
    "videomaev2/vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py": RUNS,
    "videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py": RUNS,
    "x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py": RUNS,
    "x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py": RUNS,
}


def _config_root() -> Path:
    mmaction_registry()  # skips (fails under CI=true) when MMAction2 is not installed
    import mmaction

    root = Path(mmaction.__file__).parent / ".mim" / "configs" / "recognition"
    if not root.is_dir():
        raise FileNotFoundError(f"MMAction2 is installed without its configs: {root} is missing")
    return root


def _shipped() -> list[str]:
    root = _config_root()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if "_base_" not in p.parts)


def _verdict(path: Path) -> str:
    """RUNS, or the message of the error that refuses the config."""
    try:
        cfg = load_config(path)
        with torch.device("meta"):
            build(dict(cfg.model), where="model")
    except EngineError as exc:
        return str(exc)
    return RUNS


def test_the_table_lists_every_shipped_config() -> None:
    shipped = _shipped()
    assert sorted(EXPECTED) == shipped


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_runs_or_is_refused_with_its_reason(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    verdict = _verdict(_config_root() / name)
    expected = EXPECTED[name]
    if expected == RUNS:
        assert verdict == RUNS
    else:
        assert verdict != RUNS, f"{name} now runs: mark it RUNS in EXPECTED and add its family's parity tests"
        assert expected in verdict
        assert "\n" not in verdict  # one line


def test_runnable_count() -> None:
    runnable = sum(1 for verdict in EXPECTED.values() if verdict == RUNS)
    assert runnable == 121
