"""Typed benchmark records read and write the same ``bench_run.json`` as the dict-based harness."""

from __future__ import annotations

import json
from pathlib import Path

from ferkit.bench import Attempt, RunRecord

PROVENANCE = {"ferkit_version": "0.1.0", "torch_version": "2.4.0", "git_commit": "abe54cb",
              "hardware": "CPU x, 2 cores, no GPU"}
# A record as the earlier harness wrote it: a killed attempt, then a finished one.
LEGACY = {
    "id": "full/ce/seed0", "setting": "full", "label": "ce", "method": "ce", "params": {},
    "seed": 0, "config": {"seed": 0, "output_dir": "runs/full/ce/seed0"},
    "command": "ferkit train --output-dir runs/full/ce/seed0",
    "bench_command": "ferkit bench tiny --out out --only full/ce/seed0",
    "status": "finished", "error": None,
    "attempts": [
        {"started": "2026-12-01T10:00:00+00:00", "status": "killed", "provenance": PROVENANCE,
         "ended": "2026-12-01T10:05:00+00:00", "wall_clock_s": 300.0},
        {"started": "2026-12-01T11:00:00+00:00", "status": "finished", "provenance": PROVENANCE,
         "ended": "2026-12-01T11:02:00+00:00", "wall_clock_s": 120.5},
    ],
    "wall_clock_s": 420.5,
}


def test_legacy_record_round_trips_to_identical_json(tmp_path: Path) -> None:
    path = tmp_path / "bench_run.json"
    path.write_text(json.dumps(LEGACY, indent=2) + "\n")
    record = RunRecord.read(path)
    assert record is not None and record.attempts[0].status == "killed"
    assert record.wall_clock_s == 420.5 and record.attempts[1].wall_clock_s == 120.5
    assert json.dumps(record.to_json(), indent=2) + "\n" == path.read_text()


def test_running_record_has_no_end_keys_and_unknown_keys_survive() -> None:
    running = {**LEGACY, "status": "running", "attempts": [
        {"started": "2026-12-01T11:00:00+00:00", "status": "running", "provenance": PROVENANCE}]}
    del running["wall_clock_s"]
    running["note"] = "kept"
    record = RunRecord.from_json(running)
    assert record.extra == {"note": "kept"}
    assert list(record.to_json()) == list(running)
    assert record.to_json() == running
    assert Attempt.from_json(running["attempts"][0]).to_json() == running["attempts"][0]


def test_unreadable_record_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert RunRecord.read(tmp_path / "bad.json") is None
    assert RunRecord.read(tmp_path / "absent.json") is None
