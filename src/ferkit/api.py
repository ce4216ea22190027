"""The Python API the CLI calls: train(cfg), evaluate(checkpoint, ...), Predictor."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ferkit.checks import check_config, ensure_checked, registry_errors  # noqa: F401  (ferkit.api names)
from ferkit.config import (
    ConfigError,
    DataConfig,
    RunConfig,
    default_output_dir,
    save_config,
    to_dict,
)
from ferkit.data import (
    DatasetError,
    FERDataset,
    SplitNotAvailable,
    dataset_from_config,
    dataset_options,  # noqa: F401  (ferkit.api name)
)
from ferkit.data.cache import cached_images, resolve_cache_dir
from ferkit.data.imbalance import imbalanced_subset
from ferkit.data.loader import BatchLoader, shuffle_sampler
from ferkit.data.splits import stratified_holdout
from ferkit.engine.checkpoint import atomic_write_text
from ferkit.engine.distributed import DistInfo, barrier, init_distributed
from ferkit.engine.evaluate import resolve_device
from ferkit.engine.meta import ModelMeta
from ferkit.engine.train import FitResult, fit
from ferkit.evaluation import describe_data, evaluate, evaluate_split  # noqa: F401  (API names)
from ferkit.losses import check_class_counts
from ferkit.methods import create_method, resolved_method_params
from ferkit.metrics import markdown_report
from ferkit.models import build_classifier
from ferkit.models.backbones import feature_map_size, resolved_output_stride
from ferkit.output_paths import check_output_folder
from ferkit.plots import confusion_matrix_plot, learning_curves
from ferkit.provenance import git_commit, hardware, provenance  # noqa: F401  (ferkit.api names)
from ferkit.run_files import CONFUSION_MATRIX, LEARNING_CURVES, RunFiles
from ferkit.run_folder import check_run_folder, clear_run_folder, refuse_if_busy, run_folder_lock
from ferkit.tempfiles import remove_dead_temp_files

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Train / validation / optional test datasets of one run."""

    train: FERDataset
    val: FERDataset
    test: FERDataset | None
    val_source: str  # "official" or "hold-out of train"


def build_splits(cfg: DataConfig) -> Splits:
    """Datasets for a run: official validation where one exists, else a seeded hold-out of train;
    the imbalance-factor subset is drawn from the (remaining) training images; test when present."""
    def make(split: str) -> FERDataset:
        return dataset_from_config(cfg, split)

    train = make("train")
    if cfg.label_mode == "soft" and train.soft_labels is None:
        raise ConfigError(f"data.label_mode='soft': dataset '{cfg.dataset}' returned no soft "
                          "labels; set data.label_mode=majority")
    try:
        val, val_source = make("val"), "official"
    except SplitNotAvailable:
        train_idx, val_idx = stratified_holdout(train.labels, cfg.val_fraction, cfg.val_seed)
        val = train.subset(val_idx, f"{train.name} hold-out val ({cfg.val_fraction:g})")
        train = train.subset(train_idx, f"{train.name} minus hold-out")
        val_source = f"seeded hold-out of train ({cfg.val_fraction:g}, seed {cfg.val_seed})"
    if cfg.imbalance_factor:
        train = imbalanced_subset(train, cfg.imbalance_factor, cfg.imbalance_seed,
                                  cfg.imbalance_max)
    try:
        test: FERDataset | None = make("test")
    except (SplitNotAvailable, DatasetError) as err:
        log.warning("no test split: %s", str(err).splitlines()[0])
        test = None
    check_class_counts(train.class_counts, train.class_names)
    return Splits(train, val, test, val_source)


def _loader(dataset: FERDataset, cfg: DataConfig, dist: DistInfo, **kwargs: Any) -> BatchLoader:
    images = cached_images(dataset, cfg.image_size, resolve_cache_dir(cfg.cache_dir))
    return BatchLoader(images, dataset.labels, rank=dist.rank, world_size=dist.world_size,
                       **kwargs)


