"""Attention consistency between an image's class activation maps and its transformed view's.

One definition, shared by EAC (unweighted mean) and MEK (class-weighted, two reductions).
"""

from __future__ import annotations

import torch


def attention_consistency(
    att_maps: torch.Tensor,
    att_maps_aligned: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Squared difference of two aligned sets of CAMs, ``[N, K, h, w]`` each.

    ``att_maps_aligned`` must already be mapped back onto the grid of ``att_maps`` (for the flip:
    ``flip_x`` of the flipped view's maps).

    Args:
        class_weights: ``[K]`` weights B, or None (all ones).
        reduction:
            "mean": ``mean_{i,l,y,x} (B_l * (A - A~))^2`` (EAC with B = 1; MEK paper preset, where
            the maps are weighted before the difference: M = B * A).
            "class_sum": ``mean_i sum_l B_l * mean_{y,x} (A - A~)^2`` (MEK official code).
    """
    diff = att_maps.float() - att_maps_aligned.float()
    if reduction == "mean":
        if class_weights is not None:
            diff = diff * class_weights.to(diff.device).view(1, -1, 1, 1)
        return diff.pow(2).mean()
    if reduction == "class_sum":
        per_class = diff.pow(2).mean(dim=(2, 3))  # [N, K]
        if class_weights is not None:
            per_class = per_class * class_weights.to(diff.device).view(1, -1)
        return per_class.sum(dim=1).mean()
    raise ValueError(f"unknown consistency reduction '{reduction}'; use mean or class_sum")


def flip_x(maps: torch.Tensor) -> torch.Tensor:
    """Mirror ``[..., h, w]`` maps along the width (exact inverse of a horizontal image flip)."""
    return maps.flip(-1)
