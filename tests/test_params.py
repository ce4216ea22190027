"""Typed parameter checks: method.params and data.options by name, type and declared range."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ferkit import api
from ferkit.checks import check_config, load_config
from ferkit.config import ConfigError
from ferkit.methods import METHODS, check_method_params, create_method
from ferkit.models import build_classifier
from ferkit.params import Range, matches, signature_params, type_name


def test_range_bounds_and_text() -> None:
    assert Range(0).error(0.0) is None and Range(0).error(-0.5) == "must be >= 0, got -0.5"
    half_open = Range(0, 1, high_open=True)
    assert half_open.error(0) is None and half_open.error(1.0) == "must be in [0, 1), got 1.0"
    assert Range(0, 1, low_open=True).error(0) == "must be in (0, 1], got 0"
    assert Range(high=2, high_open=True).error(2) == "must be < 2, got 2"
    assert Range(0).error(float("nan")) == "must be >= 0, got nan"


def test_range_of_sequences_and_null() -> None:
    each = Range(0, 1, each=True)
    assert each.error([0, 1]) is None and each.error([0.5, 2]) == "must be in [0, 1] each, got [0.5, 2]"
    pair = Range(0, 1, low_open=True, each=True, ascending=True)
    assert pair.error([0.2, 1.0]) is None
    assert pair.error([0.9, 0.5]) == ("must be [low, high] with low <= high, in (0, 1] each, "
                                      "got [0.9, 0.5]")
    assert Range(1).error(None) == "must be >= 1, got None"
    assert Range(1, null="").error(None) is None and Range(1, null="").error(0) == \
        "must be >= 1 or null, got 0"
    assert Range(0, low_open=True, null="no clipping").error(-1.0) == \
        "must be > 0 or null (no clipping), got -1.0"


def test_matches_by_annotation() -> None:
    assert matches(1, float) and matches(1.5, float) and not matches("1", float)
    assert not matches(True, int) and not matches(True, float) and matches(True, bool)
    assert matches(None, float | None) and not matches("x", float | None)
    assert matches([1, 2], Sequence[int]) and not matches([1, "a"], Sequence[int])
    assert matches((0.1, 0.2), tuple[float, float]) and not matches((0.1,), tuple[float, float])
    assert type_name(Sequence[float] | None) == "Sequence[float] | None"


def test_signature_params_reads_typed_keywords() -> None:
    def build(root: str, split: str, *, size: int = 4, scale: float | None = None) -> None:
        """Example."""

    params = signature_params(build, keyword_only=True)
    assert list(params) == ["size", "scale"]
    assert (params["size"].type_name, params["size"].default) == ("int", 4)
    assert params["scale"].type_name == "float | None"


def test_method_params_checked_by_type_and_declared_range() -> None:
    assert check_method_params("mek", {"lam": "x", "preset": 3}) == [
        "method.params.lam: 'mek' expects float | None, got 'x' (str); default: None",
        "method.params.preset: 'mek' expects str, got 3 (int); default: 'paper'",
    ]
    assert check_method_params("mek", {"preset": "offical", "alpha": 1}) == [
        "method.params.preset: 'offical' is not one of ['paper', 'official']. "
        "Did you mean 'official'?",
        "method.params.alpha: must be in [0, 1), got 1",
    ]
    assert check_method_params("eac", {"lam": 2, "forward_mode": "joint"}) == []


def test_every_declared_constraint_names_a_real_parameter() -> None:
    for name in METHODS.names():
        declared = set(getattr(METHODS.get(name), "param_constraints", {}))
        assert declared <= set(signature_params(METHODS.get(name), ("model", "class_counts",
                                                                    "num_samples"))), name


def test_create_method_rejects_a_mistyped_parameter() -> None:
    model = build_classifier("tiny_cnn", 7, width=4)
    with pytest.raises(ValueError, match=r"method.params.lam: 'eac' expects float, got 'x'"):
        create_method("eac", model, [1] * 7, 7, {"lam": "x"})


def test_bad_params_fail_before_any_data_is_read(tmp_path: Path) -> None:
    overrides = ["data.dataset=rafdb", f"data.root={tmp_path / 'absent'}", "method.name=mek",
                 "method.params={preset: 3}", "data.options={variant: 1}",
                 f"output_dir={tmp_path / 'run'}"]
    for load_error in (True, False):  # loading refuses; api.train refuses a config built unchecked
        with pytest.raises(ConfigError) as err:
            if load_error:
                load_config(None, overrides)
            else:  # a ConfigError, not the DatasetError the missing root would give
                api.train(load_config(None, overrides, registries=False))
        text = str(err.value)
        assert "method.params.preset: 'mek' expects str, got 3 (int)" in text
        assert "data.options.variant: dataset 'rafdb' expects str, got 1 (int)" in text
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_option_suggests_the_close_one() -> None:
    cfg = load_config(None, ["data.dataset=ferplus", "data.options={soft_drop_single_vote: 1}"],
                      registries=False)
    with pytest.raises(ConfigError, match=r"data.options.soft_drop_single_vote: dataset 'ferplus' "
                                          r"has no parameter 'soft_drop_single_vote'. Did you mean "
                                          r"'soft_drop_single_votes'\? Its parameters: "
                                          r"soft_drop_single_votes$"):
        check_config(cfg)  # label_mode is no data.option: data.label_mode sets it
