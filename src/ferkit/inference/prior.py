"""The deployment prior: post-hoc logit adjustment (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021).

A classifier trained on an imbalanced set learns ``p(y | x)`` under the training prior
``p_train(y)``. For a deployment where classes occur with ``p_target(y)``, Bayes' rule gives

    adjusted_logits = logits - tau * log p_train + tau * log p_target

``tau = 1`` is the exact correction for a calibrated model; other values trade the two.
``prior="train"`` changes nothing; ``"uniform"`` targets equal class frequencies (what mean class
accuracy rewards); a sequence gives explicit target frequencies (normalised to sum to 1).
``"default"`` (what the predictor uses unless told otherwise) is the prior and strength the
checkpoint recommends in its metadata (``deploy_prior``, chosen on validation data by
``benchmarks/prior_table.py``), and ``"train"`` for a checkpoint that recommends none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ferkit.errors import UsageError

Prior = str | Sequence[float]
MAX_TAU = 10.0  # tau in [0, MAX_TAU]: 1 is the exact correction; far above it means nothing
DEFAULT = "default"  # the checkpoint's recommended prior (metadata ``deploy_prior``)
NAMES = (DEFAULT, "train", "uniform")


def check_tau(tau: float) -> float:
    """``tau`` if it is a finite number in ``[0, MAX_TAU]``.

    Raises:
        UsageError: naming the value and the range.
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 <= tau <= MAX_TAU:
        raise UsageError(f"tau must be a number in [0, {MAX_TAU:g}] (1 = the exact prior "
                         f"correction, 0 = none), got {tau}")
    return float(tau)


def resolve_prior(prior: Prior, tau: float | None, recommended: Mapping[str, Any] | None
                  ) -> tuple[Prior, float]:
    """The (prior, tau) to apply: ``"default"`` becomes the checkpoint's recommendation
    (``recommended``, its metadata's ``deploy_prior``) or ``"train"``; ``tau=None`` becomes the
    recommendation's strength for the default and 1 for any other prior.

    Raises:
        UsageError: a tau out of range.
    """
    if isinstance(prior, str) and prior == DEFAULT:
        if recommended is None:
            return "train", check_tau(1.0 if tau is None else tau)
        chosen = recommended["prior"]
        chosen = chosen if isinstance(chosen, str) else [float(v) for v in chosen]
        return chosen, check_tau(float(recommended["tau"]) if tau is None else tau)
    return prior, check_tau(1.0 if tau is None else tau)


def log_target_prior(prior: Prior, train_counts: Sequence[float]) -> torch.Tensor:
    """The log of the target class distribution ``[K]`` (float64), computed in log space so
    that any finite positive values work (no overflow of their sum, no log of 0).

    Raises:
        UsageError: unknown name, wrong number of values, or a value that is not a finite
            positive number.
    """
    counts = torch.as_tensor(list(train_counts), dtype=torch.float64)
    if counts.ndim != 1 or not (torch.isfinite(counts) & (counts > 0)).all():
        raise ValueError(f"train_counts must be K positive counts, got {list(train_counts)}")
    if isinstance(prior, str):
        if prior == "train":
            values = counts
        elif prior == "uniform":
            values = torch.ones_like(counts)
        else:
            raise UsageError(f"prior '{prior}' unknown; use 'default', 'train', 'uniform' or "
                             f"{len(counts)} comma-separated class frequencies (e.g. 1,1,2,...)")
    else:
        values = torch.as_tensor(list(prior), dtype=torch.float64)
        if values.shape != counts.shape or not (torch.isfinite(values) & (values > 0)).all():
            raise UsageError(f"prior needs {len(counts)} finite positive values (one per class), "
                             f"got {list(prior)}")
    log_values = values.log()
    return log_values - torch.logsumexp(log_values, dim=0)


def target_prior(prior: Prior, train_counts: Sequence[float]) -> torch.Tensor:
    """The target class distribution ``[K]`` for a prior given by name or values (see
    :func:`log_target_prior`)."""
    return log_target_prior(prior, train_counts).exp()


def adjust_logits(
    logits: torch.Tensor, train_counts: Sequence[float], prior: Prior = "train", tau: float = 1.0
) -> torch.Tensor:
    """``logits - tau * log p_train + tau * log p_target``.

    Args:
        logits: ``[B, K]``.
        train_counts: training images per class ``[K]`` (checkpoint ``meta["class_counts"]``).
        prior: "train" (no change), "uniform", or K target frequencies.
        tau: strength of the adjustment, in ``[0, MAX_TAU]``.

    Returns:
        ``[B, K]`` in the dtype of ``logits``.
    """
    if logits.ndim != 2 or logits.shape[1] != len(train_counts):
        raise ValueError(f"logits [B, K] with K = {len(train_counts)} classes expected, got shape "
                         f"{tuple(logits.shape)}")
    tau = check_tau(tau)
    shift = tau * (log_target_prior(prior, train_counts)
                   - log_target_prior("train", train_counts))
    return logits + shift.to(logits.dtype).to(logits.device)


def parse_prior(text: str | None, num_classes: int | None = None) -> Prior:
    """The written form (``ferkit predict --prior``, the web app's prior field): "default" (also
    for nothing: the checkpoint's recommendation), "train", "uniform" or comma-separated positive
    class frequencies, ``num_classes`` of them when that is given.

    Raises:
        UsageError: anything else, in one line saying what is allowed.
    """
    text = (text or DEFAULT).strip()
    if text in NAMES:
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if (not values or len(values) != (num_classes or len(values))
            or not all(math.isfinite(v) and v > 0 for v in values)):
        count = f"{num_classes} " if num_classes else ""
        raise UsageError(f"prior '{text}' is not valid: use 'default', 'train', 'uniform' or "
                         f"{count}finite positive comma-separated class frequencies")
    return values
