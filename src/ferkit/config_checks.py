"""Allowed values of every setting: choices (:data:`CHOICES`) and numeric ranges (:data:`RULES`,
stated as :class:`ferkit.ranges.Range` like the method and dataset parameters), checked all at once.

:func:`validate` needs no registries (``ferkit.checks.registry_errors`` checks names against them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ferkit.ranges import Range
from ferkit.registry import suggest

if TYPE_CHECKING:
    from ferkit.config import RunConfig

CHOICES: dict[str, tuple[Any, ...]] = {
    "data.label_mode": ("majority", "soft"),
    "data.num_classes": (7, 8),
    "model.output_stride": (8, 16, 32, None),
    "data.augment.crop": ("resized", "pad", "none"),
    "data.augment.erasing_fill": ("zero", "mean", "random"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.scheduler": ("exponential", "cosine", "none"),
    "train.amp": ("auto", "bf16", "fp16", "none"),
    "train.select_metric": ("mean_class_accuracy", "accuracy", "macro_f1"),
}



# Allowed values of every numeric setting (the CHOICES above cover the named ones), in the range
# vocabulary the method and dataset parameters use too.
_POSITIVE = Range(0, low_open=True)  # a count or size: > 0
_PROBABILITY = Range(0, 1)
RULES: dict[str, Range] = {
    "data.image_size": _POSITIVE, "data.batch_size": _POSITIVE,
    "data.eval_batch_size": _POSITIVE, "data.imbalance_factor": Range(1, null=""),
    "data.imbalance_seed": Range(0), "data.imbalance_max": Range(0, low_open=True, null=""),
    "data.val_fraction": Range(0, 1, low_open=True, high_open=True),
    "data.val_seed": Range(0), "data.mean": Range(0, 1, each=True),
    "data.std": Range(0, 1, low_open=True, each=True),
    "data.augment.crop_scale": Range(0, 1, low_open=True, each=True, ascending=True),
    "data.augment.crop_ratio": Range(0, low_open=True, each=True, ascending=True),
    "data.augment.pad_fraction": Range(0, 0.5, high_open=True),
    "data.augment.flip": _PROBABILITY, "data.augment.erasing": _PROBABILITY,
    "data.augment.erasing_scale": Range(0, 1, low_open=True, each=True, ascending=True),
    "data.augment.noise": _PROBABILITY, "data.augment.noise_std": Range(0),
    "data.augment.brightness": _PROBABILITY, "data.augment.contrast": _PROBABILITY,
    "data.augment.saturation": _PROBABILITY, "data.augment.randaugment_ops": Range(0),
    "data.augment.randaugment_magnitude": Range(0), "data.augment.randaugment_bins": Range(2),
    "model.drop_rate": Range(0, 1, high_open=True),
    "optim.lr": _POSITIVE, "optim.lr_batch_reference": Range(0, low_open=True, null=""),
    "optim.weight_decay": Range(0), "optim.momentum": Range(0, 1, high_open=True),
    "optim.betas": Range(0, 1, high_open=True, each=True),
    "optim.gamma": Range(0, 1, low_open=True), "optim.warmup_steps": Range(0),
    "optim.min_lr": Range(0),
    "train.epochs": _POSITIVE, "train.grad_clip": Range(0, low_open=True, null="no clipping"),
    "train.max_steps_per_epoch": Range(0, low_open=True, null=""),
    "train.eval_every": _POSITIVE, "train.steps": Range(0, low_open=True, null=""),
    "train.num_threads": Range(0, low_open=True, null=""), "train.cam_diagnostics": Range(0),
    "seed": Range(0),
}
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _get(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def validate(cfg: RunConfig) -> list[str]:
    """Value checks that do not need the registries (those are in ``ferkit.checks.registry_errors``)."""
    errors = []
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            hint = suggest(str(value), [str(a) for a in allowed])
            errors.append(f"{key}: {value!r} is not one of {list(allowed)}.{hint}")
    for key, allowed_range in RULES.items():
        try:
            problem = allowed_range.error(_get(cfg, key))
        except TypeError:  # a wrong type, already reported by the loader
            continue
        if problem:
            errors.append(f"{key}: {problem}")
    if not (isinstance(cfg.train.device, str) and DEVICE.fullmatch(cfg.train.device)):
        errors.append(f"train.device: '{cfg.train.device}' is not auto, cpu, mps, cuda or "
                      "cuda:N")
    if cfg.optim.scheduler == "cosine" and _numbers(cfg.optim.min_lr, cfg.optim.lr) \
            and cfg.optim.min_lr > cfg.optim.lr:
        errors.append(f"optim.min_lr: the cosine floor {cfg.optim.min_lr} is above "
                      f"optim.lr {cfg.optim.lr}; lower it")
    augment = cfg.data.augment
    if _numbers(augment.randaugment_magnitude, augment.randaugment_bins) \
            and augment.randaugment_magnitude >= augment.randaugment_bins:
        errors.append(f"data.augment.randaugment_magnitude: must be below "
                      f"data.augment.randaugment_bins ({augment.randaugment_bins}), got "
                      f"{augment.randaugment_magnitude}")
    if cfg.output_dir is not None and not (isinstance(cfg.output_dir, str) and cfg.output_dir):
        errors.append(f"output_dir: expected a folder path, got {cfg.output_dir!r}")
    return errors


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
