"""Split names, the "no official split" error, and file checks shared by every dataset parser.

Every registered dataset accepts ``split`` in :data:`SPLITS`. A dataset that has no official
split of that name (RAF-DB and AffectNet have no "val") raises :class:`SplitNotAvailable`, a
:class:`~ferkit.data.base.DatasetError`, so the caller can carve a seeded hold-out from train
instead. Every dataset also accepts ``require_images``: with ``False`` it is built from its label
files alone (paths point where the images would be), which is how ``ferkit datasets`` counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferkit.data.base import DatasetError

SPLITS: tuple[str, ...] = ("train", "val", "test")


class SplitNotAvailable(DatasetError):
    """The dataset has no official split of this name; make a seeded hold-out from train instead."""


def check_split(split: str, official: Sequence[str], dataset: str) -> None:
    """Validate ``split`` against :data:`SPLITS` and the dataset's official splits.

    Raises:
        DatasetError: ``split`` is not one of train/val/test.
        SplitNotAvailable: the dataset publishes no such split.
    """
    if split not in SPLITS:
        raise DatasetError(f"{dataset}: unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if split not in official:
        raise SplitNotAvailable(
            f"{dataset} has no official '{split}' split (official: {', '.join(official)}). "
            f"Hold out a seeded part of 'train' for model selection instead."
        )


def require_root(root: str | Path | None, dataset: str, tree: str) -> Path:
    """``root`` as a Path, or a DatasetError showing the expected tree when it is None/missing."""
    if root is None:
        raise DatasetError(f"{dataset} needs a data root (got None). Expected layout:\n{tree}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{dataset} root '{path}' does not exist. Expected layout:\n{tree}")
    return path


def missing_files(paths: Sequence[Path]) -> list[int]:
    """Indices of ``paths`` that do not exist (one directory listing per folder, no stat calls)."""
    listings: dict[Path, set[str] | None] = {}
    missing = []
    for i, path in enumerate(paths):
        parent = path.parent
        if parent not in listings:
            try:
                listings[parent] = set(os.listdir(parent))
            except (FileNotFoundError, NotADirectoryError):
                listings[parent] = None
        names = listings[parent]
        if names is None or path.name not in names:
            missing.append(i)
    return missing


def require_files(paths: Sequence[Path], dataset: str, tree: str) -> None:
    """Raise a DatasetError naming how many (and which) listed images are missing on disk."""
    missing = missing_files(paths)
    if not missing:
        return
    examples = ", ".join(str(paths[i]) for i in missing[:3])
    raise DatasetError(
        f"{dataset}: {len(missing)} of {len(paths)} listed images are missing on disk "
        f"(e.g. {examples}). Expected layout:\n{tree}\n"
        f"Fix the root, or pass require_images=False to work from the label files only."
    )


def line_error(file: Path, line_number: int, line: str, expected: str) -> DatasetError:
    """A DatasetError for a malformed label-file line: file, line number, content, expected form."""
    return DatasetError(
        f"{file}:{line_number}: malformed line {line.strip()!r}; expected {expected}. "
        f"Fix or delete that line."
    )


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split of indices into (train, val); every class with >= 2 images keeps
    at least one image on each side."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(fraction * len(members)))
        n_val = min(max(n_val, 1), len(members) - 1) if len(members) >= 2 else 0
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))
