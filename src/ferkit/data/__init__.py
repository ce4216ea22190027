"""Datasets: published layouts parsed into ferkit's canonical label order, plus a SYNTHETIC one.

Each dataset module registers itself with :func:`~ferkit.data.registry.register_dataset`,
declaring its official splits, typed options, expected layout and a fake-tree hook for the
contract tests; this package only imports those modules and re-exports. Every registered
constructor has the signature::

    fn(root: str | Path | None, split: str, num_classes: int = 7, transform=None,
       require_images: bool = True, **options) -> FERDataset

with ``split`` in ``"train" | "val" | "test"``. A split the dataset does not publish raises
:class:`SplitNotAvailable` (a :class:`DatasetError`); :func:`has_split` tells beforehand whether
a split is official. ``require_images=False`` builds a dataset from its label files alone (the
paths point where images would be), which is how :func:`ferkit.data.check.describe` counts.
``DATASETS.names()`` lists the registered names.

Importing this package imports no dataset (nor torch): :data:`DATASETS` knows the names and
typed options from the generated catalogue (``ferkit._registered``) and imports a dataset's
module on its first ``DATASETS.get``; the other names are imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferkit.data.options import (
    DATASETS,
    check_dataset_options,
    data_config_errors,
    dataset_options,
)
from ferkit.lazy import lazy_attributes

_LAZY = {
    **dict.fromkeys(("DatasetError", "FERDataset", "decode_image"), "ferkit.data.base"),
    **dict.fromkeys(("imbalance_counts", "imbalanced_subset"), "ferkit.data.imbalance"),
    **dict.fromkeys(("DatasetInfo", "FakeTree", "build_dataset", "dataset_from_config",
                     "dataset_info", "detect_dataset", "has_split", "register_dataset"),
                    "ferkit.data.registry"),
    **dict.fromkeys(("SPLITS", "SplitNotAvailable"), "ferkit.data.splits"),
}

if TYPE_CHECKING:
    from ferkit.data.base import DatasetError, FERDataset, decode_image
    from ferkit.data.imbalance import imbalance_counts, imbalanced_subset
    from ferkit.data.registry import (
        DatasetInfo,
        FakeTree,
        build_dataset,
        dataset_from_config,
        dataset_info,
        detect_dataset,
        has_split,
        register_dataset,
    )
    from ferkit.data.splits import SPLITS, SplitNotAvailable

__all__ = [
    "DATASETS", "SPLITS", "DatasetError", "DatasetInfo", "FERDataset", "FakeTree",
    "SplitNotAvailable", "build_dataset", "check_dataset_options", "data_config_errors",
    "dataset_from_config", "dataset_info", "dataset_options", "detect_dataset",
    "decode_image", "has_split", "imbalance_counts", "imbalanced_subset", "register_dataset",
]

__getattr__ = lazy_attributes(__name__, _LAZY)
