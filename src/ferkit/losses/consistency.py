"""Attention consistency between an image's class activation maps and its transformed view's.

One definition, shared by EAC (unweighted mean) and MEK (class-weighted, two reductions).
"""

from __future__ import annotations

import torch

ERRORS = ("squared", "absolute")
REDUCTIONS = ("mean", "class_sum")


def _error(diff: torch.Tensor, error: str) -> torch.Tensor:
    return diff.pow(2) if error == "squared" else diff.abs()


def attention_consistency(
    att_maps: torch.Tensor,
    att_maps_aligned: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    reduction: str = "mean",
    error: str = "squared",
) -> torch.Tensor:
    """Squared (or absolute) difference of two aligned sets of CAMs, ``[N, K, h, w]`` each.

    ``att_maps_aligned`` must already be mapped back onto the grid of ``att_maps`` (for the flip:
    ``flip_x`` of the flipped view's maps).

    Args:
        class_weights: ``[K]`` weights B, or None (all ones).
        reduction:
            "mean": ``mean_{i,l,y,x} (B_l * (A - A~))^2`` (EAC with B = 1; MEK paper preset, where
            the maps are weighted before the difference: M = B * A).
            "class_sum": ``mean_i sum_l B_l * mean_{y,x} (A - A~)^2`` (MEK official code).
        error: "squared" (``(.)^2``: both official codes) or "absolute" (``|.|``: the literal
            reading of MEK's Eq. 5, the L2 norm of a scalar difference), replacing ``^2`` above.
    """
    if error not in ERRORS:
        raise ValueError(f"unknown consistency error '{error}'; use {' or '.join(ERRORS)}")
    diff = att_maps.float() - att_maps_aligned.float()
    if reduction == "mean":
        if class_weights is not None:
            diff = diff * class_weights.to(diff.device).view(1, -1, 1, 1)
        return _error(diff, error).mean()
    if reduction == "class_sum":
        per_class = _error(diff, error).mean(dim=(2, 3))  # [N, K]
        if class_weights is not None:
            per_class = per_class * class_weights.to(diff.device).view(1, -1)
        return per_class.sum(dim=1).mean()
    raise ValueError(f"unknown consistency reduction '{reduction}'; use {' or '.join(REDUCTIONS)}")


def flip_x(maps: torch.Tensor) -> torch.Tensor:
    """Mirror ``[..., h, w]`` maps along the width (exact inverse of a horizontal image flip)."""
    return maps.flip(-1)
