"""The stratified hold-out (ferkit.data.splits) and provenance helpers (ferkit.provenance), with
their old ``ferkit.api`` names still importable."""

from __future__ import annotations

import numpy as np

from ferkit import __version__, api
from ferkit.data.splits import stratified_holdout
from ferkit.provenance import hardware, provenance


def test_stratified_holdout_per_class_sizes() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0, 1])  # class sizes 5, 3, 1
    train, val = stratified_holdout(labels, 0.5, seed=3)
    # round(0.5 * 5) = 2 and round(0.5 * 3) = 2 to val; a single image stays in train
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 2, 0]
    assert np.bincount(labels[train], minlength=3).tolist() == [3, 1, 1]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(9))
    again_train, again_val = stratified_holdout(labels, 0.5, seed=3)
    assert again_val.tolist() == val.tolist() and again_train.tolist() == train.tolist()
    # at least one image on each side for a class of two, even with a tiny fraction
    _, val_small = stratified_holdout(np.array([0, 0, 1, 1]), 0.01, seed=0)
    assert np.bincount(np.array([0, 0, 1, 1])[val_small]).tolist() == [1, 1]


def test_provenance_fields_and_old_api_names() -> None:
    info = provenance()
    assert list(info) == ["ferkit_version", "torch_version", "git_commit", "hardware"]
    assert info["ferkit_version"] == __version__ and info["hardware"] == hardware()
    assert api.provenance is provenance and api.stratified_holdout is stratified_holdout
