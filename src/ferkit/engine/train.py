"""fit(): the one method-agnostic training loop.

Per epoch: reseed (so an epoch depends only on ``(seed, epoch)``), train with AMP and optional
gradient clipping, evaluate on validation, append the epoch record to ``metrics.jsonl`` /
``metrics.csv``, save ``last`` (resumable) and ``best`` (by ``select_metric``). Re-running with the
same ``output_dir`` resumes from ``last`` and ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ferkit.config import AugmentConfig, OptimConfig, TrainConfig
from ferkit.data.loader import BatchLoader
from ferkit.data.transforms import augment_batch, normalize, to_float
from ferkit.engine.checkpoint import (
    atomic_write_text,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from ferkit.engine.distributed import DistInfo, barrier
from ferkit.engine.evaluate import (
    amp_dtype,
    autocast,
    cam_flip_error,
    evaluate,
    resolve_device,
)
from ferkit.engine.meta import ModelMeta
from ferkit.engine.optim import build_optimizer, build_scheduler
from ferkit.errors import ConfigError, TrainingDiverged
from ferkit.methods.base import Method, StepOutput
from ferkit.run_files import RunFiles
from ferkit.tempfiles import remove_dead_temp_files

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """History of a run (one record per epoch) and where its files are."""

    history: list[dict[str, Any]]
    output_dir: Path

    @property
    def best(self) -> dict[str, Any] | None:
        evaluated = [r for r in self.history if r.get("val")]
        return max(evaluated, key=lambda r: r["selection_score"]) if evaluated else None

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1]


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**62)


def prepare_batch(
    batch: dict[str, Any], device: torch.device, augment: AugmentConfig | None,
    generator: torch.Generator, mean: tuple[float, ...], std: tuple[float, ...],
    channels_last: bool,
) -> dict[str, Any]:
    """Move a cached batch to ``device``: augment, normalise; recurse into extra streams."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out[key] = prepare_batch(value, device, augment, generator, mean, std, channels_last)
        elif key == "image":
            images = to_float(value.to(device, non_blocking=True))
            if augment is not None:
                images = augment_batch(images, augment, generator, mean, std)
            images = normalize(images, mean, std)
            out[key] = images.contiguous(memory_format=torch.channels_last) if channels_last \
                else images
        else:
            out[key] = value.to(device, non_blocking=True)
    return out


