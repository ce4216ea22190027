"""The benchmark harness: protocol validation, resumable runs, reports and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferkit import api
from ferkit.bench import ProtocolError, find_protocol, load_protocol, run_protocol, train_command
from ferkit.bench.protocol import parse_protocol
from ferkit.bench.runner import BenchError, acquire_lock, lock_holder, release_lock
from ferkit.checks import load_config
from ferkit.cli import main
from ferkit.config import ConfigError, RunConfig, to_dict

TINY_BASE = {
    "data": {"dataset": "synthetic", "image_size": 32, "batch_size": 16, "cache_dir": "memory",
             "options": {"size": 32, "num_train": 96, "num_val": 40, "num_test": 40}},
    "model": {"backbone": "tiny_cnn", "options": {"width": 8}},
    "optim": {"lr": 0.003},
    "train": {"epochs": 1, "progress": False, "tensorboard": False, "num_threads": 1},
}


def write_protocol(tmp_path: Path, **changes: object) -> Path:
    """A tiny protocol: 2 settings x (ce, cb) x 2 seeds of one-epoch synthetic runs."""
    data = {
        "name": "tiny", "description": "Synthetic faces, tiny CNN.", "base": TINY_BASE,
        "method_overrides": {"cb": {"data.augment.flip": 0.0}},
        "settings": [
            {"imbalance_factor": 4, "methods": ["ce", {"name": "cb", "label": "cb-soft",
                                                       "params": {"beta": 0.99}}],
             "seeds": [0, 1]},
            {"imbalance_factor": None, "methods": ["ce", "cb"], "seeds": [0, 1]},
        ],
    }
    data.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """Run the tiny protocol once (8 runs); the tests below inspect and re-run it."""
    tmp = tmp_path_factory.mktemp("bench")
    protocol = write_protocol(tmp)
    out = tmp / "out"
    summary = run_protocol(protocol, None, out)
    return protocol, out, summary


def test_protocol_expands_and_resolves(tmp_path: Path) -> None:
    protocol = load_protocol(write_protocol(tmp_path))
    ids = [run.id for run in protocol.runs()]
    assert ids[:4] == ["if4/ce/seed0", "if4/ce/seed1", "if4/cb-soft/seed0", "if4/cb-soft/seed1"]
    assert len(ids) == 8 and ids[-1] == "full/cb/seed1"
    cb = protocol.runs()[2]
    cfg = protocol.resolve(cb, tmp_path / "x", root="/data", overrides=["train.epochs=3"])
    assert cfg.method.name == "cb" and cfg.method.params == {"beta": 0.99}
    assert cfg.data.imbalance_factor == 4.0 and cfg.data.root == "/data" and cfg.seed == 0
    assert cfg.data.augment.flip == 0.0 and cfg.train.epochs == 3  # method override, then --set


def test_unknown_method_suggests(tmp_path: Path) -> None:
    path = write_protocol(tmp_path, settings=[{"imbalance_factor": 10, "methods": ["ce", "cbb"],
                                               "seeds": [0]}])
    with pytest.raises(ProtocolError, match=r"tiny\.yaml(.|\n)*settings\[0\]\.methods\[1\]\.name: "
                       r"unknown method 'cbb'\. Did you mean 'cb'\?"):
        load_protocol(path)


def test_protocol_errors_listed_together(tmp_path: Path) -> None:
    path = write_protocol(tmp_path, base={"data": {"image_sise": 32}, "seed": 3},
                          settings=[{"imbalance_factor": 0.5, "methods": ["ce", "ce"],
                                     "seeds": [0, 0], "seed": [1]}])
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    message = str(err.value)
    for expected in ("unknown config key 'data.image_sise'. Did you mean 'image_size'?",
                     "base.seed: is set by the harness", "settings[0].seed: unknown key",
                     "settings[0].imbalance_factor: expected a number >= 1",
                     "settings[0].seeds: repeated seed", "label 'ce' is used twice"):
        assert expected in message


def test_find_protocol_by_name_and_path(tmp_path: Path) -> None:
    assert find_protocol("ferplus-cpu").name == "ferplus-cpu.yaml"
    path = write_protocol(tmp_path)
    assert find_protocol(path) == path
    with pytest.raises(ProtocolError, match="Did you mean 'ferplus-cpu'"):
        find_protocol("ferplus-cpv")


def test_extends_inherits_recipe_and_refuses_cycles(tmp_path: Path) -> None:
    write_protocol(tmp_path)  # tiny.yaml: the parent
    child = tmp_path / "study.yaml"
    child.write_text(yaml.safe_dump({
        "extends": "tiny", "base": {"train": {"epochs": 3}},
        "method_overrides": {"cb": {"data.augment.erasing": 0.5}},
        "settings": [{"imbalance_factor": 4, "seeds": [0],
                      "methods": [{"name": "cb", "overrides": {"optim.lr": 0.01}}]}]}))
    protocol = load_protocol(child)
    assert protocol.name == "study" and [r.id for r in protocol.runs()] == ["if4/cb/seed0"]
    cfg = protocol.resolve(protocol.runs()[0], tmp_path / "x")
    assert cfg.data.dataset == "synthetic" and cfg.model.backbone == "tiny_cnn"  # inherited
    assert cfg.train.epochs == 3 and cfg.train.num_threads == 1  # merged key by key
    assert cfg.data.augment.flip == 0.0 and cfg.data.augment.erasing == 0.5  # both layers
    assert cfg.optim.lr == 0.01
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"extends": "b", "settings": []}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"extends": "a.yaml", "settings": []}))
    with pytest.raises(ProtocolError, match="makes a cycle"):
        load_protocol(tmp_path / "a.yaml")
    with pytest.raises(ProtocolError, match="extends: is resolved only"):
        parse_protocol({"extends": "tiny", "base": TINY_BASE,
                        "settings": [{"imbalance_factor": 4, "seeds": [0], "methods": ["ce"]}]})


@pytest.mark.parametrize("name", ["ferplus-cpu", "ferplus-cpu-mek", "ferplus-paper",
                                  "rafdb-paper"])
def test_shipped_protocols_are_valid(name: str) -> None:
    protocol = load_protocol(find_protocol(name))
    run = protocol.runs()[0]
    cfg = protocol.resolve(run, "out", root="/data")
    assert cfg.data.root == "/data" and cfg.data.dataset in ("ferplus", "rafdb")


def test_train_command_reproduces_config(tmp_path: Path) -> None:
    protocol = load_protocol(write_protocol(tmp_path))
    cfg = protocol.resolve(protocol.runs()[2], tmp_path / "run dir", root="/data/my faces")
    args = shlex.split(train_command(cfg))
    assert args[:2] == ["ferkit", "train"] and args[-2] == "--output-dir"
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert to_dict(load_config(None, sets + [f"output_dir={args[-1]}"])) == to_dict(cfg)


def test_report_tables_and_provenance(bench: tuple[Path, Path, dict]) -> None:
    _, out, summary = bench
    assert len(summary["trained"]) == 8 and not summary["failed"]
    md = (out / "results.md").read_text()
    for title in ("Validation, last epoch", "Validation, val-selected epoch", "Test, last epoch",
                  "Test, val-selected checkpoint"):
        assert title in md
    rows = [line for line in md.splitlines() if line.startswith(("| ce |", "| cb-soft |",
                                                                   "| cb |")) and " ± " in line]
    assert len(rows) == 4 * 4  # 4 metric tables per setting x (2 + 2) method rows
    assert all(" ± " in row and row.split("|")[2].strip() == "2" for row in rows)
    data = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in data["settings"]] == ["if4", "full"]
    row = data["settings"][0]["methods"][0]
    assert row["label"] == "ce" and row["n"] == 2
    seeds = [json.loads((out / "runs" / "if4" / "ce" / f"seed{k}" / "results.json").read_text())
             ["val"]["selected"]["accuracy"] for k in (0, 1)]
    stat = row["val"]["selected"]["accuracy"]  # mean and sample std (ddof 1) of the two seeds
    assert stat["values"] == seeds and stat["mean"] == pytest.approx(sum(seeds) / 2)
    assert stat["std"] == pytest.approx(abs(seeds[0] - seeds[1]) / 2 ** 0.5)
    curve = row["curve"]  # per-epoch val accuracy and last-epoch train terms, mean over seeds
    histories = [json.loads((out / "runs" / "if4" / "ce" / f"seed{k}" / "metrics.jsonl")
                            .read_text().splitlines()[0]) for k in (0, 1)]
    assert curve["n"] == 2 and len(curve["val_accuracy"]) == 1
    assert curve["val_accuracy"][0] == pytest.approx(
        sum(h["val"]["accuracy"] for h in histories) / 2)
    assert curve["train_last"]["loss"] == pytest.approx(
        sum(h["train"]["loss"] for h in histories) / 2)
    cell = f"{100 * curve['val_mean_class_accuracy'][0]:.2f} / {100 * curve['val_accuracy'][0]:.2f}"
    assert f"| ce | 2 | {cell} | " in md and "### Validation by epoch" in md
    assert len(data["runs"]) == 8
    for run in data["runs"]:
        assert run["status"] == "finished"
        assert run["command"].startswith("ferkit train --set")
        assert run["commit"] and run["hardware"] and run["seed"] in (0, 1)
        assert run["maps"] == "4x4"  # tiny_cnn (stride 8) at 32 px
        assert f"| {run['id']} | finished | {run['seed']} | 4x4 | " in md
        stored = json.loads((out / "runs" / run["id"] / "results.json").read_text())
        assert run["wall_clock_s"] > 0 and run["epochs"] == 1
        assert run["train_time_s"] == stored["train_time_s"]  # the run's own record, copied
        assert run["date"] and run["results"]["val"]["selected"]


def test_chart_when_matplotlib(bench: tuple[Path, Path, dict]) -> None:
    _, out, summary = bench
    if importlib.util.find_spec("matplotlib") is None:
        assert "No chart" in (out / "results.md").read_text()
        pytest.skip("matplotlib is not installed")
    assert (out / "plots" / "if4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(summary["report"]["plots"]) == 2


def test_rerun_skips_finished_and_resumes_killed(bench: tuple[Path, Path, dict],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    protocol, out, _ = bench
    killed = out / "runs" / "full" / "cb" / "seed1"
    # killed after its last checkpoint, before the summary: no results.json, attempt "running"
    (killed / "results.json").unlink()
    record_path = killed / "bench_run.json"
    record = json.loads(record_path.read_text())
    record["attempts"][-1]["status"] = record["status"] = "running"
    record_path.write_text(json.dumps(record))
    assert (killed / "last.safetensors").exists()
    calls = []
    real_train = api.train
    monkeypatch.setattr(api, "train", lambda cfg: calls.append(cfg) or real_train(cfg))
    summary = run_protocol(protocol, None, out)
    assert [c.output_dir for c in calls] == [str(killed)]
    assert len(summary["skipped"]) == 7 and summary["trained"] == ["full/cb/seed1"]
    assert (killed / "results.json").exists()
    record = json.loads((killed / "bench_run.json").read_text())
    assert record["status"] == "finished"
    assert [a["status"] for a in record["attempts"]] == ["killed", "finished"]
    calls.clear()
    run_protocol(protocol, None, out)
    assert calls == []


def test_changed_config_is_refused(bench: tuple[Path, Path, dict],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    protocol, out, _ = bench
    monkeypatch.setattr(api, "train", lambda cfg: pytest.fail("must not train"))
    with pytest.raises(BenchError, match=r"refusing to mix(.|\n)*optim.lr: 0.003 -> 0.01"):
        run_protocol(protocol, None, out, overrides=["optim.lr=0.01"])
    # run-only keys (progress bars, threads) do not make a finished run stale
    summary = run_protocol(protocol, None, out, overrides=["train.num_threads=2"])
    assert len(summary["skipped"]) == 8


def test_failing_run_is_reported_and_others_continue(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_protocol(tmp_path, settings=[{"imbalance_factor": None, "methods": ["ce", "cb"],
                                               "seeds": [0]}])
    trained = []

    def train(cfg: RunConfig) -> None:
        if cfg.method.name == "ce":
            raise RuntimeError("boom")
        trained.append(cfg.method.name)

    monkeypatch.setattr(api, "train", train)
    summary = run_protocol(path, None, tmp_path / "out")
    assert summary["failed"] == ["full/ce/seed0"] and trained == ["cb"]
    run = next(r for r in summary["runs"] if r["id"] == "full/ce/seed0")
    assert run["status"] == "failed" and run["error"].startswith("RuntimeError: boom")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Failed runs" in md and "RuntimeError: boom" in md


def test_run_lock_skips_live_holder_and_takes_over_stale(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_protocol(tmp_path, settings=[{"imbalance_factor": None, "methods": ["ce", "cb"],
                                               "seeds": [0]}])
    out = tmp_path / "out"
    held = out / "runs" / "full" / "ce" / "seed0"
    held.mkdir(parents=True)
    trained = []

    def train(cfg: RunConfig) -> None:
        assert lock_holder(Path(cfg.output_dir))["pid"] == os.getpid()  # trains under its lock
        trained.append(cfg.method.name)

    monkeypatch.setattr(api, "train", train)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # another live process of this host holds full/ce/seed0
        (held / ".lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        summary = run_protocol(path, None, out)
        assert trained == ["cb"] and summary["busy"] == ["full/ce/seed0"]
        assert next(r for r in summary["runs"] if r["id"] == "full/ce/seed0")["status"] == "running"
        assert not (out / "runs" / "full" / "cb" / "seed0" / ".lock").exists()  # released
    finally:
        other.kill()
        other.wait()
    trained.clear()  # its holder is gone: the lock is stale and taken over
    assert run_protocol(path, None, out, only="full/ce")["trained"] == ["full/ce/seed0"]
    assert trained == ["ce"] and not (held / ".lock").exists()
    assert acquire_lock(tmp_path / "x") is None  # a second acquire, even by the same process,
    assert acquire_lock(tmp_path / "x")["pid"] == os.getpid()  # sees the live holder
    release_lock(tmp_path / "x")
    assert not (tmp_path / "x" / ".lock").exists()


def test_cli_dry_run_lists_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_protocol(tmp_path)
    assert main(["bench", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "pending     if4/cb-soft/seed1" in printed and "8 runs" in printed
    assert not (tmp_path / "out").exists()
    assert main(["bench", str(path), "--out", str(tmp_path / "out"), "--only", "nothing",
                 "--dry-run"]) == 2


def test_report_only_without_matplotlib(bench: tuple[Path, Path, dict],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    protocol, out, _ = bench
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    monkeypatch.setattr(api, "train", lambda cfg: pytest.fail("must not train"))
    (out / "results.md").unlink()
    summary = run_protocol(protocol, None, out, report_only=True)
    assert summary["report"]["plots"] == [] and not summary["trained"]
    md = (out / "results.md").read_text()
    assert "No chart: matplotlib is not installed" in md and "| ce | 2 |" in md


def test_set_cannot_override_protocol_keys(tmp_path: Path) -> None:
    path = write_protocol(tmp_path)
    with pytest.raises(ConfigError, match="--set seed: set by the protocol"):
        run_protocol(path, None, tmp_path / "out", overrides=["seed=3"], dry_run=True)
