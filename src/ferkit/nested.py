"""Nested mappings with dotted keys, the one implementation of each operation on them (configs,
recipes, ``--set`` overrides, bench protocols, run-folder comparisons). Imports nothing of
ferkit's: the config layer builds on it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def deep_merge(base: dict[str, Any], update: dict[str, Any],
               whole: Collection[str] = ()) -> dict[str, Any]:
    """``base`` updated by ``update``; mappings on both sides are merged key by key, except the
    keys in ``whole``, whose value ``update`` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in whole:
            out[key] = deep_merge(out[key], value, whole)
        else:
            out[key] = value
    return out


def flatten(values: dict[str, Any], whole: Collection[str] = (),
            prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"dotted.key": leaf}``; the mappings under a key in ``whole`` stay
    whole leaves, and an empty mapping is a leaf."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in whole:
            out.update(flatten(value, whole, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``tree["a"]["b"]["c"] = value`` for ``key`` ``"a.b.c"``, making the mappings on the way.

    Raises:
        TypeError: a part of the way already holds a value that is not a mapping (its name is
            the message).
    """
    node = tree
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TypeError(part)
    node[last] = value


__all__ = ["deep_merge", "flatten", "set_dotted"]
