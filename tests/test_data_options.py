"""Every DataConfig option, end to end through ``ferkit.train``: each changes what is trained on.

The runs use a small real subset of FERPlus (a few images per class from ../shared/data/ferplus,
copied with a cut-down ``fer2013new.csv``) and the tiny CNN at 16 px for one epoch. A recorder
wraps the method ``ferkit.train`` builds and keeps, for every training step, the batch the method
received (indices, labels, soft targets), the tensor its classifier received, and the loss and
logits it returned, plus the size of every evaluation batch. The assertions compare those against
the image files and the CSV votes, computed here by hand.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tests.conftest import SHARED_DATA

import ferkit.api
from ferkit.checks import load_config
from ferkit.config import ConfigError
from ferkit.data.labels import CANONICAL_7, FERPLUS_COLUMNS
from ferkit.data.synthetic import SyntheticFaces

FERPLUS = SHARED_DATA / "ferplus"
needs_ferplus = pytest.mark.skipif(not (FERPLUS / "fer2013new.csv").is_file(),
                                   reason=f"real FERPlus data not found at {FERPLUS}")
PER_CLASS_TRAIN, PER_CLASS_VAL = 6, 2
EMOTIONS = FERPLUS_COLUMNS[:8]  # neutral ... contempt (no unknown / NF)


def _majority(votes: list[int]) -> int:
    """FER+ majority column by hand: drop 1-votes, top must hold more than half of the rest."""
    cleaned = [v if v > 1 else 0 for v in votes]
    top = max(range(len(cleaned)), key=lambda i: (cleaned[i], -i))
    return top if 2 * cleaned[top] > sum(cleaned) else -1


def _subset_rows() -> tuple[list[str], list[list[str]]]:
    """CSV header and rows: the first PER_CLASS images of each emotion, train and val."""
    with open(FERPLUS / "fer2013new.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    wanted = {"Training": PER_CLASS_TRAIN, "PublicTest": PER_CLASS_VAL}
    taken: dict[tuple[str, int], int] = {}
    chosen, seen = [], set()
    for row in rows[1:]:
        if row[0] not in wanted or not row[1] or row[1] in seen:
            continue
        column = _majority([int(v) for v in row[2:]])
        if 0 <= column < len(EMOTIONS) and taken.get((row[0], column), 0) < wanted[row[0]]:
            taken[(row[0], column)] = taken.get((row[0], column), 0) + 1
            seen.add(row[1])
            chosen.append(row)
    return rows[0], chosen


def _write_root(root: Path, header: list[str], rows: list[list[str]], invert: bool) -> Path:
    folders = {"Training": "FER2013Train", "PublicTest": "FER2013Valid"}
    for row in rows:
        source = FERPLUS / folders[row[0]] / row[1]
        target = root / folders[row[0]] / row[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        if invert:
            with Image.open(source) as image:
                Image.fromarray(255 - np.asarray(image.convert("L"))).save(target)
        else:
            shutil.copy2(source, target)
    with open(root / "fer2013new.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    # The generic CSV dataset over the same training images (it has no official val split).
    names = dict(zip(FERPLUS_COLUMNS, ("neutral", "happiness", "surprise", "sadness", "anger",
                                       "disgust", "fear", "contempt")))
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for row in rows:
            if row[0] == "Training":
                label = names[EMOTIONS[_majority([int(v) for v in row[2:]])]]
                writer.writerow([f"FER2013Train/{row[1]}", label, "train"])
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (FERPLUS / "fer2013new.csv").is_file():
        pytest.skip(f"real FERPlus data not found at {FERPLUS}")
    header, rows = _subset_rows()
    base = tmp_path_factory.mktemp("ferplus-subset")
    return {"plain": _write_root(base / "plain", header, rows, False),
            "inverted": _write_root(base / "inverted", header, rows, True),
            "votes": {row[1]: [int(v) for v in row[2:]] for row in rows}}


@dataclass
class Trace:
    """What one ``ferkit.train`` call trained on."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    eval_sizes: list[int] = field(default_factory=list)
    splits: Any = None
    method: Any = None
    results: dict[str, Any] = field(default_factory=dict)

    def pixels(self, step: int, mean: float = 0.485, std: float = 0.229) -> np.ndarray:
        """uint8 ``[B, H, W]`` recovered from the normalised classifier input (channel 0)."""
        x = self.steps[step]["inputs"][:, 0].double() * std + mean
        return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()

    def seen(self, key: str = "index") -> np.ndarray:
        return torch.cat([s[key] for s in self.steps]).numpy()


