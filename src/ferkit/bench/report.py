"""Aggregate finished benchmark runs into ``results.md``, ``results.json`` and bar charts.

Per setting and method: overall / mean class / macro-F1 / per-class accuracy on validation at the
last epoch and at the val-selected epoch, and the same on test (last checkpoint and val-selected
checkpoint; test never selects anything), as mean ± sample std over the finished seeds, with the
number of seeds; then validation mean class / overall accuracy by epoch and the training loss
terms of the last epoch (from each run's ``metrics.jsonl``, mean over seeds). Then a provenance
table per run (commit, seed, hardware, epochs, times, date) and the ``ferkit train`` command of
each run. All files are written atomically (tmp + os.replace).
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ferkit.bench import placeholders
from ferkit.bench.protocol import Protocol, Setting, bench_dirs
from ferkit.bench.records import PlannedRun
from ferkit.engine.checkpoint import atomic_write_text
from ferkit.models.backbones import BACKBONES, feature_map_size
from ferkit.plots import new_figure, save_figure
from ferkit.run_files import RunFiles

METRICS = (("accuracy", "overall"), ("mean_class_accuracy", "mean class"), ("macro_f1", "macro-F1"))
TABLES = (("val", "last", "Validation, last epoch"),
          ("val", "selected", "Validation, val-selected epoch"),
          ("test", "last", "Test, last epoch"),
          ("test", "selected", "Test, val-selected checkpoint (selected on validation, never on "
                               "test)"))


def mean_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}``; std is the sample std (ddof 1), None for one value."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    mean = sum(values) / len(values)
    std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
           if len(values) > 1 else None)
    return {"mean": mean, "std": std, "n": len(values), "values": values}


def fmt(stat: dict[str, Any]) -> str:
    """``82.31 ± 0.45`` in percent (no ± for a single value, ``n/a`` for none)."""
    if stat["mean"] is None:
        return "n/a"
    text = f"{100 * stat['mean']:.2f}"
    return text + (f" ± {100 * stat['std']:.2f}" if stat["std"] is not None else "")


def aggregate(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of the summary metrics and of each class's accuracy."""
    out: dict[str, Any] = {key: mean_std([r[key] for r in reports]) for key, _ in METRICS}
    names = reports[0]["class_names"] if reports else []
    out["per_class_accuracy"] = {n: mean_std([r["per_class_accuracy"].get(n) for r in reports])
                                 for n in names}
    out["class_names"] = list(names)
    return out


def _method_rows(setting: Setting, runs: list[PlannedRun]) -> list[dict[str, Any]]:
    rows = []
    for spec in setting.methods:
        done = [r for r in runs if r.spec.method == spec and r.status == "finished"
                and r.results]
        row: dict[str, Any] = {"label": spec.label, "method": spec.name, "params": spec.params,
                               "seeds": [r.spec.seed for r in done], "n": len(done),
                               "selected_epochs": [r.results["val"]["selected_epoch"]
                                                   for r in done]}
        for split, ckpt, _ in TABLES:
            reports = [r.results.get(split, {}).get(ckpt) for r in done]
            reports = [x for x in reports if x]
            row.setdefault(split, {})[ckpt] = aggregate(reports) if reports else None
        row["curve"] = _curve(done)
        rows.append(row)
    return rows


def _curve(runs: list[PlannedRun]) -> dict[str, Any] | None:
    """Mean over runs of the per-epoch val accuracies and of the last epoch's training terms."""
    histories = []
    for run in runs:
        path = RunFiles(run.dir).metrics_jsonl
        if path.is_file():
            lines = path.read_text().splitlines()
            histories.append([json.loads(line) for line in lines if line.strip()])
    histories = [h for h in histories if h]
    if not histories:
        return None
    epochs = max(len(h) for h in histories)

    def at(key: str, epoch: int) -> float | None:
        return mean_std([h[epoch]["val"][key] for h in histories
                         if len(h) > epoch and h[epoch].get("val")])["mean"]

    terms = sorted({k for h in histories for k in h[-1].get("train", {})})
    return {"n": len(histories),
            "val_mean_class_accuracy": [at("mean_class_accuracy", e) for e in range(epochs)],
            "val_accuracy": [at("accuracy", e) for e in range(epochs)],
            "train_last": {k: mean_std([h[-1]["train"].get(k) for h in histories])["mean"]
                           for k in terms}}


