"""Wall time of one MEK training step vs one CE step on the same 2N images.

A MEK step on N images runs ONE forward over ``cat(x, flip(x))`` (2N images), the CAMs, the
losses, one backward and one optimiser step. The fair baseline is a CE step on a batch of 2N
images: the difference is MEK's own overhead (view, CAM einsum, consistency, soft targets).
Target: ratio <= 1.1. The two steps are interleaved (alternating which goes first) and the
median of each is reported.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/step_cost.py --backbone mobilenet_v2 --size 112 --n 32
    (add --no-amp for float32, --append to add a section to the report)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ferkit.api import hardware, provenance
from ferkit.methods import Method, create_method
from ferkit.models.classifier import build_classifier

COUNTS = [1290, 281, 717, 4772, 1982, 705, 2524]  # RAF-DB train counts (weights only)


def make_step(method: Method, batch: dict[str, torch.Tensor], amp: bool) -> Any:
    """A closure running one full training step (forward, loss, backward, Adam step)."""
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-4)

    def step() -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = method(batch)
        out.loss.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - start_cpu

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--n", type=int, default=32, help="MEK batch N (CE gets 2N)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--no-amp", action="store_true", help="float32 instead of bf16 autocast")
    parser.add_argument("--out", default="docs/benchmarks/step_cost.md")
    parser.add_argument("--append", action="store_true", help="add a section to --out")
    args = parser.parse_args(argv)
    amp = not args.no_amp

    torch.manual_seed(0)
    model = build_classifier(args.backbone, len(COUNTS)).to(memory_format=torch.channels_last)
    mek = create_method("mek", model, COUNTS, 1000, {"preset": args.preset}).train()
    ce = create_method("ce", copy.deepcopy(model), COUNTS, 1000).train()
    images = torch.randn(args.n, 3, args.size, args.size)
    labels = torch.randint(0, len(COUNTS), (args.n,))

    def batch(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": x.contiguous(memory_format=torch.channels_last), "label": y,
                "index": torch.arange(len(y))}

    # CE sees exactly the 2N images MEK forwards: the batch and its mirror.
    steps = {"mek": make_step(mek, batch(images, labels), amp),
             "ce": make_step(ce, batch(torch.cat([images, images.flip(3)]), labels.repeat(2)),
                             amp)}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {"mek": [], "ce": [], "mek_cpu": [], "ce_cpu": []}
    for i in range(args.iters):
        order = ("mek", "ce") if i % 2 == 0 else ("ce", "mek")
        for name in order:
            wall, cpu = steps[name]()
            times[name].append(wall)
            times[f"{name}_cpu"].append(cpu)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["mek"] / median["ce"]
    cpu_ratio = median["mek_cpu"] / median["ce_cpu"]
    print(f"mek step {median['mek'] * 1e3:.1f} ms | ce step (2N) {median['ce'] * 1e3:.1f} ms | "
          f"wall ratio {ratio:.3f} | CPU-time ratio {cpu_ratio:.3f} (target <= 1.1)")
    write_report(Path(args.out), args, median, times, (ratio, cpu_ratio), amp, args.append)


def write_report(path: Path, args: argparse.Namespace, median: dict[str, float],
                 times: dict[str, list[float]], ratio: tuple[float, float], amp: bool,
                 append: bool = False
                 ) -> None:
    command = "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)") + " python " + \
        " ".join(["benchmarks/step_cost.py", *sys.argv[1:]])
    rows = "\n".join(
        f"| {name} | {2 * args.n} | {median[name] * 1e3:.1f} | {min(times[name]) * 1e3:.1f} | "
        f"{max(times[name]) * 1e3:.1f} | {median[name + '_cpu'] * 1e3:.1f} |"
        for name in ("mek", "ce"))
    text = f"""## {args.backbone} {args.size}x{args.size}, N={args.n}, {"bf16" if amp else "fp32"}

`{command}`

- date: {datetime.date.today().isoformat()}, commit {provenance()["git_commit"]}
- hardware: {hardware()}, torch threads {torch.get_num_threads()}
- torch {torch.__version__}, Python {platform.python_version()}
- backbone {args.backbone}, input {args.size}x{args.size}, N = {args.n} (MEK forwards
  cat(x, flip x) = {2 * args.n} images; CE gets the same {2 * args.n}), MEK preset {args.preset},
  {"bf16 autocast" if amp else "float32"}, channels_last, Adam; {args.warmup} warm-up then
  {args.iters} timed steps each, interleaved, median

| step | images forwarded | median wall ms | min wall ms | max wall ms | median CPU ms |
|---|---|---|---|---|---|
{rows}

**ratio mek / ce: wall {ratio[0]:.3f}, process CPU time {ratio[1]:.3f}** (target <= 1.1;
CPU time is the steadier number when other jobs share the cores)
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    if append and path.exists():
        text = path.read_text() + "\n" + text
    else:
        text = f"# MEK step cost vs CE on the same 2N images\n\n{__doc__.split(chr(10), 1)[1]}\n" \
            + text
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
