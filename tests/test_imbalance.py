"""Imbalance-factor subsets: exact paper counts from RAF-DB, seeded subsets, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferkit.data import DatasetError, FERDataset
from ferkit.data.check import describe
from ferkit.data.imbalance import imbalance_counts, imbalanced_subset
from ferkit.data.labels import CANONICAL_7
from ferkit.data.rafdb import rafdb

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAF_TRAIN = [1290, 281, 717, 4772, 1982, 705, 2524]  # canonical order: Sur Fea Dis Hap Sad Ang Neu
# The MEK paper's table (section 4.4), canonical order.
EXPECTED = {
    50: [674, 95, 351, 4772, 1295, 183, 2486],
    100: [477, 47, 221, 4772, 1028, 102, 2214],
    150: [389, 31, 169, 4772, 898, 73, 2070],
}


@pytest.mark.parametrize("factor", [50, 100, 150])
def test_counts_match_paper(factor: int) -> None:
    assert imbalance_counts(RAF_TRAIN, factor).tolist() == EXPECTED[factor]


def test_counts_capped_and_factor_one() -> None:
    assert imbalance_counts([100, 10, 50], 1).tolist() == [100, 10, 50]
    # Ranks by count: class 0, class 2, class 1. IF 10: targets 100, int(31.6), 10.
    assert imbalance_counts([100, 10, 50], 10).tolist() == [100, 10, 31]
    # IF 2: targets 70 and 50 exceed what classes 2 and 1 have, so they keep all.
    assert imbalance_counts([100, 10, 50], 2).tolist() == [100, 10, 50]


def test_errors() -> None:
    with pytest.raises(ValueError, match="fear has no images"):
        imbalance_counts([5, 0, 3, 9, 1, 1, 1], 10, CANONICAL_7)
    with pytest.raises(ValueError, match="must be >= 1"):
        imbalance_counts(RAF_TRAIN, 0.5)
    with pytest.raises(ValueError, match="at least two classes"):
        imbalance_counts([10], 2)


def _dataset(counts: list[int]) -> FERDataset:
    labels = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(0)
    labels = rng.permutation(labels)
    paths = [f"img_{i:05d}.png" for i in range(len(labels))]
    return FERDataset(paths, labels, CANONICAL_7, name="fake")


def test_subset_counts_and_seed() -> None:
    ds = _dataset(RAF_TRAIN)
    sub = imbalanced_subset(ds, 100, seed=3)
    assert sub.class_counts.tolist() == EXPECTED[100]
    again = imbalanced_subset(ds, 100, seed=3)
    np.testing.assert_array_equal(sub.indices, again.indices)
    other = imbalanced_subset(ds, 100, seed=4)
    assert not np.array_equal(sub.indices, other.indices)
    assert (np.diff(sub.indices) > 0).all()  # original order kept, no duplicates
    assert [p.name for p in sub.paths[:3]] == [ds.paths[i].name for i in sub.indices[:3]]
    assert "IF100" in sub.name


def test_subset_zero_class_error() -> None:
    ds = _dataset([10, 0, 5, 20, 5, 5, 5])
    with pytest.raises(DatasetError, match=r"fake: fear has no images"):
        imbalanced_subset(ds, 10, seed=0)


@pytest.mark.realdata
def test_real_rafdb_subsets() -> None:
    root = SHARED / "rafdb"
    if not (root / "EmoLabel" / "list_patition_label.txt").is_file():
        pytest.skip(f"real RAF-DB label file not found at {root}")
    train = rafdb(root, "train", require_images=False)
    for factor, expected in EXPECTED.items():
        assert imbalanced_subset(train, factor, seed=0).class_counts.tolist() == expected
    report = describe("rafdb", root, imbalance_factor=150)
    assert "| train IF 150 | 389 | 31 | 169 | 4772 | 898 | 73 | 2070 |" in report
