"""A tiny name -> constructor registry with did-you-mean errors (timm / torchvision style)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class UnknownNameError(KeyError):
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

    def __init__(self, kind: str, info_type: Callable[..., Any] = dict) -> None:
        self.kind = kind
        self.info_type = info_type
        self._entries: dict[str, Callable[..., T]] = {}
        self._info: dict[str, Any] = {}

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
        """The facts registered with ``name`` (an ``info_type``; a copy for plain dicts)."""
        self.get(name)  # an unknown name raises with the choices
        facts = self._info[name]
        return dict(facts) if isinstance(facts, dict) else facts

    def unknown(self, name: str) -> str:
        """The one message for a name that is not registered: the closest match and the
        choices (config checks prefix it with their key)."""
        return (f"unknown {self.kind} '{name}'.{suggest(name, self.names())} "
                f"Available: {', '.join(self.names())}")

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise UnknownNameError(self.unknown(name))
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
