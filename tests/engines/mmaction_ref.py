"""Real MMAction2 1.2 models as the reference for parity tests.

MMAction2 1.2.0 and mmcv-lite 2.1.0 are pure-Python wheels (the ``ref`` extra), so the
tests can build MMAction2's own model from the same config and compare outputs with
ours. The 1.2.0 wheel lacks ``mmaction/models/localizers/drn`` (a packaging bug), so an
empty placeholder is registered before import; DRN is a localizer nobody here uses.
"""

from __future__ import annotations

import importlib
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


# The packages of the reference; only their absence is a skip (a failure under CI=true).
REFERENCE_PACKAGES = frozenset({"mmaction", "mmcv", "mmengine"})


def _skip_if_not_installed(exc: ModuleNotFoundError) -> None:
    """Skip when a reference package is not installed at all; any other import error propagates."""
    if exc.name not in REFERENCE_PACKAGES:
        raise exc
    pytest.skip(f"MMAction2 reference not installed (pip install -e '.[ref]'): {exc}")


def mmaction_registry() -> Any:
    """MMAction2's model registry, or skip the test when MMAction2 is not installed.

    Raises:
        ImportError: MMAction2 is installed but does not import (a broken install or a
            missing dependency of it): an error, not a skip.
    """
    try:
        return _import_mmaction()
    except ModuleNotFoundError as exc:
        _skip_if_not_installed(exc)
        raise


def import_reference(module: str) -> Any:
    """Import a module of the reference (e.g. ``mmaction.datasets.transforms``, ``mmcv``).

    Skips like :func:`mmaction_registry` when the package is not installed at all.

    Raises:
        ImportError: the package is installed but the module does not import.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        _skip_if_not_installed(exc)
        raise


def build_mmaction_model(model_cfg: dict[str, Any]) -> nn.Module:
    """Build MMAction2's own model from a ``model=dict(...)`` config section, in eval mode."""
    registry = mmaction_registry()
    model = registry.build(dict(model_cfg))
    return model.eval()
