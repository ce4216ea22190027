"""Start-up of the ``ferkit`` command: how long help, listing, the config reference and an argument
error take, as whole processes (``python -m ferkit ...``), wall clock and CPU time.

Usage:
    PYTHONPATH=src python benchmarks/startup_time.py [--runs 7] [--baseline-src OTHER/src]

``--baseline-src``: also time ``ferkit --help`` from another source tree (an older checkout),
alternating run by run with this one, and give the ratio.

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
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(src: Path | str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -m ferkit ARGS``."""
    start, cpu_start = time.perf_counter(), _children_cpu()
    subprocess.run([sys.executable, "-m", "ferkit", *args], env=env, capture_output=True)
    return time.perf_counter() - start, _children_cpu() - cpu_start


def imports_torch(args: list[str], env: dict[str, str]) -> bool:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ferkit", *args], env=env,
                          capture_output=True, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/startup.md"))
    parser.add_argument("--baseline-src", help="another tree's src/ to compare `ferkit --help` with")
    parser.add_argument("--baseline-name", default="the baseline", help="how the page names it")
    args = parser.parse_args()
    env = _env(REPO / "src")
    load = LoadRecord()
    paired = None
    if args.baseline_src:
        baseline_env = _env(args.baseline_src)
        run_once(["--help"], env), run_once(["--help"], baseline_env)
        pairs = [(run_once(["--help"], env)[0], run_once(["--help"], baseline_env)[0])
                 for _ in range(args.runs)]
        paired = (statistics.median(b for _, b in pairs), statistics.median(a / b for a, b in pairs))
    rows = []
    for label, argv in COMMANDS.items():
        run_once(argv, env)
        runs = [run_once(argv, env) for _ in range(args.runs)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        rows.append((label, statistics.median(walls), min(walls), statistics.median(cpus),
                     imports_torch(argv, env)))
    load.stop()
    command = ("PYTHONPATH=src python benchmarks/startup_time.py --runs "
               f"{args.runs}{' --baseline-src OLD_CHECKOUT/src' if args.baseline_src else ''}")
    lines = [
        *page_header("Start-up of the `ferkit` command", command, load),
        f"Each command as a whole process (`python -m ferkit ...`), one warm-up then {args.runs} "
        f"runs. Goal: under {GOAL_S} s.", "",
        "| command | wall s (median) | wall s (fastest) | CPU s (median) | imports torch |",
        "|---|---|---|---|---|"]
    for label, wall, fastest, cpu, torch_imported in rows:
        lines.append(f"| `{label}` | {wall:.2f} | {fastest:.2f} | {cpu:.2f} | "
                     f"{'yes' if torch_imported else 'no'} |")
    if paired:
        lines += ["", f"`ferkit --help` from {args.baseline_name} (`--baseline-src`), alternating run "
                  f"by run with this tree: median {paired[0]:.2f} s wall; this tree / "
                  f"{args.baseline_name}: {paired[1]:.3f} (median of the per-pair ratios)."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
