"""The one registry of model components: a plain dict from MMAction2 type name to class.

Configs use MMAction2's own schema (``dict(type='ResNet', depth=50, ...)``), so
the keys here are MMAction2's class names and the constructors take its keyword
arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from engines.errors import EngineError, ModelConfigError, UnknownTypeError

MODELS: dict[str, type[nn.Module]] = {}

T = TypeVar("T", bound=type[nn.Module])


def register(name: str | None = None) -> Callable[[T], T]:
    """Class decorator that adds a model component to :data:`MODELS`.

    Args:
        name: Registry key; defaults to the class name (MMAction2's ``type``).

    Raises:
        ValueError: If the name is already taken.
    """

    def wrap(cls: T) -> T:
        key = name or cls.__name__
        if key in MODELS and MODELS[key] is not cls:
            raise ValueError(f"model type {key!r} is registered twice")
        MODELS[key] = cls
        return cls

    return wrap


def build(cfg: Mapping[str, Any], *, where: str = "model", **defaults: Any) -> nn.Module:
    """Build a registered component from an MMAction2-style config dict.

    Args:
        cfg: A mapping with a ``type`` key and the constructor's keyword arguments.
        where: Dotted config path of ``cfg``, used in error messages.
        **defaults: Keyword arguments used where ``cfg`` does not set them.

    Raises:
        UnknownTypeError: If ``type`` is not registered (the message lists the valid names).
        ModelConfigError: If ``type`` is missing or the arguments don't fit the constructor.
    """
    import engines.models  # noqa: F401  (fills MODELS on first use)
    from engines.models.layers import check_keys, split_cfg

    type_name, rest = split_cfg(cfg, where)
    kwargs = {**defaults, **rest}
    cls = MODELS.get(type_name)
    if cls is None and type_name.startswith("timm."):
        raise UnknownTypeError(
            f"{where}.type: timm backbone {type_name!r} is not supported (timm is not a dependency, and its "
            "checkpoints' key layout changed between timm versions); use an MMAction2-native model instead, "
            "e.g. configs/recognition/swin/ for Video Swin"
        )
    if cls is None:
        valid = ", ".join(sorted(MODELS))
        raise UnknownTypeError(f"{where}.type: unknown model type {type_name!r}; valid types: {valid}")
    check_keys(kwargs, cls, f"{where}: {type_name}")
    try:
        return cls(**kwargs)
    except EngineError:
        raise  # already names its config key
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"{where}: cannot build {type_name}: {exc}") from exc
