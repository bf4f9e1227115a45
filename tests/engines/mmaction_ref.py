"""Real MMAction2 1.2 models as the reference for parity tests.

MMAction2 1.2.0 and mmcv-lite 2.1.0 are pure-Python wheels (the ``ref`` extra), so the
tests can build MMAction2's own model from the same config and compare outputs with
ours. The 1.2.0 wheel lacks ``mmaction/models/localizers/drn`` (a packaging bug), so an
empty placeholder is registered before import; DRN is a localizer nobody here uses.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import pytest
from torch import nn


def _import_mmaction() -> Any:
    for name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn"):
        sys.modules.setdefault(name, types.ModuleType(name))
    drn = sys.modules["mmaction.models.localizers.drn.drn"]
    if not hasattr(drn, "DRN"):
        drn.DRN = type("DRN", (), {})  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mmaction.registry import MODELS
        from mmaction.utils import register_all_modules

        register_all_modules(init_default_scope=True)
    return MODELS


def mmaction_registry() -> Any:
    """MMAction2's model registry, or skip the test when MMAction2 is not installed."""
    try:
        return _import_mmaction()
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"MMAction2 reference not installed (pip install -e '.[ref]'): {exc}")


def build_mmaction_model(model_cfg: dict[str, Any]) -> nn.Module:
    """Build MMAction2's own model from a ``model=dict(...)`` config section, in eval mode."""
    registry = mmaction_registry()
    model = registry.build(dict(model_cfg))
    return model.eval()
