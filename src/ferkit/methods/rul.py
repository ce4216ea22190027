"""Relative Uncertainty Learning (Zhang, Wang and Deng, "Relative Uncertainty Learning for Facial
Expression Recognition", NeurIPS 2021).

The pieces (:class:`UncertaintyHeads`, :func:`relative_mix`, :func:`mixed_cross_entropy`) are
shared with the ``fan`` method, which runs them on a CBAM-refined feature map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.distributed as torch_dist
from torch import nn

from ferkit.errors import ConfigError
from ferkit.losses import weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


class MapLinear(nn.Linear):
    """``Linear(C * h * w, out)`` over a flattened feature map whose ``h * w`` may be unknown.

    With ``feature_hw=None`` the layer starts at ``C * 1 * 1`` inputs and takes its real size from
    the first map it sees (weights re-initialised in place, so the optimiser, built before the
    first step, keeps the same parameter object); loading a state dict also fixes the size. After
    that a map of another size is an error. Under DDP the size must be given (``feature_hw``).
    """

    def __init__(self, channels: int, out_features: int, feature_hw: int | None) -> None:
        super().__init__(channels * (feature_hw or 1) ** 2, out_features)
        self._fixed = feature_hw is not None

    def _resize(self, in_features: int) -> None:
        weight = torch.empty(self.out_features, in_features, dtype=self.weight.dtype,
                             device=self.weight.device)
        self.weight.data, self.in_features = weight, in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C*h*w]
        if x.shape[1] != self.in_features:
            if self._fixed:
                raise ConfigError(
                    f"uncertainty head expects a flattened map of {self.in_features} values, got "
                    f"{x.shape[1]}: the input size changed since the head was built. Use the "
                    "training image size, or set method.params.feature_hw.")
            if torch_dist.is_available() and torch_dist.is_initialized():
                raise ConfigError("under DDP set method.params.feature_hw (the backbone's feature "
                                 "map side, e.g. 7 for ResNet at 224x224, 4 at 112x112)")
            self._resize(x.shape[1])
            self.reset_parameters()
        self._fixed = True
        return super().forward(x)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        weight = state_dict.get(prefix + "weight")
        if weight is not None and not self._fixed and weight.shape != self.weight.shape:
            self._resize(weight.shape[1])
        self._fixed = self._fixed or weight is not None
        super()._load_from_state_dict(state_dict, prefix, *args)


def _branch(channels: int, embed_dim: int, dropout: float, feature_hw: int | None) -> nn.Module:
    # BN eps 2e-5 as in the authors' code.
    return nn.Sequential(nn.BatchNorm2d(channels, eps=2e-5, affine=False), nn.Dropout(dropout),
                         nn.Flatten(), MapLinear(channels, embed_dim, feature_hw),
                         nn.BatchNorm1d(embed_dim, eps=2e-5))


class UncertaintyHeads(nn.Module):
    """The ``mu`` and ``log_var`` embeddings of a feature map ``[B, C, h, w]`` -> ``[B, D]`` each.

    Each is ``BN2d(C, affine=False) -> Dropout -> flatten -> Linear(C*h*w, D) -> BN1d(D)``.
    """

    def __init__(self, channels: int, embed_dim: int = 64, dropout: float = 0.4,
                 feature_hw: int | None = None) -> None:
        super().__init__()
        self.mu = _branch(channels, embed_dim, dropout, feature_hw)
        self.log_var = _branch(channels, embed_dim, dropout, feature_hw)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(feature_map), self.log_var(feature_map)


def relative_mix(
    mu: torch.Tensor, uncertainty: torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``z_i = u_i/(u_i+u_j) * mu_i + u_j/(u_i+u_j) * mu_j`` with ``j = partner[i]``.

    Args:
        mu: ``[B, D]`` embeddings; uncertainty: ``[B]`` positive u; partner: ``[B]`` indices.

    Returns:
        ``z`` ``[B, D]`` and the own-sample weight ``u_i / (u_i + u_j)`` ``[B]``.
    """
    own = uncertainty / (uncertainty + uncertainty[partner])
    return own[:, None] * mu + (1 - own)[:, None] * mu[partner], own


