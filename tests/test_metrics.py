import math

import torch

from ferkit.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    markdown_report,
    mean_class_accuracy,
    per_class_accuracy,
    per_class_report,
)


def _example() -> torch.Tensor:
    # true: 0 0 0 0 1 1 2 2 2 2 ; pred: 0 0 0 1 1 2 2 2 0 2
    targets = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 0, 2])
    return confusion_matrix(preds, targets, 3)


def test_confusion_rows_are_true_classes() -> None:
    assert _example().tolist() == [[3, 1, 0], [0, 1, 1], [1, 0, 3]]


def test_accuracies_by_hand() -> None:
    cm = _example()
    assert accuracy(cm) == 7 / 10
    assert per_class_accuracy(cm).tolist() == [0.75, 0.5, 0.75]
    assert math.isclose(mean_class_accuracy(cm), (0.75 + 0.5 + 0.75) / 3)


def test_macro_f1_by_hand() -> None:
    cm = _example()
    # class 0: tp 3, fp 1, fn 1 -> 6/8; class 1: tp 1, fp 1, fn 1 -> 2/4; class 2: tp 3, fp 1, fn 1
    assert math.isclose(macro_f1(cm), (0.75 + 0.5 + 0.75) / 3)


def test_absent_class_is_left_out_of_the_mean() -> None:
    cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 3)
    recalls = per_class_accuracy(cm)
    assert math.isnan(recalls[2].item())
    assert mean_class_accuracy(cm) == (0.5 + 1.0) / 2
    report = per_class_report(cm, ["a", "b", "c"])
    assert report["per_class_accuracy"]["c"] is None
    assert "n/a" in markdown_report(report)


def test_report_and_markdown() -> None:
    report = per_class_report(_example(), ["happy", "sad", "fear"])
    assert report["num_samples"] == 10 and report["support"] == {"happy": 4, "sad": 2, "fear": 4}
    text = markdown_report(report, "t")
    assert "| 70.00 | 66.67 | 66.67 |" in text
    assert "| happy | 3 | 1 | 0 |" in text