def _curve_table(rows: list[dict[str, Any]]) -> list[str]:
    present = [r for r in rows if r.get("curve")]
    if not present:
        return []
    epochs = max(len(r["curve"]["val_accuracy"]) for r in present)
    lines = ["### Validation by epoch (mean class / overall) and last-epoch training terms", "",
             "| method | seeds | " + " | ".join(f"epoch {e + 1}" for e in range(epochs))
             + " | train terms, last epoch |", "|---" * (epochs + 3) + "|"]
    for row in present:
        curve = row["curve"]
        cells = [row["label"], str(curve["n"])]
        for e in range(epochs):
            pair = [v[e] if e < len(v) else None for v in (curve["val_mean_class_accuracy"],
                                                          curve["val_accuracy"])]
            cells.append("" if None in pair else f"{100 * pair[0]:.2f} / {100 * pair[1]:.2f}")
        cells.append(", ".join(f"{k} {v:.4g}" for k, v in curve["train_last"].items()
                               if v is not None))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _table(rows: list[dict[str, Any]], split: str, ckpt: str, title: str) -> list[str]:
    present = [r for r in rows if r[split][ckpt]]
    if not present:
        return []
    names = present[0][split][ckpt]["class_names"]
    epoch_col = split == "val" and ckpt == "selected"
    head = ["method", "seeds"] + (["epochs"] if epoch_col else []) + [m for _, m in METRICS]
    lines = [f"### {title}", "", "| " + " | ".join(head + names) + " |",
             "|---" * (len(head) + len(names)) + "|"]
    for row in present:
        stats = row[split][ckpt]
        cells = [row["label"], str(row["n"])]
        cells += [", ".join(map(str, row["selected_epochs"]))] if epoch_col else []
        cells += [fmt(stats[key]) for key, _ in METRICS]
        cells += [fmt(stats["per_class_accuracy"][n]) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _plot(setting: Setting, rows: list[dict[str, Any]], path: Path) -> str | None:
    """Bars of per-class val accuracy (val-selected) per method; the reason when none is drawn."""
    present = [r for r in rows if r["val"]["selected"]]
    if not present:
        return "no finished run yet"
    names = present[0]["val"]["selected"]["class_names"]
    fig = new_figure(max(6.0, 1.1 * len(names)), 4.0)
    if isinstance(fig, str):
        return fig
    ax = fig.add_subplot()
    width = 0.8 / len(present)
    for i, row in enumerate(present):
        stats = [row["val"]["selected"]["per_class_accuracy"][n] for n in names]
        xs = [j + (i - (len(present) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [100 * (s["mean"] or 0.0) for s in stats], width,
               yerr=[100 * (s["std"] or 0.0) for s in stats], capsize=2,
               label=f"{row['label']} (n={row['n']})")
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_ylabel("val accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{setting.name}: per-class val accuracy, val-selected epoch (mean ± std)")
    ax.legend(fontsize="small")
    save_figure(fig, path)
    return None


def _run_entry(run: PlannedRun, out_dir: Path) -> dict[str, Any]:
    record = run.record.to_json() if run.record else {}
    results = run.results or {}
    # $ROOT / $OUT for the paths of this machine and of the one that made the record
    paths = placeholders.record_pairs(record, run.id)
    paths += placeholders.pairs(run.config.data.root, out_dir)
    paths.sort(key=lambda item: -len(item[0]))
    attempts = record.get("attempts") or []
    prov = results.get("provenance") or (attempts[-1].get("provenance") if attempts else {}) or {}
    return {"id": run.id, "status": run.status, "seed": run.spec.seed,
            "setting": run.spec.setting.name, "label": run.spec.method.label,
            "method": run.spec.method.name, "output_dir": f"{placeholders.OUT}/runs/{run.id}",
            "command": placeholders.substitute(record.get("command"), paths),
            "bench_command": placeholders.substitute(record.get("bench_command"), paths),
            "commit": prov.get("git_commit"), "hardware": prov.get("hardware"),
            "maps": _map_size(run), "torch_version": prov.get("torch_version"),
            "ferkit_version": prov.get("ferkit_version"),
            "epochs": results.get("epochs"), "train_time_s": results.get("train_time_s"),
            "wall_clock_s": record.get("wall_clock_s"),
            "date": (attempts[-1].get("ended") if attempts else None),
            "attempts": len(attempts), "error": placeholders.substitute(record.get("error"), paths),
            "config_changes": run.changes, "results": results or None}


def _map_size(run: PlannedRun) -> str | None:
    """``"7x7"``: the attention maps' size for the run's backbone, input size and output stride."""
    model = run.config.model
    if model.backbone not in BACKBONES:
        return None
    side = feature_map_size(model.backbone, run.config.data.image_size, model.output_stride)
    return f"{side}x{side}"


def _provenance_lines(entries: list[dict[str, Any]]) -> list[str]:
    lines = ["## Runs", "", "Train time: sum of epoch times (all attempts); wall clock: the "
             "`ferkit bench` sessions that trained the run, evaluation included. Maps: the "
             "size of the feature map and attention maps (input size / output stride).", "",
             "| run | status | seed | maps | commit | hardware | epochs | train time (s) "
             "| wall clock (s) | date (UTC) |", "|---" * 10 + "|"]
    for e in entries:
        cells = [e["id"], e["status"], e["seed"], e["maps"], e["commit"], e["hardware"],
                 e["epochs"], e["train_time_s"], e["wall_clock_s"], e["date"]]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    commands = [f"# {e['id']}\n{e['command']}" for e in entries if e["command"]]
    lines += ["", "### Commands (each reproduces one run)", "", placeholders.NOTE, "", "```bash",
              *commands, "```", ""]
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{e['id']}`: {e['error'].splitlines()[0]}"
                                           for e in failed] + [""]
    changed = [e for e in entries if e["status"] == "changed"]
    if changed:
        lines += ["## Not reported: trained with a different config", ""]
        lines += [f"- `{e['id']}`: " + "; ".join(e["config_changes"][:4]) for e in changed] + [""]
    return lines


def write_report(protocol: Protocol, out_dir: Path, runs: list[PlannedRun]) -> dict[str, Any]:
    """Write ``results.md``, ``results.json`` and ``plots/<setting>.png`` into ``out_dir``.

    Args:
        protocol: the protocol the runs belong to.
        out_dir: the benchmark's results folder.
        runs: planned runs (``runner.plan_runs``); only ``finished`` ones enter the tables.

    Returns:
        ``{"markdown", "json", "plots"}``: the paths written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [dataclasses.replace(run, results=run.read_results()) for run in runs]
    entries = [_run_entry(r, out_dir) for r in runs]
    protocol_file = placeholders.display_path(protocol.path, bench_dirs())
    finished = sum(e["status"] == "finished" for e in entries)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    md = [f"# Benchmark: {protocol.name}", "", protocol.description.strip(), "",
          f"Generated {generated} from {finished} of {len(entries)} runs"
          f" (protocol file: `{protocol_file}`).", "",
          "Model selection uses the validation split only; test results are reported for the "
          "last epoch and for the val-selected checkpoint. Cells are mean ± sample std over "
          "seeds, in percent; `seeds` is the number of finished seeds.", ""]
    settings, plots = [], []
    for setting in protocol.settings:
        own = [r for r in runs if r.spec.setting == setting]
        rows = _method_rows(setting, own)
        first = next((r.results for r in own if r.results), {}) or {}
        factor = (f"imbalance factor {setting.imbalance_factor:g}" if setting.imbalance_factor
                  else "full training set")
        md += [f"## {setting.name}: {factor}", ""]
        if first:
            names = first["val"]["last"]["class_names"] if first["val"].get("last") else []
            counts = ", ".join(f"{n} {c}" for n, c in
                               zip(names, first.get("train_counts", []), strict=False))
            no_test = "" if "test" in first else " No test split under this root: validation only."
            md += [f"Validation: {first.get('val_source')}.{no_test} Training images per class: "
                   f"{counts}.", ""]
        else:
            md += ["No finished run yet.", ""]
        for split, ckpt, title in TABLES:
            md += _table(rows, split, ckpt, title)
        md += _curve_table(rows)
        png = out_dir / "plots" / f"{setting.name}.png"
        why_not = _plot(setting, rows, png)
        if why_not is None:
            plots.append(str(png))
            md += [f"![per-class validation accuracy, {setting.name}]"
                   f"(plots/{setting.name}.png)", ""]
        else:
            md += [f"(No chart: {why_not}.)", ""]
        settings.append({"name": setting.name, "imbalance_factor": setting.imbalance_factor,
                         "val_source": first.get("val_source"), "methods": rows})
    md += _provenance_lines(entries)
    data = {"protocol": {"name": protocol.name, "description": protocol.description,
                         "file": protocol_file},
            "generated": generated, "settings": settings, "runs": entries}
    atomic_write_text(out_dir / "results.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(out_dir / "results.md", "\n".join(md))
    return {"markdown": str(out_dir / "results.md"), "json": str(out_dir / "results.json"),
            "plots": plots}
