"""AffectNet, generic CSV, ImageFolder and the SYNTHETIC dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data import DATASETS, DatasetError, SplitNotAvailable, build_dataset, has_split
from ferkit.data.check import describe

AFFECT_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
                 "expression,valence,arousal")
# (file, expression code)
AFFECT_ROWS = [("1/a.jpg", 0), ("1/b.jpg", 1), ("2/c.jpg", 7), ("2/d.jpg", 8), ("2/e.jpg", 10),
               ("3/f.jpg", 6)]


def _write_image(path: Path, value: int = 100, size: int = 40, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def _affect_line(file: str, code: int) -> str:
    return f'{file},4,6,20,24,"1.0;2.0;3.0",{code},0.1,-0.2'


def _affectnet_root(tmp_path: Path, header: bool = True) -> Path:
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    body = [_affect_line(f, c) for f, c in AFFECT_ROWS]
    (lists / "training.csv").write_text("\n".join([AFFECT_HEADER] + body) + "\n")
    val_lines = ([AFFECT_HEADER] if header else []) + body[:3]
    (lists / "validation.csv").write_text("\n".join(val_lines) + "\n")
    for i, (file, _) in enumerate(AFFECT_ROWS):
        _write_image(tmp_path / "Manually_Annotated_Images" / file, 30 * i)
    return tmp_path


def test_affectnet_classes_and_splits(tmp_path: Path) -> None:
    root = _affectnet_root(tmp_path, header=False)
    train7 = DATASETS.create("affectnet", root=root, split="train")
    assert [train7.class_names[i] for i in train7.labels] == ["neutral", "happiness", "anger"]
    train8 = build_dataset("affectnet", root, "train", num_classes=8)
    assert train8.class_names[train8.labels[2]] == "contempt" and len(train8) == 4
    test = build_dataset("affectnet", root, "test", num_classes=8)  # headerless validation.csv
    assert len(test) == 3 and test[0]["image"].shape == (3, 40, 40)
    with pytest.raises(SplitNotAvailable, match="no official 'val'"):
        build_dataset("affectnet", root, "val")
    assert not has_split("affectnet", "val")
    cropped = build_dataset("affectnet", root, "train", crop_face=True)
    assert cropped.load_image(0).shape == (24, 20, 3)


def test_affectnet_csvs_directly_in_root(tmp_path: Path) -> None:
    root = _affectnet_root(tmp_path)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("training.csv", "validation.csv"):
        (flat / name).write_text((root / "Manually_Annotated_file_lists" / name).read_text())
    assert len(build_dataset("affectnet", flat, "train", require_images=False)) == 3


def test_affectnet_errors(tmp_path: Path) -> None:
    root = _affectnet_root(tmp_path)
    csv_path = root / "Manually_Annotated_file_lists" / "training.csv"
    csv_path.write_text(csv_path.read_text() + "4/g.jpg,1,2,3\n")
    with pytest.raises(DatasetError, match=r"training.csv:8: malformed line"):
        build_dataset("affectnet", root, "train")
    csv_path.write_text(AFFECT_HEADER + "\n" + _affect_line("1/a.jpg", 0).replace(",0,", ",x,"))
    with pytest.raises(DatasetError, match=r"training.csv:2: malformed line"):
        build_dataset("affectnet", root, "train")
    (root / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    with pytest.raises(DatasetError, match=r"validation.csv, which does not exist(.|\n)*"
                                           r"Manually_Annotated_Images/"):
        build_dataset("affectnet", root, "test")


def test_affectnet_missing_images(tmp_path: Path) -> None:
    root = _affectnet_root(tmp_path)
    (root / "Manually_Annotated_Images" / "3" / "f.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of 3 listed images are missing.*f.jpg"):
        build_dataset("affectnet", root, "train")


def _csv_root(tmp_path: Path, rows: list[str]) -> Path:
    for i, row in enumerate(rows):
        _write_image(tmp_path / row.split(",")[0], 20 * i, mode="L")
    (tmp_path / "labels.csv").write_text("\n".join(["path,label,split"] + rows) + "\n")
    return tmp_path


CSV_ROWS = ["img/a.png,happy,train", "img/b.png,Sadness,train", "img/c.png,0,train",
            "img/d.png,contempt,train", "img/e.png,neutral,test"]


def test_csv_dataset(tmp_path: Path) -> None:
    root = _csv_root(tmp_path, CSV_ROWS)
    train = build_dataset("csv", root, "train", channels=1)
    assert [train.class_names[i] for i in train.labels] == ["happiness", "sadness", "surprise"]
    assert train[0]["image"].shape == (1, 40, 40)
    assert len(build_dataset("csv", root / "labels.csv", "train", num_classes=8)) == 4
    with pytest.raises(SplitNotAvailable, match="no rows with split 'val'"):
        build_dataset("csv", root, "val")


def test_csv_errors(tmp_path: Path) -> None:
    root = _csv_root(tmp_path, CSV_ROWS + ["img/f.png,happyness,train"])
    with pytest.raises(DatasetError, match=r"labels.csv:7: unknown class name 'happyness'\. "
                                           r"Did you mean 'happiness'\?"):
        build_dataset("csv", root, "train")
    (root / "labels.csv").write_text("path,label,split\nimg/a.png,happy,training\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: split 'training' is not one of"):
        build_dataset("csv", root, "train")
    (root / "labels.csv").write_text("file,label\nimg/a.png,happy\n")
    with pytest.raises(DatasetError, match=r"labels.csv:1: header .* lacks \['path', 'split'\]"):
        build_dataset("csv", root, "train")
    (root / "labels.csv").write_text("path,label,split\nimg/zzz.png,happy,train\n")
    with pytest.raises(DatasetError, match="1 of 1 listed images are missing.*zzz.png"):
        build_dataset("csv", root, "train")
    (root / "labels.csv").write_text("path,label,split\nimg/a.png,9,train\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: label index 9 is outside 0..6"):
        build_dataset("csv", root, "train")


def test_image_folder(tmp_path: Path) -> None:
    for split, cls, n in (("train", "happy", 2), ("train", "Fear", 1), ("train", "contempt", 1),
                          ("valid", "neutral", 1)):
        for i in range(n):
            _write_image(tmp_path / split / cls / f"{i}.png", 50 * i)
    train = build_dataset("folder", tmp_path, "train")
    assert train.class_counts.tolist() == [0, 1, 0, 2, 0, 0, 0]
    assert len(build_dataset("folder", tmp_path, "train", num_classes=8)) == 4
    assert len(build_dataset("folder", tmp_path, "val")) == 1
    with pytest.raises(SplitNotAvailable, match=r"no 'test' folder(.|\n)*<root>/test/<class>"):
        build_dataset("folder", tmp_path, "test")
    _write_image(tmp_path / "train" / "suprise" / "0.png")
    with pytest.raises(DatasetError, match=r"suprise: unknown class name .*mean 'surprise'"):
        build_dataset("folder", tmp_path, "train")


def test_synthetic_deterministic_and_shaped() -> None:
    ds = build_dataset("synthetic", None, "train", num_train=300, seed=1)
    again = build_dataset("synthetic", None, "train", num_train=300, seed=1)
    assert "SYNTHETIC" in ds.name and ds.channels == 1 and len(ds) == 300
    np.testing.assert_array_equal(ds.labels, again.labels)
    np.testing.assert_array_equal(ds.load_image(7), again.load_image(7))
    assert ds.load_image(7).shape == (48, 48, 1) and ds.load_image(7).dtype == np.uint8
    assert ds[3]["image"].shape == (1, 48, 48)
    other = build_dataset("synthetic", None, "train", num_train=300, seed=2)
    assert not np.array_equal(ds.load_image(7), other.load_image(7))
    assert ds.cache_key() == again.cache_key() != other.cache_key()
    big = build_dataset("synthetic", None, "train", num_train=300, seed=1, size=64, channels=3)
    assert big.load_image(0).shape == (64, 64, 3) and big.cache_key() != ds.cache_key()
    assert all(has_split("synthetic", s) for s in ("train", "val", "test"))


def test_synthetic_long_tail_and_counts() -> None:
    counts = build_dataset("synthetic", None, "train").class_counts
    names = build_dataset("synthetic", None, "val").class_names
    assert counts.sum() == 2000
    assert set(np.argsort(counts)[-2:]) == {names.index("happiness"), names.index("neutral")}
    assert counts.argmin() == names.index("fear") and counts.argmax() == names.index("happiness")
    fixed = build_dataset("synthetic", None, "test", class_counts=[3, 1, 2, 5, 0, 1, 4])
    assert fixed.class_counts.tolist() == [3, 1, 2, 5, 0, 1, 4]
    assert build_dataset("synthetic", None, "train", num_classes=8).num_classes == 8
    with pytest.raises(DatasetError, match="class_counts must be 7 non-negative"):
        build_dataset("synthetic", None, "train", class_counts=[1, 2])


def test_synthetic_varied() -> None:
    ds = build_dataset("synthetic", None, "train", num_train=400)
    images = np.stack([ds.load_image(i) for i in range(len(ds))]).astype(np.float32)
    # Not constant within a class (nuisance + noise), but class means differ.
    happy = images[ds.labels == ds.class_names.index("happiness")]
    sad = images[ds.labels == ds.class_names.index("sadness")]
    assert happy.std(axis=0).mean() > 10
    assert np.abs(happy.mean(0) - sad.mean(0)).max() > 20


def test_describe_synthetic_and_errors(tmp_path: Path) -> None:
    report = describe("synthetic", None, num_train=100, num_val=20, num_test=30)
    assert "| train |" in report and "generated" in report and "| 100 |" in report
    with pytest.raises(DatasetError, match="no split could be read"):
        describe("rafdb", tmp_path)
