"""Soft targets: re-balanced smooth labels (MEK) and cross-entropy with a target distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_i ( -sum_l targets[i, l] * log softmax(logits)[i, l] )``; logits, targets ``[N, K]``."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()

SMOOTH_FORMS = ("paper", "official")


def rebalanced_smooth_targets(
    labels: torch.Tensor, class_weights: torch.Tensor, alpha: float, form: str = "paper"
) -> torch.Tensor:
    """Re-balanced smooth labels ``[N, K]`` of MEK (Zhang et al., NeurIPS 2023).

    Args:
        labels: ``[N]`` int64.
        class_weights: ``[K]`` re-balancing weights B.
        alpha: smoothing mass.
        form: "paper": ``(1 - alpha) * onehot + alpha * B_l / K`` (rows sum to 1 when B sums to K);
            "official": the target class gets ``1 - alpha`` and ``alpha`` is spread over the K - 1
            other classes in proportion to B, renormalised among them (rows sum to 1 exactly).
    """
    num_classes = class_weights.numel()
    onehot = F.one_hot(labels, num_classes).to(class_weights.dtype)
    weights = class_weights.to(labels.device)
    if form == "paper":
        return (1 - alpha) * onehot + alpha * weights[None, :] / num_classes
    if form == "official":
        others = weights[None, :] * (1 - onehot)  # [N, K], zero at the label
        return (1 - alpha) * onehot + alpha * others / others.sum(dim=1, keepdim=True)
    raise ValueError(f"unknown smooth-label form '{form}'; use {' or '.join(SMOOTH_FORMS)}")
