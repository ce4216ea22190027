"""The method registry and the checks of ``method.params``, importable without torch.

A method registers its class with ``@METHODS.register("<name>")`` (:mod:`ferkit.methods.base`
has the contract). What the config checks need of it, :class:`MethodFacts` (its typed keyword
parameters, their declared ranges and choices, whether it trains on soft labels), is read from
the class once it is imported, and from the generated catalogue (``ferkit._registered``) before
that, so checking a config or printing ``ferkit config`` imports no method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferkit.params import Constraint, Param, check_params, signature_params
from ferkit.registry import Registry

if TYPE_CHECKING:
    from ferkit.methods.base import Method

RESERVED = ("model", "class_counts", "num_samples")  # passed by the engine, not method.params


@dataclass(frozen=True)
class MethodFacts:
    """What a registered method declares through its class.

    Attributes:
        params: its typed keyword parameters (the constructor's, minus :data:`RESERVED`).
        constraints: ranges and choices of those parameters (``param_constraints``).
        uses_soft_labels: it trains on vote distributions (``data.label_mode: soft``).
    """

    params: dict[str, Param]
    constraints: dict[str, Constraint]
    uses_soft_labels: bool


def method_facts(method: type[Method], registered: Any = None) -> MethodFacts:
    """The :class:`MethodFacts` of a method class (``registered``: its registration facts,
    unused)."""
    return MethodFacts(signature_params(method, RESERVED), dict(method.param_constraints),
                       bool(method.uses_soft_labels))


METHODS: Registry[Method] = Registry("method", describe=method_facts,
                                     catalogue="ferkit._registered:METHODS")


def method_params(name: str) -> dict[str, Any]:
    """The keyword parameters a registered method accepts, with their defaults."""
    return {key: p.default for key, p in METHODS.info(name).params.items()}


def check_method_params(name: str, params: dict[str, Any], constraints: bool = True) -> list[str]:
    """Errors for method ``name``'s ``params``: unknown names (with close-match suggestions),
    values of the wrong type for the constructor's annotation, and (``constraints``) values
    outside the ranges or choices the method declares in ``param_constraints``."""
    if name not in METHODS:
        return [f"method.name: {METHODS.unknown(name)}"]
    facts = METHODS.info(name)
    return check_params(f"'{name}'", "method.params.", params, facts.params,
                        facts.constraints if constraints else {})


def resolved_method_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` with every constructor default filled in (unknown methods: as given), so a
    stored run records what it ran even if a default changes later (``ferkit.run_folder``)."""
    if name not in METHODS:
        return dict(params or {})
    return {**method_params(name), **(params or {})}


__all__ = ["METHODS", "RESERVED", "MethodFacts", "check_method_params", "method_facts",
           "method_params", "resolved_method_params"]
