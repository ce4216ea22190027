"""Class activation maps for all classes (shared by EAC, MEK and visualisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_activation_maps(
    feature_map: torch.Tensor, head_weight: torch.Tensor, detach_head: bool = True
) -> torch.Tensor:
    """``A[i, l, y, x] = sum_c W[l, c] * F[i, c, y, x]``: no bias, no ReLU, no normalisation.

    Args:
        feature_map: ``[B, C, h, w]`` last-stage features.
        head_weight: ``[K, C]`` classifier weight.
        detach_head: stop gradients into the head (the authors' code does; the consistency loss
            then trains the features only).

    Returns:
        ``[B, K, h, w]``.
    """
    weight = head_weight.detach() if detach_head else head_weight
    return torch.einsum("bchw,kc->bkhw", feature_map, weight.to(feature_map.dtype))


def normalized_cams(cams: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Min-max normalise each map to [0, 1] (for display), optionally upsampled to ``size``."""
    if size is not None:
        cams = F.interpolate(cams.float(), size=size, mode="bilinear", align_corners=False)
    low = cams.amin(dim=(-2, -1), keepdim=True)
    high = cams.amax(dim=(-2, -1), keepdim=True)
    return (cams - low) / (high - low).clamp(min=1e-8)
