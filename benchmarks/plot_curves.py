"""Per-epoch curves of a benchmark setting: validation mean class accuracy, the rare classes'
recall and training accuracy, one line per method (mean over the finished seeds; each seed thin).

    python benchmarks/plot_curves.py OUT_DIR SETTING --classes fear disgust \
        --out docs/results/ferplus-cpu-long/plots/long-curves.png
    python benchmarks/plot_curves.py OUT_DIR 7x7 4x4 --diagnostics --out ...

Several settings go on one figure (labels ``setting/method``); ``OTHER_DIR:SETTING`` takes a
setting from another results folder (another protocol's published runs, for a comparison).
``--diagnostics`` adds the panels of the consistency diagnostics where the runs logged them: the
CAMs' relative flip-consistency error on validation (``train.cam_diagnostics``) and MEK's
``lam * l_cons / l_cls``.

OUT_DIR is a `ferkit bench --out` folder (or a published docs/results/NAME folder: both hold
runs/<setting>/<method>/seed<k>/metrics.jsonl). Only finished runs are drawn unless
--unfinished is given.
Needs matplotlib (`pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_curves(out_dir: Path, setting: str, unfinished: bool = False
                ) -> dict[str, list[list[dict]]]:
    """``{method label: [history of each seed]}`` from the runs' metrics.jsonl files; only
    finished runs (those with a results.json) unless ``unfinished``."""
    curves: dict[str, list[list[dict]]] = {}
    for metrics in sorted((out_dir / "runs" / setting).glob("*/seed*/metrics.jsonl")):
        if not unfinished and not (metrics.parent / "results.json").is_file():
            continue
        history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if history:
            curves.setdefault(metrics.parent.parent.name, []).append(history)
    return curves


DIAGNOSTICS = {"CAM flip error (val, relative)": ("diagnostics", "cam_flip_rel"),
               "lam * l_cons / l_cls (train)": ("train", "cons_to_cls")}


def _series(history: list[dict], panel: str) -> list[float]:
    if panel in DIAGNOSTICS:
        section, key = DIAGNOSTICS[panel]
        return [r[section][key] for r in history if key in r.get(section, {})]
    if panel == "train accuracy":
        return [100 * r["train"].get("accuracy", float("nan")) for r in history]
    if panel == "mean class accuracy":
        return [100 * r["val"]["mean_class_accuracy"] for r in history if r.get("val")]
    return [100 * r["val"]["per_class_accuracy"][panel] for r in history if r.get("val")]


def plot(curves: dict[str, list[list[dict]]], panels: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for k, (label, seeds) in enumerate(sorted(curves.items())):
            colour = f"C{k}"
            series = [_series(h, panel) for h in seeds]
            if not all(series):  # a method without this quantity (ce has no l_cons)
                continue
            for s in series:
                ax.plot(range(1, len(s) + 1), s, color=colour, alpha=0.3, linewidth=0.8)
            common = min(len(s) for s in series)
            mean = np.mean([s[:common] for s in series], axis=0)
            ax.plot(range(1, common + 1), mean, color=colour, linewidth=2,
                    label=f"{label} ({len(series)} seed{'s' if len(series) > 1 else ''})")
        ax.set_title(panel if panel in ("train accuracy", "mean class accuracy", *DIAGNOSTICS)
                     else f"{panel} recall (val)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("ratio" if panel in DIAGNOSTICS else "%")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("settings", nargs="+", metavar="setting")
    parser.add_argument("--classes", nargs="*", default=["fear", "disgust"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--unfinished", action="store_true", help="also draw unfinished runs")
    parser.add_argument("--diagnostics", action="store_true",
                        help="add the CAM flip-error and consistency-ratio panels")
    args = parser.parse_args(argv)
    curves: dict[str, list[list[dict]]] = {}
    for spec in args.settings:
        folder, _, setting = spec.rpartition(":")
        runs = read_curves(Path(folder) if folder else args.out_dir, setting, args.unfinished)
        for label, seeds in runs.items():
            curves[f"{setting}/{label}" if len(args.settings) > 1 else label] = seeds
    if not curves:
        raise SystemExit(f"no metrics.jsonl under {args.out_dir}/runs/{'|'.join(args.settings)}")
    panels = ["mean class accuracy", *args.classes, "train accuracy"]
    panels += list(DIAGNOSTICS) if args.diagnostics else []
    plot(curves, panels, args.title or f"{args.out_dir.name} / {', '.join(args.settings)}",
         args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