def train_step(
    model: torch.nn.Module, batch: dict[str, Any], optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, device: torch.device, dtype: torch.dtype | None,
    grad_clip: float | None = None,
) -> StepOutput:
    """One optimisation step of a method (or its DDP wrapper) on a prepared batch."""
    with autocast(device, dtype):
        out = model(batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out.loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return out


def _write_metrics(output_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the full history (atomic)."""
    atomic_write_text(RunFiles(output_dir).metrics_jsonl,
                      "".join(json.dumps(r) + "\n" for r in history))
    rows = []
    for record in history:
        row = {"epoch": record["epoch"], "lr": record["lr"], "time_s": record["time_s"],
               "images_per_s": record["images_per_s"]}
        row.update({f"train_{k}": v for k, v in record["train"].items()})
        row.update({f"val_{k}": v for k, v in record.get("diagnostics", {}).items()})
        for key, value in (record.get("val") or {}).items():
            if isinstance(value, float):
                row[f"val_{key}"] = value
            elif key == "per_class_accuracy":
                row.update({f"val_acc_{n}": v for n, v in value.items()})
        rows.append(row)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(RunFiles(output_dir).metrics_csv, buffer.getvalue())


def _tensorboard(output_dir: Path, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info('TensorBoard is not installed: no tensorboard/ logs (pip install "ferkit[tensorboard]", '
                 "or set train.tensorboard=false to silence this)")
        return None
    return SummaryWriter(str(RunFiles(output_dir).tensorboard))


def training_length(train_cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """``(epochs, total optimiser steps)``: ``train.steps`` when set (the last epoch is cut short
    so exactly that many steps run), else ``train.epochs`` full epochs."""
    if train_cfg.steps:
        return math.ceil(train_cfg.steps / steps_per_epoch), train_cfg.steps
    return train_cfg.epochs, train_cfg.epochs * steps_per_epoch


@dataclass
class _Training:
    """What every epoch of one :func:`fit` reads: built once by :func:`_prepare`."""

    method: Method
    model: torch.nn.Module  # ``method``, or its DDP wrapper (the forward of a training step)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype (None: full precision)
    train_loader: BatchLoader
    val_loader: BatchLoader | None
    train_cfg: TrainConfig
    augment: AugmentConfig | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    seed: int
    dist: DistInfo
    steps: int  # optimiser steps of a full epoch
    epochs: int
    total_steps: int


def fit(
    method: Method,
    train_loader: BatchLoader,
    val_loader: BatchLoader | None,
    *,
    optim_cfg: OptimConfig,
    train_cfg: TrainConfig,
    augment: AugmentConfig | None,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    class_names: tuple[str, ...],
    output_dir: Path,
    seed: int,
    meta: ModelMeta | Mapping[str, Any],
    dist: DistInfo | None = None,
) -> FitResult:
    """Train ``method`` for ``train_cfg.epochs`` epochs, resuming from ``output_dir/last``.

    Args:
        method: the Method (wraps the classifier) to train.
        train_loader, val_loader: batch loaders of the cached uint8 images.
        augment: training augmentation (None = none).
        mean, std: input normalisation.
        class_names: canonical class names (for reports).
        output_dir: where checkpoints and metrics go.
        seed: run seed; epoch e uses ``epoch_seed(seed, e, rank)``.
        meta: the record stored in every checkpoint (class names, backbone, config, ...); a
            mapping is read as :meth:`ModelMeta.from_dict` reads a stored one.
        dist: DDP placement (None = single process).
    """
    dist = dist or DistInfo()
    meta = meta if isinstance(meta, ModelMeta) else ModelMeta.from_dict(meta)
    run = _prepare(method, train_loader, val_loader, optim_cfg, train_cfg, augment, mean, std,
                   class_names, seed, dist)
    output_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main:  # temp files of a killed earlier run are never read: reclaim their space
        remove_dead_temp_files(output_dir)
    history = _resume(run, RunFiles(output_dir).last)
    best_score = max((r["selection_score"] for r in history if r.get("val")), default=-1.0)
    writer = _tensorboard(output_dir, train_cfg.tensorboard and dist.is_main)
    for epoch in range(len(history), run.epochs):
        record = _train_epoch(run, epoch)
        if val_loader is not None and ((epoch + 1) % train_cfg.eval_every == 0
                                       or epoch + 1 == run.epochs):
            record.update(_validate(run))
        history.append(record)
        if dist.is_main:
            _save_epoch(method, run.optimizer, run.scheduler, meta, history, output_dir, best_score)
            if record.get("val") and record["selection_score"] > best_score:
                best_score = record["selection_score"]
            _log_epoch(record, writer)
        barrier(dist)
    if writer is not None:
        writer.close()
    return FitResult(history, output_dir)


def _prepare(
    method: Method, train_loader: BatchLoader, val_loader: BatchLoader | None,
    optim_cfg: OptimConfig, train_cfg: TrainConfig, augment: AugmentConfig | None,
    mean: tuple[float, ...], std: tuple[float, ...], class_names: tuple[str, ...], seed: int,
    dist: DistInfo,
) -> _Training:
    """Place ``method`` on its device and build the optimiser, schedule and loss scaler."""
    device = resolve_device(train_cfg.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    dtype = amp_dtype(device, train_cfg.amp)
    method.to(device)
    if train_cfg.channels_last:
        method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method, optim_cfg, train_loader.batch_size)
    steps = len(train_loader)
    if train_cfg.max_steps_per_epoch:
        steps = min(steps, train_cfg.max_steps_per_epoch)
    if steps == 0:
        raise ConfigError(
            f"the training set ({len(train_loader.labels)} images over {dist.world_size} "
            f"process(es)) is smaller than one batch ({train_loader.batch_size}); lower "
            "data.batch_size")
    epochs, total_steps = training_length(train_cfg, steps)
    scheduler = build_scheduler(optimizer, optim_cfg, steps, epochs, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    model = DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda"
                                    else None) if dist.enabled else method
    return _Training(method, model, optimizer, scheduler, scaler, device, dtype, train_loader,
                     val_loader, train_cfg, augment, mean, std, class_names, seed, dist, steps,
                     epochs, total_steps)


def _resume(run: _Training, last_path: Path) -> list[dict[str, Any]]:
    """The history of the epochs ``last_path`` holds, with the weights, optimiser and schedule
    restored from it; ``[]`` (a fresh start) when there is no such file."""
    if not last_path.exists():
        return []
    ckpt = load_checkpoint(last_path, required=("history", "scheduler"))
    load_weights(run.method, ckpt)
    if ckpt.optimizer_state is not None:
        run.optimizer.load_state_dict(ckpt.optimizer_state)
    run.scheduler.load_state_dict(ckpt.meta.extra["scheduler"])
    history = ckpt.meta.extra["history"]
    log.info("resumed %s at epoch %d", last_path, len(history))
    return history


def _train_epoch(run: _Training, epoch: int) -> dict[str, Any]:
    """Train one epoch (reseeded from ``(seed, epoch, rank)``); its record without validation."""
    method, train_cfg, dist = run.method, run.train_cfg, run.dist
    torch.manual_seed(epoch_seed(run.seed, epoch, dist.rank))
    generator = torch.Generator().manual_seed(epoch_seed(run.seed, epoch, dist.rank) + 1)
    run.train_loader.set_epoch(epoch, run.seed)
    method.on_epoch_start(epoch, run.epochs)
    epoch_steps = min(run.steps, run.total_steps - epoch * run.steps)  # the last may be partial
    method.train()
    sums: dict[str, torch.Tensor] = {}
    seen, start = 0, time.perf_counter()
    # disable=None: no bar when stderr is not a terminal (a log file gets the epoch lines only)
    bar = tqdm(total=epoch_steps, desc=f"epoch {epoch + 1}/{run.epochs}", leave=False,
               disable=None if train_cfg.progress and dist.is_main else True, unit="step")
    for step, batch in enumerate(run.train_loader):
        if step >= epoch_steps:
            break
        batch = prepare_batch(batch, run.device, run.augment, generator, run.mean, run.std,
                              train_cfg.channels_last)
        out = train_step(run.model, batch, run.optimizer, run.scaler, run.device, run.dtype,
                         train_cfg.grad_clip)
        run.scheduler.step()
        logs = {"loss": out.loss.detach(), **out.logs}
        if (method.per_image_train_logits and out.logits is not None
                and out.logits.shape[0] == batch["label"].shape[0]):
            # accuracy on the augmented training batch: how close training is to its ceiling
            logs["accuracy"] = (out.logits.detach().argmax(1) == batch["label"]).float().mean()
        for key, value in logs.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float()
        seen += batch["label"].shape[0]
        bar.update(1)
        if step % 20 == 0 or step == epoch_steps - 1:
            loss = out.loss.item()
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training stopped: the loss is {loss} at epoch {epoch + 1}, step {step}; "
                    "lower optim.lr or set train.grad_clip, then re-run with --overwrite "
                    "(or a new --output-dir)")
            bar.set_postfix(loss=f"{loss:.4f}",
                            img_s=f"{seen * dist.world_size / (time.perf_counter() - start):.0f}")
    bar.close()
    elapsed = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train": {k: (v / epoch_steps).item() for k, v in sums.items()},
        "time_s": round(elapsed, 3),
        "images_per_s": round(seen * dist.world_size / elapsed, 1),
    }


def _validate(run: _Training) -> dict[str, Any]:
    """The validation part of an epoch record: the report, its selection score and, when asked
    for, the attention-map diagnostics."""
    method, train_cfg, channels_last = run.method, run.train_cfg, run.train_cfg.channels_last
    method.eval()
    report = evaluate(method.predict, run.val_loader, run.class_names, run.device, run.mean,
                      run.std, run.dtype, channels_last)
    record: dict[str, Any] = {"val": report, "selection_score": report[train_cfg.select_metric]}
    if train_cfg.cam_diagnostics and method.head_cams:
        record["diagnostics"] = cam_flip_error(
            method.model, run.val_loader, train_cfg.cam_diagnostics, run.device, run.mean,
            run.std, run.dtype, channels_last)
    return record


def _save_epoch(
    method: Method, optimizer: torch.optim.Optimizer, scheduler: Any, meta: ModelMeta,
    history: list[dict[str, Any]], output_dir: Path, best_score: float,
) -> None:
    """Checkpoint ``last`` (with optimiser), ``best`` when improved, then the metrics files."""
    record = history[-1]
    epoch_meta = meta.with_extra(epoch=record["epoch"], val=record.get("val"))
    if record.get("val") and record["selection_score"] > best_score:
        save_checkpoint(RunFiles(output_dir).best, method, epoch_meta)
    save_checkpoint(RunFiles(output_dir).last, method,
                    epoch_meta.with_extra(history=history, scheduler=scheduler.state_dict()),
                    optimizer)
    _write_metrics(output_dir, history)


def _log_epoch(record: dict[str, Any], writer: Any) -> None:
    val = record.get("val") or {}
    train = " ".join(f"{k}={v:.4f}" for k, v in record["train"].items())
    msg = f"epoch {record['epoch']}: {train} | {record['images_per_s']:.0f} img/s"
    if val:
        msg += (f" | val acc {100 * val['accuracy']:.2f} mean-class "
                f"{100 * val['mean_class_accuracy']:.2f}")
    log.info(msg)
    if writer is not None:
        for key, value in record["train"].items():
            writer.add_scalar(f"train/{key}", value, record["epoch"])
        for key in ("accuracy", "mean_class_accuracy", "macro_f1"):
            if key in val:
                writer.add_scalar(f"val/{key}", val[key], record["epoch"])
        for key, value in record.get("diagnostics", {}).items():
            writer.add_scalar(f"val/{key}", value, record["epoch"])
