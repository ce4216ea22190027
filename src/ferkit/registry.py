"""A tiny name -> constructor registry with did-you-mean errors (timm / torchvision style).

A registry can be backed by a generated catalogue (``"module:attribute"`` naming a dict ``name ->
(module, facts)``): the names and facts of its entries are then known without importing them,
and an entry's module is imported on its first :meth:`Registry.get`, where its registration runs.
This is how ``ferkit list``, ``ferkit config`` and the config checks answer without importing
torch (``python -m ferkit.catalogue`` writes the catalogue from the registrations themselves).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ferkit.errors import FerkitError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnknownNameError(FerkitError, KeyError):
    """A name that is not registered; the message lists the choices and the closest match."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to constructors of one kind of thing (backbone, method, dataset).

    Example:
        >>> BACKBONES = Registry("backbone")
        >>> @BACKBONES.register("resnet18")
        ... def resnet18(**kw): ...
    """

    def __init__(self, kind: str, info_type: Callable[..., Any] = dict,
                 describe: Callable[[Callable[..., T], Any], Any] | None = None,
                 catalogue: str | None = None) -> None:
        """
        Args:
            kind: what the entries are, for messages ("backbone").
            info_type: builds the facts passed to :meth:`register` (a missing or unknown fact
                fails at registration).
            describe: ``(entry, registered facts) -> facts`` that :meth:`info` answers for a
                loaded entry (default: the registered facts); the catalogue holds the same.
            catalogue: ``"module:attribute"`` of a dict ``name -> (module, facts)``: entries
                known before their module is imported (see the module docstring).
        """
        self.kind = kind
        self.info_type = info_type
        self._describe = describe
        self._catalogue_ref = catalogue
        self._catalogue: dict[str, tuple[str, Any]] | None = None
        self._entries: dict[str, Callable[..., T]] = {}
        self._info: dict[str, Any] = {}
        self._described: dict[str, Any] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a constructor under ``name``; ``info`` holds facts the entry declares about
        itself (for a backbone: :class:`~ferkit.models.backbones.base.BackboneInfo`), built
        into ``info_type`` at registration (a missing or unknown fact fails there) and read back
        with :meth:`info`."""
        facts = self.info_type(**info)

        def decorator(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = fn
            self._info[name] = facts
            return fn

        return decorator

    def info(self, name: str) -> Any:
        """The facts of ``name``: for a loaded entry what it registered (``describe``d, when the
        registry has ``describe``), else the catalogue's copy; a copy for plain dicts. Never
        imports the entry."""
        if name in self._entries:
            if name not in self._described:
                facts = self._info[name]
                self._described[name] = (self._describe(self._entries[name], facts)
                                         if self._describe else facts)
            facts = self._described[name]
        elif name in self.catalogued():
            facts = self.catalogued()[name][1]
        else:
            raise UnknownNameError(self.unknown(name))
        return dict(facts) if isinstance(facts, dict) else facts

    def catalogued(self) -> dict[str, tuple[str, Any]]:
        """``name -> (module, facts)`` of the generated catalogue ({} without one)."""
        if self._catalogue is None:
            module, _, attribute = (self._catalogue_ref or ":").partition(":")
            self._catalogue = (dict(getattr(importlib.import_module(module), attribute))
                               if module else {})
        return self._catalogue

    def loaded_catalogue(self, package: str = "") -> dict[str, tuple[str, Any]]:
        """``name -> (module, facts)`` of the loaded entries whose module is in ``package``:
        what a generated catalogue holds."""
        return {name: (entry.__module__, self.info(name)) for name, entry in self._entries.items()
                if entry.__module__.startswith(package)}

    def unknown(self, name: str) -> str:
        """The one message for a name that is not registered: the closest match and the
        choices (config checks prefix it with their key)."""
        return (f"unknown {self.kind} '{name}'.{suggest(name, self.names())} "
                f"Available: {', '.join(self.names())}")

    def get(self, name: str) -> Callable[..., T]:
        """The entry ``name``, importing its module first when only the catalogue knows it."""
        if name not in self._entries and name in self.catalogued():
            module = self.catalogued()[name][0]
            importlib.import_module(module)
            if name not in self._entries:
                raise RuntimeError(f"{module} registers no {self.kind} '{name}' although the "
                                   "catalogue says it does; regenerate it: python -m "
                                   "ferkit.catalogue")
        if name not in self._entries:
            raise UnknownNameError(self.unknown(name))
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Every name, loaded or only catalogued."""
        return sorted(set(self._entries) | set(self.catalogued()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self.catalogued()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
