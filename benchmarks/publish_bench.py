"""Copy a benchmark's report and each run's small files (no checkpoints) into the repository, or
restore them into a results folder so a later `ferkit bench` skips the runs already finished.

    python benchmarks/publish_bench.py OUT_DIR docs/results/ferplus-cpu \
        --preface docs/results/ferplus-cpu.preface.md                               # publish
    python benchmarks/publish_bench.py OUT_DIR docs/results/ferplus-cpu --restore  # restore

Published: OUT_DIR/results.md -> DEST.md, results.json, plots/*.png, and for every run
results.json, bench_run.json, config.yaml, metrics.jsonl, metrics.csv, report.md, with the data
root and results folder written as $ROOT and $OUT (``--restore --root PATH`` puts them back).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout's ferkit
from ferkit.bench import placeholders  # noqa: E402

RUN_FILES = ("results.json", "bench_run.json", "config.yaml", "metrics.jsonl", "metrics.csv",
             "report.md")


def _replacements(run: Path, src: Path, dest: Path, restore: bool,
                  root: str | None) -> list[tuple[str, str]]:
    """Publishing: the data root and results folder a run was made with -> $ROOT / $OUT.
    Restoring: $OUT -> the results folder, and $ROOT -> ``root`` when given."""
    if restore:
        return [(placeholders.OUT, str(dest.resolve()))] + ([(placeholders.ROOT, root)]
                                                            if root else [])
    try:
        record = json.loads((run / "bench_run.json").read_text())
    except (OSError, ValueError):
        record = None
    found = placeholders.record_pairs(record, run.relative_to(src / "runs").as_posix())
    return sorted(found + placeholders.pairs(None, src), key=lambda item: -len(item[0]))


def copy_tree(src: Path, dest: Path, restore: bool, root: str | None = None) -> int:
    copied = 0
    for record in sorted(src.glob("runs/*/*/*/bench_run.json")):
        run = record.parent
        target = dest / run.relative_to(src)
        if restore and (target / "last.safetensors").exists():
            continue  # never overwrite a run that has its own checkpoint
        target.mkdir(parents=True, exist_ok=True)
        replacements = _replacements(run, src, dest, restore, root)
        for name in RUN_FILES:
            if (run / name).is_file():
                text = (run / name).read_bytes().decode()  # bytes: keep metrics.csv's CRLF
                if restore:
                    for placeholder, path in replacements:
                        text = text.replace(placeholder, path)
                else:
                    text = placeholders.substitute(text, replacements)
                (target / name).write_bytes(text.encode())
                copied += 1
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the folder given to ferkit bench --out")
    parser.add_argument("dest", type=Path, help="e.g. docs/results/ferplus-cpu")
    parser.add_argument("--restore", action="store_true", help="copy DEST back into OUT_DIR")
    parser.add_argument("--root", help="with --restore: the dataset root that $ROOT stands for")
    parser.add_argument("--preface", type=Path,
                        help="markdown put before the generated report (status, discussion)")
    args = parser.parse_args()
    if args.restore:
        count = copy_tree(args.dest, args.out_dir, restore=True, root=args.root)
        print(f"restored {count} files into {args.out_dir}")
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    report = (args.out_dir / "results.md").read_text()
    # plots sit in DEST/plots, beside DEST.md: re-point the links
    report = report.replace("](plots/", f"]({args.dest.name}/plots/")
    if args.preface:
        report = args.preface.read_text().rstrip() + "\n\n" + report
    args.dest.with_suffix(".md").write_text(report)
    shutil.copy2(args.out_dir / "results.json", args.dest / "results.json")
    for plot in (args.out_dir / "plots").glob("*.png"):
        (args.dest / "plots").mkdir(exist_ok=True)
        shutil.copy2(plot, args.dest / "plots" / plot.name)
    count = copy_tree(args.out_dir, args.dest, restore=False)
    print(f"published {args.dest.with_suffix('.md')} and {count} run files under {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