def mixed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, partner: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """RUL's add-up loss ``0.5 * CE(logits, y_i) + 0.5 * CE(logits, y_j)`` (optionally weighted)."""
    return 0.5 * (weighted_cross_entropy(logits, labels, class_weights)
                  + weighted_cross_entropy(logits, labels[partner], class_weights))


@METHODS.register("rul")
class RelativeUncertaintyLearning(Method):
    """RUL: mix each sample's embedding with a random partner's, weighted by relative uncertainty.

    ``mu_i, log_var_i = heads(F_i)``, ``u_i = mean_d exp(log_var_i)``, ``j = randperm(B)[i]``,
    ``z_i = u_i/(u_i+u_j) mu_i + u_j/(u_i+u_j) mu_j``,
    ``L = 0.5 CE(fc(z_i), y_i) + 0.5 CE(fc(z_i), y_j)``; at test ``logits = fc(mu)``.

    Details taken from the authors' code (no switch: we know of no place where the paper
    contradicts it): the 0.5/0.5 add-up loss, BN eps 2e-5, element-wise Dropout on the map, the
    partner drawn with ``torch.randperm`` (the global RNG, which the engine seeds per epoch; a
    sample can be its own partner), and a 10x learning rate for ``fc`` only.

    ``model.head`` (linear on the pooled features) is not part of RUL and is frozen
    (``requires_grad=False``), so ``Predictor.cams`` shows an untrained head for RUL models;
    evaluation and inference go through :meth:`predict`.

    Args:
        embed_dim: D, width of ``mu`` / ``log_var`` (64).
        dropout: dropout inside both heads (0.4).
        feature_hw: side of the backbone's feature map (7 for ResNet at 224, 4 at 112). ``None``
            takes it from the first batch (not under DDP, where it must be given).
        fc_lr_mult: learning-rate multiplier of the final ``fc`` (10: 2e-3 vs 2e-4).
    """

    head_cams = False  # it classifies with ``fc`` on the mixed features, not ``model.head``
    per_image_train_logits = False  # each training logit row mixes two images' features
    param_constraints: ClassVar[dict[str, Constraint]] = {
        "dropout": Range(0, 1, high_open=True),
        "embed_dim": Range(1),
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        embed_dim: int = 64, dropout: float = 0.4, feature_hw: int | None = None,
        fc_lr_mult: float = 10.0,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.heads = UncertaintyHeads(model.num_features, embed_dim, dropout, feature_hw)
        self.fc = nn.Linear(embed_dim, model.num_classes)
        self.fc_lr_mult = fc_lr_mult
        model.head.requires_grad_(False)
        self.register_buffer("class_weights", None, persistent=False)

    def refine(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Hook between backbone and heads (identity here; CBAM in ``fan``)."""
        return feature_map

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu``, ``log_var`` ``[B, D]`` of a batch of images."""
        return self.heads(self.refine(self.model.backbone(images)))

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        labels = batch["label"]
        mu, log_var = self.embed(batch["image"])
        uncertainty = log_var.float().exp().mean(dim=1)  # [B]
        partner = torch.randperm(labels.shape[0], device=labels.device)
        z, own = relative_mix(mu.float(), uncertainty, partner)
        logits = self.fc(z)
        loss = mixed_cross_entropy(logits, labels, partner, self.class_weights)
        return StepOutput(loss, logits, {"l_cls": loss.detach(),
                                         "uncertainty": uncertainty.detach().mean(),
                                         "mix_weight": own.detach().mean()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """``fc(mu)``: the uncertainty branch and the mixing are training-only."""
        mu, _ = self.embed(images)
        return self.fc(mu)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        fc_ids = {id(p) for p in self.fc.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in fc_ids]
        return [{"params": rest, "lr": lr},
                {"params": list(self.fc.parameters()), "lr": lr * self.fc_lr_mult}]
