"""Self-Cure Network (Wang, Peng, Yang, Meng and Qiao, "Suppressing Uncertainties for Large-Scale
Facial Expression Recognition", CVPR 2020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.distributed as torch_dist
from torch import nn

from ferkit.losses import weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range

RELABEL_GROUPS = ("low", "all")


def split_by_attention(attention: torch.Tensor, high_ratio: float) -> torch.Tensor:
    """Boolean mask ``[B]`` of the high-importance group: the ``int(B * high_ratio)`` largest."""
    num_high = int(attention.shape[0] * high_ratio)
    high = torch.zeros_like(attention, dtype=torch.bool)
    high[attention.argsort(descending=True)[:num_high]] = True
    return high


def rank_regularization(attention: torch.Tensor, high_ratio: float = 0.7,
                        margin: float = 0.15) -> torch.Tensor:
    """``max(0, margin - (mean(alpha_high) - mean(alpha_low)))``; 0 when a group is empty.

    Args:
        attention: ``[B]`` importance weights alpha in (0, 1).
        high_ratio: fraction of the batch in the high group (beta = 0.7).
        margin: margin1 (0.15).
    """
    high = split_by_attention(attention, high_ratio)
    if high.all() or not high.any():
        return attention.sum() * 0  # keeps the graph (and the dtype) with a zero value
    gap = attention[high].mean() - attention[~high].mean()
    return torch.clamp(margin - gap, min=0)


def _all_gather(values: torch.Tensor) -> torch.Tensor:
    """Concatenate ``values`` from every DDP rank (identity when not distributed)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return values
    gathered = [torch.empty_like(values) for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(gathered, values)
    return torch.cat(gathered)


@METHODS.register("scn")
class SelfCureNetwork(Method):
    """SCN: self-attention importance weighting, rank regularisation and relabelling.

    ``alpha_i = sigmoid(w_a . f_i + b_a)`` on the pooled features ``f_i = GAP(F_i)``,
    ``logits_i = alpha_i * head(f_i)``,
    ``L = mean_i CE(logits_i, y~_i) + max(0, margin1 - (mean_{high} alpha - mean_{low} alpha))``
    where the high group is the top ``high_ratio`` (70%) of alpha in the batch and ``y~`` are the
    current (possibly relabelled) labels. From epoch ``relabel_epoch`` (0-based, as the authors'
    ``i >= relabel_epoch``), a sample whose ``max_l p_l - p_{y~} > margin2`` on the weighted logits
    is relabelled to ``argmax_l p_l`` for all later epochs.

    Relabels live in the persistent buffer ``labels`` ``[num_samples]`` (-1 = use the dataset
    label), indexed by ``batch["index"]``, so checkpoints carry them; under DDP they are gathered
    from all ranks so every replica holds the same relabels.

    Paper vs official code, each a switch:

    - ``relabel_group="low"`` (default, the paper: only low-importance samples are relabelled) or
      ``"all"`` (the authors' code relabels any sample in the batch).
    - ``weighted_predict=True`` (default, the authors' code: test logits are ``alpha * head(f)``)
      or False (``head(f)``, i.e. ``model(images).logits``). ``alpha > 0`` is one scalar per
      image, so predictions and accuracy are the same either way; only probabilities differ.

    The attention sees the pooled features before the classifier dropout (``model.dropout``);
    the authors apply one dropout to both (identical with the default ``drop_rate=0``).

    Args:
        high_ratio: fraction of each batch in the high-importance group (0.7).
        margin1: rank-regularisation margin (0.15; 0.07 is the value given for batch size 64).
        margin2: relabelling margin (0.2).
        relabel_epoch: first (0-based) epoch that relabels (10).
        relabel_group: "low" or "all".
        weighted_predict: use ``alpha * head(f)`` at test.
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "high_ratio": Range(0, 1, low_open=True, high_open=True),
        "relabel_group": RELABEL_GROUPS,
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        high_ratio: float = 0.7, margin1: float = 0.15, margin2: float = 0.2,
        relabel_epoch: int = 10, relabel_group: str = "low", weighted_predict: bool = True,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.high_ratio, self.margin1, self.margin2 = high_ratio, margin1, margin2
        self.relabel_epoch, self.relabel_group = relabel_epoch, relabel_group
        self.weighted_predict = weighted_predict
        self.attention = nn.Sequential(nn.Linear(model.num_features, 1), nn.Sigmoid())
        self.register_buffer("labels", torch.full((num_samples,), -1, dtype=torch.long))
        self.relabel_active = relabel_epoch <= 0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.relabel_active = epoch >= self.relabel_epoch

    def current_labels(self, index: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The labels in force: the relabel where one was made, else the dataset label."""
        relabels = self.labels[index]
        return torch.where(relabels >= 0, relabels, labels)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        out = self.model(batch["image"])
        attention = self.attention(out.features.float()).squeeze(1)  # [B]
        logits = attention[:, None] * out.logits.float()  # [B, K]
        targets = self.current_labels(batch["index"], batch["label"])
        l_cls = weighted_cross_entropy(logits, targets)
        l_rr = rank_regularization(attention, self.high_ratio, self.margin1)
        relabelled = (self._relabel(logits.detach(), targets, batch["index"], attention)
                      if self.relabel_active else torch.zeros((), device=logits.device))
        logs = {"l_cls": l_cls.detach(), "l_rr": l_rr.detach(), "alpha": attention.detach().mean(),
                "relabelled": relabelled}
        return StepOutput(l_cls + l_rr, logits, logs)

    @torch.no_grad()
    def _relabel(self, logits: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                 attention: torch.Tensor) -> torch.Tensor:
        """Relabel samples with ``p_max - p_label > margin2``; returns how many (this rank)."""
        probs = logits.float().softmax(dim=1)
        p_max, predicted = probs.max(dim=1)
        p_label = probs.gather(1, targets[:, None]).squeeze(1)
        change = p_max - p_label > self.margin2
        if self.relabel_group == "low":
            change &= ~split_by_attention(attention.detach(), self.high_ratio)
        proposal = torch.where(change, predicted, torch.full_like(predicted, -1))
        all_index, all_proposal = _all_gather(index), _all_gather(proposal)
        keep = all_proposal >= 0
        self.labels[all_index[keep]] = all_proposal[keep]
        return change.sum().float()

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        if not self.weighted_predict:
            return out.logits
        return self.attention(out.features.float()).to(out.logits.dtype) * out.logits
