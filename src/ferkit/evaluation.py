"""The API behind ``ferkit eval`` and ``ferkit datasets``: both take the same typed
:class:`~ferkit.config.DataConfig` as :func:`ferkit.api.train`, so the data a command reads is
the data a training run with that config reads; the CLI only parses and prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferkit.config import ConfigError, DataConfig
from ferkit.data import (
    DatasetError,
    FERDataset,
    data_config_errors,
    dataset_from_config,
    dataset_options,
)
from ferkit.data.cache import cached_images, resolve_cache_dir
from ferkit.data.check import describe
from ferkit.data.loader import BatchLoader
from ferkit.engine.checkpoint import atomic_write_text, load_model
from ferkit.engine.evaluate import amp_dtype, resolve_device
from ferkit.engine.evaluate import evaluate as evaluate_loader
from ferkit.metrics import markdown_report
from ferkit.output_paths import check_output_folder, make_output_folder


@dataclass
class EvalResult:
    """What :func:`evaluate_split` computed and wrote."""

    report: dict[str, Any]
    markdown: str
    json_path: Path
    markdown_path: Path


def check_data_config(data: DataConfig) -> None:
    """Registry-level checks of a DataConfig (dataset name, its options by name and type, the
    label mode).

    Raises:
        ConfigError: every problem at once, with did-you-mean suggestions.
    """
    errors = data_config_errors(data)
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))


def evaluate(
    checkpoint: str | Path, dataset: FERDataset, data_cfg: DataConfig | None = None,
    device: str = "auto", batch_size: int = 256,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset: overall / mean class / per-class accuracy, macro-F1 and
    the confusion matrix."""
    torch_device = resolve_device(device)
    loaded = load_model(checkpoint, torch_device)
    class_names = loaded.meta.class_names
    if tuple(dataset.class_names) != class_names:
        raise DatasetError(f"dataset classes {list(dataset.class_names)} differ from the "
                           f"checkpoint's {list(class_names)}; set num_classes to "
                           f"{len(class_names)}")
    cache = resolve_cache_dir(data_cfg.cache_dir if data_cfg else None)
    images = cached_images(dataset, loaded.meta.image_size, cache)
    loader = BatchLoader(images, dataset.labels, batch_size)
    return evaluate_loader(loaded.method.predict, loader, class_names, torch_device,
                           loaded.meta.mean, loaded.meta.std,
                           amp_dtype(torch_device, "auto"))


def evaluate_split(
    checkpoint: str | Path, data: DataConfig, split: str = "test", out_dir: str | Path | None = None,
    device: str = "auto",
) -> EvalResult:
    """Evaluate a checkpoint on one split of the dataset ``data`` describes; write
    ``eval_<dataset>_<split>.json`` and ``.md`` to ``out_dir`` (default: beside the checkpoint).

    Raises:
        ConfigError: unknown dataset or options; DatasetError: the split cannot be read;
        CheckpointError: the checkpoint is missing or unreadable.
    """
    check_data_config(data)
    out = check_output_folder(out_dir or Path(checkpoint).resolve().parent, "--out")
    dataset = dataset_from_config(data, split)
    report = evaluate(checkpoint, dataset, data_cfg=data, device=device,
                      batch_size=data.eval_batch_size)
    markdown = markdown_report(report, f"{checkpoint} on {dataset.name}")
    make_output_folder(out, "--out")
    stem = f"eval_{data.dataset}_{split}"
    atomic_write_text(out / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / f"{stem}.md", markdown)
    return EvalResult(report, markdown, out / f"{stem}.json", out / f"{stem}.md")


def describe_data(data: DataConfig) -> str:
    """``ferkit datasets``: counts per split and class of ``data``'s dataset from its label files,
    missing images, and the ``data.imbalance_factor`` training subset when one is set."""
    check_data_config(data)
    return describe(data.dataset, data.root, num_classes=data.num_classes,
                    imbalance_factor=data.imbalance_factor, **dataset_options(data))


__all__ = ["EvalResult", "check_data_config", "describe_data", "evaluate", "evaluate_split"]
