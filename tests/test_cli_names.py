"""Finding things by name: help for bare ``ferkit`` and every option, did-you-mean for a mistyped
command, packaged recipes and protocols by name, the dataset layout detected from its root, the
backend from the model file, ``export`` defaulting to the packaged model."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ferkit import cli
from ferkit.checks import load_config
from ferkit.config import ConfigError, to_dict
from ferkit.config_yaml import find_recipe, protocol_names, recipe_names
from ferkit.data import dataset_info

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bare_ferkit_prints_help(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run([], capsys)
    assert code == 0 and err == "" and out.startswith("usage: ferkit")
    assert all(command in out for command in ("train", "predict", "serve", "bench", "list"))


def test_mistyped_command_suggests(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["-v", "predcit", "photo.jpg"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("ferkit: 'predcit' is not a command. Did you mean 'predict'? Commands: train, ")


def test_every_option_has_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, command in sub.choices.items()
               for action in command._actions
               if not action.help and not isinstance(action, argparse._HelpAction)]
    assert missing == []


def test_bench_help_and_list_name_every_protocol_and_recipe(capsys: pytest.CaptureFixture) -> None:
    on_disk = sorted(p.stem for p in (REPO / "configs" / "bench").glob("*.yaml"))
    assert protocol_names() == on_disk and len(on_disk) >= 5
    assert recipe_names() == sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert all(name in help_text for name in on_disk)
    code, out, _ = run(["list"], capsys)
    assert code == 0
    assert f"recipes (ferkit train --config NAME): {', '.join(recipe_names())}" in out
    assert f"benchmark protocols (ferkit bench NAME): {', '.join(on_disk)}" in out


def test_recipes_by_name_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_checkout = to_dict(load_config(REPO / "configs" / "quickstart.yaml"))
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    for name in ("quickstart", "quickstart.yaml", "configs/quickstart.yaml"):
        assert find_recipe(name).name == "quickstart.yaml"
        assert to_dict(load_config(name)) == in_checkout
    with pytest.raises(ConfigError, match=r"config 'quikstart' is neither a file nor a packaged "
                                          r"recipe; did you mean 'quickstart'\? recipes: "):
        load_config("quikstart")
    with pytest.raises(ConfigError, match="config 'elsewhere/quickstart.yaml' is neither"):
        load_config("elsewhere/quickstart.yaml")  # a path that is not there is not guessed


def test_datasets_detects_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake = dataset_info("ferplus").fake_tree(tmp_path / "ferplus")
    code, out, err = run(["datasets", str(fake.root)], capsys)
    assert code == 0, err
    assert out.startswith(f"{fake.root}: ferplus layout (name another with --dataset)")
    assert "synthetic" not in out
    (tmp_path / "empty").mkdir()
    code, _, err = run(["datasets", str(tmp_path / "empty")], capsys)
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'empty'} does not look like any known layout "
                          "(looked for: ")
    assert "fer2013new.csv (ferplus)" in err and err.rstrip().endswith(
        "name it with --dataset NAME (ferkit list shows the datasets)")


def test_backend_from_the_file_and_export_default(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    from ferkit.inference import export
    from ferkit.inference.predictor import backend_for, pretrained_path

    assert backend_for("model.ONNX") == "onnx" and backend_for(Path("m.onnx")) == "onnx"
    assert backend_for("best.safetensors") == "torch" and backend_for(None) == "torch"
    assert backend_for("model.onnx", "torch") == "torch"  # an explicit choice stands

    seen = []

    def fake_export(checkpoint, out, **kwargs):
        seen.append(checkpoint)
        raise export.ExportError("stopped by the test")

    monkeypatch.setattr(export, "export_onnx", fake_export)
    code, _, err = run(["export", "--out", "x.onnx"], capsys)
    assert code == 1 and seen == [pretrained_path()] and "stopped by the test" in err
