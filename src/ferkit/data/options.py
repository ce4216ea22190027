"""The dataset registry and the checks of ``data.options`` and ``data.label_mode``, importable
without torch.

A dataset module registers its builder with :func:`ferkit.data.registry.register_dataset`; its
typed options (the builder's keyword-only parameters) are what a config may set. They are read
from the builder once its module is imported, and from the generated catalogue
(``ferkit._registered``) before that, so checking a config imports no dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferkit.config import ConfigError, DataConfig
from ferkit.params import Param, check_params
from ferkit.registry import Registry

if TYPE_CHECKING:
    from ferkit.data.base import FERDataset


@dataclass(frozen=True)
class DatasetFacts:
    """What the registry (and its catalogue) knows of a dataset before importing it.

    Attributes:
        options: its typed options, by name (keyword-only parameters of the builder).
    """

    options: dict[str, Param]


DATASETS: Registry[FERDataset] = Registry("dataset", info_type=DatasetFacts,
                                          catalogue="ferkit._registered:DATASETS")


def settable_options(name: str) -> dict[str, Param]:
    """The typed options of dataset ``name`` that ``data.options`` may set: all but
    ``label_mode``, which ``data.label_mode`` alone sets (:func:`dataset_options`)."""
    return {k: p for k, p in DATASETS.info(name).options.items() if k != "label_mode"}


def check_dataset_options(name: str, options: dict[str, Any],
                          allowed: dict[str, Param] | None = None) -> list[str]:
    """Errors for ``data.options`` of dataset ``name`` against ``allowed`` (default: all its
    options): unknown names (did-you-mean) and values of the wrong type, one line each (empty
    when they are fine)."""
    return check_params(f"dataset '{name}'", "data.options.", options,
                        DATASETS.info(name).options if allowed is None else allowed)


def _has_soft_labels(name: str) -> bool:
    return "label_mode" in DATASETS.info(name).options


def label_mode_errors(cfg: DataConfig) -> list[str]:
    """Problems of ``data.label_mode`` for a registered dataset: set in ``data.options`` (it has
    one setting), or ``soft`` asked of a dataset without vote distributions."""
    errors = []
    if isinstance(cfg.options, dict) and "label_mode" in cfg.options:
        errors.append(f"data.options.label_mode={cfg.options['label_mode']!r}: the label mode "
                      "is set by data.label_mode alone; move it there (e.g. --set "
                      "data.label_mode=soft) and remove it from data.options")
    if cfg.label_mode != "majority" and not _has_soft_labels(cfg.dataset):
        with_soft = [n for n in DATASETS.names() if _has_soft_labels(n)]
        errors.append(
            f"data.label_mode={cfg.label_mode!r}: dataset '{cfg.dataset}' has no soft labels "
            f"(vote distributions); datasets that have them: {', '.join(with_soft)}. "
            "Set data.label_mode=majority or use one of those datasets")
    return errors


def dataset_options(cfg: DataConfig) -> dict[str, Any]:
    """Keyword options for the dataset constructor: ``data.options`` plus ``data.label_mode``,
    the one setting of the label mode.

    Raises:
        ConfigError: the label mode is set in ``data.options``, or ``soft`` is asked of a dataset
            without vote distributions (:func:`label_mode_errors`).
    """
    errors = label_mode_errors(cfg)
    if errors:
        raise ConfigError("; ".join(errors))
    options = dict(cfg.options)
    if cfg.label_mode != "majority":
        options["label_mode"] = cfg.label_mode
    return options


def data_config_errors(cfg: DataConfig) -> list[str]:
    """Registry-level problems of a DataConfig: unknown dataset (did-you-mean), options of the
    wrong name or type, the label mode (:func:`label_mode_errors`); one line each."""
    if not isinstance(cfg.dataset, str):
        return []  # a name of the wrong type is reported by the loader
    if cfg.dataset not in DATASETS:
        return [f"data.dataset: {DATASETS.unknown(cfg.dataset)}"]
    options = cfg.options if isinstance(cfg.options, dict) else {}
    return label_mode_errors(cfg) + check_dataset_options(
        cfg.dataset, {k: v for k, v in options.items() if k != "label_mode"},
        settable_options(cfg.dataset))


__all__ = ["DATASETS", "DatasetFacts", "check_dataset_options", "data_config_errors",
           "dataset_options", "label_mode_errors", "settable_options"]
