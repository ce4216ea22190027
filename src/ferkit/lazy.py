"""Package attributes imported on first use (PEP 562), so importing a package stays light.

``ferkit``, ``ferkit.data``, ``ferkit.models`` and ``ferkit.methods`` re-export names whose
modules import torch; each resolves them through :func:`lazy_attributes`, so ``ferkit --help``,
``ferkit list`` and ``ferkit config`` never import torch, while ``from ferkit.models import
FERClassifier`` works as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, sources: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``name`` is imported from the module
    ``sources[name]`` on first access and kept in the package (later look-ups skip this).

    Example:
        >>> __getattr__ = lazy_attributes(__name__, {"FERClassifier": "ferkit.models.classifier"})
    """
    def __getattr__(name: str) -> Any:  # noqa: N807  (the PEP 562 hook's name)
        if name not in sources:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(sources[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
