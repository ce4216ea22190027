"""Every user mistake the CLI meets ends in one clear error (exit 2), not a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tests.conftest import tiny_overrides

from ferkit.cli import main as cli_main
from ferkit.engine import train as engine_train
from ferkit.models import build_classifier

pytestmark = pytest.mark.filterwarnings("ignore:.*synthetic dataset")


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
    assert code == 143 and "terminated (SIGTERM): stopped before a first epoch finished" in err
    assert signal.getsignal(signal.SIGTERM) is before


def _sigterm(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    raise AssertionError("SIGTERM did not interrupt")


def test_sigterm_messages_say_what_happened(tmp_path: Path, capsys, monkeypatch,
                                            tiny_checkpoint: Path) -> None:
    import ferkit.checks
    import ferkit.inference.video_files

    monkeypatch.setattr(ferkit.checks, "load_config", _sigterm)
    code, err = _run(capsys, ["train", *_sets(tmp_path / "run")])
    assert code == 143 and err == ("terminated (SIGTERM): stopped while reading the "
                                   "configuration; nothing was written\n")
    monkeypatch.setattr(ferkit.inference.video_files, "predict_media", _sigterm)
    code, err = _run(capsys, ["predict", "-c", str(tiny_checkpoint), "x.png"])
    assert code == 143 and err.endswith("terminated (SIGTERM): stopped before finishing\n")
    assert "resume" not in err and "epoch" not in err


def test_output_paths_under_a_file(tmp_path: Path, capsys, tiny_checkpoint: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    face = tmp_path / "face.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(face)
    code, err = _run(capsys, ["train", *_sets(blocker / "run")])
    assert code == 2 and err == f"error: output_dir: {blocker / 'run'} is under the file " \
        f"{blocker}, not a folder; choose another path\n"
    code, err = _run(capsys, ["train", *_sets(blocker)])
    assert code == 2 and f"error: output_dir: {blocker} is an existing file, not a folder" in err
    code, err = _run(capsys, ["eval", str(tiny_checkpoint), "--dataset", "synthetic",
                              "--out", str(blocker / "e")])
    assert code == 2 and f"error: --out: {blocker / 'e'} is under the file {blocker}" in err
    code, err = _run(capsys, ["export", str(tiny_checkpoint), "--out", str(blocker / "m.onnx")])
    assert code == 2 and f"error: --out: {blocker} is an existing file, not a folder" in err
    for option in ("--annotate", "--cam-dir"):
        code, err = _run(capsys, ["predict", "-c", str(tiny_checkpoint), "--no-detect", str(face),
                                  option, str(blocker / "a")])
        assert code == 2 and f"error: {option}: {blocker / 'a'} is under the file" in err
    assert "Traceback" not in err and blocker.read_text() == "x"


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "-1"], "argument --batch-size: expected a whole number above 0, got '-1'"),
    (["--batch-size", "0"], "argument --batch-size: expected a whole number above 0, got '0'"),
    (["--max-megapixels", "nan"], "argument --max-megapixels: expected a number above 0"),
    (["--threads", "0"], "argument --threads: expected a whole number above 0, got '0'"),
    (["--tau", "-1"], r"error: tau must be a number in \[0, 10\] \(1 = the exact prior correction"),
    (["--tau", "1e308", "--prior", "uniform"], r"error: tau must be a number in \[0, 10\]"),
    (["--prior", "inf,1,1,1,1,1,1"], "error: prior 'inf,1,1,1,1,1,1' is not valid: use 'default', 'train', "
     "'uniform' or finite positive"),
    (["--device", "gpu"], "error: --device: 'gpu' is not a device; use auto, cpu, cuda, cuda:N"),
])
def test_predict_values_checked_at_the_boundary(tmp_path: Path, capsys, tiny_checkpoint: Path,
                                                args: list[str], message: str) -> None:
    face = tmp_path / "face.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(face)
    with pytest.raises(SystemExit) if "argument" in message else contextlib.nullcontext() as exit:
        code = cli_main(["predict", "-c", str(tiny_checkpoint), "--no-detect", str(face), *args])
    code = exit.value.code if exit else code
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err) and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it(tmp_path: Path, capsys, tiny_checkpoint: Path) -> None:
    run = tmp_path / "run"
    code, err = _run(capsys, ["train", *_sets(run, **{"train.device": "cuda"})])
    assert code == 2 and "error: train.device: 'cuda' is not available: " in err
    assert not run.exists()  # nothing written
    code, err = _run(capsys, ["predict", "-c", str(tiny_checkpoint), "--device", "cuda:1", "x.png"])
    assert code == 2 and "error: --device: 'cuda:1' is not available: " in err


def test_datasets_shows_the_whole_expected_layout(tmp_path: Path, capsys) -> None:
    code, err = _run(capsys, ["datasets", str(tmp_path), "--dataset", "ferplus"])
    assert code == 2
    assert "Expected layout:" in err and "FER2013Test/" in err
    assert "generate_training_data.py" in err


def test_predict_never_hangs_on_special_files(tmp_path: Path, capsys,
                                              tiny_checkpoint: Path) -> None:
    import threading

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "a.png")
    os.mkfifo(folder / "b.png")  # no writer: a blocking read would never return
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(folder / "c.png")
    (folder / "loop").symlink_to(".")
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(cli_main([
        "predict", "-c", str(tiny_checkpoint), "--no-detect", "--format", "jsonl",
        "--max-megapixels", "0.0015", str(folder), str(folder / "**" / "*.png")])), daemon=True)
    worker.start()
    worker.join(120)
    assert outcome == [0], "predict hung or failed"
    out, err = capsys.readouterr()
    rows = [(r["image"], r["status"], (r["error"] or "").split(",")[0])
            for r in map(json.loads, out.splitlines())]
    # the folder, then the recursive glob (through the link loop): each file once per input
    assert rows == [(str(folder / n), s, e) for n, s, e in 2 * [
        ("a.png", "ok", ""), ("b.png", "error", "a FIFO (named pipe)"),
        ("c.png", "error", "50x40 is 0.0 megapixels")]]
    assert f"{folder / 'b.png'}: skipped: a FIFO (named pipe), not a regular file" in err
    assert f"{folder / 'c.png'}: skipped: 50x40 is 0.0 megapixels, over the decode budget of " \
           "0.0015 megapixels" in err and "raise the budget with --max-megapixels" in err


def test_predict_pattern_that_matches_nothing(tmp_path: Path, capsys,
                                              tiny_checkpoint: Path) -> None:
    pattern = str(tmp_path / "*.jpg")
    code, err = _run(capsys, ["predict", "-c", str(tiny_checkpoint), pattern])
    assert code == 1 and f"{pattern}: skipped: no file matches this pattern\n" in err
    assert err.endswith("error: no image could be read (1 unreadable input(s))\n")
    (tmp_path / "empty").mkdir()
    code, err = _run(capsys, ["predict", "-c", str(tiny_checkpoint), str(tmp_path / "empty")])
    assert code == 1 and err.splitlines()[-1] == "error: no image file found in the inputs given"


def test_yaml_alias_bomb_and_self_reference_are_refused(tmp_path: Path, capsys) -> None:
    import time

    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    bomb.write_text("model:\n  options:\n" + "".join(f"    {line}\n" for line in lines))
    start = time.perf_counter()
    code, err = _run(capsys, ["train", "--config", str(bomb)])
    assert code == 2 and err == (f"error: {bomb}: YAML aliases (&name / *name) expand this to more "
                                 "than 100,000 values; a config is far smaller. Write the values "
                                 "out instead of nesting aliases\n")
    assert time.perf_counter() - start < 30  # 10**9 values if expanded: refused, not built
    loop = tmp_path / "loop.yaml"
    loop.write_text("model:\n  options: &o {inner: *o}\n")
    code, err = _run(capsys, ["train", "--config", str(loop)])
    assert code == 2 and f"error: {loop}: a YAML alias refers to a mapping or list that" in err


@pytest.mark.parametrize(("edit", "problem"), [
    ({"class_names": ["a", "b", "c"]}, "3 class_names for num_classes 7"),
    ({"image_size": -4}, r"image_size -4 is not a whole number of pixels in \[1, 4096\]"),
    ({"mean": ["x", 0.5, 0.5]}, r"mean \['x', 0.5, 0.5\] / std \[.*\] are not 1 or 3 values"),
    ({"class_counts": [1, 2]}, r"class_counts \[1, 2\] are not 7 positive counts"),
])
def test_edited_checkpoint_metadata_is_refused(tmp_path: Path, capsys, tiny_checkpoint: Path,
                                               edit: dict, problem: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(tiny_checkpoint), framework="pt") as handle:
        meta = json.loads(handle.metadata()["ferkit"])
    edited = tmp_path / "edited.safetensors"
    save_file(load_file(str(tiny_checkpoint)), str(edited),
              metadata={"ferkit": json.dumps({**meta, **edit})})
    face = tmp_path / "face.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(face)
    code, err = _run(capsys, ["predict", "-c", str(edited), "--no-detect", str(face)])
    assert code == 2 and re.search(rf"^error: {re.escape(str(edited))}: its metadata does not "
                                   rf"hold together \({problem}.*\); it was edited", err)


def test_a_user_error_is_one_line_and_exit_2(capsys) -> None:
    code, err = _run(capsys, ["predict", "--webcam", "0", "photo.jpg"])
    assert code == 2
    assert err == ("error: --webcam reads a camera instead of files; leave out photo.jpg "
                   "(or --webcam)\n")


@pytest.mark.parametrize("bug", [ValueError("a bug, not bad input"), TypeError("a bug"),
                                 FileNotFoundError("a bug"), KeyError("a bug")])
def test_a_programming_error_shows_its_traceback(capsys, monkeypatch, bug: Exception) -> None:
    from ferkit import cli

    def broken(args: object) -> int:
        raise bug

    monkeypatch.setattr(cli, "_list", broken)
    with pytest.raises(type(bug), match="a bug"):  # not turned into exit 2 and one line
        cli_main(["list"])
    assert "error:" not in capsys.readouterr().err


def test_user_error_kinds_keep_the_builtin_bases_callers_catch() -> None:
    from ferkit import errors
    from ferkit.data import DatasetError
    from ferkit.engine.checkpoint import CheckpointError
    from ferkit.registry import UnknownNameError

    bases = {errors.ConfigError: ValueError, errors.UsageError: ValueError,
             errors.DatasetError: RuntimeError, errors.CheckpointError: RuntimeError,
             errors.MissingFileError: FileNotFoundError, errors.MissingExtra: ImportError,
             errors.TrainingDiverged: FloatingPointError, UnknownNameError: KeyError}
    for kind, builtin in bases.items():
        assert issubclass(kind, errors.FerkitError) and issubclass(kind, builtin), kind
    assert DatasetError is errors.DatasetError and CheckpointError is errors.CheckpointError
    import ferkit

    assert ferkit.FerkitError is errors.FerkitError
