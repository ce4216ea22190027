"""Uncertainty + imbalance with CBAM (Fan et al., "Combating Uncertainty and Class Imbalance in
Facial Expression Recognition", arXiv 2212.07751)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from ferkit.losses import class_weights as make_class_weights
from ferkit.methods.base import METHODS
from ferkit.methods.rul import RelativeUncertaintyLearning
from ferkit.models.cbam import CBAM, add_cbam_to_resnet
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range

PLACEMENTS = ("last", "every_block")
CLASS_WEIGHTS = ("inverse", "sqrt_inverse", "effective", "none")


@METHODS.register("fan")
class UncertaintyImbalanceCBAM(RelativeUncertaintyLearning):
    """CBAM-refined features, RUL's uncertain-feature mixing, and a class-weighted loss.

    Objective, with ``F~ = CBAM(F)`` (or a backbone with CBAM in every block), ``mu, log_var``
    from RUL's heads on ``F~``, partner ``j`` and ``z_i`` as in RUL, and class weights ``w``:
    ``L = 0.5 * w_{y_i} CE(fc(z_i), y_i) + 0.5 * w_{y_j} CE(fc(z_i), y_j)``, averaged over the
    batch (divided by B); at test ``logits = fc(mu(F~))``.

    What the paper states: a ResNet-18 with attention; a per-class weight with a penalty so small
    classes get more attention; CBAM (Woo et al., ECCV 2018) to recover the accuracy this costs;
    uncertain features learned per sample and mixed between samples. Its equations are not
    available, so the rest is our reading, each a switch:

    - CBAM placement: ``cbam_placement="last"`` (default) puts one CBAM on the last-stage map,
      leaving pretrained backbone weights intact; ``"every_block"`` puts one in each ResNet block
      on the residual branch before the addition, as Woo et al. integrate CBAM into ResNet
      (resnet18 / resnet50 only; other backbones raise a ValueError).
    - Uncertain-feature mixing: exactly RUL (``ferkit.methods.rul``), including its 0.5/0.5
      add-up loss, 10x ``fc`` learning rate and the frozen, unused ``model.head``.
    - Penalty weights: ``class_weight="inverse"`` (``N / (K n_l)``, mean 1; default),
      ``"sqrt_inverse"`` (``1 / sqrt(n_l)``, mean 1), ``"effective"`` (Cui et al. with ``beta``,
      sum K) or ``"none"``; applied to both terms of the mixed loss, each term weighted by the
      class of the label it uses.

    Args:
        cbam_placement: "last" or "every_block".
        cbam_reduction: channel-MLP ratio r (16).
        cbam_kernel: spatial-attention kernel (7).
        class_weight: "inverse", "sqrt_inverse", "effective" or "none".
        beta: effective-number beta for ``class_weight="effective"``.
        embed_dim, dropout, feature_hw, fc_lr_mult: as in RUL.
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "cbam_placement": PLACEMENTS,
        "class_weight": CLASS_WEIGHTS,
        "dropout": Range(0, 1, high_open=True),
        "embed_dim": Range(1),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        cbam_placement: str = "last", cbam_reduction: int = 16, cbam_kernel: int = 7,
        class_weight: str = "inverse", beta: float = 0.9999,
        embed_dim: int = 64, dropout: float = 0.4, feature_hw: int | None = None,
        fc_lr_mult: float = 10.0,
    ) -> None:
        super().__init__(model, class_counts, num_samples, embed_dim=embed_dim, dropout=dropout,
                         feature_hw=feature_hw, fc_lr_mult=fc_lr_mult)
        if cbam_placement == "every_block":
            add_cbam_to_resnet(model.backbone, cbam_reduction, cbam_kernel)
            self.cbam: nn.Module = nn.Identity()
        else:
            self.cbam = CBAM(model.num_features, cbam_reduction, cbam_kernel)
        if class_weight != "none":
            self.class_weights = make_class_weights(class_counts, class_weight, beta,
                                                    normalize="mean")

    def refine(self, feature_map: torch.Tensor) -> torch.Tensor:
        """CBAM on the last-stage map (identity when CBAM sits in every block)."""
        return self.cbam(feature_map)
