"""``ferkit config`` (generated from the dataclasses) and the DataConfig-driven CLI commands."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main as cli_main
from ferkit.config import RunConfig, to_dict
from ferkit.config_doc import UNDOCUMENTED, attribute_help, config_keys, format_config_doc
from ferkit.data import DATASETS, dataset_info
from ferkit.methods import METHODS


def _leaves(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        if isinstance(value, dict) and key not in ("options", "params"):
            keys += _leaves(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def test_every_key_is_listed_once_with_help() -> None:
    keys = config_keys()
    assert [k.key for k in keys] == _leaves(to_dict(RunConfig()))
    assert [k.key for k in keys if k.help == UNDOCUMENTED] == []
    by_key = {k.key: k for k in keys}
    assert (by_key["train.epochs"].type, by_key["train.epochs"].default) == ("int", 10)
    assert by_key["data.root"].type == "str | None"
    assert by_key["optim.name"].help == '"adam", "adamw" or "sgd"; one of: adam, adamw, sgd'
    assert by_key["data.std"].help == "input normalisation (carried in checkpoints for inference)"


def test_attribute_help_reads_shared_and_continued_entries() -> None:
    @dataclass
    class Example:
        """Example.

        Attributes:
            low, high: the bounds of
                the interval. Second sentence.
            step: the step, e.g.
                0 after rounding: a continuation line with a colon.
        """

        low: int = 0
        high: int = 1
        step: int = 1

    assert attribute_help(Example) == {"low": "the bounds of the interval",
                                       "high": "the bounds of the interval",
                                       "step": "the step, e.g. 0 after rounding: a continuation "
                                               "line with a colon"}


def test_cli_config_prints_keys_methods_and_datasets(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["config"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\ndata\.imbalance_seed +int +0 +seed of that subset\n", out)
    for key in _leaves(to_dict(RunConfig())):
        assert f"\n{key} " in out
    for name in METHODS.names():
        assert f"\n  {name}: " in out
    for name in DATASETS.names():
        assert f"\n  {name}: " in out
    assert "  rafdb: variant: str = 'auto'" in out
    # the label mode has one setting, data.label_mode: not listed among ferplus's data.options
    assert "\n  ferplus: soft_drop_single_votes: bool = True\n" in out
    assert re.search(r"\ndata\.label_mode +str +'majority' ", out)
    assert format_config_doc(registered=False) in out


def test_cli_datasets_goes_through_the_data_config(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    fake = dataset_info("rafdb").fake_tree(tmp_path)
    code = cli_main(["datasets", str(fake.root), "--dataset", "rafdb",
                     "--set", "data.options={variant: aligned}", "--imbalance-factor", "7"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| train | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 28 |" in out
    # IF 7 over ranks r = 0..6 keeps floor(7 * 7 ** (-r / 6)) = 7, 5, 3, 2, 1, 1, 1 images
    assert "| train IF 7 | 1 | 1 | 1 | 2 | 3 | 5 | 7 | 20 |" in out
    assert cli_main(["datasets", str(fake.root), "--dataset", "rafdb",
                     "--set", "data.options={variant: 1}"]) == 2
    assert "data.options.variant: dataset 'rafdb' expects str" in capsys.readouterr().err


def test_cli_eval_takes_data_options(tmp_path: Path) -> None:
    from tests.conftest import tiny_overrides

    from ferkit import api, load_config

    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 1}))
    api.train(cfg)
    code = cli_main(["eval", str(Path(cfg.output_dir) / "best.safetensors"), "--dataset",
                     "synthetic", "--set", "data.options={size: 32, num_test: 21}",
                     "--out", str(tmp_path / "eval")])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "eval_synthetic_test.json").read_text())
    assert report["num_samples"] == 21


def test_label_mode_reaches_every_dataset_built_from_a_config(tmp_path: Path) -> None:
    from ferkit.config import ConfigError, DataConfig
    from ferkit.data import dataset_from_config
    from ferkit.evaluation import describe_data

    root = str(dataset_info("ferplus").fake_tree(tmp_path).root)
    soft = dataset_from_config(DataConfig(dataset="ferplus", root=root, label_mode="soft"), "val")
    # the fake tree gives each image all 10 votes for its class: one-hot targets
    np.testing.assert_array_equal(soft.soft_labels, np.eye(7)[soft.labels])
    assert dataset_from_config(DataConfig(dataset="ferplus", root=root), "val").soft_labels is None
    with pytest.raises(ConfigError, match=r"data.label_mode='soft': dataset 'synthetic' has no "
                                          r"soft labels \(vote distributions\); datasets that "
                                          r"have them: ferplus\."):
        describe_data(DataConfig(label_mode="soft"))
    with pytest.raises(ConfigError, match=r"data.options.label_mode='soft': the label mode is set "
                                          r"by data.label_mode alone"):
        dataset_from_config(DataConfig(dataset="ferplus", root=root,
                                       options={"label_mode": "soft"}), "val")
