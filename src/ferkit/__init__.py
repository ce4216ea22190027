"""ferkit: facial expression recognition on imbalanced data.

Public API: :func:`train`, :func:`evaluate`, :class:`Predictor` (with its typed answers
:class:`Prediction` and :class:`FaceResult`, and :func:`annotate` to draw them), :func:`load_config`,
the registries of datasets, backbones and methods, and :class:`FerkitError`, the base of every
error that is the user's to fix (:mod:`ferkit.errors`).

The names are resolved on first use (PEP 562), so ``import ferkit`` and ``ferkit --help`` do not
import torch; ``from ferkit import Predictor`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferkit._version import __version__
from ferkit.lazy import lazy_attributes

# public name -> the module that defines it
_LAZY = {
    "train": "ferkit.api", "evaluate": "ferkit.api", "FerkitError": "ferkit.errors",
    "RunConfig": "ferkit.config", "load_config": "ferkit.checks",
    "DATASETS": "ferkit.data", "Predictor": "ferkit.inference", "annotate": "ferkit.inference",
    "FaceResult": "ferkit.inference", "Prediction": "ferkit.inference",
    "METHODS": "ferkit.methods", "BACKBONES": "ferkit.models",
}

if TYPE_CHECKING:
    from ferkit.api import evaluate, train
    from ferkit.checks import load_config
    from ferkit.config import RunConfig
    from ferkit.data import DATASETS
    from ferkit.errors import FerkitError
    from ferkit.inference import FaceResult, Prediction, Predictor, annotate
    from ferkit.methods import METHODS
    from ferkit.models import BACKBONES

__all__ = ["BACKBONES", "DATASETS", "METHODS", "FaceResult", "FerkitError", "Prediction", "Predictor",
           "RunConfig", "__version__", "annotate", "evaluate", "load_config", "train"]


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