def _record(trace: Trace, create: Any, build: Any) -> tuple[Any, Any]:
    def build_splits(cfg: Any) -> Any:
        trace.splits = build(cfg)
        return trace.splits

    def create_method(*args: Any, **kwargs: Any) -> Any:
        method = trace.method = create(*args, **kwargs)

        def before_step(_: Any, args: tuple) -> None:
            batch = args[0]
            trace.steps.append({k: batch[k].detach().clone() for k in
                                ("index", "label", "soft_label") if k in batch})

        def after_step(_: Any, args: tuple, out: Any) -> None:
            trace.steps[-1].update(loss=out.loss.detach().clone(), logits=out.logits.detach())

        def before_model(module: Any, args: tuple) -> None:
            if module.training:
                trace.steps[-1].setdefault("inputs", args[0].detach().clone())
            else:
                trace.eval_sizes.append(args[0].shape[0])

        method.register_forward_pre_hook(before_step)
        method.register_forward_hook(after_step)
        method.model.register_forward_pre_hook(before_model)
        return method

    return build_splits, create_method


def train(monkeypatch: pytest.MonkeyPatch, out: Path, root: Path | None, **overrides: Any) -> Trace:
    values: dict[str, Any] = {
        "output_dir": str(out), "data.dataset": "ferplus", "data.root": str(root),
        "data.image_size": 16, "data.batch_size": 4, "data.eval_batch_size": 64,
        "data.cache_dir": str(out.parent / "cache"), "data.augment.crop": "none",
        "data.augment.flip": 0.0, "data.augment.erasing": 0.0, "model.backbone": "tiny_cnn",
        "model.options": "{width: 4}", "train.epochs": 1, "train.progress": False,
        "train.tensorboard": False, "train.device": "cpu", "train.amp": "none",
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    cfg = load_config(None, [f"{k}={v}" for k, v in values.items() if v is not None])
    trace = Trace()
    hooks = _record(trace, ferkit.api.create_method, ferkit.api.build_splits)
    with monkeypatch.context() as patch:
        patch.setattr(ferkit.api, "build_splits", hooks[0])
        patch.setattr(ferkit.api, "create_method", hooks[1])
        ferkit.api.train(cfg)
    trace.results = json.loads((out / "results.json").read_text())
    return trace


def _file_pixels(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((size, size), Image.BILINEAR))


def _expected(trace: Trace, step: int, size: int = 16) -> np.ndarray:
    return np.stack([_file_pixels(trace.splits.train.paths[i], size)
                     for i in trace.steps[step]["index"].tolist()])


@needs_ferplus
def test_dataset_root_and_image_size(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     roots: dict[str, Any]) -> None:
    plain = train(monkeypatch, tmp_path / "plain", roots["plain"])
    assert all(p.parent == roots["plain"] / "FER2013Train" for p in plain.splits.train.paths)
    for step in (0, 3):
        np.testing.assert_array_equal(plain.pixels(step), _expected(plain, step))
    # Same names, sizes and (copy) layout, inverted pixels: trained on the inverted pixels.
    inverted = train(monkeypatch, tmp_path / "inverted", roots["inverted"])
    np.testing.assert_array_equal(inverted.seen(), plain.seen())
    np.testing.assert_array_equal(inverted.pixels(0), _expected(inverted, 0))
    difference = inverted.pixels(0).astype(int) - (255 - plain.pixels(0).astype(int))
    assert np.abs(difference).max() <= 1  # inverted, up to the resize's rounding
    bigger = train(monkeypatch, tmp_path / "size", roots["plain"], data__image_size=24)
    assert tuple(bigger.steps[0]["inputs"].shape) == (4, 3, 24, 24)
    np.testing.assert_array_equal(bigger.pixels(1), _expected(bigger, 1, 24))
    synthetic = train(monkeypatch, tmp_path / "synthetic", None, data__dataset="synthetic",
                      data__options="{size: 16, num_train: 40, num_val: 10, num_test: 10}")
    faces = SyntheticFaces("train", size=16, num_images=40)
    index = synthetic.steps[0]["index"].tolist()
    np.testing.assert_array_equal(synthetic.pixels(0),
                                  np.stack([faces.load_image(i)[:, :, 0] for i in index]))
    assert len(plain.splits.train) == 7 * PER_CLASS_TRAIN and len(synthetic.splits.train) == 40


@needs_ferplus
def test_num_classes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                     roots: dict[str, Any]) -> None:
    seven = train(monkeypatch, tmp_path / "k7", roots["plain"])
    eight = train(monkeypatch, tmp_path / "k8", roots["plain"], data__num_classes=8)
    assert seven.steps[0]["logits"].shape[1] == 7 and eight.steps[0]["logits"].shape[1] == 8
    assert set(seven.seen("label").tolist()) == set(range(7))
    assert set(eight.seen("label").tolist()) == set(range(8))  # contempt images trained on
    assert eight.method.class_counts.tolist() == [PER_CLASS_TRAIN] * 8


