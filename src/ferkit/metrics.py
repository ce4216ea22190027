"""Metrics for imbalanced classification, all from the confusion matrix.

Conventions: ``confusion[t, p]`` counts samples of true class t predicted as p. Per-class accuracy
is recall. Mean class accuracy averages over classes that have test samples (a class absent from
the evaluation set has no defined recall and is left out, and reported as such).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, K]`` int64 counts; rows are true classes, columns predictions."""
    index = targets.long().flatten() * num_classes + preds.long().flatten()
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Recall per class ``[K]`` (float64); NaN for a class with no samples."""
    support = confusion.sum(dim=1).double()
    correct = confusion.diagonal().double()
    return torch.where(support > 0, correct / support.clamp(min=1), torch.nan)


def accuracy(confusion: torch.Tensor) -> float:
    """Overall accuracy: correct / total."""
    total = confusion.sum().item()
    return confusion.diagonal().sum().item() / total if total else float("nan")


def mean_class_accuracy(confusion: torch.Tensor) -> float:
    """Mean of per-class recalls over classes present in the evaluation set."""
    recalls = per_class_accuracy(confusion)
    return recalls[~recalls.isnan()].mean().item()


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean of per-class F1 over classes with samples (F1 = 0 where never predicted)."""
    tp = confusion.diagonal().double()
    support = confusion.sum(dim=1).double()
    predicted = confusion.sum(dim=0).double()
    f1 = torch.where(support + predicted > 0, 2 * tp / (support + predicted).clamp(min=1), 0.0)
    return f1[support > 0].mean().item()


def per_class_report(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
    """Everything for one evaluation: overall, mean class, macro-F1, per-class, confusion."""
    recalls = per_class_accuracy(confusion)
    return {
        "accuracy": accuracy(confusion),
        "mean_class_accuracy": mean_class_accuracy(confusion),
        "macro_f1": macro_f1(confusion),
        "per_class_accuracy": {
            name: (None if torch.isnan(r) else r.item()) for name, r in zip(class_names, recalls)
        },
        "support": dict(zip(class_names, confusion.sum(dim=1).tolist())),
        "num_samples": int(confusion.sum().item()),
        "class_names": list(class_names),
        "confusion_matrix": confusion.tolist(),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def markdown_report(report: dict[str, Any], title: str = "Evaluation") -> str:
    """A markdown summary table, per-class accuracy and the confusion matrix."""
    names = report["class_names"]
    lines = [
        f"## {title}", "",
        f"{report['num_samples']} images.", "",
        "| overall acc | mean class acc | macro-F1 |", "|---|---|---|",
        f"| {_pct(report['accuracy'])} | {_pct(report['mean_class_accuracy'])} "
        f"| {_pct(report['macro_f1'])} |", "",
        "| class | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| accuracy (%) | " + " | ".join(_pct(report["per_class_accuracy"][n]) for n in names)
        + " |",
        "| support | " + " | ".join(str(report["support"][n]) for n in names) + " |", "",
        "Confusion matrix (rows: true class, columns: predicted):", "",
        "| true \\ pred | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
