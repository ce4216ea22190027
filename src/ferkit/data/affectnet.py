"""AffectNet (Mollahosseini et al., 2017), manually annotated part, 7 or 8 expression classes.

Layout::

    root/Manually_Annotated_file_lists/training.csv     (or root/training.csv directly)
    root/Manually_Annotated_file_lists/validation.csv
    root/Manually_Annotated_Images/<subDirectory_filePath>

CSV columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks,
expression, valence, arousal (validation.csv is sometimes shipped without the header; the same
column order is then assumed). Expression codes 0..7 map through ``labels.AFFECTNET_RAW``; codes
8 (none), 9 (uncertain) and 10 (no face) are dropped, and contempt (7) too with 7 classes.
Standard practice, followed here: ``split="train"`` is training.csv and ``split="test"`` is
validation.csv (the official test set is unreleased); there is no official "val".
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.data.base import DatasetError, FERDataset, decode_image
from ferkit.data.fake import FAKE_COUNTS, fake_samples, write_image
from ferkit.data.labels import AFFECTNET_RAW, canonical_index, class_names
from ferkit.data.registry import DatasetRequest, FakeTree, register_dataset
from ferkit.data.splits import line_error, require_files, require_root

OFFICIAL_SPLITS: tuple[str, ...] = ("train", "test")
CSV_FILES = {"train": "training.csv", "test": "validation.csv"}
LISTS_DIR = "Manually_Annotated_file_lists"
IMAGES_DIR = "Manually_Annotated_Images"
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
TREE = """  <root>/
    Manually_Annotated_file_lists/training.csv    (split train)
    Manually_Annotated_file_lists/validation.csv  (split test)
    Manually_Annotated_Images/<subDirectory_filePath from the CSV>
AffectNet is licensed by its owners: request access at http://mohammadmahoor.com/affectnet/"""


class AffectNet(FERDataset):
    """AffectNet images; with ``crop_face=True`` each image is cut to its CSV face box."""

    def __init__(self, *args: Any, boxes: np.ndarray, crop_face: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.boxes = boxes  # [N, 4] face_x, face_y, face_width, face_height
        self.crop_face = crop_face

    def load_image(self, index: int) -> np.ndarray:
        image = decode_image(self.paths[index], self.channels)
        if not self.crop_face:
            return image
        x, y, w, h = (int(v) for v in self.boxes[index])
        crop = image[max(y, 0) : y + h, max(x, 0) : x + w]
        return crop if crop.size else image

    def decode_signature(self, indices: np.ndarray) -> str:
        boxes = hashlib.sha1(np.ascontiguousarray(self.boxes[indices]).tobytes()).hexdigest()
        return f"crop_face={self.crop_face}|boxes={boxes}"


def read_list(csv_path: Path, num_classes: int) -> tuple[list[str], list[int], np.ndarray]:
    """Relative paths, canonical labels and face boxes ``[N, 4]`` of the kept rows of one CSV.

    Raises:
        DatasetError: a malformed row (file and line number in the message).
    """
    names_k = class_names(num_classes)
    raw_to_class = {code: canonical_index(n, num_classes)
                    for code, n in AFFECTNET_RAW.items() if n in names_k}
    files: list[str] = []
    labels: list[int] = []
    boxes: list[list[float]] = []
    expected = f"{len(COLUMNS)} comma-separated fields ({', '.join(COLUMNS)})"
    column = {name: i for i, name in enumerate(COLUMNS)}
    with open(csv_path, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if line_number == 1 and row[0].strip() == COLUMNS[0]:
                missing = [c for c in COLUMNS if c not in row]
                if missing:
                    raise line_error(csv_path, 1, ",".join(row), f"a header with {missing}")
                column = {name: row.index(name) for name in COLUMNS}
                continue
            if len(row) < len(COLUMNS):
                raise line_error(csv_path, line_number, ",".join(row), expected)
            try:
                code = int(float(row[column["expression"]]))
                box = [float(row[column[c]]) for c in COLUMNS[1:5]]
            except ValueError:
                raise line_error(csv_path, line_number, ",".join(row), expected) from None
            if code not in raw_to_class:  # 8 none, 9 uncertain, 10 no-face; contempt with K=7
                continue
            files.append(row[column["subDirectory_filePath"]])
            labels.append(raw_to_class[code])
            boxes.append(box)
    return files, labels, np.asarray(boxes, np.float32).reshape(-1, 4)


def write_fake_tree(folder: Path) -> FakeTree:
    """A tiny AffectNet tree (both CSVs with headers, images) for the contract tests; each CSV
    also lists a code-8 ("none") image, which the parser must drop."""
    codes = {name: code for code, name in AFFECTNET_RAW.items()}
    for split in OFFICIAL_SPLITS:
        rows = [",".join(COLUMNS)]
        for number, code in enumerate([codes[n] for _, n in fake_samples(split)] + [8]):
            image = f"{split}/{number:04d}.jpg"
            rows.append(f'{image},0,0,8,8,"1.0;2.0",{code},0.0,0.0')
            write_image(folder / IMAGES_DIR / image, number * 7)
        (folder / LISTS_DIR).mkdir(parents=True, exist_ok=True)
        (folder / LISTS_DIR / CSV_FILES[split]).write_text("\n".join(rows) + "\n")
    return FakeTree(folder, {split: FAKE_COUNTS[split] for split in OFFICIAL_SPLITS})


@register_dataset("affectnet", title="AffectNet", splits=OFFICIAL_SPLITS, tree=TREE,
                  fake_tree=write_fake_tree, marker="Manually_Annotated_file_lists")
def affectnet(
    request: DatasetRequest,
    *,
    crop_face: bool = False,
) -> FERDataset:
    """Build AffectNet (manually annotated) for one split.

    Args:
        root: AffectNet folder (see module docstring), or a folder holding the two CSVs directly.
        split: "train" (training.csv) or "test" (validation.csv); "val" raises SplitNotAvailable.
        num_classes: 7 (contempt dropped) or 8.
        transform: optional callable on the uint8 ``[3, H, W]`` tensor.
        crop_face: crop each image to its CSV face box (for copies holding uncropped images).
        require_images: check that every listed image exists; False works from the CSVs.

    Raises:
        DatasetError: missing CSV or images (with the expected tree), malformed CSV row.
    """
    root, split, num_classes, transform, require_images = request
    names_k = class_names(num_classes)
    root = require_root(root, "AffectNet", TREE)
    lists = root / LISTS_DIR if (root / LISTS_DIR).is_dir() else root
    csv_path = lists / CSV_FILES[split]
    if not csv_path.is_file():
        raise DatasetError(
            f"AffectNet split '{split}' needs {csv_path}, which does not exist. "
            f"Expected layout:\n{TREE}"
        )
    files, labels, boxes = read_list(csv_path, num_classes)
    if not files:
        raise DatasetError(f"AffectNet: {csv_path} has no rows with expression codes 0..7.")
    images = root / IMAGES_DIR
    paths = [images / f for f in files]
    if require_images:
        if not images.is_dir():
            raise DatasetError(f"AffectNet: image folder {images} not found. "
                               f"Expected layout:\n{TREE}\nPass require_images=False to count.")
        require_files(paths, f"AffectNet {split}", TREE)
    return AffectNet(paths, labels, names_k, channels=3, transform=transform,
                     name=f"affectnet{num_classes}-{split}", boxes=boxes, crop_face=crop_face)
