"""LDAM-DRW (Cao, Wei, Gaidon, Arechiga and Ma, "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss", NeurIPS 2019)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ferkit.losses import check_class_counts, class_weights, weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range

REDUCTIONS = ("weighted_mean", "mean")


def ldam_margins(class_counts: Sequence[int] | torch.Tensor, max_margin: float = 0.5
                 ) -> torch.Tensor:
    """``m_l = C / n_l^{1/4}`` with C chosen so that ``max_l m_l = max_margin``; float32 ``[K]``."""
    raw = check_class_counts(class_counts).pow(-0.25)
    return (raw * (max_margin / raw.max())).float()


class CosineClassifier(nn.Module):
    """``logits = scale * cos(f, w_l) = scale * <f / |f|, w_l / |w_l|>``, no bias.

    ``weight`` is ``[K, C]`` like ``nn.Linear``'s, so CAMs can use it; its rows are normalised
    only inside ``forward`` (a per-class factor that per-map CAM normalisation removes).

    Args:
        in_features: C; num_classes: K; scale: s.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(features.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).t()
        return self.scale * cosine  # [B, K]


@METHODS.register("ldam")
class LDAMDRW(Method):
    """Label-distribution-aware margins on a cosine classifier, with deferred re-weighting.

    ``L = (1/B) sum_i w_{y_i} CE(s * (cos(f_i, W) - m_{y_i} onehot(y_i)), y_i)`` with
    ``m_l = max_margin * n_l^{-1/4} / max_k n_k^{-1/4}``, scale ``s``; ``w = 1`` before the DRW
    epoch ``floor(drw_start * E)`` (0-based; 160 of 200 in the paper) and the class-balanced
    weights ``(1 - beta) / (1 - beta^{n_l})`` (sum K) from then on. Test: ``s * cos`` (no margin).

    ``model.head`` is replaced by a :class:`CosineClassifier` (``weight`` ``[K, C]``, returns
    ``s * cos``), so ``model(images).logits`` is the test output and CAMs keep working.

    Follows the authors' code: normalised features and weights (NormedLinear), margins
    subtracted from the cosine before scaling, and ``drw_reduction="weighted_mean"`` (default),
    their ``F.cross_entropy(weight=w)`` which divides by ``sum_i w_{y_i}``; ``"mean"`` divides by
    B as Cui et al. and ferkit's ``cb`` do. The DRW switch is recomputed in
    :meth:`on_epoch_start`, so resumed runs agree.

    Args:
        max_margin: largest margin (0.5).
        scale: s (30).
        drw_start: fraction of training after which DRW starts (0.8); >= 1 disables DRW.
        beta: effective-number beta of the DRW weights (0.9999).
        drw_reduction: "weighted_mean" or "mean".
    """

    schedule_uses_num_epochs = True
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "max_margin": Range(0, low_open=True),
        "drw_start": Range(0, 1),
        "beta": Range(0, 1, high_open=True),
        "drw_reduction": REDUCTIONS,
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        max_margin: float = 0.5, scale: float = 30.0, drw_start: float = 0.8,
        beta: float = 0.9999, drw_reduction: str = "weighted_mean",
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        model.head = CosineClassifier(model.num_features, model.num_classes, scale)
        self.scale, self.drw_start, self.drw_reduction = scale, drw_start, drw_reduction
        self.register_buffer("margins", ldam_margins(class_counts, max_margin), persistent=False)
        self.register_buffer("drw_weights", class_weights(class_counts, "effective", beta),
                             persistent=False)
        self.drw_active = False

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.drw_active = self.drw_start < 1 and epoch >= int(self.drw_start * num_epochs)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        labels = batch["label"]
        logits = self.model(batch["image"]).logits.float()  # s * cos, [B, K]
        onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        margin_logits = logits - self.scale * self.margins[labels][:, None] * onehot
        weights = self.drw_weights if self.drw_active else None
        loss = weighted_cross_entropy(margin_logits, labels, weights)
        if weights is not None and self.drw_reduction == "weighted_mean":
            loss = loss * labels.shape[0] / weights[labels].sum()
        return StepOutput(loss, logits, {"l_cls": loss.detach()})
