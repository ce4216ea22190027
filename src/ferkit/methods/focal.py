"""Softmax focal loss (Lin, Goyal, Girshick, He and Dollar, "Focal Loss for Dense Object
Detection", ICCV 2017), optionally class-weighted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ferkit.losses import class_weights as make_class_weights
from ferkit.losses import focal_loss
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range

CLASS_WEIGHTS = ("none", "effective", "inverse")


@METHODS.register("focal")
class Focal(Method):
    """``L = -(1/B) sum_i w_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i}`` with softmax ``p``.

    The paper defines the sigmoid (one-vs-all) form with an alpha-balancing term for detection;
    this is the softmax form commonly used for classification, with ``w`` in place of alpha
    (``cb`` with ``loss=sigmoid`` gives the sigmoid form). Weights divide by B, not by their sum.

    Args:
        gamma: focusing parameter (2).
        class_weight: "none" (w = 1), "effective" (Cui et al., ``beta``, sum K) or "inverse"
            (``N / (K n_l)``, mean 1).
        beta: effective-number beta for ``class_weight="effective"``.
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "gamma": Range(0),
        "class_weight": CLASS_WEIGHTS,
        "beta": Range(0, 1, high_open=True),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        gamma: float = 2.0, class_weight: str = "none", beta: float = 0.9999,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.gamma = gamma
        weights = None if class_weight == "none" else make_class_weights(
            class_counts, class_weight, beta, normalize="mean")
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        logits = self.model(batch["image"]).logits
        loss = focal_loss(logits, batch["label"], self.gamma, self.class_weights)
        return StepOutput(loss, logits, {"l_cls": loss.detach()})
