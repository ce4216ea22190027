"""``ferkit datasets``: what a data root holds, from its label files alone.

Counts per split and class (canonical order), how many listed images are missing on disk, and
for an imbalance factor the sizes of the training subset. Images are never decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.imbalance import imbalance_counts
from ferkit.data.registry import DATASETS
from ferkit.data.splits import SPLITS, SplitNotAvailable, missing_files


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def describe(
    name: str,
    root: str | Path | None,
    num_classes: int = 7,
    imbalance_factor: float | None = None,
    **options: Any,
) -> str:
    """A markdown-like report of a dataset root: per-split class counts, missing images, IF subset.

    Args:
        name: registered dataset name (``ferplus``, ``rafdb``, ...).
        root: data root as the dataset expects it.
        num_classes: 7 or 8.
        imbalance_factor: also show the training subset sizes for this factor.
        **options: passed to the dataset constructor (e.g. ``variant="original"``).

    Raises:
        DatasetError: the label files cannot be read at all (no split could be built).
    """
    datasets: dict[str, FERDataset] = {}
    notes: dict[str, str] = {}
    for split in SPLITS:
        try:
            datasets[split] = DATASETS.create(name, root=root, split=split,
                                              num_classes=num_classes, require_images=False,
                                              **options)
        except SplitNotAvailable:
            notes[split] = "no official split (a seeded hold-out of train is used for val)"
        except DatasetError as err:
            notes[split] = str(err)
    if not datasets:
        errors = list(dict.fromkeys(notes.values()))  # the whole message (expected layout too)
        if len(errors) == 1:
            raise DatasetError(f"{name} at {root}: no split could be read: {errors[0]}")
        raise DatasetError(f"{name} at {root}: no split could be read.\n" + "\n".join(
            f"  {split}: {note}" for split, note in notes.items()))
    notes = {split: note.splitlines()[0] for split, note in notes.items()}
    class_names = next(iter(datasets.values())).class_names
    lines = [f"{name} at {root} ({num_classes} classes)", ""]
    rows, missing_notes = [], []
    for split in SPLITS:
        if split not in datasets:
            rows.append([split] + ["-"] * (len(class_names) + 2))
            continue
        dataset = datasets[split]
        if getattr(dataset, "generated", False):
            missing = "generated"
        else:
            count = len(missing_files(dataset.paths))
            missing = f"{count} (all)" if count == len(dataset) and count else str(count)
            if count:
                missing_notes.append(f"{split}: {count} of {len(dataset)} listed images missing")
        rows.append([split, *dataset.class_counts.tolist(), len(dataset), missing])
    lines += _table(["split", *class_names, "total", "missing images"], rows)
    lines += [f"- {split}: {note}" for split, note in notes.items()]
    total_missing = sum(len(missing_files(d.paths)) for d in datasets.values()
                        if not getattr(d, "generated", False))
    total = sum(len(d) for d in datasets.values())
    if total_missing and total_missing == total:
        lines.append(f"All {total} listed images are missing on disk: the counts come from the "
                     "label files alone; training needs the images.")
    elif missing_notes:
        lines += [f"- {note}" for note in missing_notes]
    if imbalance_factor is not None:
        lines += ["", *_imbalance_lines(datasets, imbalance_factor)]
    return "\n".join(lines)


def _imbalance_lines(datasets: dict[str, FERDataset], imbalance_factor: float) -> list[str]:
    if "train" not in datasets:
        return [f"imbalance factor {imbalance_factor:g}: no train split to subsample"]
    train = datasets["train"]
    try:
        keep = imbalance_counts(train.class_counts, imbalance_factor, train.class_names)
    except ValueError as err:
        return [f"imbalance factor {imbalance_factor:g}: {err}"]
    order = np.argsort(-train.class_counts, kind="stable")
    header = ["subset", *train.class_names, "total"]
    rows = [[f"train IF {imbalance_factor:g}", *keep.tolist(), int(keep.sum())]]
    ranks = ", ".join(train.class_names[i] for i in order)
    return [f"Imbalance factor {imbalance_factor:g} (exponential profile; ranks by train count: "
            f"{ranks}; val/test unchanged):", *_table(header, rows)]
