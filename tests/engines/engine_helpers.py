"""Tiny configs and random-weight checkpoints for the engine build/export/backend tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.checkpoint import save_checkpoint
from engines.config import load_config
from engines.models import build

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

#: ResNet-18 TSN at 2 views x 3x64x64: small enough for many builds per test run.
TSN_R18 = """
model = dict(
    type='Recognizer2D',
    backbone=dict(type='ResNet', depth=18, pretrained=None, norm_eval=False),
    cls_head=dict(
        type='TSNHead', num_classes={num_classes}, in_channels=512, spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1), dropout_ratio=0.4, init_std=0.01,
        average_clips={average_clips!r}),
    data_preprocessor=dict(
        type='ActionDataPreprocessor', mean={mean}, std={std}, format_shape='NCHW'))
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips={views}, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, {resize})),
    dict(type='CenterCrop', crop_size={size}),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs'),
]
"""


def write_tsn_config(
    path: Path,
    *,
    num_classes: int = 10,
    views: int = 2,
    size: int = 64,
    average_clips: str | None = "prob",
) -> Path:
    """Write the tiny TSN config to ``path`` and return it."""
    path.write_text(
        TSN_R18.format(
            num_classes=num_classes,
            views=views,
            size=size,
            resize=size + size // 8,
            average_clips=average_clips,
            mean=MEAN,
            std=STD,
        )
    )
    return path


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch-norm statistics and a confident classifier, so top-1 comparisons mean something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.2)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return model


def random_model(config: Path, seed: int = 0) -> nn.Module:
    """The config's model with random weights, in eval mode."""
    torch.manual_seed(seed)
    return randomize(build(load_config(config).model), seed).eval()


def make_checkpoint(config: Path, path: Path, *, seed: int = 0, classes: list[str] | None = None) -> Path:
    """Save a random-weight checkpoint for ``config`` in MMAction2's model-zoo layout."""
    model = random_model(config, seed)
    meta: dict[str, Any] = {}
    if classes is not None:
        meta["dataset_meta"] = {"classes": classes}
    return save_checkpoint(model, path, meta=meta)


#: A one-stage ResNet-18 TSN (64 channels): cheap to export, for the frame-reuse tests.
TINY_TSN = """
model = dict(
    type='Recognizer2D',
    backbone=dict(type='ResNet', depth=18, pretrained=None, num_stages=1, out_indices=(0,), strides=(1,),
        dilations=(1,), norm_eval=False),
    cls_head=dict(
        type='TSNHead', num_classes={num_classes}, in_channels=64, spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1), dropout_ratio=0.4, init_std=0.01,
        average_clips={average_clips!r}),
    data_preprocessor=dict(
        type='ActionDataPreprocessor', mean={mean}, std={std}, format_shape='NCHW'))
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips={views}, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, {resize})),
    dict(type={crop!r}, crop_size={size}),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs'),
]
"""


def write_tiny_tsn_config(
    path: Path,
    *,
    num_classes: int = 6,
    views: int = 4,
    size: int = 32,
    average_clips: str | None = "prob",
    crop: str = "CenterCrop",
    resize: int | None = None,
) -> Path:
    """Write :data:`TINY_TSN` to ``path`` and return it (``resize``: the short side, default ``size + size // 8``)."""
    path.write_text(
        TINY_TSN.format(
            num_classes=num_classes,
            views=views,
            size=size,
            resize=resize or size + size // 8,
            average_clips=average_clips,
            crop=crop,
            mean=MEAN,
            std=STD,
        )
    )
    return path
