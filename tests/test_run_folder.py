"""Run identity: a run folder belongs to one resolved config (resume, refuse, --overwrite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.conftest import tiny_overrides

from ferkit import api
from ferkit.bench import runner
from ferkit.checks import load_config
from ferkit.cli import main as cli_main
from ferkit.config import to_dict
from ferkit.run_folder import RunFolderError, config_changes


def _train(run: Path, **extra: object):
    return api.train(load_config(None, tiny_overrides(run, **extra)))


def test_same_config_resumes_more_epochs_continue(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run, **{"train.epochs": 1})
    result = _train(run, **{"train.epochs": 2, "train.num_threads": 1, "data.eval_batch_size": 7})
    assert [r["epoch"] for r in result.history] == [1, 2]


@pytest.mark.parametrize(("extra", "change"), [
    ({"optim.lr": 0.01}, "optim.lr: 0.003 -> 0.01"),
    ({"optim.name": "sgd"}, "optim.name: 'adam' -> 'sgd'"),
    ({"method.name": "mek"}, "method.name: 'ce' -> 'mek'"),
    ({"data.root": "/elsewhere"}, "data.root: None -> '/elsewhere'"),
    ({"optim.scheduler": "cosine"}, "optim.scheduler: 'exponential' -> 'cosine'"),
])
def test_changed_config_is_refused_before_writing(tmp_path: Path, extra, change) -> None:
    run = tmp_path / "run"
    _train(run, **{"train.epochs": 1})
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunFolderError, match=rf"(?s)different config.*{change}.*--output-dir.*"
                                             r"--overwrite to delete"):
        _train(run, **{"train.epochs": 1, **extra})
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_epochs_may_not_change_when_a_schedule_depends_on_them(tmp_path: Path) -> None:
    run = tmp_path / "cos"
    _train(run, **{"train.epochs": 2, "optim.scheduler": "cosine"})
    with pytest.raises(RunFolderError, match=r"train.epochs: 2 -> 3 \(the cosine schedule"):
        _train(run, **{"train.epochs": 3, "optim.scheduler": "cosine"})
    _train(tmp_path / "exp", **{"train.epochs": 2})
    with pytest.raises(RunFolderError, match=r"train.epochs: 2 -> 1 \(the folder already holds 2"):
        _train(tmp_path / "exp", **{"train.epochs": 1})
    bbn = tmp_path / "bbn"
    _train(bbn, **{"train.epochs": 1, "method.name": "bbn"})
    with pytest.raises(RunFolderError, match=r"method 'bbn' schedules by the total"):
        _train(bbn, **{"train.epochs": 2, "method.name": "bbn"})


def test_overwrite_deletes_the_run_files_only(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run, **{"train.epochs": 1})
    (run / "notes.txt").write_text("mine")
    cfg = load_config(None, tiny_overrides(run, **{"train.epochs": 1, "optim.lr": 0.01}))
    api.train(cfg, overwrite=True)
    assert (run / "notes.txt").read_text() == "mine"
    stored = json.loads((run / "last.json").read_text())
    assert stored["config"]["optim"]["lr"] == 0.01 and stored["epoch"] == 1


def test_damaged_last_checkpoint_names_the_file(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    _train(run, **{"train.epochs": 1})
    last = run / "last.safetensors"
    last.write_bytes(last.read_bytes()[:1000])
    code = cli_main(["train", *[x for s in tiny_overrides(run, **{"train.epochs": 2})
                                for x in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot resume from {last}: the file is damaged" in err and "--overwrite" in err
    assert "Traceback" not in err


def test_readme_lines_ce_then_mek_make_two_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "recipe_ce.yaml"
    recipe.write_text("train: {epochs: 1}\n")
    sets = [x for s in tiny_overrides(tmp_path / "unused") if not s.startswith("output_dir")
            for x in ("--set", s)]
    sets = [s.replace("train.epochs=2", "train.epochs=1") for s in sets]
    assert cli_main(["train", "--config", str(recipe), *sets]) == 0
    assert cli_main(["train", "--config", str(recipe), *sets, "--set", "method.name=mek"]) == 0
    ce, mek = (tmp_path / "runs/recipe_ce/ce"), (tmp_path / "runs/recipe_ce/mek")
    assert json.loads((ce / "last.json").read_text())["method"] == "ce"
    assert json.loads((mek / "last.json").read_text())["method"] == "mek"
    # a changed config in the same folder: exit 2, named key, the way out
    code = cli_main(["train", "--config", str(recipe), *sets, "--set", "optim.lr=1e-3"])
    err = capsys.readouterr().err
    assert code == 2 and "optim.lr: 0.003 -> 0.001" in err and "--overwrite" in err
    assert cli_main(["train", "--config", str(recipe), *sets, "--set", "optim.lr=1e-3",
                     "--overwrite"]) == 0


def test_bench_and_train_share_one_comparison() -> None:
    assert runner.config_changes is config_changes
    cfg = load_config(None, ["data.root=/a"])
    stored = to_dict(cfg)
    stored["data"]["root"] = "/b"
    assert config_changes(stored, cfg) == []  # bench: the root is where, not what
    assert config_changes(stored, cfg, ignore=()) == ["data.root: '/b' -> '/a'"]


def test_method_defaults_are_recorded_and_a_changed_default_is_refused(tmp_path: Path) -> None:
    """config.yaml stores every method parameter; if a constructor default later differs from
    what the run used (here: a run recorded with forward_mode 'joint', today's default is
    'separate'), resuming is refused instead of silently switching the computation."""
    import yaml

    run = tmp_path / "run"
    _train(run, **{"method.name": "eac", "train.epochs": 1})
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["method"]["params"] == {"lam": 5.0, "detach_head": True,
                                          "forward_mode": "separate"}
    stored["method"]["params"]["forward_mode"] = "joint"  # as recorded under an older default
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(RunFolderError, match="method.params.*joint.*separate"):
        _train(run, **{"method.name": "eac", "train.epochs": 1})
    # given as today's default explicitly, or left out: the same run
    cfg = load_config(None, tiny_overrides(run, **{"method.name": "eac", "train.epochs": 1}))
    given = {k: v for k, v in stored.items() if k != "provenance"}
    assert config_changes({**given, "method": {"name": "eac", "params": {}}}, cfg) == []
    assert config_changes({**given, "method": {"name": "eac", "params": {
        "forward_mode": "separate"}}}, cfg) == []


def test_checkpoint_config_is_compared_too(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run, **{"train.epochs": 1})
    recorded = (run / "config.yaml").read_text()
    # config.yaml rewritten by another run (lr 0.01) while last.safetensors is lr 0.003's
    (run / "config.yaml").write_text(recorded.replace("lr: 0.003", "lr: 0.01"))
    with pytest.raises(RunFolderError, match=r"(?s)different config.*"
                       r"- config.yaml: optim.lr: 0.01 -> 0.003\n"):
        _train(run, **{"train.epochs": 1})
    with pytest.raises(RunFolderError, match=r"- last.safetensors: optim.lr: 0.003 -> 0.01"):
        _train(run, **{"train.epochs": 1, "optim.lr": 0.01})
    (run / "config.yaml").unlink()  # the checkpoint alone still names its config
    with pytest.raises(RunFolderError, match=r"different config.*\n  - optim.lr: 0.003 -> 0.01"):
        _train(run, **{"train.epochs": 1, "optim.lr": 0.01})


def test_relative_data_root_is_recorded_absolute(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _train(run, **{"train.epochs": 1, "data.root": "tree"})
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(
        tmp_path / "a" / "tree")
    monkeypatch.chdir(tmp_path / "b")  # the same command elsewhere: another tree
    with pytest.raises(RunFolderError, match=f"data.root: '{tmp_path / 'a' / 'tree'}' -> "
                                             f"'{tmp_path / 'b' / 'tree'}'"):
        _train(run, **{"train.epochs": 2, "data.root": "tree"})
    monkeypatch.chdir(tmp_path / "a")
    assert len(_train(run, **{"train.epochs": 2, "data.root": "tree"}).history) == 2


def test_a_failed_start_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "x"
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        _train(run, **{"model.pretrained": tmp_path / "missing.safetensors"})
    assert not run.exists()  # no config.yaml (nor lock, nor folder) to block the fixed command
    assert len(_train(run, **{"train.epochs": 1}).history) == 1
