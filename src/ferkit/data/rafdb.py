"""RAF-DB basic (Li et al., CVPR 2017): 7 basic expressions, official train/test partition.

Layout (the published ``basic/`` folder; passing its parent also works)::

    root/EmoLabel/list_patition_label.txt          "train_00001.jpg 5" per line, labels 1..7
    root/Image/aligned/train_00001_aligned.jpg     aligned 100x100 faces (variant "aligned")
    root/Image/original/train_00001.jpg            original images (variant "original")

Raw labels 1..7 (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral) are ferkit's
canonical order. There is no official validation split: ``split="val"`` raises SplitNotAvailable.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.fake import FAKE_COUNTS, fake_samples, write_image
from ferkit.data.labels import RAFDB_RAW, canonical_index, class_names
from ferkit.data.registry import DatasetRequest, FakeTree, register_dataset
from ferkit.data.splits import line_error, require_files, require_root

OFFICIAL_SPLITS: tuple[str, ...] = ("train", "test")
LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
VARIANTS = ("aligned", "original", "auto")
TREE = """  <root>/                                   (RAF-DB "basic" folder)
    EmoLabel/list_patition_label.txt         ("train_00001.jpg 5" per line, labels 1..7)
    Image/aligned/train_00001_aligned.jpg    (aligned 100x100 faces), and/or
    Image/original/train_00001.jpg
RAF-DB is licensed by its owners: request access at http://www.whdeng.cn/raf/model1.html"""
_EXPECTED_LINE = "'<train|test>_NNNNN.jpg <label 1..7>'"


def read_partition(label_file: Path) -> list[tuple[str, str, int]]:
    """Parse the label file into ``(split, image_name, raw_label)`` rows; blank lines are skipped.

    Raises:
        DatasetError: a malformed line (file and line number in the message).
    """
    rows = []
    with open(label_file) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            split = fields[0].split("_", 1)[0]
            if (len(fields) != 2 or split not in OFFICIAL_SPLITS or not fields[1].isdigit()
                    or int(fields[1]) not in RAFDB_RAW):
                raise line_error(label_file, line_number, line, _EXPECTED_LINE)
            rows.append((split, fields[0], int(fields[1])))
    return rows


def _resolve_variant(root: Path, variant: str) -> str:
    if variant not in VARIANTS:
        raise DatasetError(f"RAF-DB: variant '{variant}' unknown; use one of {', '.join(VARIANTS)}")
    if variant != "auto":
        return variant
    if (root / "Image" / "aligned").is_dir() or not (root / "Image" / "original").is_dir():
        return "aligned"
    return "original"


def image_path(root: Path, name: str, variant: str) -> Path:
    """Where the image ``name`` (e.g. ``train_00001.jpg``) lives for an aligned/original variant."""
    if variant == "aligned":
        stem = name.rsplit(".", 1)[0]
        return root / "Image" / "aligned" / f"{stem}_aligned.jpg"
    return root / "Image" / "original" / name


def write_fake_tree(folder: Path) -> FakeTree:
    """A tiny RAF-DB ``basic/`` tree (aligned images) for the contract tests."""
    raw = {name: code for code, name in RAFDB_RAW.items()}
    lines = []
    for split in OFFICIAL_SPLITS:
        for number, name in fake_samples(split):
            image = f"{split}_{number + 1:05d}.jpg"
            lines.append(f"{image} {raw[name]}")
            write_image(image_path(folder / "basic", image, "aligned"), number * 9)
    (folder / "basic" / LABEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / "basic" / LABEL_FILE).write_text("\n".join(lines) + "\n")
    return FakeTree(folder / "basic", {split: FAKE_COUNTS[split] for split in OFFICIAL_SPLITS})


@register_dataset("rafdb", title="RAF-DB", splits=OFFICIAL_SPLITS, tree=TREE,
                  fake_tree=write_fake_tree, marker="EmoLabel/list_patition_label.txt")
def rafdb(
    request: DatasetRequest,
    *,
    variant: str = "auto",
) -> FERDataset:
    """Build the RAF-DB basic dataset of one split.

    Args:
        root: the RAF-DB ``basic`` folder (or a folder containing ``basic/``).
        split: "train" or "test" ("val" raises SplitNotAvailable).
        num_classes: must be 7 (RAF-DB basic has no contempt).
        transform: optional callable on the uint8 ``[3, H, W]`` tensor.
        variant: "aligned", "original", or "auto" (aligned when ``Image/aligned`` exists).
        require_images: check that every listed image exists; False works from the label file.

    Raises:
        DatasetError: missing label file or images (with the expected tree), malformed line.
    """
    root, split, num_classes, transform, require_images = request
    if num_classes != 7:
        raise DatasetError(f"RAF-DB basic has 7 classes (no contempt); "
                           f"got num_classes={num_classes}")
    root = require_root(root, "RAF-DB", TREE)
    if not (root / LABEL_FILE).is_file() and (root / "basic" / LABEL_FILE).is_file():
        root = root / "basic"
    label_file = root / LABEL_FILE
    if not label_file.is_file():
        raise DatasetError(f"RAF-DB: label file {label_file} not found. Expected layout:\n{TREE}")
    variant = _resolve_variant(root, variant)
    rows = [row for row in read_partition(label_file) if row[0] == split]
    if not rows:
        raise DatasetError(f"RAF-DB: {label_file} lists no '{split}_*' images. Expected layout:"
                           f"\n{TREE}")
    # One Path per image, parsed once (pathlib joins cost more than the whole label parse).
    folder = str(image_path(root, "x.jpg", variant).parent) + os.sep
    if variant == "aligned":
        paths = [Path(folder + name.rsplit(".", 1)[0] + "_aligned.jpg") for _, name, _ in rows]
    else:
        paths = [Path(folder + name) for _, name, _ in rows]
    labels = [canonical_index(RAFDB_RAW[raw], 7) for _, _, raw in rows]
    if require_images:
        folder = paths[0].parent if paths else root / "Image" / variant
        if not folder.is_dir():
            raise DatasetError(
                f"RAF-DB: image folder {folder} not found (variant '{variant}'). "
                f"Expected layout:\n{TREE}\nPass require_images=False to count from the labels."
            )
        require_files(paths, f"RAF-DB {split}", TREE)
    return FERDataset(paths, labels, class_names(7), channels=3, transform=transform,
                      name=f"rafdb-{split}")
