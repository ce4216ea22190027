"""CPU precision and memory format: one training step of a backbone in fp32 vs bf16 autocast,
NCHW vs channels_last, measured in one run (median of timed steps after a warm-up step).

    python benchmarks/precision.py --backbone mobilenet_v2 --size 112 --batch 16

bf16 autocast only pays where the CPU has native bf16 kernels (AVX512-BF16 / AMX); elsewhere
oneDNN emulates it. ferkit's ``train.amp: auto`` therefore picks bf16 on CPU only when
``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is true. Writes docs/benchmarks/precision.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ferkit.api import hardware, provenance
from ferkit.engine.evaluate import cpu_has_native_bf16
from ferkit.models import build_classifier


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="docs/benchmarks/precision.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_classifier(args.backbone, 7)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 7, (args.batch,))
    rows = []
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        x = images.contiguous(memory_format=fmt)
        for bf16 in (False, True):
            times = []
            for _ in range(args.steps + 1):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x).logits
                loss = F.cross_entropy(logits.float(), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                times.append(time.perf_counter() - start)
            step = statistics.median(times[1:])
            rows.append((("channels_last" if channels_last else "NCHW"),
                         "bf16 autocast" if bf16 else "fp32", step))
            print(f"{rows[-1][0]:>13} {rows[-1][1]:>13}: {step:.3f} s/step", flush=True)
    base = rows[0][2]
    prov = provenance()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        "# CPU training step: precision and memory format\n",
        f"Command: `{command}`  ",
        f"Commit {prov['git_commit']}, torch {prov['torch_version']}, {hardware()}, "
        f"{torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {datetime.date.today()}.\n",
        f"{args.backbone}, batch {args.batch}, {args.size}x{args.size}, forward + backward + Adam "
        f"step, median of {args.steps} steps after one warm-up.\n",
        "| memory format | precision | s / step | images/s | time vs NCHW fp32 |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {f} | {p} | {s:.3f} | {args.batch / s:.1f} | {s / base:.2f}x |" for f, p, s in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
