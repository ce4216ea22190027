"""Cross-entropy baseline, optionally with label smoothing or soft (vote-distribution) targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ferkit.losses import soft_cross_entropy, weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


@METHODS.register("ce")
class CrossEntropy(Method):
    """Plain cross-entropy: ``L = mean_i CE(f(x_i), y_i)``.

    With ``label_smoothing = e`` the target is ``(1 - e) * onehot + e / K``. When the batch carries
    ``soft_label`` (FERPlus ``label_mode: soft``) the loss is CE against that distribution.

    Args:
        label_smoothing: uniform smoothing mass e in [0, 1); not combined with soft labels.
    """

    uses_soft_labels = True
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "label_smoothing": Range(0, 1, high_open=True),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.label_smoothing = label_smoothing

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        logits = self.model(batch["image"]).logits
        if "soft_label" in batch:
            loss = soft_cross_entropy(logits, batch["soft_label"])
        else:
            loss = weighted_cross_entropy(logits, batch["label"],
                                          label_smoothing=self.label_smoothing)
        return StepOutput(loss, logits, {"l_cls": loss.detach()})
