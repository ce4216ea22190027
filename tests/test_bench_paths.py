"""Benchmark records and reports name no machine paths: $ROOT and $OUT stand for them."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import yaml
from tests.test_bench import TINY_BASE

from ferkit.bench import placeholders, run_protocol

REPO = Path(__file__).resolve().parents[1]


def test_substitute_replaces_whole_paths_only() -> None:
    found = placeholders.pairs("/data/ferplus", "/data/ferplus/out")
    text = "--root /data/ferplus --out /data/ferplus/out/runs/a /data/ferplus2 '/data/ferplus'"
    assert placeholders.substitute(text, found) == \
        "--root $ROOT --out $OUT/runs/a /data/ferplus2 '$ROOT'"
    assert placeholders.join(["ferkit", "--out", "$OUT/runs/a b", "x y"]) == \
        "ferkit --out \"$OUT/runs/a b\" 'x y'"


def _tiny_protocol(tmp_path: Path) -> Path:
    data = {"name": "tiny", "description": "one run", "base": TINY_BASE,
            "settings": [{"imbalance_factor": None, "methods": ["ce"], "seeds": [0]}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_records_and_reports_use_placeholders(tmp_path: Path) -> None:
    out, root = tmp_path / "out", tmp_path / "data"
    root.mkdir()
    run_protocol(_tiny_protocol(tmp_path), str(root), out)
    run_dir = out / "runs" / "full" / "ce" / "seed0"
    record = json.loads((run_dir / "bench_run.json").read_text())
    assert "--set data.root=$ROOT" in record["command"]
    assert record["command"].endswith("--output-dir $OUT/runs/full/ce/seed0")
    assert "--root $ROOT --out $OUT" in record["bench_command"]
    for name in ("results.md", "results.json"):
        assert str(tmp_path) not in (out / name).read_text(), name
    report = json.loads((out / "results.json").read_text())
    assert report["runs"][0]["output_dir"] == "$OUT/runs/full/ce/seed0"
    # an old record with machine paths is shown with placeholders too
    record["command"] = f"ferkit train --set data.root={root} --output-dir {run_dir}"
    record["bench_command"] = f"ferkit bench /x/configs/bench/tiny.yaml --root {root} --out {out}"
    (run_dir / "bench_run.json").write_text(json.dumps(record))
    run_protocol(_tiny_protocol(tmp_path), str(root), out, report_only=True)
    shown = json.loads((out / "results.json").read_text())["runs"][0]
    assert shown["command"] == "ferkit train --set data.root=$ROOT --output-dir $OUT/runs/full/ce/seed0"
    assert shown["bench_command"] == "ferkit bench configs/bench/tiny.yaml --root $ROOT --out $OUT"
    # publishing writes the run files with placeholders too
    dest = tmp_path / "docs" / "tiny"
    spec = importlib.util.spec_from_file_location("publish_bench",
                                                  REPO / "benchmarks/publish_bench.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    publish.copy_tree(out, dest, restore=False)
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            assert str(tmp_path) not in path.read_text(), path
    stored = yaml.safe_load((dest / "runs/full/ce/seed0/config.yaml").read_text())
    assert stored["data"]["root"] == "$ROOT" and stored["output_dir"] == "$OUT/runs/full/ce/seed0"
    assert shlex.split(shown["command"])[3] == "data.root=$ROOT"
