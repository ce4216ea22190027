"""Class weights (the one definition every method shares) and the class-balanced losses.

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ferkit.errors import DatasetError


def check_class_counts(
    class_counts: Sequence[int] | torch.Tensor, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """Validate training class counts and return them as a float64 tensor ``[K]``.

    Raises:
        DatasetError: a class has no training images (its weight would be infinite).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    empty = [int(i) for i in torch.nonzero(counts <= 0).flatten()]
    if empty:
        names = [class_names[i] if class_names else f"class {i}" for i in empty]
        raise DatasetError(
            f"no training images for {', '.join(names)} (class counts {counts.long().tolist()}): "
            "class-balanced weights would be infinite. Use a training set that contains every "
            "class, or set data.num_classes to drop the class (e.g. 7 instead of 8 for contempt)."
        )
    return counts


def class_weights(
    class_counts: Sequence[int] | torch.Tensor,
    kind: str = "effective",
    beta: float = 0.9999,
    normalize: str = "sum",
    scale: float = 1.0,
) -> torch.Tensor:
    """Per-class weights ``[K]`` (float32) from training counts.

    Args:
        class_counts: images per class in the training set actually used.
        kind: "effective" (Cui et al.: (1 - beta) / (1 - beta^n_l)), "inverse" (1 / n_l),
            "sqrt_inverse" (1 / sqrt(n_l)) or "uniform".
        beta: effective-number hyper-parameter in [0, 1).
        normalize: "sum" (weights sum to K, as Cui et al.), "mean" (mean 1, same as "sum"),
            "ratio" (scale * N_train / n_l style: raw weight times N_train, no renormalisation),
            or "none" (raw values).
        scale: multiplier applied last (the official MEK preset uses 0.1 with "ratio").

    Returns:
        float32 ``[K]``.
    """
    counts = check_class_counts(class_counts)
    if kind == "effective":
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        raw = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    elif kind == "inverse":
        raw = 1 / counts
    elif kind == "sqrt_inverse":
        raw = counts.rsqrt()
    elif kind == "uniform":
        raw = torch.ones_like(counts)
    else:
        raise ValueError(f"unknown class weight kind '{kind}'; use effective, inverse, "
                         "sqrt_inverse or uniform")
    if normalize in ("sum", "mean"):
        raw = raw * len(counts) / raw.sum()
    elif normalize == "ratio":
        raw = raw * counts.sum()
    elif normalize != "none":
        raise ValueError(f"unknown normalize '{normalize}'; use sum, mean, ratio or none")
    return (raw * scale).float()


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean over the batch of ``w_{y_i} * CE_i`` (divides by N, not by sum of weights).

    Args:
        logits: ``[N, K]``; labels: ``[N]`` int64; class_weights: ``[K]`` or None.
    """
    per_sample = F.cross_entropy(logits.float(), labels, reduction="none",
                                 label_smoothing=label_smoothing)
    if class_weights is not None:
        per_sample = per_sample * class_weights.to(per_sample.device)[labels]
    return per_sample.mean()


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax focal loss ``-w_y (1 - p_y)^gamma log p_y``, mean over the batch."""
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    per_sample = -((1 - log_p.exp()).clamp(min=0) ** gamma) * log_p
    if class_weights is not None:
        per_sample = per_sample * class_weights.to(per_sample.device)[labels]
    return per_sample.mean()


def sigmoid_class_balanced_loss(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor, gamma: float = 0.0
) -> torch.Tensor:
    """Cui et al.'s sigmoid variant: one-vs-all BCE (optionally focal), weighted by w_{y_i}.

    Summed over classes and averaged over the batch.
    """
    logits = logits.float()
    onehot = F.one_hot(labels, logits.shape[1]).float()
    bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_t = onehot * p + (1 - onehot) * (1 - p)
        bce = bce * (1 - p_t) ** gamma
    return (bce.sum(1) * class_weights.to(bce.device)[labels]).mean()
