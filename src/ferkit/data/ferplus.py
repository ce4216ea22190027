"""FERPlus: FER2013 faces with FER+ crowd votes, in Microsoft's published layout.

Layout::

    root/fer2013new.csv
    root/FER2013Train/fer0000000.png ...   (Usage "Training"   -> split "train")
    root/FER2013Valid/ferNNNNNNN.png ...   (Usage "PublicTest"  -> split "val")
    root/FER2013Test/ferNNNNNNN.png ...    (Usage "PrivateTest" -> split "test")

Labels follow Microsoft's ``ferplus.py`` "majority" rule (Barsoum et al. 2016): votes of 1 are
dropped as outliers; the top emotion is kept only if it has MORE than half of the remaining votes;
images whose majority is ``unknown`` or ``NF`` are excluded, and in the 7-class setting so are
contempt-majority images. ``label_mode="soft"`` keeps exactly the same images and hard labels and
adds ``soft_labels``: the vote distribution over the K expression classes after the same outlier
removal (``soft_drop_single_votes=False`` keeps the raw votes), renormalised to sum to 1.

Image names are unique per split: a name listed twice keeps its first row (the published CSV has
three duplicated Training rows with identical votes; counting rows gives the paper's 24,941).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.fake import FAKE_COUNTS, fake_samples, write_image
from ferkit.data.labels import FERPLUS_COLUMNS, canonical_index, class_names
from ferkit.data.registry import DatasetRequest, FakeTree, register_dataset
from ferkit.data.splits import line_error, require_files, require_root

OFFICIAL_SPLITS: tuple[str, ...] = ("train", "val", "test")
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FOLDER = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
CSV_NAME = "fer2013new.csv"
TREE = """  <root>/
    fer2013new.csv                       (FER+ votes, github.com/microsoft/FERPlus)
    FER2013Train/fer0000000.png ...      (split train, Usage=Training)
    FER2013Valid/ferNNNNNNN.png ...      (split val,   Usage=PublicTest)
    FER2013Test/ferNNNNNNN.png ...       (split test,  Usage=PrivateTest)
The CSV comes from https://github.com/microsoft/FERPlus; the images from the FER2013 Kaggle
data set (fer2013.csv, "Challenges in Representation Learning"), written to the PNG folders by
Microsoft's generate_training_data.py."""
_HEADER_START = ("Usage", "Image name")
_NUM_COLUMNS = 2 + len(FERPLUS_COLUMNS)


