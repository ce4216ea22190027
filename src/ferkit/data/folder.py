"""Your own data: a CSV of ``path,label,split`` rows, or an ImageFolder tree of class folders.

CSV (registered as "csv")::

    root/labels.csv            header "path,label,split" (extra columns are ignored)
    root/<path from the CSV>   paths are relative to the CSV's folder

``root`` may also be the CSV file itself. ``label`` is a canonical class name, an alias from
``labels.ALIASES`` (happy, sad, ...), or an integer index in the canonical order.

ImageFolder (registered as "folder")::

    root/<split>/<class name>/*.jpg|jpeg|png|bmp     split folder: train, val (or valid,
                                                       validation), test

With ``num_classes=7`` contempt rows/folders are skipped. A split with no rows or no folder
raises SplitNotAvailable (for "val" the caller then holds out part of train).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.fake import FAKE_COUNTS, fake_samples, write_image
from ferkit.data.labels import ALIASES, CANONICAL_8, canonical_index, class_names
from ferkit.data.registry import DatasetRequest, FakeTree, register_dataset
from ferkit.data.splits import SPLITS, SplitNotAvailable, require_files, require_root
from ferkit.registry import suggest

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
CSV_TREE = """  <root>/labels.csv     header: path,label,split  (e.g. "images/0001.jpg,happy,train")
  <root>/images/...      paths relative to the CSV's folder; split is train, val or test"""
FOLDER_TREE = """  <root>/train/<class>/*.jpg|png  class folders named like surprise, fear, disgust,
  <root>/val/<class>/...           happiness (or happy), sadness (or sad), anger (or angry),
  <root>/test/<class>/...          neutral, contempt"""


def parse_label(text: str, num_classes: int) -> int | None:
    """Canonical index of a label given as name, alias or integer; None for contempt with K=7.

    Raises:
        ValueError: an unknown name or an index outside 0..K-1 (with a did-you-mean hint).
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < num_classes:
            raise ValueError(f"label index {index} is outside 0..{num_classes - 1}")
        return index
    key = ALIASES.get(text.lower(), text.lower())
    if key == "contempt" and num_classes == 7:
        return None
    if key not in CANONICAL_8:
        hint = suggest(text.lower(), list(CANONICAL_8) + list(ALIASES))
        raise ValueError(f"unknown class name '{text}'.{hint} Known: {', '.join(CANONICAL_8)}")
    return canonical_index(key, num_classes)


def _csv_path(root: Path) -> Path:
    if root.is_file():
        return root
    candidates = sorted(root.glob("*.csv"))
    if (root / "labels.csv").is_file():
        return root / "labels.csv"
    if len(candidates) == 1:
        return candidates[0]
    raise DatasetError(
        f"csv dataset: no labels.csv in {root} (found {[c.name for c in candidates]}). "
        f"Pass the CSV file as root, or use this layout:\n{CSV_TREE}"
    )


def write_fake_csv(folder: Path) -> FakeTree:
    """A tiny ``labels.csv`` tree (all three splits, class names and one alias) for the tests."""
    rows = ["path,label,split"]
    for split in SPLITS:
        for number, name in fake_samples(split):
            label = "happy" if name == "happiness" else name
            rows.append(f"images/{split}_{number}.png,{label},{split}")
            write_image(folder / "images" / f"{split}_{number}.png", number * 9)
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return FakeTree(folder, dict(FAKE_COUNTS))


@register_dataset("csv", title="csv dataset", splits=SPLITS, tree=CSV_TREE,
                  fake_tree=write_fake_csv, marker="labels.csv")
def csv_dataset(
    request: DatasetRequest,
    *,
    channels: int = 3,
) -> FERDataset:
    """Build the rows of one split of a ``path,label,split`` CSV.

    Raises:
        DatasetError: missing CSV, bad header, bad row (file and line number), missing images.
        SplitNotAvailable: no row has this split.
    """
    root, split, num_classes, transform, require_images = request
    names_k = class_names(num_classes)
    csv_path = _csv_path(require_root(root, "csv dataset", CSV_TREE))
    paths: list[Path] = []
    labels: list[int] = []
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "split"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{csv_path}:1: header {reader.fieldnames} lacks {sorted(missing)}; "
                               f"expected 'path,label,split'.\n{CSV_TREE}")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            row_split = (row["split"] or "").strip().lower()
            if row_split not in SPLITS:
                raise DatasetError(f"{where}: split '{row['split']}' is not one of "
                                   f"{', '.join(SPLITS)}. Fix that line.")
            if row_split != split:
                continue
            try:
                label = parse_label(row["label"] or "", num_classes)
            except ValueError as err:
                raise DatasetError(f"{where}: {err}. Fix that line.") from None
            if label is not None:
                paths.append(csv_path.parent / (row["path"] or "").strip())
                labels.append(label)
    if not paths:
        raise SplitNotAvailable(f"{csv_path} has no rows with split '{split}'.")
    if require_images:
        require_files(paths, f"csv dataset {csv_path.name} {split}", CSV_TREE)
    return FERDataset(paths, labels, names_k, channels=channels, transform=transform,
                      name=f"csv:{csv_path.stem}-{split}")


def write_fake_folder(folder: Path) -> FakeTree:
    """A tiny ImageFolder tree with train and valid (no test) for the contract tests."""
    for split, split_folder in (("train", "train"), ("val", "valid")):
        for number, name in fake_samples(split):
            write_image(folder / split_folder / name / f"{number}.png", number * 9)
    return FakeTree(folder, {split: FAKE_COUNTS[split] for split in ("train", "val")})


@register_dataset("folder", title="image folder", splits=SPLITS, tree=FOLDER_TREE,
                  fake_tree=write_fake_folder, lists_files=False,
                  marker="train")
def image_folder(
    request: DatasetRequest,
    *,
    channels: int = 3,
) -> FERDataset:
    """Build one split of a ``root/<split>/<class>/*.jpg`` tree (``require_images`` is unused:
    the files on disk are the listing).

    Raises:
        DatasetError: unknown class folder (with a did-you-mean hint), no images.
        SplitNotAvailable: no folder for this split.
    """
    root, split, num_classes, transform, _ = request
    names_k = class_names(num_classes)
    root = require_root(root, "image folder", FOLDER_TREE)
    found = [root / n for n in SPLIT_FOLDERS[split] if (root / n).is_dir()]
    if not found:
        raise SplitNotAvailable(
            f"image folder {root} has no '{split}' folder "
            f"(looked for {', '.join(SPLIT_FOLDERS[split])}). Expected layout:\n{FOLDER_TREE}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for class_dir in sorted(p for p in found[0].iterdir() if p.is_dir()):
        try:
            label = parse_label(class_dir.name, num_classes)
        except ValueError as err:
            raise DatasetError(f"{class_dir}: {err}. Rename the folder.") from None
        if label is None:
            continue
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise DatasetError(f"image folder {found[0]} holds no images "
                           f"({', '.join(IMAGE_SUFFIXES)}). Expected layout:\n{FOLDER_TREE}")
    return FERDataset(paths, labels, names_k, channels=channels, transform=transform,
                      name=f"folder:{root.name}-{split}")
