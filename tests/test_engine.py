"""End to end on tiny synthetic data: train -> checkpoint -> kill -> resume -> eval -> predict."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tests.conftest import tiny_overrides

import ferkit.engine.train as engine_train
from ferkit import Predictor, api, load_config
from ferkit.cli import main as cli_main
from ferkit.data import DATASETS
from ferkit.engine.checkpoint import CheckpointError, load_checkpoint
from ferkit.run_folder import RunFolderError


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_train_writes_everything(tmp_path: Path) -> None:
    cfg = load_config(None, tiny_overrides(tmp_path / "run"))
    result = api.train(cfg)
    out = Path(cfg.output_dir)
    for name in ("config.yaml", "last.safetensors", "best.safetensors", "last.json",
                 "metrics.jsonl", "metrics.csv", "results.json", "report.md"):
        assert (out / name).is_file(), name
    assert len(result.history) == 2
    record = result.history[-1]
    assert set(record["val"]) >= {"accuracy", "mean_class_accuracy", "macro_f1",
                                  "per_class_accuracy", "confusion_matrix"}
    assert "provenance" in (out / "config.yaml").read_text()
    results = json.loads((out / "results.json").read_text())
    assert set(results["test"]) == {"last", "selected"}  # synthetic has a test split
    assert results["val"]["selected_epoch"] in (1, 2)
    meta = load_checkpoint(out / "best.safetensors").meta
    assert meta.class_names[0] == "surprise" and meta.image_size == 32
    assert meta.mean == (0.485, 0.456, 0.406) and meta.backbone == "tiny_cnn"
    assert meta.format_version == 1 and meta.num_samples == sum(meta.class_counts)
    assert not list(out.glob(".*tmp*")), "temporary files left behind"
    # Rerunning a finished run trains nothing more and keeps the weights.
    before = _weights(out / "last.safetensors")
    api.train(cfg)
    after = _weights(out / "last.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Killed(Exception):
    pass


def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    extra = {"train.epochs": 3, "method.name": "ce", "model.drop_rate": 0.2,
             "optim.scheduler": "cosine", "optim.warmup_steps": 2}
    full = load_config(None, tiny_overrides(tmp_path / "full", **extra))
    api.train(full)

    killed = load_config(None, tiny_overrides(tmp_path / "killed", **extra))
    real_prepare = engine_train.prepare_batch
    calls = {"n": 0}

    def dying_prepare(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # epoch 1 has 6 steps; die in the middle of epoch 2
            raise _Killed
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(engine_train, "prepare_batch", dying_prepare)
    with pytest.raises(_Killed):
        api.train(killed)
    assert load_checkpoint(Path(killed.output_dir) / "last.safetensors").meta.extra["epoch"] == 1
    monkeypatch.setattr(engine_train, "prepare_batch", real_prepare)
    api.train(killed)

    a = _weights(Path(full.output_dir) / "last.safetensors")
    b = _weights(Path(killed.output_dir) / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ha = [json.loads(x) for x in (Path(full.output_dir) / "metrics.jsonl").read_text().splitlines()]
    hb = [json.loads(x) for x in (Path(killed.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["val"]["accuracy"] for r in ha] == [r["val"]["accuracy"] for r in hb]
    assert [r["train"]["loss"] for r in ha] == [r["train"]["loss"] for r in hb]


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_eval_and_predict_from_checkpoint(tmp_path: Path, capsys) -> None:
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 1}))
    api.train(cfg)
    ckpt = Path(cfg.output_dir) / "best.safetensors"
    test_set = DATASETS.create("synthetic", root=None, split="test", size=32, num_test=40)
    report = api.evaluate(ckpt, test_set, device="cpu")
    assert report["num_samples"] == 40
    assert sum(map(sum, report["confusion_matrix"])) == 40

    # The CLI writes JSON + markdown.
    code = cli_main(["eval", str(ckpt), "--dataset", "synthetic", "--split", "test",
                     "--out", str(tmp_path / "eval")])
    assert code == 0
    written = json.loads((tmp_path / "eval" / "eval_synthetic_test.json").read_text())
    assert written["num_samples"] == 700  # the CLI builds the default synthetic test split
    assert "mean class acc" in (tmp_path / "eval" / "eval_synthetic_test.md").read_text()

    # Predict on image files, the same images as arrays give the same answer.
    paths = []
    for i in range(3):
        array = test_set.load_image(i)[:, :, 0]
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(array).save(paths[-1])
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    preds = predictor.predict(paths)
    assert [p.label for p in preds] == [p.label for p in
                                        predictor.predict([Image.open(p) for p in paths])]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)
    assert predictor.cams(paths).shape[:2] == (3, 7)
    code = cli_main(["predict", str(ckpt), *map(str, paths), "--no-detect",
                     "--cam-dir", str(tmp_path / "cams")])
    assert code == 0
    assert len(list((tmp_path / "cams").glob("*.png"))) == 3
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [[row[-1], row[0]] for row in rows if row and row[-1].endswith(".png")] == [
        [str(p), "1"] for p in paths]  # the image is the table's last column


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)


def test_resume_into_other_backbone_or_classes_is_refused(tmp_path: Path) -> None:
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 1}))
    api.train(cfg)
    other = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 2,
                                                                  "model.options": "{width: 4}"}))
    with pytest.raises(RunFolderError, match=r"model.options: \{'width': 8\} -> \{'width': 4\}"):
        api.train(other)
    eight = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 2,
                                                                  "data.num_classes": 8}))
    with pytest.raises(RunFolderError, match=r"data.num_classes: 7 -> 8"):
        api.train(eight)
    # without config.yaml the checkpoint's own metadata still refuses another model
    (tmp_path / "run" / "config.yaml").unlink()
    (tmp_path / "run" / "last.json").unlink()
    with pytest.raises(RunFolderError, match=r"data.num_classes: 7 -> 8"):
        api.train(eight)


def test_training_length_in_steps(tmp_path: Path) -> None:
    """train.steps: 9 steps of 6 per epoch -> 2 epochs (6 + 3), the cosine reaches 0 at step 9."""
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{
        "train.steps": 9, "train.epochs": 50, "optim.scheduler": "cosine"}))
    result = api.train(cfg)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.history[0]["lr"] == pytest.approx(0.003 * 0.5 * (1 + math.cos(math.pi * 6 / 9)))
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    state = load_checkpoint(Path(cfg.output_dir) / "last.safetensors").meta.extra["scheduler"]
    assert state["last_epoch"] == 9


def test_official_mek_recipe_runs_on_tiny_data(tmp_path: Path) -> None:
    """configs/rafdb_mek_official.yaml end to end on synthetic data (RandAugment, jitter, random
    erasing, AdamW + warm-up cosine in steps, grad clip), with only the data and size swapped."""
    recipe = Path(__file__).resolve().parents[1] / "configs" / "rafdb_mek_official.yaml"
    overrides = tiny_overrides(tmp_path / "run", **{"train.steps": 4, "train.eval_every": 1,
                                                    "optim.warmup_steps": 2, "train.amp": "none",
                                                    "data.mean": [0.5, 0.5, 0.5]})
    cfg = load_config(recipe, overrides)
    assert cfg.data.augment.randaugment_ops == 2 and cfg.data.augment.erasing_fill == "random"
    result = api.train(cfg)
    assert len(result.history) == 1 and set(result.history[0]["train"]) >= {"l_cls", "l_cons"}
    assert math.isfinite(result.history[0]["train"]["loss"])


def test_report_pictures_and_plain_progress(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """One epoch (the last epoch is the val-selected one): each report section once, the learning
    curves and confusion matrix beside report.md; with the progress bar on but stderr not a
    terminal, no carriage-return updates, one log line per epoch."""
    pytest.importorskip("matplotlib", reason='needs the [plot] extra: pip install "ferkit[plot]"')
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 1,
                                                                "train.progress": True}))
    with caplog.at_level("INFO", logger="ferkit"):
        api.train(cfg)
    out = Path(cfg.output_dir)
    report = (out / "report.md").read_text()
    assert report.count("## Validation") == 1 and "## Validation, the val-selected epoch (1)" in report
    assert report.count("## Test") == 1 and "## Test, last epoch = val-selected checkpoint" in report
    assert "![learning curves](learning_curves.png)" in report
    assert "(confusion_matrix.png)" in report
    for name in ("learning_curves.png", "confusion_matrix.png"):
        with Image.open(out / name) as picture:
            assert picture.format == "PNG" and picture.width > 500
    assert "\r" not in capsys.readouterr().err
    epoch_lines = [r.message for r in caplog.records if r.message.startswith("epoch ")]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("epoch 1: loss=")
    results = json.loads((out / "results.json").read_text())
    assert results["test"]["selected"] == results["test"]["last"]


def test_report_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # the import now fails
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": 1}))
    api.train(cfg)
    report = (Path(cfg.output_dir) / "report.md").read_text()
    assert 'No pictures: matplotlib is not installed (pip install "ferkit[plot]").' in report
    assert not list(Path(cfg.output_dir).glob("*.png"))
