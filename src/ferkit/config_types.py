"""Plain YAML data <-> typed dataclass configs: conversion to the annotated types with every error
collected (no exception until the caller has them all)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from ferkit.registry import suggest


def _coerce_scalar(value: Any, hint: type, key: str, errors: list[str]) -> Any:
    """A YAML scalar as ``hint`` (int, float, str, bool), or an error."""
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string
            value = float(value)
        except ValueError:
            errors.append(f"{key}: expected float, got {value!r}")
            return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{key}: must be a finite number, got {value!r}")
        return value
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint in (int, float) and isinstance(value, bool)):
        errors.append(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def _coerce(value: Any, hint: Any, key: str, errors: list[str]) -> Any:
    """Convert a YAML value to the annotated type, or record an error."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping, got {value!r}")
            return hint()
        return build_dataclass(hint, value, key + ".", errors)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            errors.append(f"{key}: expected a list of {len(args)} values, got {value!r}")
            return value
        return tuple(_coerce(v, a, key, errors) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping, got {value!r}")
        return dict(value) if isinstance(value, dict) else {}
    if hint is Any:
        return value
    return _coerce_scalar(value, hint, key, errors)


def build_dataclass(cls: type, values: dict[str, Any], prefix: str, errors: list[str]) -> Any:
    """``cls(**values)`` with every value converted to its annotated type; unknown keys (with a
    close-match suggestion) and wrong types are appended to ``errors`` under ``prefix + key``."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            errors.append(f"unknown config key '{prefix}{key}'.{suggest(str(key), names)} "
                          f"Valid keys here: {', '.join(prefix + n for n in names)}")
            continue
        kwargs[key] = _coerce(value, hints[key], prefix + key, errors)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-able data (tuples become lists)."""
    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(dataclasses.asdict(cfg))


__all__ = ["build_dataclass", "to_dict"]
