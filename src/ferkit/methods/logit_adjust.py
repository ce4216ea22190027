"""Logit adjustment (Menon, Jayasumana, Rawat, Jain, Veit and Kumar, "Long-Tail Learning via Logit
Adjustment", ICLR 2021); with ``tau = 1`` the loss is the balanced softmax of Ren et al.
("Balanced Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from ferkit.losses import check_class_counts, weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


def log_prior(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``log(n_l / N_train)``, float32 ``[K]``."""
    counts = check_class_counts(class_counts)
    return (counts / counts.sum()).log().float()


@METHODS.register("logit_adjust")
class LogitAdjustment(Method):
    """Logit-adjusted cross-entropy, or post-hoc adjustment of a plain CE model.

    Loss form (default, ``posthoc=False``): ``L = mean_i CE(f(x_i) + tau * log pi, y_i)`` with the
    training prior ``pi_l = n_l / N_train``; test logits are the raw ``f(x)``.
    Post-hoc form (``posthoc=True``): ``L = mean_i CE(f(x_i), y_i)``; test logits are
    ``f(x) - tau * log pi``. These are Menon et al.'s two variants (loss-based and post-hoc).

    Args:
        tau: adjustment strength (1 = balanced softmax / Bayes-optimal for the balanced error).
        posthoc: adjust at test time instead of in the loss.
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "tau": Range(0),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        tau: float = 1.0, posthoc: bool = False,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.tau, self.posthoc = tau, posthoc
        self.register_buffer("log_prior", log_prior(class_counts), persistent=False)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        logits = self.model(batch["image"]).logits.float()
        adjusted = logits if self.posthoc else logits + self.tau * self.log_prior
        loss = weighted_cross_entropy(adjusted, batch["label"])
        return StepOutput(loss, logits, {"l_cls": loss.detach()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images).logits
        if not self.posthoc:
            return logits
        return logits - (self.tau * self.log_prior).to(logits.dtype)
