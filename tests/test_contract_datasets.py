"""Contract tests over every registered dataset, driven by the registry: each dataset's own
``fake_tree`` hook writes a tiny tree in its published layout, and the test checks the counts per
split and class (canonical order), the official splits, the item format, the missing-root and
missing-image errors (they must show the expected tree), typed options, and ``ferkit datasets``.
A new dataset is covered by registering it with a ``fake_tree`` hook; nothing to write here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.data import (
    DATASETS,
    SPLITS,
    DatasetError,
    SplitNotAvailable,
    check_dataset_options,
    dataset_info,
    has_split,
)
from ferkit.data.check import describe
from ferkit.data.labels import CANONICAL_7

NAMES = DATASETS.names()
ON_DISK = [name for name in NAMES if dataset_info(name).needs_root]


def _build(name: str, root: Path | None, split: str, **options: object):
    return DATASETS.create(name, root=root, split=split, **options)


@pytest.mark.parametrize("name", NAMES)
def test_declares_a_fake_tree_hook(name: str) -> None:
    info = dataset_info(name)
    assert info.fake_tree is not None, (
        f"dataset '{name}' declares no fake_tree hook: pass fake_tree= to register_dataset")
    assert set(info.splits) <= set(SPLITS)
    assert info.tree or not info.needs_root, f"dataset '{name}' reads files but shows no tree"


@pytest.mark.parametrize("name", NAMES)
def test_fake_tree_counts_class_order_and_splits(name: str, tmp_path: Path) -> None:
    fake = dataset_info(name).fake_tree(tmp_path)
    assert set(fake.counts) <= set(dataset_info(name).splits)
    for split in SPLITS:
        if split not in fake.counts:
            with pytest.raises(SplitNotAvailable):
                _build(name, fake.root, split, **fake.options)
            continue
        dataset = _build(name, fake.root, split, **fake.options)
        assert has_split(name, split)
        assert dataset.class_names == CANONICAL_7
        assert dataset.class_counts.tolist() == fake.counts[split], split
        item = dataset[len(dataset) - 1]
        assert item["label"] == int(dataset.labels[-1]) and item["index"] == len(dataset) - 1
        assert item["image"].ndim == 3 and item["image"].shape[0] == dataset.channels


@pytest.mark.parametrize("name", ON_DISK)
def test_missing_root_and_empty_root_show_the_expected_tree(name: str, tmp_path: Path) -> None:
    tree = dataset_info(name).tree
    for root in (tmp_path / "absent", tmp_path):  # tmp_path exists but is empty
        with pytest.raises(DatasetError) as err:
            _build(name, root, "train")
        assert tree in str(err.value), f"{name} at {root}: the error does not show the tree"


@pytest.mark.parametrize("name", [n for n in ON_DISK if dataset_info(n).lists_files])
def test_missing_image_is_named_with_the_tree(name: str, tmp_path: Path) -> None:
    info = dataset_info(name)
    fake = info.fake_tree(tmp_path)
    dataset = _build(name, fake.root, "train", **fake.options)
    dataset.paths[0].unlink()
    with pytest.raises(DatasetError, match=rf"1 of {len(dataset)} listed images are missing") as err:
        _build(name, fake.root, "train", **fake.options)
    assert dataset.paths[0].name in str(err.value) and info.tree in str(err.value)
    counted = _build(name, fake.root, "train", require_images=False, **fake.options)
    assert counted.class_counts.tolist() == fake.counts["train"]


def _wrong_value(annotation: object) -> object:
    """A value no option of this annotation accepts: a number for text, text for the rest."""
    return 3 if annotation is str else "x"


@pytest.mark.parametrize("name", NAMES)
def test_options_are_checked_by_name_and_type(name: str) -> None:
    info = dataset_info(name)
    with pytest.raises(DatasetError, match=rf"^{name}: unknown options \['bogus'\]"):
        _build(name, None, "train", bogus=1)
    for option, param in info.options.items():
        errors = check_dataset_options(name, {option: _wrong_value(param.annotation)})
        assert errors == [f"data.options.{option}: dataset '{name}' expects {param.type_name}, "
                          f"got {_wrong_value(param.annotation)!r} "
                          f"({type(_wrong_value(param.annotation)).__name__}); "
                          f"default: {param.default!r}"]
        assert check_dataset_options(name, {option: param.default}) == []


@pytest.mark.parametrize("name", NAMES)
def test_describe_counts_every_split_of_the_fake_tree(name: str, tmp_path: Path) -> None:
    fake = dataset_info(name).fake_tree(tmp_path)
    report = describe(name, fake.root, **fake.options)
    for split, counts in fake.counts.items():
        assert f"| {split} | {' | '.join(map(str, counts))} | {sum(counts)} |" in report
