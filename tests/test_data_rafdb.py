"""RAF-DB basic parsing: variants, splits, label-file-only mode, errors, real label-file counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data import DatasetError, SplitNotAvailable, build_dataset, has_split
from ferkit.data.check import describe
from ferkit.data.rafdb import rafdb

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LINES = ["train_00001.jpg 5", "train_00002.jpg 4", "", "train_00003.jpg 1", "test_0001.jpg 7",
         "test_0002.jpg 3"]


def _write_jpg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((100, 100, 3), value, np.uint8)).save(path)


def _fake_root(tmp_path: Path, variants: tuple[str, ...] = ("aligned",)) -> Path:
    root = tmp_path / "basic"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(LINES) + "\n")
    for i, line in enumerate(x for x in LINES if x):
        name = line.split()[0]
        if "aligned" in variants:
            _write_jpg(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), 10 * i)
        if "original" in variants:
            _write_jpg(root / "Image" / "original" / name, 10 * i)
    return root


def test_splits_labels_and_aligned_paths(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    train = rafdb(root, "train")
    assert [train.class_names[i] for i in train.labels] == ["sadness", "happiness", "surprise"]
    assert train.paths[0] == root / "Image" / "aligned" / "train_00001_aligned.jpg"
    assert train[0]["image"].shape == (3, 100, 100) and train[0]["label"] == 4
    test = rafdb(root, "test")
    assert [test.class_names[i] for i in test.labels] == ["neutral", "disgust"]
    with pytest.raises(SplitNotAvailable, match="no official 'val' split"):
        rafdb(root, "val")
    assert not has_split("rafdb", "val") and has_split("rafdb", "test")


def test_variants_and_parent_root(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, variants=("original",))
    auto = rafdb(root, "train")  # no aligned folder: auto picks original
    assert auto.paths[0] == root / "Image" / "original" / "train_00001.jpg"
    parent = build_dataset("rafdb", tmp_path, "test", variant="original")  # root above basic/
    assert len(parent) == 2
    with pytest.raises(DatasetError, match=r"image folder .*aligned not found"):
        rafdb(root, "train", variant="aligned")
    with pytest.raises(DatasetError, match="variant 'cropped' unknown"):
        rafdb(root, "train", variant="cropped")
    with pytest.raises(DatasetError, match="7 classes"):
        rafdb(root, "train", num_classes=8)


def test_label_file_only(tmp_path: Path) -> None:
    root = tmp_path / "labels_only"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(LINES) + "\n")
    ds = rafdb(root, "train", require_images=False)
    assert ds.class_counts.tolist() == [1, 0, 0, 1, 1, 0, 0]
    with pytest.raises(DatasetError, match=r"(.|\n)*Image/aligned/train_00001_aligned.jpg"):
        rafdb(root, "train")


def test_missing_image_names_count_and_tree(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    (root / "Image" / "aligned" / "test_0002_aligned.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of 2 listed images are missing(.|\n)*EmoLabel/"):
        rafdb(root, "test")


def test_malformed_line(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    for bad in ("train_00004.jpg 9", "train_00004.jpg", "valid_0001.jpg 2", "train_00004.jpg x"):
        label_file.write_text("\n".join(LINES + [bad]) + "\n")
        with pytest.raises(DatasetError, match=r"list_patition_label.txt:7: malformed line"):
            rafdb(root, "train")


def test_unreadable_image_names_file(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").write_bytes(b"\x00garbage")
    ds = rafdb(root, "train")
    with pytest.raises(DatasetError, match="train_00002_aligned.jpg"):
        ds[1]


def test_missing_root_and_label_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="needs a data root"):
        rafdb(None, "train")
    with pytest.raises(DatasetError, match=r"list_patition_label.txt not found(.|\n)*Image/"):
        rafdb(tmp_path, "train")


# ---- real label file ------------------------------------------------------------------------

README = {"train": [1290, 281, 717, 4772, 1982, 705, 2524],
          "test": [329, 74, 160, 1185, 478, 162, 680]}


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = SHARED / "rafdb"
    if not (root / "EmoLabel" / "list_patition_label.txt").is_file():
        pytest.skip(f"real RAF-DB label file not found at {root}")
    return root


@pytest.mark.realdata
def test_real_counts(real_root: Path) -> None:
    for split, expected in README.items():
        ds = rafdb(real_root, split, require_images=False)
        assert ds.class_counts.tolist() == expected
    assert len(rafdb(real_root, "train", require_images=False)) == 12271


@pytest.mark.realdata
def test_real_images_missing_error_and_describe(real_root: Path) -> None:
    with pytest.raises(DatasetError, match="Expected layout"):
        rafdb(real_root, "train")
    report = describe("rafdb", real_root)
    assert "| train | 1290 | 281 | 717 | 4772 | 1982 | 705 | 2524 | 12271 |" in report
    assert "| test | 329 | 74 | 160 | 1185 | 478 | 162 | 680 | 3068 |" in report
    assert "All 15339 listed images are missing" in report
