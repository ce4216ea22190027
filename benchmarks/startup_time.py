"""Start-up of the ``ferkit`` command: how long help, listing, the config reference, a config check
and an argument error take, as whole processes (``python -m ferkit ...``), wall clock and CPU time.

Usage:
    PYTHONPATH=src python benchmarks/startup_time.py [--runs 7] [--baseline-src OTHER/src]

``--baseline-src``: also time every command from another source tree (an older checkout),
alternating run by run with this one, and give the ratio per command (median of the per-pair
ratios, so a drift of the machine's speed during the run cancels out).

Writes docs/benchmarks/startup.md. Each command runs once as a warm-up (file caches), then
``--runs`` times; the page gives the median and the fastest run, and whether the command imported
torch (read from ``python -X importtime`` in one more run).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import LoadRecord, page_header

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 0.5
COMMANDS = {
    "ferkit --help": ["--help"],
    "ferkit predict --help": ["predict", "--help"],
    "ferkit predict --batch-size x (argument error)": ["predict", "--batch-size", "x", "a.png"],
    "ferkit list": ["list"],
    "ferkit config": ["config"],
    "ferkit config --config quickstart --set method.name=mek (a config check)":
        ["config", "--config", "quickstart", "--set", "method.name=mek"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(src: Path | str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall and CPU seconds and the exit status of one ``python -m ferkit ARGS``."""
    start, cpu_start = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "ferkit", *args], env=env, capture_output=True)
    return time.perf_counter() - start, _children_cpu() - cpu_start, done.returncode


def imports_torch(args: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ferkit", *args], env=env,
                          capture_output=True, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines())


def time_command(argv: list[str], env: dict[str, str], runs: int,
                 baseline_env: dict[str, str] | None) -> dict[str, float]:
    """Median and fastest wall, median CPU; with ``baseline_env`` the baseline's median wall and
    the median per-pair ratio (this / baseline), the two run in turn."""
    run_once(argv, env)
    if baseline_env:
        run_once(argv, baseline_env)
    pairs = [(run_once(argv, env), run_once(argv, baseline_env) if baseline_env else None)
             for _ in range(runs)]
    walls = [this[0] for this, _ in pairs]
    row = {"wall": statistics.median(walls), "fastest": min(walls),
           "cpu": statistics.median(this[1] for this, _ in pairs), "status": pairs[0][0][2]}
    if baseline_env:
        row["baseline"] = statistics.median(base[0] for _, base in pairs)
        row["ratio"] = statistics.median(this[0] / base[0] for this, base in pairs)
        row["baseline_status"] = pairs[0][1][2]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/startup.md"))
    parser.add_argument("--baseline-src", help="another tree's src/ to compare every command with")
    parser.add_argument("--baseline-name", default="the baseline", help="how the page names it")
    args = parser.parse_args()
    env = _env(REPO / "src")
    baseline_env = _env(args.baseline_src) if args.baseline_src else None
    load = LoadRecord()
    rows = [(label, time_command(argv, env, args.runs, baseline_env), imports_torch(argv, env))
            for label, argv in COMMANDS.items()]
    load.stop()
    command = ("PYTHONPATH=src python benchmarks/startup_time.py --runs "
               f"{args.runs}{' --baseline-src OLD_CHECKOUT/src' if args.baseline_src else ''}")
    header = "| command | wall s (median) | wall s (fastest) | CPU s (median) | imports torch |"
    if baseline_env:
        header += f" {args.baseline_name}: wall s (median) | this / {args.baseline_name} |"
    lines = [
        *page_header("Start-up of the `ferkit` command", command, load),
        f"Each command as a whole process (`python -m ferkit ...`), one warm-up then {args.runs} "
        f"runs{f', in turn with {args.baseline_name} (`--baseline-src`)' if baseline_env else ''}"
        f". Goal: under {GOAL_S} s.", "", header, "|---" * header.count(" |") + "|"]
    for label, row, torch_imported in rows:
        line = (f"| `{label}` | {row['wall']:.2f} | {row['fastest']:.2f} | {row['cpu']:.2f} | "
                f"{'yes' if torch_imported else 'no'} |")
        if baseline_env and row["baseline_status"] != row["status"]:  # e.g. an option it lacks
            line += (f" exit status {row['baseline_status']} there (this tree: {row['status']}): "
                     "not the same work | - |")
        elif baseline_env:
            line += f" {row['baseline']:.2f} | {row['ratio']:.3f} |"
        lines.append(line)
    over = [f"`{label}`" for label, row, _ in rows if row["wall"] >= GOAL_S]
    missed = f" (not: {', '.join(over)})" if over else ""
    lines += ["", f"Median wall clock under the {GOAL_S} s goal: {len(rows) - len(over)} of "
              f"{len(rows)} commands{missed}."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
