"""Post-hoc logit adjustment against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ferkit.inference.prior import adjust_logits, parse_prior, resolve_prior, target_prior


def test_train_prior_changes_nothing() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(adjust_logits(logits, [10, 30, 60], "train"), logits)


def test_uniform_by_hand() -> None:
    # p_train = (0.1, 0.3, 0.6); uniform target 1/3 each; shift_k = log(1/3) - log(p_k).
    logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    out = adjust_logits(logits, [10, 30, 60], "uniform")
    shift = [math.log((1 / 3) / 0.1), math.log((1 / 3) / 0.3), math.log((1 / 3) / 0.6)]
    expected = torch.tensor([shift, [1 + shift[0], -1 + shift[1], 2 + shift[2]]])
    torch.testing.assert_close(out, expected)
    # The rare class now wins on equal logits: shift = (1.2040, 0.1054, -0.5878).
    assert out[0].argmax() == 0
    assert out[0, 0].item() == pytest.approx(1.20397, abs=1e-5)


def test_explicit_values_and_tau() -> None:
    logits = torch.zeros(1, 2)
    # p_train = (0.2, 0.8), target (3, 1) -> (0.75, 0.25); tau 0.5.
    out = adjust_logits(logits, [20, 80], [3, 1], tau=0.5)
    expected = [0.5 * math.log(0.75 / 0.2), 0.5 * math.log(0.25 / 0.8)]
    torch.testing.assert_close(out, torch.tensor([expected]))
    assert adjust_logits(logits, [20, 80], "uniform", tau=0.0).tolist() == [[0.0, 0.0]]
    torch.testing.assert_close(target_prior([1, 3], [5, 5]), torch.tensor([0.25, 0.75], dtype=torch.float64))


def test_errors() -> None:
    with pytest.raises(ValueError, match="prior 'flat' unknown; use 'default', 'train', 'uniform' or 3"):
        adjust_logits(torch.zeros(1, 3), [1, 2, 3], "flat")
    with pytest.raises(ValueError, match=r"prior needs 3 finite positive values \(one per class\), "
                                         r"got \[1.0"):
        adjust_logits(torch.zeros(1, 3), [1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"K = 3 classes expected, got shape \(1, 2\)"):
        adjust_logits(torch.zeros(1, 2), [1, 2, 3], "uniform")
    with pytest.raises(ValueError, match="train_counts must be K positive counts"):
        adjust_logits(torch.zeros(1, 2), [0, 2], "uniform")
    assert parse_prior("uniform") == "uniform"
    assert parse_prior("1,2.5") == [1.0, 2.5]
    assert parse_prior(None) == "default" and parse_prior("train") == "train"
    assert parse_prior(" 1,2 ", 2) == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"^prior 'x,y' is not valid: use 'default', 'train', 'uniform' or "
                                         r"finite positive comma-separated class frequencies$"):
        parse_prior("x,y")
    with pytest.raises(ValueError, match=r"^prior '1,2' is not valid: use 'default', 'train', 'uniform' or "
                                         r"3 finite positive"):
        parse_prior("1,2", 3)
    with pytest.raises(ValueError, match=r"^prior '1,-2' is not valid"):
        parse_prior("1,-2")
    with pytest.raises(ValueError, match=r"^prior 'inf,1' is not valid: use 'default', 'train', 'uniform' or "
                                         r"2 finite positive"):
        parse_prior("inf,1", 2)


@pytest.mark.parametrize("values", [[math.inf, 1, 1], [math.nan, 1, 1], [0, 1, 1], [-1, 1, 1]])
def test_infinite_zero_or_negative_prior_values_are_refused(values: list[float]) -> None:
    with pytest.raises(ValueError, match=r"prior needs 3 finite positive values"):
        adjust_logits(torch.zeros(1, 3), [1, 2, 3], values)


@pytest.mark.parametrize("tau", [-1.0, math.inf, math.nan, 1e308, 10.5])
def test_tau_out_of_range_is_refused(tau: float) -> None:
    with pytest.raises(ValueError, match=r"tau must be a number in \[0, 10\] \(1 = the exact"):
        adjust_logits(torch.zeros(1, 3), [1, 2, 3], "uniform", tau=tau)


def test_extreme_finite_priors_stay_finite_and_exact() -> None:
    """Values whose sum overflows (1e308 each) or whose ratio spans the float64 range: the
    log-space arithmetic gives the exact shift, no inf or NaN."""
    logits = torch.zeros(1, 3)
    out = adjust_logits(logits, [1, 1, 1], [1e308, 1e308, 1e308], tau=10)
    torch.testing.assert_close(out, torch.zeros(1, 3))  # equal values: uniform = train prior
    out = adjust_logits(logits, [1, 1, 1], [1e308, 1e-300, 1], tau=10).double()
    # log p_target = log v - log(1e308 + 1 + 1e-300) = log v - log 1e308; log p_train = -log 3
    expected = 10 * (torch.tensor([1e308, 1e-300, 1.0], dtype=torch.float64).log()
                     - math.log(1e308) + math.log(3))
    torch.testing.assert_close(out[0], expected.float().double())
    assert torch.isfinite(out.softmax(1)).all()


def test_resolve_prior_default_is_the_checkpoint_recommendation() -> None:
    recommended = {"prior": "uniform", "tau": 0.35, "how": "chosen on half A"}
    assert resolve_prior("default", None, recommended) == ("uniform", 0.35)
    assert resolve_prior("default", 0.8, recommended) == ("uniform", 0.8)  # an explicit tau wins
    assert resolve_prior("default", None, None) == ("train", 1.0)  # nothing recommended: as trained
    assert resolve_prior("uniform", None, recommended) == ("uniform", 1.0)  # another prior: tau 1
    assert resolve_prior([1, 2], 0.5, recommended) == ([1, 2], 0.5)
    assert resolve_prior("default", None, {"prior": [1, 3], "tau": 1}) == ([1.0, 3.0], 1.0)
    with pytest.raises(ValueError, match=r"tau must be a number in \[0, 10\]"):
        resolve_prior("default", -1.0, recommended)
