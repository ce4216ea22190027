"""One markdown table comparing finished benchmark runs across settings or protocols: last-epoch
and val-selected validation accuracy per method, seed by seed and as mean ± std, with the rare
classes' recall and, where the runs logged them, the consistency diagnostics of the last epoch.

    python benchmarks/compare_runs.py docs/results/ferplus-cpu-long/runs/long \
        docs/results/ferplus-cpu-7x7/runs/7x7 --methods ce mek --classes fear disgust

Each folder is ``<results>/runs/<setting>`` (a ``ferkit bench --out`` folder or a published
``docs/results/NAME`` one); its method folders hold ``seed<k>/results.json`` and
``metrics.jsonl``. Unfinished runs (no results.json) are left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _row(run: Path, classes: list[str]) -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    last_record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    last, selected = results["val"]["last"], results["val"]["selected"]
    row = {"overall": 100 * last["accuracy"], "mean class": 100 * last["mean_class_accuracy"]}
    row.update({c: 100 * last["per_class_accuracy"][c] for c in classes})
    row["selected overall"] = 100 * selected["accuracy"]
    row["selected mean class"] = 100 * selected["mean_class_accuracy"]
    row["CAM flip error"] = last_record.get("diagnostics", {}).get("cam_flip_rel", float("nan"))
    row["lam l_cons / l_cls"] = last_record["train"].get("cons_to_cls", float("nan"))
    return row


def _cells(values: list[float], digits: int) -> str:
    values = [v for v in values if v == v]  # drop NaN (not logged)
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(folders: list[Path], methods: list[str], classes: list[str],
          seeds: list[int] | None = None) -> str:
    """The comparison table (rows: setting x method, seeds as mean ± std; only ``seeds``)."""
    columns = ["overall", "mean class", *classes, "selected overall", "selected mean class",
               "CAM flip error", "lam l_cons / l_cls"]
    lines = ["| setting | method | seeds | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 3) + "|"]
    for folder in folders:
        for method in methods:
            runs = sorted(p.parent for p in (folder / method).glob("seed*/results.json")
                          if seeds is None or int(p.parent.name.removeprefix("seed")) in seeds)
            if not runs:
                continue
            rows = [_row(run, classes) for run in runs]
            names = ", ".join(run.name.removeprefix("seed") for run in runs)
            cells = [_cells([r[c] for r in rows], 3 if c in columns[-2:] else 2)
                     for c in columns]
            lines.append(f"| {folder.parent.parent.name}/{folder.name} | {method} | {names} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="<results>/runs/<setting>")
    parser.add_argument("--methods", nargs="+", default=["ce", "mek"])
    parser.add_argument("--classes", nargs="*", default=["fear", "disgust"])
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: all)")
    args = parser.parse_args(argv)
    print(table(args.folders, args.methods, args.classes, args.seeds), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
