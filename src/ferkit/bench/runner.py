"""Run a benchmark protocol: expand it to runs, skip finished ones, train the rest, report.

Each run trains in ``out_dir/runs/<setting>/<method-label>/seed<k>`` and keeps there, next to what
:func:`ferkit.api.train` writes (``config.yaml``, checkpoints, ``metrics.jsonl``, ``results.json``),
the harness's own record ``bench_run.json``: the resolved config, the ``ferkit train`` command that
reproduces the run, every attempt (date, wall-clock time, provenance) and the last error.

Resume rules (decided here, stated in the report):

- A run is *finished* when its ``results.json`` exists and its stored config equals the config the
  protocol resolves to now (ignoring :data:`ferkit.run_folder.RUN_ONLY_KEYS`, which do not
  change results; the comparison is :func:`ferkit.run_folder.config_changes`, as for resume).
  Finished runs are skipped.
- An unfinished run calls ``api.train`` again, which resumes from ``last.safetensors``.
- A run folder whose stored config differs is never trained into and never reported: the
  harness refuses with the differing keys before training anything. Use a new ``--out`` folder
  (or delete that run folder) to run the changed protocol.
- A failing run is recorded (error and traceback in ``bench_run.json`` and the report) and the
  other runs go on; a re-run retries it.
- Several ``ferkit bench`` processes may share one results folder (e.g. one per core or per
  machine, with or without ``--only``): a process trains a run only while it holds the run's
  lock file ``.lock`` (created exclusively, holding pid and host) and skips runs that another live
  process holds or has finished meanwhile (the lock of :mod:`ferkit.run_folder`, which
  ``ferkit train`` takes too). A lock left by a killed process on this host is stale and taken
  over; one from another host stays until that host's process removes it (or you delete it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shlex
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ferkit import api  # api.train looked up at call time, so tests can replace it
from ferkit.bench import placeholders
from ferkit.bench.protocol import Protocol, bench_dirs, find_protocol, load_protocol
from ferkit.bench.records import Attempt, PlannedRun, RunRecord
from ferkit.bench.report import write_report
from ferkit.checks import check_config
from ferkit.config import ConfigError, RunConfig, to_dict
from ferkit.engine.checkpoint import atomic_write_text
from ferkit.errors import FerkitError
from ferkit.run_files import RunFiles
from ferkit.run_folder import (
    LOCK,
    RUN_ONLY_KEYS,
    acquire_lock,
    config_changes,
    config_leaves,
    lock_holder,
    release_lock,
)

log = logging.getLogger(__name__)

RECORD = "bench_run.json"


class BenchError(FerkitError, ValueError):
    """The benchmark cannot proceed as asked (e.g. a run folder holds a different config)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _yaml_value(value: Any) -> str:
    """A value as a YAML flow literal that :func:`ferkit.config.parse_overrides` reads back."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if value != value else (".inf" if value > 0 else "-.inf")
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else text
    if isinstance(value, str):
        return value if value and yaml.safe_load(value) == value else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_value(str(k))}: {_yaml_value(v)}"
                               for k, v in value.items()) + "}"
    return json.dumps(value)


def train_command(cfg: RunConfig) -> str:
    """The ``ferkit train`` command that reproduces ``cfg``: one ``--set`` per non-default value."""
    defaults = config_leaves(to_dict(RunConfig()))
    values = config_leaves(to_dict(cfg))
    sets = [f"{key}={_yaml_value(value)}" for key, value in values.items()
            if key != "output_dir" and value != defaults.get(key)]
    parts = ["ferkit", "train"] + [x for s in sets for x in ("--set", s)]
    return shlex.join(parts + ["--output-dir", cfg.output_dir])


def _stored_config(run_dir: Path, record: RunRecord | None) -> dict[str, Any] | None:
    if record and record.config:
        return record.config
    try:  # written by api.train before its first epoch
        stored = yaml.safe_load(RunFiles(run_dir).config.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return {k: v for k, v in stored.items() if k != "provenance"} if stored else None


def plan_runs(protocol: Protocol, out_dir: Path, root: str | None = None,
              overrides: list[str] | None = None) -> list[PlannedRun]:
    """Every run of ``protocol`` with its config, folder and status on disk.

    Status is one of ``finished``, ``running`` (another live process holds its lock),
    ``partial`` (a checkpoint to resume from), ``failed`` (the last attempt raised),
    ``interrupted`` (Ctrl-C), ``started`` (no checkpoint yet: killed early, or running in a
    process without a lock), ``pending`` or ``changed`` (stored config differs; see ``changes``).
    """
    planned = []
    for spec in protocol.runs():
        run_dir = out_dir / "runs" / spec.id
        cfg = protocol.resolve(spec, run_dir, root, overrides)
        try:
            check_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"run {spec.id} of {protocol.path or protocol.name}: {err}") from err
        record = RunRecord.read(run_dir / RECORD)
        stored = _stored_config(run_dir, record)
        changes = config_changes(stored, cfg) if stored is not None else []
        if changes:
            status = "changed"
        elif RunFiles(run_dir).results.is_file():
            status = "finished"
        elif lock_holder(run_dir) is not None:
            status = "running"
        elif record and record.status in ("failed", "interrupted"):
            status = record.status
        elif RunFiles(run_dir).last.is_file():
            status = "partial"
        else:  # "started": running in another process, or killed before its first epoch ended
            status = "started" if record and record.status == "running" else "pending"
        planned.append(PlannedRun(spec, cfg, run_dir, status, changes, record))
    return planned


def _killed_attempt(run: PlannedRun) -> Attempt | None:
    """A previous attempt left as ``running`` was killed: close it at its last checkpoint time."""
    attempt = run.record.attempts[-1] if run.record and run.record.attempts else None
    if not attempt or attempt.status != "running":
        return None
    last = RunFiles(run.dir).last
    started = datetime.fromisoformat(attempt.started)
    ended = datetime.fromtimestamp(last.stat().st_mtime, timezone.utc) if last.exists() else started
    return dataclasses.replace(attempt, status="killed", ended=ended.isoformat(timespec="seconds"),
                               wall_clock_s=round(max((ended - started).total_seconds(), 0.0), 1))


def _write_record(run: PlannedRun, record: RunRecord) -> None:
    run.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.dir / RECORD, json.dumps(record.to_json(), indent=2) + "\n")
    run.record = record


def execute_run(run: PlannedRun, bench_command: str) -> RunRecord:
    """Train one planned run via ``ferkit.api.train`` (resuming) and keep its record up to date.

    Errors are caught and recorded (status ``failed``); KeyboardInterrupt is recorded as
    ``interrupted`` and re-raised.
    """
    spec, cfg = run.spec, run.config
    attempts = list(run.record.attempts) if run.record else []
    killed = _killed_attempt(run)
    if killed:
        attempts[-1] = killed
    attempt = Attempt(started=_now(), status="running", provenance=api.provenance())
    record = RunRecord(spec.id, spec.setting.name, spec.method.label, spec.method.name,
                       spec.method.params, spec.seed, to_dict(cfg),
                       _placeholder_command(cfg, spec.id),
                       bench_command, "running", None, attempts + [attempt])
    _write_record(run, record)
    start = time.perf_counter()
    status, error = "interrupted", "interrupted"
    try:
        api.train(cfg)
        status, error = "finished", None
    except KeyboardInterrupt:
        status, error = "interrupted", "KeyboardInterrupt"
        raise
    except Exception as err:  # one failing run must not stop the benchmark
        status = "failed"
        error = f"{type(err).__name__}: {err}\n" + "".join(traceback.format_exc(limit=8))
        log.error("run %s failed: %s: %s", spec.id, type(err).__name__, err)
    finally:
        attempt.status, attempt.ended = status, _now()
        attempt.wall_clock_s = round(time.perf_counter() - start, 1)
        record.status, record.error = status, error
        record.wall_clock_s = round(sum(a.wall_clock_s or 0.0 for a in record.attempts), 1)
        _write_record(run, record)
        run.status = status
    return record


def _placeholder_command(cfg: RunConfig, run_id: str) -> str:
    """:func:`train_command` with ``$ROOT`` / ``$OUT`` for the data root and results folder."""
    replacements = placeholders.record_pairs({"config": to_dict(cfg)}, run_id)
    return placeholders.join([placeholders.substitute(part, replacements) or part
                              for part in shlex.split(train_command(cfg))])


def _bench_command(protocol: Protocol, root: str | None, out_dir: Path, overrides: list[str],
                   run_id: str) -> str:
    """The ``ferkit bench`` command of one run, with ``$ROOT`` / ``$OUT`` placeholders."""
    name = placeholders.display_path(protocol.path, bench_dirs()) or protocol.name
    parts = ["ferkit", "bench", name] + (["--root", placeholders.ROOT] if root else [])
    parts += ["--out", placeholders.OUT] + [x for o in overrides for x in ("--set", o)]
    return placeholders.join(parts + ["--only", run_id])


def run_protocol(
    protocol: Protocol | str | Path, root: str | None, out_dir: str | Path,
    overrides: list[str] | None = None, only: str | None = None, dry_run: bool = False,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run every unfinished run of a protocol, then write the report.

    Args:
        protocol: a :class:`Protocol`, a protocol file, or a name in ``configs/bench``.
        root: dataset root (``data.root`` of every run); None for datasets that need none.
        out_dir: results folder (``runs/``, ``results.md``, ``results.json``, ``plots/``).
        overrides: ``key=value`` config overrides applied to every run (after the protocol).
        only: train only runs whose id (``<setting>/<label>/seed<k>``) contains this substring;
            the report still covers every finished run.
        dry_run: list the runs and their status; train and write nothing.
        report_only: rebuild the report from finished runs; train nothing.

    Returns:
        ``{"protocol", "out_dir", "runs": [{"id", "status", "output_dir", "error"}], "trained",
        "skipped", "busy" (held by another process), "failed", "report"}``.

    Raises:
        BenchError: a selected run folder holds a different config (nothing is trained).
        ConfigError: the protocol or an override is invalid.
    """
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(find_protocol(protocol))
    out_dir, overrides = Path(out_dir), list(overrides or [])
    planned = plan_runs(protocol, out_dir, root, overrides)
    selected = [r for r in planned if only is None or only in r.id]
    if only is not None and not selected:
        raise ConfigError(f"--only '{only}' matches no run of {protocol.name}; runs are: "
                          + ", ".join(r.id for r in planned))
    summary: dict[str, Any] = {"protocol": protocol.name, "out_dir": str(out_dir),
                               "trained": [], "skipped": [], "busy": [], "failed": [],
                               "report": None}
    changed = [r for r in selected if r.status == "changed"]
    if changed and not (dry_run or report_only):
        details = "\n".join(f"  {r.dir}:\n    " + "\n    ".join(r.changes[:8])
                            for r in changed)
        raise BenchError(f"{len(changed)} run folder(s) in {out_dir} were trained with a "
                         f"different config than {protocol.name} gives now; refusing to mix "
                         f"results. Use a new --out folder, or delete these run folders:\n"
                         f"{details}")
    if not (dry_run or report_only):
        todo = [r for r in selected if r.status not in ("finished", "running")]
        summary["skipped"] = [r.id for r in selected if r.status == "finished"]
        summary["busy"] = [r.id for r in selected if r.status == "running"]
        for i, run in enumerate(todo, 1):
            holder = acquire_lock(run.dir)
            if holder is not None:
                log.info("[%d/%d] %s: skipped, being trained by %s (lock %s)", i, len(todo),
                         run.id, holder, run.dir / LOCK)
                summary["busy"].append(run.id)
                continue
            try:
                if RunFiles(run.dir).results.is_file():  # finished by another process
                    summary["skipped"].append(run.id)
                    continue
                run.record = RunRecord.read(run.dir / RECORD)  # as the last holder left it
                log.info("[%d/%d] %s (%s)", i, len(todo), run.id, run.status)
                execute_run(run, _bench_command(protocol, root, out_dir, overrides, run.id))
            finally:
                release_lock(run.dir)
            summary["failed" if run.status == "failed" else "trained"].append(run.id)
            # Re-read every run's state: other `ferkit bench` processes may have finished runs.
            write_report(protocol, out_dir, plan_runs(protocol, out_dir, root, overrides))
    summary["runs"] = [{"id": r.id, "status": r.status, "output_dir": str(r.dir),
                        "changes": r.changes,
                        "error": (r.record.error if r.record else None) if r.status == "failed"
                        else None} for r in planned]
    if not dry_run:
        summary["report"] = write_report(protocol, out_dir,
                                         plan_runs(protocol, out_dir, root, overrides))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for the CLI: each run with its status, then what was written."""
    lines = [f"benchmark {summary['protocol']} -> {summary['out_dir']}"]
    for run in summary["runs"]:
        lines.append(f"  {run['status']:<11} {run['id']}")
        lines += [f"{'':14}{c}" for c in run["changes"][:4]]
        if run["error"]:
            lines.append(f"{'':14}{run['error'].splitlines()[0]}")
    counts = {s: sum(r["status"] == s for r in summary["runs"]) for s in
              ("finished", "failed", "changed")}
    lines.append(f"{len(summary['runs'])} runs: " + ", ".join(f"{n} {s}" for s, n in
                                                              counts.items()))
    if summary["trained"] or summary["skipped"]:
        lines.append(f"trained {len(summary['trained'])}, skipped {len(summary['skipped'])} "
                     f"finished, {len(summary['failed'])} failed"
                     + (f", {len(summary['busy'])} held by another process"
                        if summary.get("busy") else ""))
    if summary["report"]:
        lines.append(f"report: {summary['report']['markdown']}")
    return "\n".join(lines)


__all__ = ["BenchError", "RUN_ONLY_KEYS", "acquire_lock", "config_changes", "execute_run",
           "format_summary", "lock_holder", "plan_runs", "release_lock", "run_protocol",
           "train_command"]
