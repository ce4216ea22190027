"""FERPlus parsing: majority rule, soft labels, dedupe, errors, and the real-data counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data import DATASETS, DatasetError, has_split
from ferkit.data.ferplus import ferplus, majority_columns

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HEADER = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
          "unknown,NF")
# name -> (usage, votes in file column order)
ROWS = [
    ("Training", "fer0000000.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # neutral
    ("Training", "fer0000001.png", [4, 0, 0, 4, 1, 0, 0, 0, 1, 0]),  # tie 4/8: excluded
    ("Training", "fer0000002.png", [5, 0, 0, 3, 1, 0, 0, 0, 1, 0]),  # 5 > 8/2: neutral
    ("Training", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 6, 4, 0]),  # contempt
    ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 10, 0]),  # unknown: excluded
    ("Training", "fer0000005.png", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),  # all outliers: excluded
    ("Training", "fer0000006.png", [0, 7, 0, 0, 0, 0, 0, 0, 0, 3]),  # happiness
    ("Training", "fer0000006.png", [0, 0, 9, 0, 0, 0, 0, 0, 1, 0]),  # duplicate: first kept
    ("Training", "", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # no image name: skipped
    ("Training", "fer0000007.png", [2, 0, 0, 0, 0, 0, 6, 0, 1, 1]),  # fear, soft 2/8 neutral
    ("PublicTest", "fer0000008.png", [0, 0, 8, 0, 0, 0, 0, 0, 0, 2]),  # surprise
]


def _write_png(path: Path, value: int = 128, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8), "L").save(path)


def _fake_root(tmp_path: Path, rows: list = ROWS, folders: tuple = ("Train", "Valid")) -> Path:
    lines = [HEADER] + [f"{u},{n}," + ",".join(map(str, v)) for u, n, v in rows]
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    folder_of = {"Training": "FER2013Train", "PublicTest": "FER2013Valid"}
    for usage, name, _ in rows:
        if name and folder_of[usage][7:] in folders:
            _write_png(tmp_path / folder_of[usage] / name, value=int(name[3:10]) * 20)
    return tmp_path


def test_majority_rule_and_dedupe(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    ds = ferplus(root, "train", num_classes=7)
    assert [p.name for p in ds.paths] == [
        "fer0000000.png", "fer0000002.png", "fer0000006.png", "fer0000007.png"]
    names = [ds.class_names[i] for i in ds.labels]
    assert names == ["neutral", "neutral", "happiness", "fear"]
    assert ds.channels == 1 and ds.soft_labels is None
    ds8 = ferplus(root, "train", num_classes=8)
    assert "fer0000003.png" in [p.name for p in ds8.paths]
    assert ds8.class_names[ds8.labels[[p.name for p in ds8.paths].index("fer0000003.png")]] == (
        "contempt")
    val = ferplus(root, "val")
    assert len(val) == 1 and val.class_names[val.labels[0]] == "surprise"


def test_majority_columns_more_than_half() -> None:
    votes = np.array([[4, 0, 0, 4, 1, 0, 0, 0, 1, 0], [5, 0, 0, 3, 1, 0, 0, 0, 1, 0]])
    assert majority_columns(votes).tolist() == [-1, 0]


def test_soft_labels_same_images(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    hard = ferplus(root, "train")
    soft = ferplus(root, "train", label_mode="soft")
    assert [p.name for p in soft.paths] == [p.name for p in hard.paths]
    np.testing.assert_array_equal(soft.labels, hard.labels)
    np.testing.assert_allclose(soft.soft_labels.sum(1), 1.0, rtol=1e-6)
    fear_row = soft.soft_labels[3]
    assert fear_row[soft.class_names.index("fear")] == pytest.approx(6 / 8)
    assert fear_row[soft.class_names.index("neutral")] == pytest.approx(2 / 8)
    raw = ferplus(root, "train", label_mode="soft", soft_drop_single_votes=False)
    assert raw.soft_labels[3][raw.class_names.index("neutral")] == pytest.approx(2 / 8)
    item = soft[3]
    assert item["image"].shape == (1, 48, 48) and item["soft_label"].shape == (7,)


def test_missing_split_folder_shows_tree(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, folders=("Train",))
    with pytest.raises(DatasetError, match=r"FER2013Valid, which does not exist(.|\n)*"
                                           r"FER2013Test/(.|\n)*github.com/microsoft/FERPlus"):
        ferplus(root, "val")
    assert len(ferplus(root, "val", require_images=False)) == 1  # counting still works


def test_missing_csv_and_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist. Expected layout"):
        ferplus(tmp_path / "nope", "train")
    with pytest.raises(DatasetError, match="fer2013new.csv not found"):
        ferplus(tmp_path, "train")


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    csv_path = root / "fer2013new.csv"
    lines = csv_path.read_text().splitlines()
    lines[3] = "Training,fer0000002.png,5,0,x,3,1,0,0,0,1,0"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"fer2013new.csv:4: malformed line"):
        ferplus(root, "train")
    lines[3] = "Training,fer0000002.png,5,0"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"fer2013new.csv:4: .*12 comma-separated fields"):
        ferplus(root, "train")


def test_missing_and_unreadable_image(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    (root / "FER2013Train" / "fer0000007.png").write_bytes(b"not a png")
    ds = ferplus(root, "train")
    with pytest.raises(DatasetError, match="cannot read image .*fer0000007.png"):
        ds.load_image(3)
    (root / "FER2013Train" / "fer0000007.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of 4 listed images are missing.*fer0000007.png"):
        ferplus(root, "train")


def test_bad_options(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    with pytest.raises(DatasetError, match="label_mode 'votes' unknown"):
        ferplus(root, "train", label_mode="votes")
    with pytest.raises(DatasetError, match="unknown split 'valid'"):
        ferplus(root, "valid")
    with pytest.raises(DatasetError, match="unknown options"):
        ferplus(root, "train", colour=True)


def test_registered() -> None:
    assert "ferplus" in DATASETS and has_split("ferplus", "val") and has_split("ferplus", "test")


# ---- real data ------------------------------------------------------------------------------

README_TRAIN = {"surprise": 3149, "fear": 532, "disgust": 119, "happiness": 7287,
                "sadness": 3013, "anger": 2099, "neutral": 8739}
README_VAL = {"surprise": 415, "fear": 62, "disgust": 24, "happiness": 865, "sadness": 351,
              "anger": 287, "neutral": 1182}


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = SHARED / "ferplus"
    if not (root / "fer2013new.csv").is_file():
        pytest.skip(f"real FERPlus data not found at {root}")
    return root


@pytest.mark.realdata
def test_real_counts_7_and_8(real_root: Path) -> None:
    for split, expected, total, contempt in (("train", README_TRAIN, 24938, 119),
                                             ("val", README_VAL, 3186, 13)):
        ds7 = ferplus(real_root, split, num_classes=7)
        assert dict(zip(ds7.class_names, ds7.class_counts.tolist(), strict=True)) == expected
        assert len(ds7) == total
        ds8 = ferplus(real_root, split, num_classes=8)
        assert ds8.class_counts.tolist() == ds7.class_counts.tolist() + [contempt]


@pytest.mark.realdata
def test_real_soft_and_images(real_root: Path) -> None:
    ds = ferplus(real_root, "val", label_mode="soft")
    assert len(ds) == 3186
    np.testing.assert_allclose(ds.soft_labels.sum(1), 1.0, rtol=1e-5)
    assert (ds.soft_labels.argmax(1) == ds.labels).all()
    for index in (0, len(ds) // 2, len(ds) - 1):
        assert ds[index]["image"].shape == (1, 48, 48)


@pytest.mark.realdata
def test_real_private_test_absent(real_root: Path) -> None:
    with pytest.raises(DatasetError, match="FER2013Test"):
        ferplus(real_root, "test")