def _hand_soft(votes: list[int], drop_single: bool) -> np.ndarray:
    """Vote distribution over the 7 classes in canonical order, by hand."""
    by_name = dict(zip(FERPLUS_COLUMNS, votes))
    raw = np.array([by_name[name] for name in CANONICAL_7], np.float64)
    if drop_single:
        raw[raw <= 1] = 0
    return raw / raw.sum()


@needs_ferplus
def test_label_mode_soft_reaches_the_loss(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          roots: dict[str, Any]) -> None:
    hard = train(monkeypatch, tmp_path / "hard", roots["plain"])
    assert "soft_label" not in hard.steps[0]
    soft = train(monkeypatch, tmp_path / "soft", roots["plain"], data__label_mode="soft")
    targets = soft.seen("soft_label")
    names = [soft.splits.train.paths[i].name for i in soft.seen()]
    expected = np.stack([_hand_soft(roots["votes"][n], True) for n in names])
    np.testing.assert_allclose(targets, expected, rtol=1e-6)
    assert (expected.max(1) < 1).any()  # some targets are not one-hot
    for step in soft.steps:
        by_hand = -(step["soft_label"] * F.log_softmax(step["logits"].float(), 1)).sum(1).mean()
        assert step["loss"].item() == pytest.approx(by_hand.item(), rel=1e-6)
    hard_loss = F.cross_entropy(soft.steps[0]["logits"], soft.steps[0]["label"])
    assert soft.steps[0]["loss"].item() != pytest.approx(hard_loss.item(), rel=1e-4)
    # data.options reaches the dataset too: keeping the 1-votes changes the targets.
    raw = train(monkeypatch, tmp_path / "raw", roots["plain"], data__label_mode="soft",
                data__options="{soft_drop_single_votes: false}")
    expected_raw = np.stack([_hand_soft(roots["votes"][n], False) for n in names])
    np.testing.assert_allclose(raw.seen("soft_label"), expected_raw, rtol=1e-6)
    assert not np.allclose(expected_raw, expected)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data__dataset": "synthetic"}, r"data.label_mode='soft': dataset 'synthetic' has no soft "
                                     r"labels \(vote distributions\); datasets that have them: "
                                     r"ferplus\. Set data.label_mode=majority"),
    ({"method__name": "mek"}, r"'soft' needs a method that trains on vote distributions; method "
                              r"'mek' uses hard labels only\. Use method.name=ce"),
], ids=["dataset-without-votes", "hard-label-method"])
def test_label_mode_soft_refused_where_it_would_do_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train(monkeypatch, tmp_path / "run", None, data__label_mode="soft", **overrides)
    assert not (tmp_path / "run").exists()


def test_label_mode_in_options_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.options.label_mode='soft': the label mode is set "
                                          r"by data.label_mode alone; move it there"):
        train(monkeypatch, tmp_path / "run", None, data__dataset="synthetic",
              data__options="{label_mode: soft}")


