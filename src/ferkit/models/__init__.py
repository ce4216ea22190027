"""Backbones, the FER classifier and weight loading.

:data:`BACKBONES` is importable without torch; the classifier names are imported on first use
(PEP 562), so ``from ferkit.models import BACKBONES`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferkit.lazy import lazy_attributes
from ferkit.models.backbones import BACKBONES

_LAZY = {"ClassifierOutput": "ferkit.models.classifier", "FERClassifier": "ferkit.models.classifier",
         "build_classifier": "ferkit.models.classifier"}

if TYPE_CHECKING:
    from ferkit.models.classifier import ClassifierOutput, FERClassifier, build_classifier

__all__ = ["BACKBONES", "ClassifierOutput", "FERClassifier", "build_classifier"]

__getattr__ = lazy_attributes(__name__, _LAZY)
