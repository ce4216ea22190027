"""Every user mistake the CLI meets ends in one clear error (exit 2), not a traceback."""

from __future__ import annotations

import json
import os
import pathlib
import signal
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tests.conftest import tiny_overrides

from ferkit.cli import main as cli_main
from ferkit.engine import train as engine_train
from ferkit.models import build_classifier


def _sets(run: Path, **extra: object) -> list[str]:
    return [x for s in tiny_overrides(run, **extra) for x in ("--set", s)]


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = cli_main(argv)
    return code, capsys.readouterr().err


def test_unsafe_pickle_as_pretrained(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": pathlib.PurePosixPath("x")}, evil)
    code, err = _run(capsys, ["train", *_sets(tmp_path / "run", **{"model.pretrained": evil})])
    assert code == 2 and f"error: refusing to load '{evil}': unsafe pickle" in err
    assert "Traceback" not in err


def test_weights_of_another_backbone(tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(other))
    code, err = _run(capsys, ["train", *_sets(tmp_path / "run", **{"model.pretrained": other})])
    assert code == 2 and f"weights from '{other}' do not fit backbone 'tiny_cnn'" in err
    code, err = _run(capsys, ["-v", "train", *_sets(tmp_path / "run",
                                                   **{"model.pretrained": other})])
    assert code == 2 and "Traceback" in err  # -v keeps the traceback


def test_ferkit_checkpoint_as_pretrained_loads_its_backbone(tmp_path: Path, capsys) -> None:
    assert cli_main(["train", *_sets(tmp_path / "a", **{"train.epochs": 1})]) == 0
    best = tmp_path / "a" / "best.safetensors"
    assert cli_main(["train", *_sets(tmp_path / "b", **{"train.epochs": 1,
                                                         "model.pretrained": best})]) == 0
    net = build_classifier("tiny_cnn", 7, str(best), width=8)
    from safetensors.torch import load_file

    saved = load_file(str(best))
    for key, value in net.backbone.state_dict().items():
        assert torch.equal(value, saved[f"model.backbone.{key}"]), key


def test_nan_loss_stops_with_a_sentence(tmp_path: Path, capsys, monkeypatch) -> None:
    real = engine_train.train_step

    def nan_step(*args, **kwargs):
        out = real(*args, **kwargs)
        out.loss = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(engine_train, "train_step", nan_step)
    code, err = _run(capsys, ["train", *_sets(tmp_path / "run")])
    assert code == 2
    assert "error: training stopped: the loss is nan at epoch 1, step 0; lower optim.lr" in err


def _bad_checkpoint(path: Path, meta: str) -> Path:
    save_file({"x": torch.zeros(1)}, str(path), metadata={"ferkit": meta})
    return path


def test_broken_checkpoints(tmp_path: Path, capsys) -> None:
    face = tmp_path / "face.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(face)
    not_json = _bad_checkpoint(tmp_path / "a.safetensors", "{not json")
    code, err = _run(capsys, ["predict", str(not_json), str(face)])
    assert code == 2 and f"{not_json}: its 'ferkit' metadata is not JSON" in err
    lacking = _bad_checkpoint(tmp_path / "b.safetensors", json.dumps({"class_names": ["a"]}))
    code, err = _run(capsys, ["predict", str(lacking), str(face)])
    assert code == 2 and f"{lacking}: its metadata lacks num_classes, image_size" in err
    code, err = _run(capsys, ["predict", "-c", str(face), str(face)])
    assert code == 2 and f"cannot read checkpoint {face}" in err and "not a (complete)" in err


def test_binary_recipe_file(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(bytes(range(256)))
    code, err = _run(capsys, ["train", "--config", str(recipe)])
    assert code == 2 and f"{recipe}: not a text (UTF-8) YAML file" in err


def test_ctrl_c_in_the_first_epoch_and_later(tmp_path: Path, capsys, monkeypatch) -> None:
    real, calls = engine_train.train_step, []

    def interrupt_at(step: int):
        def stop(*args, **kwargs):
            calls.append(1)
            if len(calls) == step:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return stop

    run = tmp_path / "run"
    monkeypatch.setattr(engine_train, "train_step", interrupt_at(2))
    code, err = _run(capsys, ["train", *_sets(run)])
    assert code == 130 and "nothing was saved" in err and "resume" not in err
    calls.clear()
    monkeypatch.setattr(engine_train, "train_step", interrupt_at(8))  # 6 steps per epoch
    code, err = _run(capsys, ["train", *_sets(run)])
    assert code == 130
    assert f"{run / 'last.safetensors'} holds the last finished epoch: re-run" in err


def test_sigterm_is_reported_and_non_zero(tmp_path: Path, capsys, monkeypatch) -> None:
    def terminate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(engine_train, "train_step", terminate)
    before = signal.getsignal(signal.SIGTERM)
    code, err = _run(capsys, ["train", *_sets(tmp_path / "run")])
    assert code == 143 and "terminated (SIGTERM): stopped during the first epoch" in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_datasets_shows_the_whole_expected_layout(tmp_path: Path, capsys) -> None:
    code, err = _run(capsys, ["datasets", str(tmp_path), "--dataset", "ferplus"])
    assert code == 2
    assert "Expected layout:" in err and "FER2013Test/" in err
    assert "generate_training_data.py" in err
