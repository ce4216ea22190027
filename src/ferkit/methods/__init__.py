"""Training methods. Each module registers its Method class in :data:`METHODS` on import."""

from ferkit.methods import bbn, cb, ce, eac, fan, focal, ldam, logit_adjust, mek, rul, scn  # noqa: E402,F401,I001  (registration)
from ferkit.methods.base import (
    METHODS,
    Method,
    StepOutput,
    check_method_params,
    create_method,
    method_params,
    resolved_method_params,
)

__all__ = ["METHODS", "Method", "StepOutput", "check_method_params", "create_method",
           "method_params", "resolved_method_params"]