def _resolved_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` as a run records it: the default ``output_dir`` filled in, every method parameter
    with its default, and ``data.root`` absolute (so a resume from another working folder finds
    the same tree or is refused)."""
    if cfg.output_dir is None:
        cfg = dataclasses.replace(cfg, output_dir=default_output_dir(cfg.method.name))
    cfg = dataclasses.replace(cfg, method=dataclasses.replace(
        cfg.method, params=resolved_method_params(cfg.method.name, cfg.method.params)))
    if isinstance(cfg.data.root, str) and cfg.data.root:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, root=os.path.abspath(cfg.data.root)))
    return cfg


def train(cfg: RunConfig, overwrite: bool = False) -> FitResult:
    """Train one run end to end; evaluates the last and the val-selected checkpoints on test when
    the test split exists, and writes ``results.json`` and ``report.md`` to ``cfg.output_dir``.

    An existing ``output_dir`` is resumed when it holds the same config (apart from
    :data:`ferkit.run_folder.RESUMABLE_KEYS`); otherwise nothing is written and a
    :class:`~ferkit.run_folder.RunFolderError` names the differences. Nothing is written before
    the config, the device, the data and the model weights have been checked, and the folder is
    written under its lock (:func:`ferkit.run_folder.run_folder_lock`): a second writer is
    refused with :class:`~ferkit.run_folder.RunFolderBusy`. Launched under torchrun, the same
    call trains with DDP (one process per device).

    Args:
        cfg: the resolved run config (``output_dir`` None: :func:`default_output_dir`).
        overwrite: delete the run files already in ``output_dir`` and start from scratch.
    """
    ensure_checked(cfg)  # a config from load_config was checked there
    cfg = _resolved_config(cfg)
    output_dir = check_output_folder(cfg.output_dir, "output_dir")
    device = resolve_device(cfg.train.device, "train.device")
    refuse_if_busy(output_dir)
    if not overwrite:
        check_run_folder(cfg)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    dist = init_distributed(device)
    if not dist.is_main:  # one process reports
        logging.getLogger("ferkit").setLevel(logging.WARNING)
    splits = build_splits(cfg.data)
    train_set = splits.train
    torch.manual_seed(cfg.seed)  # initialisation depends on the run seed only
    model = build_classifier(cfg.model.backbone, train_set.num_classes, cfg.model.pretrained,
                             cfg.model.drop_rate, cfg.model.output_stride, **cfg.model.options)
    method = create_method(cfg.method.name, model, train_set.class_counts.tolist(),
                           len(train_set), cfg.method.params)
    with run_folder_lock(output_dir) if dist.is_main else contextlib.nullcontext():
        if dist.is_main:
            if not overwrite:
                check_run_folder(cfg)  # again under the lock: nobody wrote in between
            _start_run_folder(cfg, splits, overwrite, dist)
        barrier(dist)
        result = _fit(cfg, method, splits, dist)
        if dist.is_main:
            write_results(result, splits, cfg)
        barrier(dist)
    return result


def _start_run_folder(cfg: RunConfig, splits: Splits, overwrite: bool, dist: DistInfo) -> None:
    """Rank 0, under the lock: clear (``--overwrite``), tidy and record the run's config."""
    output_dir = Path(cfg.output_dir)
    if overwrite:
        clear_run_folder(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_dead_temp_files(output_dir)  # a killed run's half-written files, never read
    save_config(cfg, RunFiles(output_dir).config, provenance())
    if dist.enabled:  # rank 0 decodes the disk caches first, the others then map them
        for split in (splits.train, splits.val):
            cached_images(split, cfg.data.image_size, resolve_cache_dir(cfg.data.cache_dir))


def _fit(cfg: RunConfig, method: torch.nn.Module, splits: Splits, dist: DistInfo) -> FitResult:
    """The training loop of :func:`train` on its checked splits and built method."""
    train_set = splits.train
    output_stride = resolved_output_stride(cfg.model.backbone, cfg.model.output_stride)
    soft = train_set.soft_labels if cfg.data.label_mode == "soft" else None
    train_loader = _loader(train_set, cfg.data, dist, batch_size=cfg.data.batch_size,
                           soft_labels=soft, sampler=shuffle_sampler(len(train_set)),
                           streams=method.samplers(train_set.labels), drop_last=True)
    val_loader = _loader(splits.val, cfg.data, DistInfo(), batch_size=cfg.data.eval_batch_size)
    meta = ModelMeta(
        class_names=tuple(train_set.class_names), num_classes=train_set.num_classes,
        image_size=cfg.data.image_size, channels=train_set.channels,
        mean=tuple(cfg.data.mean), std=tuple(cfg.data.std), backbone=cfg.model.backbone,
        backbone_options=cfg.model.options, output_stride=output_stride,
        feature_map_size=feature_map_size(cfg.model.backbone, cfg.data.image_size, output_stride),
        method=cfg.method.name, method_params=cfg.method.params,
        class_counts=tuple(train_set.class_counts.tolist()), num_samples=len(train_set),
        dataset=cfg.data.dataset, val_source=splits.val_source, config=to_dict(cfg),
        extra=provenance(),
    )
    log.info("train: %s", train_set.summary())
    log.info("val (%s): %s", splits.val_source, splits.val.summary())
    return fit(method, train_loader, val_loader, optim_cfg=cfg.optim, train_cfg=cfg.train,
               augment=cfg.data.augment, mean=cfg.data.mean, std=cfg.data.std,
               class_names=train_set.class_names, output_dir=Path(cfg.output_dir), seed=cfg.seed,
               meta=meta, dist=dist)


def write_results(result: FitResult, splits: Splits, cfg: RunConfig) -> dict[str, Any]:
    """Summarise a finished run: val at last epoch and at the val-selected epoch, test for both
    checkpoints when a test split exists (never used for selection), each section once when the
    last epoch is the val-selected one; with matplotlib, ``learning_curves.png`` and
    ``confusion_matrix.png`` (validation, val-selected epoch) beside ``report.md``."""
    output_dir = Path(cfg.output_dir)
    best, last = result.best, result.last
    same = bool(best) and best["epoch"] == last["epoch"]  # one checkpoint, reported once
    summary: dict[str, Any] = {
        "provenance": provenance(), "val_source": splits.val_source,
        "epochs": len(result.history), "train_counts": splits.train.class_counts.tolist(),
        "train_time_s": round(sum(r["time_s"] for r in result.history), 1),
        "val": {"last": last.get("val"), "selected": best and best["val"],
                "selected_epoch": best and best["epoch"]},
    }
    markdown = [f"# Run {output_dir.name}\n", f"Validation: {splits.val_source}.\n"]
    markdown.append(_pictures(result, output_dir))
    if last.get("val"):
        title = "the val-selected epoch" if same else "last epoch"
        markdown.append(markdown_report(last["val"], f"Validation, {title} ({len(result.history)})"))
    if best and not same:
        markdown.append(markdown_report(best["val"], f"Validation, val-selected epoch "
                                        f"({best['epoch']})"))
    if splits.test is not None:
        summary["test"] = {}
        for name in ("last",) if same else ("last", "best"):
            report = evaluate(RunFiles(output_dir).checkpoint(name), splits.test,
                              data_cfg=cfg.data, device=cfg.train.device)
            label = "last epoch" if name == "last" else "val-selected checkpoint"
            summary["test"]["last" if name == "last" else "selected"] = report
            markdown.append(markdown_report(report, "Test, last epoch = val-selected checkpoint"
                                            if same else f"Test, {label}"))
        if same:
            summary["test"]["selected"] = summary["test"]["last"]
    atomic_write_text(RunFiles(output_dir).results, json.dumps(summary, indent=2) + "\n")
    atomic_write_text(RunFiles(output_dir).report, "\n".join(markdown))
    return summary


def _pictures(result: FitResult, output_dir: Path) -> str:
    """Draw the run's pictures; their markdown, or one line saying why there are none."""
    selected = result.best or result.last
    reasons = [learning_curves(result.history, RunFiles(output_dir).learning_curves)]
    if selected.get("val"):
        reasons.append(confusion_matrix_plot(
            selected["val"], f"validation, val-selected epoch {selected['epoch']}",
            RunFiles(output_dir).confusion_matrix))
    missing = next((reason for reason in reasons if reason), None)
    if missing:
        return f"No pictures: {missing}.\n"
    pictures = [f"![learning curves]({LEARNING_CURVES})"]
    if selected.get("val"):
        pictures.append(f"![confusion matrix, validation, epoch {selected['epoch']}]({CONFUSION_MATRIX})")
    return "\n\n".join(pictures) + "\n"