@needs_ferplus
def test_imbalance_factor_seed_and_max(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       roots: dict[str, Any]) -> None:
    # 6 images per class, ties ranked in canonical order: int(6 * (1/2) ** (r / 6)), r = 0..6.
    subset = train(monkeypatch, tmp_path / "if2", roots["plain"], data__imbalance_factor=2)
    assert subset.method.class_counts.tolist() == [6, 5, 4, 4, 3, 3, 3]
    assert np.bincount(subset.seen("label"), minlength=7).tolist() == [6, 5, 4, 4, 3, 3, 3]
    assert sorted(subset.seen().tolist()) == list(range(28))  # 7 batches of 4: each image once
    assert subset.results["train_counts"] == [6, 5, 4, 4, 3, 3, 3]
    other = train(monkeypatch, tmp_path / "if2s1", roots["plain"], data__imbalance_factor=2,
                  data__imbalance_seed=1)
    assert other.method.class_counts.tolist() == [6, 5, 4, 4, 3, 3, 3]
    files = {p.name for p in subset.splits.train.paths}
    assert {p.name for p in other.splits.train.paths} != files  # other images chosen
    # Capped at 4 first: int(4 * (1/2) ** (r / 6)).
    capped = train(monkeypatch, tmp_path / "cap", roots["plain"], data__imbalance_factor=2,
                   data__imbalance_max=4)
    assert capped.method.class_counts.tolist() == [4, 3, 3, 2, 2, 2, 2]


@needs_ferplus
def test_val_fraction_and_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                               roots: dict[str, Any]) -> None:
    csv_run = {"data__dataset": "csv", "data__eval_batch_size": 100}
    third = train(monkeypatch, tmp_path / "third", roots["plain"], data__val_fraction=1 / 3,
                  **csv_run)
    half = train(monkeypatch, tmp_path / "half", roots["plain"], data__val_fraction=0.5, **csv_run)
    # Per class of 6: round(6/3) = 2 and round(6/2) = 3 held out for validation.
    assert len(third.splits.train) == 28 and third.eval_sizes == [14]
    assert len(half.splits.train) == 21 and half.eval_sizes == [21]
    assert sorted(third.seen().tolist()) == list(range(28))
    other = train(monkeypatch, tmp_path / "seed", roots["plain"], data__val_fraction=1 / 3,
                  data__val_seed=5, **csv_run)
    assert len(other.splits.train) == 28
    assert {p.name for p in other.splits.train.paths} != {p.name for p in third.splits.train.paths}


@needs_ferplus
def test_batch_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                     roots: dict[str, Any]) -> None:
    run = train(monkeypatch, tmp_path / "b", roots["plain"], data__batch_size=8,
                data__eval_batch_size=5)
    assert [len(s["index"]) for s in run.steps] == [8] * 5  # 42 images, the last 2 dropped
    # 14 validation images (2 per class) in batches of 5.
    assert run.eval_sizes == [5, 5, 4]


@needs_ferplus
def test_mean_and_std(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                      roots: dict[str, Any]) -> None:
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    run = train(monkeypatch, tmp_path / "norm", roots["plain"], data__mean=list(mean),
                data__std=list(std))
    pixels = torch.from_numpy(_expected(run, 0)).double() / 255
    for c in range(3):
        by_hand = (pixels - mean[c]) / std[c]
        torch.testing.assert_close(run.steps[0]["inputs"][:, c].double(), by_hand,
                                   rtol=0, atol=1e-5)


@needs_ferplus
def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                   roots: dict[str, Any]) -> None:
    folder = tmp_path / "my-cache"
    on_disk = train(monkeypatch, tmp_path / "disk", roots["plain"], data__cache_dir=str(folder))
    assert len(list(folder.glob("*.fkcache"))) == 2  # train and val
    in_memory = train(monkeypatch, tmp_path / "memory", roots["plain"], data__cache_dir="memory")
    assert len(list(tmp_path.rglob("*.fkcache"))) == 2  # nothing written for the memory run
    np.testing.assert_array_equal(in_memory.pixels(2), on_disk.pixels(2))  # same pixels


@needs_ferplus
def test_augment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 roots: dict[str, Any]) -> None:
    flipped = train(monkeypatch, tmp_path / "flip", roots["plain"], data__augment__flip=1.0)
    np.testing.assert_array_equal(flipped.pixels(0), _expected(flipped, 0)[:, :, ::-1])
    default = train(monkeypatch, tmp_path / "default", roots["plain"], data__augment__crop="resized",
                    data__augment__flip=0.5, data__augment__erasing=0.25)
    assert not np.array_equal(default.pixels(0), _expected(default, 0))


def test_soft_label_errors_reported_together(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid configuration \(2 problems\):\n  - "
                                          r"data.label_mode='soft': "
                                          r"dataset 'synthetic' has no soft labels(.|\n)*\n  - "
                                          r"data.label_mode: 'soft' needs a method"):
        train(monkeypatch, tmp_path / "run", None, data__dataset="synthetic",
              data__label_mode="soft", method__name="eac")
