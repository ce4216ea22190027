import math

import pytest
import torch
import torch.nn.functional as F

from ferkit.errors import DatasetError
from ferkit.losses import (
    check_class_counts,
    class_weights,
    focal_loss,
    rebalanced_smooth_targets,
    soft_cross_entropy,
    weighted_cross_entropy,
)
from ferkit.methods import create_method
from ferkit.models import build_classifier


def test_effective_number_weights_by_hand() -> None:
    counts, beta = [100, 10, 1], 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    expected = [3 * r / sum(raw) for r in raw]
    assert class_weights(counts, "effective", beta).tolist() == pytest.approx(expected, rel=1e-6)
    assert class_weights(counts, "effective", beta).sum().item() == pytest.approx(3.0)


def test_inverse_frequency_variants() -> None:
    counts = [300, 100, 50]
    ratio = class_weights(counts, "inverse", normalize="ratio", scale=0.1)
    assert ratio.tolist() == pytest.approx([0.1 * 450 / 300, 0.1 * 450 / 100, 0.1 * 450 / 50])
    mean_one = class_weights(counts, "inverse", normalize="mean")
    assert mean_one.mean().item() == pytest.approx(1.0)
    assert (mean_one[2] / mean_one[0]).item() == pytest.approx(6.0)


def test_zero_count_class_is_an_error() -> None:
    with pytest.raises(DatasetError, match="no training images for contempt"):
        check_class_counts([5, 0], ["happiness", "contempt"])
    with pytest.raises(DatasetError, match="no training images for class 1"):
        class_weights([5, 0])


def test_weighted_cross_entropy_divides_by_n() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    weights = torch.tensor([0.5, 2.0])
    ce = [-math.log(math.exp(2) / (math.exp(2) + 1)), -math.log(math.e / (1 + math.e)), math.log(2)]
    expected = (0.5 * ce[0] + 2.0 * ce[1] + 0.5 * ce[2]) / 3
    assert weighted_cross_entropy(logits, labels, weights).item() == pytest.approx(expected)


def test_focal_loss_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    p = math.exp(2) / (math.exp(2) + 1)
    expected = -((1 - p) ** 2) * math.log(p)
    assert focal_loss(logits, torch.tensor([0]), 2.0).item() == pytest.approx(expected, rel=1e-5)


def test_soft_cross_entropy_matches_label_smoothing() -> None:
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 4])
    targets = 0.9 * F.one_hot(labels, 5) + 0.1 / 5
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def test_smooth_target_rows_sum_to_one() -> None:
    weights = class_weights([100, 20, 5], "effective", 0.9999)
    for form in ("paper", "official"):
        rows = rebalanced_smooth_targets(torch.tensor([0, 1, 2]), weights, 0.2, form)
        assert rows.sum(1).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


def _batch() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"image": torch.randn(6, 3, 32, 32, generator=gen), "label": torch.tensor([0, 1, 2, 0, 0, 1]),
            "index": torch.arange(6)}


def test_cb_method_loss_equals_hand_weighted_ce() -> None:
    torch.manual_seed(0)
    counts = [50, 10, 2]
    method = create_method("cb", build_classifier("tiny_cnn", 3, width=4), counts, 62,
                           {"beta": 0.999})
    batch = _batch()
    out = method(batch)
    beta = 0.999
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in counts])
    w = raw * 3 / raw.sum()
    ce = F.cross_entropy(out.logits.detach(), batch["label"], reduction="none")
    assert out.loss.item() == pytest.approx((w[batch["label"]] * ce).mean().item(), rel=1e-5)


def test_ce_method_label_smoothing_and_soft_labels() -> None:
    torch.manual_seed(0)
    method = create_method("ce", build_classifier("tiny_cnn", 3, width=4), [5, 5, 5], 15,
                           {"label_smoothing": 0.1})
    batch = _batch()
    out = method(batch)
    expected = F.cross_entropy(out.logits.detach(), batch["label"], label_smoothing=0.1)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    batch["soft_label"] = torch.full((6, 3), 1 / 3)
    out = method(batch)
    expected = -(F.log_softmax(out.logits.detach(), 1).mean(1)).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
