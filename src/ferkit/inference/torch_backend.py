"""The torch backend of the predictor: a trained method behind the interface both backends share
(``logits`` and ``cams`` of a normalised batch; see :mod:`ferkit.inference.onnx_backend`)."""

from __future__ import annotations

import torch

from ferkit.cam import class_activation_maps
from ferkit.methods import Method


class TorchNet:
    """A trained method on a torch device behind the interface the predictor uses."""

    backend = "torch"

    def __init__(self, method: Method, device: torch.device) -> None:
        self.method = method.eval().to(device)
        self.device = device

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> logits ``[B, K]`` (float32, CPU)."""
        return self.method.predict(batch.to(self.device)).float().cpu()

    @torch.no_grad()
    def cams(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> class activation maps ``[B, K, h, w]`` (float32, CPU)."""
        model = self.method.model
        feature_map = model(batch.to(self.device)).feature_map
        return class_activation_maps(feature_map, model.head.weight).float().cpu()

    def logits_and_cams(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`logits` and :meth:`cams` of one batch (``Method.predict`` may differ from the
        model's own head, so these are two passes)."""
        return self.logits(batch), self.cams(batch)
