"""Training throughput: the full pipeline (cached data -> batch augmentation -> step) against the
bare forward/backward/step of the same model on one resident batch, measured in one run.

    python benchmarks/throughput.py --dataset ferplus --root ../shared/data/ferplus
    python benchmarks/throughput.py            # built-in synthetic faces, nothing to fetch

Prints images/s of both and their ratio (pipeline / bare; 1.0 = data handling costs nothing) and
writes a markdown table to docs/benchmarks/throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

from ferkit.api import hardware, provenance
from ferkit.data import DATASETS
from ferkit.data.cache import cached_images, default_cache_dir
from ferkit.data.loader import BatchLoader, shuffle_sampler
from ferkit.data.transforms import AugmentConfig
from ferkit.engine.evaluate import amp_dtype
from ferkit.engine.train import prepare_batch, train_step
from ferkit.methods import create_method
from ferkit.models import build_classifier

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--root")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--method", default="ce")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "none"),
                        help="auto: bf16 only where the CPU has native bf16")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="steps per round and mode")
    parser.add_argument("--out", default="docs/benchmarks/throughput.md")
    args = parser.parse_args()

    device = torch.device("cpu")
    dtype = amp_dtype(device, args.amp)
    dataset = DATASETS.create(args.dataset, root=args.root, split="train")
    images = cached_images(dataset, args.size, default_cache_dir())
    loader = BatchLoader(images, dataset.labels, args.batch, sampler=shuffle_sampler(len(dataset)),
                         drop_last=True)
    torch.manual_seed(0)
    model = build_classifier(args.backbone, dataset.num_classes)
    method = create_method(args.method, model, dataset.class_counts.tolist(), len(dataset))
    if args.channels_last:
        method.to(memory_format=torch.channels_last)
    method.train()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    generator = torch.Generator().manual_seed(0)
    augment = AugmentConfig()
    batches = iter(loader)

    def pipeline_step() -> None:
        nonlocal batches
        try:
            raw = next(batches)
        except StopIteration:
            batches = iter(loader)
            raw = next(batches)
        batch = prepare_batch(raw, device, augment, generator, MEAN, STD, args.channels_last)
        train_step(method, batch, optimizer, scaler, device, dtype)

    fixed = prepare_batch(next(iter(loader)), device, augment, generator, MEAN, STD,
                          args.channels_last)

    def bare_step() -> None:
        train_step(method, fixed, optimizer, scaler, device, dtype)

    for _ in range(2):  # warm-up of both paths
        pipeline_step()
        bare_step()
    times: dict[str, list[float]] = {"pipeline": [], "bare": []}
    for _ in range(args.rounds):  # interleaved, so machine load affects both alike
        for name, step in (("pipeline", pipeline_step), ("bare", bare_step)):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps)
    pipeline = args.batch / statistics.median(times["pipeline"])
    bare = args.batch / statistics.median(times["bare"])
    ratio = pipeline / bare
    print(f"pipeline {pipeline:.1f} img/s, bare step {bare:.1f} img/s, ratio {ratio:.3f}")

    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    prov = provenance()
    text = (
        "# Training throughput: full pipeline vs bare step\n\n"
        f"Command: `{command}`  \n"
        f"Commit {prov['git_commit']}, torch {prov['torch_version']}, {hardware()}, "
        f"{torch.get_num_threads()} threads, {datetime.date.today()}.\n\n"
        f"{args.backbone}, method `{args.method}`, {args.dataset} train at {args.size}x{args.size}, "
        f"batch {args.batch}, amp {args.amp} ({dtype or 'fp32'}), "
        f"channels_last {args.channels_last}; median of {args.rounds} interleaved "
        f"rounds of {args.steps} steps.\n\n"
        "| path | images/s |\n|---|---|\n"
        f"| full pipeline (cache -> augment -> step) | {pipeline:.1f} |\n"
        f"| bare forward/backward/step on a resident batch | {bare:.1f} |\n"
        f"| ratio pipeline / bare | {ratio:.3f} |\n"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
