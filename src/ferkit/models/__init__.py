"""Backbones, the FER classifier and weight loading."""

from ferkit.models.backbones import BACKBONES
from ferkit.models.classifier import ClassifierOutput, FERClassifier, build_classifier

__all__ = ["BACKBONES", "ClassifierOutput", "FERClassifier", "build_classifier"]
