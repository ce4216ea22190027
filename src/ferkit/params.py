"""Keyword parameters checked by type (and declared range or choices) from a typed signature.

Methods (``method.params``) and datasets (``data.options``) take their extra settings as keyword
arguments of a typed constructor. :func:`signature_params` reads those arguments, and
:func:`check_params` checks a mapping against them before anything is built: unknown names (with
a did-you-mean), values of the wrong type (``lam="x"`` for a ``float``), and values outside a
declared :class:`~ferkit.ranges.Range` (the same range type the config checks use) or tuple of
choices. Every problem comes back as one line, so callers can
report them all at once.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ferkit.ranges import Range
from ferkit.registry import suggest

_EMPTY = inspect.Parameter.empty
# A declared constraint: a Range, or a tuple of allowed values.
Constraint = typing.Union["Range", tuple]


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a typed signature."""

    name: str
    annotation: Any
    default: Any

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)


def signature_params(fn: Callable[..., Any], reserved: Sequence[str] = (),
                     keyword_only: bool = False) -> dict[str, Param]:
    """The typed keyword parameters of ``fn`` (a function or class), minus ``reserved`` ones.

    Args:
        fn: the constructor; string annotations (``from __future__ import annotations``) are
            resolved with :func:`typing.get_type_hints`.
        reserved: names the caller passes itself (``model``, ``root``, ...).
        keyword_only: only the parameters after ``*`` (a dataset's options).
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    hints = typing.get_type_hints(target)
    kinds = ((inspect.Parameter.KEYWORD_ONLY,) if keyword_only else
             (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))
    return {
        name: Param(name, hints.get(name, Any), None if p.default is _EMPTY else p.default)
        for name, p in inspect.signature(fn).parameters.items()
        if name not in reserved and name != "self" and p.kind in kinds
    }


def type_name(hint: Any) -> str:
    """A short readable name of a type hint: ``float``, ``str | None``, ``list[int]``."""
    if hint is Any:
        return "any"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    origin = typing.get_origin(hint)
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(hint) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(hint, "__name__", str(hint))


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as YAML gives it) is acceptable for the type hint ``hint``.

    An int passes for a float; a list or tuple passes for a sequence or tuple type when its items
    do; ``bool`` never passes for ``int`` or ``float``.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            return False
        item = args[0] if args else Any
        return all(matches(v, item) for v in value)
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, dict)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(hint, type) and isinstance(value, hint)


def check_params(
    owner: str, key_prefix: str, params: Mapping[str, Any], allowed: Mapping[str, Param],
    constraints: Mapping[str, Constraint] | None = None,
) -> list[str]:
    """Errors (one line each) for ``params`` against the typed ``allowed`` parameters.

    Args:
        owner: what the parameters belong to, for messages (``'mek'``, ``dataset 'rafdb'``).
        key_prefix: config prefix of each key (``method.params.``, ``data.options.``).
        params: the values given.
        allowed: from :func:`signature_params`.
        constraints: declared :class:`Range` or allowed-value tuples, by parameter name.
    """
    errors = []
    for key, value in params.items():
        where = f"{key_prefix}{key}"
        if key not in allowed:
            errors.append(f"{where}: {owner} has no parameter '{key}'.{suggest(key, list(allowed))}"
                          f" Its parameters: {', '.join(sorted(allowed)) or '(none)'}")
            continue
        param = allowed[key]
        if not matches(value, param.annotation):
            errors.append(f"{where}: {owner} expects {param.type_name}, got {value!r} "
                          f"({type(value).__name__}); default: {param.default!r}")
            continue
        problem = constraint_error(value, (constraints or {}).get(key))
        if problem:
            errors.append(f"{where}: {problem}")
    return errors


def constraint_error(value: Any, constraint: Constraint | None) -> str | None:
    """Why ``value`` breaks a declared constraint, or None (None values are never checked)."""
    if constraint is None or value is None:
        return None
    if isinstance(constraint, Range):
        return constraint.error(value)
    if value not in constraint:
        hint = suggest(str(value), [str(c) for c in constraint])
        return f"{value!r} is not one of {list(constraint)}.{hint}"
    return None


__all__ = ["Constraint", "Param", "Range", "check_params", "constraint_error", "matches",
           "signature_params", "type_name"]
