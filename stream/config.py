"""Config files: MMAction2-style Python configs, ``_base_`` inheritance, ``--cfg-options``.

mmengine's :class:`~mmengine.config.Config` does the loading and merging. This module
wraps its errors into :class:`ConfigError` naming the file, and turns config sections
into typed dataclasses (:func:`parse_section`), reporting the file and the dotted key
that is wrong.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from stream.errors import ConfigError

T = TypeVar("T")


def load_config(path: str | Path, cfg_options: Mapping[str, Any] | None = None) -> Any:
    """Load a config file and apply ``--cfg-options`` overrides.

    Args:
        path: A Python config file; ``_base_`` files are resolved relative to it.
        cfg_options: ``{'dotted.key': value}`` overrides, as parsed by mmengine's ``DictAction``.

    Returns:
        The mmengine ``Config``; its ``filename`` attribute names the file.

    Raises:
        ConfigError: If the file is missing or cannot be parsed, or an override does not apply.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise ConfigError(f"config file not found: {path}{hint}; pass an existing .py config, e.g. under configs/")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises many kinds for bad files; report them all the same way
        raise ConfigError(f"{path}: cannot load config: {type(exc).__name__}: {exc}") from exc
    if cfg_options:
        try:
            cfg.merge_from_dict(dict(cfg_options))
        except Exception as exc:
            raise ConfigError(f"{path}: --cfg-options {dict(cfg_options)!r} do not apply: {exc}") from exc
    return cfg


def to_plain(value: Any) -> Any:
    """Turn mmengine ``ConfigDict``s (and nested lists/tuples of them) into plain dicts."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value


def parse_section(section: Mapping[str, Any] | None, cls: type[T], *, where: str, file: str | None = None) -> T:
    """Validate a config section into a dataclass, reporting the file and key that is wrong.

    Unknown keys are errors (with the valid ones listed); values are checked against the
    field types (``int``, ``float``, ``str``, ``bool``, ``Literal``, ``Optional``, tuples,
    lists and nested dataclasses). ``__post_init__`` may raise ``ValueError`` for finer checks.

    Args:
        section: The mapping from the config (None means all defaults).
        cls: A dataclass type.
        where: Dotted key of the section, e.g. ``'stream.source'``.
        file: The config file, for messages.

    Raises:
        ConfigError: For unknown keys, missing required keys or values of the wrong type.
    """
    prefix = f"{file}: " if file else ""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{prefix}{where}: expected a dict, got {type(section).__name__} {section!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in section.items():
        kwargs[name] = _check(to_plain(value), hints[name], f"{where}.{name}", prefix)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}{where}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{where}: {exc}") from exc


def _check(value: Any, hint: Any, key: str, prefix: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _check(value, arg, key, prefix)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{prefix}{key}: expected {_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{prefix}{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{prefix}{key}: expected None, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return parse_section(value, hint, where=key, file=prefix[:-2] or None)
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{prefix}{key}: expected a list, got {type(value).__name__} {value!r}")
        if args and not (len(args) == 2 and args[1] is Ellipsis) and origin is tuple:
            if len(args) != len(value):
                raise ConfigError(f"{prefix}{key}: expected {len(args)} items, got {len(value)}: {value!r}")
            items = [_check(v, a, f"{key}[{i}]", prefix) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        elif args:
            items = [_check(v, args[0], f"{key}[{i}]", prefix) for i, v in enumerate(value)]
        else:
            items = list(value)
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin in (dict, Mapping) or hint in (dict,):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{prefix}{key}: expected a dict, got {type(value).__name__} {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{prefix}{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{prefix}{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}{key}: expected True or False, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{prefix}{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{prefix}{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _name(hint: Any) -> str:
    args = typing.get_args(hint)
    if args:
        return " or ".join(_name(a) for a in args)
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))