def read_votes(csv_path: Path, usage: str) -> tuple[list[str], np.ndarray]:
    """Unique image names of one Usage and their raw votes ``[N, 10]`` (FERPLUS_COLUMNS order).

    Rows with an empty image name are skipped; a repeated name keeps its first row.

    Raises:
        DatasetError: the header or a row is malformed (file and line number in the message).
    """
    names: list[str] = []
    votes: list[list[int]] = []
    seen: set[str] = set()
    expected_row = f"{_NUM_COLUMNS} comma-separated fields: Usage, image name, 10 vote counts"
    with open(csv_path, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if line_number == 1:
                if tuple(row[:2]) != _HEADER_START or len(row) != _NUM_COLUMNS:
                    header = "Usage,Image name," + ",".join(FERPLUS_COLUMNS)
                    raise line_error(csv_path, 1, ",".join(row), f"the header '{header}'")
                continue
            if not row:
                continue
            if len(row) != _NUM_COLUMNS:
                raise line_error(csv_path, line_number, ",".join(row), expected_row)
            if row[0] != usage or not row[1].strip() or row[1] in seen:
                continue
            try:
                counts = [int(v) for v in row[2:]]
            except ValueError:
                raise line_error(csv_path, line_number, ",".join(row), expected_row) from None
            if min(counts) < 0:
                raise line_error(csv_path, line_number, ",".join(row), "non-negative vote counts")
            seen.add(row[1])
            names.append(row[1])
            votes.append(counts)
    return names, np.asarray(votes, dtype=np.int64).reshape(-1, len(FERPLUS_COLUMNS))


def majority_columns(votes: np.ndarray) -> np.ndarray:
    """FER+ majority column per image ``[N]`` (index into FERPLUS_COLUMNS), -1 when there is none.

    Votes of 1 are outliers and dropped; the top column must hold MORE than half of the rest.
    """
    cleaned = np.where(votes <= 1, 0, votes)
    top = cleaned.argmax(axis=1)
    top_votes = cleaned[np.arange(len(cleaned)), top]
    return np.where(top_votes * 2 > cleaned.sum(axis=1), top, -1)


def write_fake_tree(folder: Path) -> FakeTree:
    """A tiny FERPlus tree (CSV + PNG folders) for the contract tests; each split also lists an
    ``unknown``-majority image, which the parser must drop."""
    header = "Usage,Image name," + ",".join(FERPLUS_COLUMNS)
    rows, number = [header], 0
    for split in OFFICIAL_SPLITS:
        samples = [name for _, name in fake_samples(split)] + ["unknown"]
        for name in samples:
            votes = [10 if column == name else 0 for column in FERPLUS_COLUMNS]
            image = f"fer{number:07d}.png"
            rows.append(f"{USAGE[split]},{image}," + ",".join(map(str, votes)))
            write_image(folder / FOLDER[split] / image, number * 5, channels=1)
            number += 1
    (folder / CSV_NAME).write_text("\n".join(rows) + "\n")
    return FakeTree(folder, {split: FAKE_COUNTS[split] for split in OFFICIAL_SPLITS})


@register_dataset("ferplus", title="FERPlus", splits=OFFICIAL_SPLITS, tree=TREE,
                  fake_tree=write_fake_tree, marker="fer2013new.csv")
def ferplus(
    request: DatasetRequest,
    *,
    label_mode: str = "majority",
    soft_drop_single_votes: bool = True,
) -> FERDataset:
    """Build the FERPlus dataset of one split.

    Args:
        root: folder holding ``fer2013new.csv`` and the ``FER2013*`` image folders.
        split: "train", "val" (PublicTest) or "test" (PrivateTest).
        num_classes: 7 (contempt-majority images dropped) or 8.
        transform: optional callable on the uint8 ``[1, 48, 48]`` tensor.
        label_mode: "majority" (hard labels) or "soft" (also ``soft_labels`` ``[N, K]``).
        soft_drop_single_votes: drop 1-vote outliers from the soft distribution too.
        require_images: check that the split folder and every listed image exist.

    Raises:
        DatasetError: missing CSV or split folder (the message shows the expected tree),
            malformed CSV line (file and line number), or a bad option.
    """
    root, split, num_classes, transform, require_images = request
    if label_mode not in ("majority", "soft"):
        raise DatasetError(f"ferplus: label_mode '{label_mode}' unknown; use majority or soft")
    names_k = class_names(num_classes)
    root = require_root(root, "FERPlus", TREE)
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise DatasetError(f"FERPlus: label file {csv_path} not found. Expected layout:\n{TREE}")
    folder = root / FOLDER[split]
    if require_images and not folder.is_dir():
        found = sorted(p.name for p in root.glob("FER2013*") if p.is_dir())
        raise DatasetError(
            f"FERPlus split '{split}' needs the folder {folder}, which does not exist "
            f"(found: {', '.join(found) or 'no FER2013* folders'}). Expected layout:\n{TREE}"
        )
    image_names, votes = read_votes(csv_path, USAGE[split])
    if not image_names:
        raise DatasetError(f"FERPlus: {csv_path} lists no images with Usage={USAGE[split]} "
                           f"(split '{split}'). Use Microsoft's full fer2013new.csv.")
    columns = majority_columns(votes)
    # Column index -> canonical class index, -1 for unknown/NF (and contempt with 7 classes).
    column_to_class = np.array(
        [canonical_index(c, num_classes) if c in names_k else -1 for c in FERPLUS_COLUMNS] + [-1]
    )
    labels = column_to_class[columns]  # columns == -1 picks the trailing -1
    keep = np.flatnonzero(labels >= 0)
    paths = [folder / image_names[i] for i in keep]
    soft = None
    if label_mode == "soft":
        raw = votes[keep]
        if soft_drop_single_votes:
            raw = np.where(raw <= 1, 0, raw)
        soft = np.zeros((len(keep), num_classes), np.float64)
        for column, name in enumerate(FERPLUS_COLUMNS):
            if name in names_k:
                soft[:, canonical_index(name, num_classes)] = raw[:, column]
        soft /= soft.sum(axis=1, keepdims=True)
    if require_images:
        require_files(paths, f"FERPlus {split}", TREE)
    return FERDataset(paths, labels[keep], names_k, soft, channels=1, transform=transform,
                      name=f"ferplus-{split}")
