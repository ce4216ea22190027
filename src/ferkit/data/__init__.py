"""Datasets: published layouts parsed into ferkit's canonical label order, plus a SYNTHETIC one.

Every registered constructor has the signature::

    fn(root: str | Path | None, split: str, num_classes: int = 7, transform=None,
       require_images: bool = True, **options) -> FERDataset

with ``split`` in ``"train" | "val" | "test"``. A split the dataset does not publish raises
:class:`SplitNotAvailable` (a :class:`DatasetError`); :func:`has_split` tells beforehand whether
a split is official. ``require_images=False`` builds a dataset from its label files alone (the
paths point where images would be), which is how :func:`ferkit.data.check.describe` counts.

Registered names: ``ferplus``, ``rafdb``, ``affectnet``, ``csv``, ``folder``, ``synthetic``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferkit.data import affectnet, ferplus, folder, rafdb, synthetic
from ferkit.data.base import DatasetError, FERDataset, decode_image
from ferkit.data.imbalance import imbalance_counts, imbalanced_subset
from ferkit.data.splits import SPLITS, SplitNotAvailable
from ferkit.registry import Registry

DATASETS: Registry[FERDataset] = Registry("dataset")

# Official splits per dataset. "csv" and "folder" have whatever splits the user's data has: they
# are listed with all three and raise SplitNotAvailable at build time when one is absent.
OFFICIAL_SPLITS: dict[str, tuple[str, ...]] = {
    "ferplus": ferplus.OFFICIAL_SPLITS,
    "rafdb": rafdb.OFFICIAL_SPLITS,
    "affectnet": affectnet.OFFICIAL_SPLITS,
    "csv": SPLITS,
    "folder": SPLITS,
    "synthetic": synthetic.OFFICIAL_SPLITS,
}
_CONSTRUCTORS: dict[str, Callable[..., FERDataset]] = {
    "ferplus": ferplus.ferplus,
    "rafdb": rafdb.rafdb,
    "affectnet": affectnet.affectnet,
    "csv": folder.csv_dataset,
    "folder": folder.image_folder,
    "synthetic": synthetic.synthetic,
}
for _name, _fn in _CONSTRUCTORS.items():
    DATASETS.register(_name)(_fn)


def has_split(name: str, split: str) -> bool:
    """Whether dataset ``name`` publishes ``split`` (False: build a seeded hold-out instead).

    For "csv" and "folder" this is always True; whether the user's data has the split is only
    known when building (SplitNotAvailable then).
    """
    DATASETS.get(name)  # unknown names raise with a did-you-mean
    return split in OFFICIAL_SPLITS.get(name, SPLITS)


def build_dataset(
    name: str,
    root: str | Path | None,
    split: str,
    num_classes: int = 7,
    transform: Callable | None = None,
    **options: Any,
) -> FERDataset:
    """Build a registered dataset: ``DATASETS.create`` with the standard arguments."""
    return DATASETS.create(name, root=root, split=split, num_classes=num_classes,
                           transform=transform, **options)


__all__ = [
    "DATASETS", "OFFICIAL_SPLITS", "SPLITS", "DatasetError", "FERDataset", "SplitNotAvailable",
    "build_dataset", "decode_image", "has_split", "imbalance_counts", "imbalanced_subset",
]
