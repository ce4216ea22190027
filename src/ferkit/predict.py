"""Kept for compatibility: the predictor lives in :mod:`ferkit.inference.predictor`."""

from ferkit.inference.predictor import Predictor

__all__ = ["Predictor"]
