"""Training methods: one module per method registers its Method class in :data:`METHODS`.

Importing this package imports no method (nor torch): :data:`METHODS` knows each method's
parameters from the generated catalogue (``ferkit._registered``) and imports its module on the
first ``METHODS.get``; :class:`Method`, :class:`StepOutput` and :func:`create_method` are
imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferkit.lazy import lazy_attributes
from ferkit.methods.registry import (
    METHODS,
    check_method_params,
    method_params,
    resolved_method_params,
)

_LAZY = {"Method": "ferkit.methods.base", "StepOutput": "ferkit.methods.base",
         "create_method": "ferkit.methods.base"}

if TYPE_CHECKING:
    from ferkit.methods.base import Method, StepOutput, create_method

__all__ = ["METHODS", "Method", "StepOutput", "check_method_params", "create_method",
           "method_params", "resolved_method_params"]

__getattr__ = lazy_attributes(__name__, _LAZY)
