"""Plain-torch model definitions whose parameter names match MMAction2 1.x.

Importing this package registers every component in :data:`MODELS`.
"""

from __future__ import annotations

import importlib

from engines.models.registry import MODELS, build, register

# Each module registers its classes on import. Order matters only for readability.
_MODULES = (
    "layers",
    "heads",
    "recognizers",
    "resnet",
    "resnet_tsm",
    "resnet_tin",
    "mobilenet_v2",
    "mobileone",
    "resnext",
    "densenet",
    "resnet3d",
    "resnet3d_slowfast",
    "resnet3d_csn",
    "trn",
    "tanet",
    "omni",
    "x3d",
    "tpn",
    "swin",
    "mvit",
    "uniformer",
    "c3d",
    "cspnext",
    "rtmpose",
    "rtmdet",
    "yolox",
    "roi_align",
    "stdet",
    "gcn",
    "transformer_blocks",
    "vit_mae",
    "uniformerv2",
    "timesformer",
)

for _name in _MODULES:
    importlib.import_module(f"engines.models.{_name}")

__all__ = ["MODELS", "build", "register"]
