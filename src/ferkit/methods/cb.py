"""Class-balanced loss (Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
CVPR 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ferkit.losses import (
    class_weights,
    focal_loss,
    sigmoid_class_balanced_loss,
    weighted_cross_entropy,
)
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


@METHODS.register("cb")
class ClassBalanced(Method):
    """``L = (1/N) sum_i w_{y_i} * loss_i`` with ``w_l = (1 - beta) / (1 - beta^{n_l})``.

    The weights are normalised to sum to K (Cui et al.) and divided by N, not by sum of weights
    (PyTorch's ``CrossEntropyLoss(weight=...)`` would divide by the sum; Cui et al. do not).

    Args:
        beta: effective-number hyper-parameter (0.9999 as in the paper).
        loss: "softmax" (weighted CE), "focal" (weighted softmax focal) or "sigmoid"
            (one-vs-all BCE, focal when ``gamma > 0``).
        gamma: focal exponent for "focal" / "sigmoid".
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "beta": Range(0, 1, high_open=True),
        "loss": ("softmax",
        "focal",
        "sigmoid"),
        "gamma": Range(0),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        beta: float = 0.9999, loss: str = "softmax", gamma: float = 1.0,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.loss_kind, self.gamma = loss, gamma
        self.register_buffer("class_weights", class_weights(class_counts, "effective", beta),
                             persistent=False)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        logits = self.model(batch["image"]).logits
        labels = batch["label"]
        if self.loss_kind == "softmax":
            loss = weighted_cross_entropy(logits, labels, self.class_weights)
        elif self.loss_kind == "focal":
            loss = focal_loss(logits, labels, self.gamma, self.class_weights)
        else:
            loss = sigmoid_class_balanced_loss(logits, labels, self.class_weights, self.gamma)
        return StepOutput(loss, logits, {"l_cls": loss.detach()})
