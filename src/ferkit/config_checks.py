"""Allowed values of every setting: named choices and numeric ranges, checked all at once.

:func:`validate` needs no registries (``ferkit.checks.registry_errors`` checks names against them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ferkit.registry import suggest

if TYPE_CHECKING:
    from ferkit.config import RunConfig

CHOICES: dict[str, tuple[Any, ...]] = {
    "data.label_mode": ("majority", "soft"),
    "data.num_classes": (7, 8),
    "data.augment.crop": ("resized", "pad", "none"),
    "data.augment.erasing_fill": ("zero", "mean", "random"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.scheduler": ("exponential", "cosine", "none"),
    "train.amp": ("auto", "bf16", "fp16", "none"),
    "train.select_metric": ("mean_class_accuracy", "accuracy", "macro_f1"),
}



def _at_least(low: float, none_ok: bool = False) -> tuple[Callable[[Any], bool], str]:
    return ((lambda v: (none_ok and v is None) or v >= low),
            f"{'> 0' if low == 1 else f'>= {low:g}'}{' or null' if none_ok else ''}")


def _within(low: float, high: float, open_low: bool = False, open_high: bool = False,
            each: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(x: float) -> bool:
        return (low < x if open_low else low <= x) and (x < high if open_high else x <= high)
    text = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    return ((lambda v: all(ok(x) for x in v)) if each else ok), text + (" each" if each else "")


def _range_pair(high: float | None) -> tuple[Callable[[Any], bool], str]:
    """A (low, high) range: 0 < low <= high (<= ``high``)."""
    return ((lambda v: 0 < v[0] <= v[1] and (high is None or v[1] <= high)),
            f"[low, high] with 0 < low <= high{f' <= {high:g}' if high else ''}")


# Allowed values of every numeric setting (the CHOICES above cover the named ones).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data.image_size": _at_least(1), "data.batch_size": _at_least(1),
    "data.eval_batch_size": _at_least(1), "data.imbalance_factor": _at_least(1, none_ok=True),
    "data.imbalance_seed": _at_least(0), "data.imbalance_max": _at_least(1, none_ok=True),
    "data.val_fraction": _within(0, 1, open_low=True, open_high=True),
    "data.val_seed": _at_least(0), "data.mean": _within(0, 1, each=True),
    "data.std": _within(0, 1, open_low=True, each=True),
    "data.augment.crop_scale": _range_pair(1), "data.augment.crop_ratio": _range_pair(None),
    "data.augment.pad_fraction": _within(0, 0.5, open_high=True),
    "data.augment.flip": _within(0, 1), "data.augment.erasing": _within(0, 1),
    "data.augment.erasing_scale": _range_pair(1), "data.augment.noise": _within(0, 1),
    "data.augment.noise_std": _at_least(0), "data.augment.brightness": _within(0, 1),
    "data.augment.contrast": _within(0, 1), "data.augment.saturation": _within(0, 1),
    "data.augment.randaugment_ops": _at_least(0), "data.augment.randaugment_magnitude":
        _at_least(0), "data.augment.randaugment_bins": _at_least(2),
    "model.drop_rate": _within(0, 1, open_high=True),
    "optim.lr": ((lambda v: v > 0), "> 0"), "optim.lr_batch_reference": _at_least(1, True),
    "optim.weight_decay": _at_least(0), "optim.momentum": _within(0, 1, open_high=True),
    "optim.betas": _within(0, 1, open_high=True, each=True),
    "optim.gamma": _within(0, 1, open_low=True), "optim.warmup_steps": _at_least(0),
    "optim.min_lr": _at_least(0),
    "train.epochs": _at_least(1), "train.grad_clip": ((lambda v: v is None or v > 0),
                                                      "> 0 or null (no clipping)"),
    "train.max_steps_per_epoch": _at_least(1, none_ok=True), "train.eval_every": _at_least(1),
    "train.steps": _at_least(1, none_ok=True),
    "train.num_threads": _at_least(1, none_ok=True), "train.cam_diagnostics": _at_least(0),
    "model.output_stride": ((lambda v: v is None or v in (8, 16, 32)), "8, 16, 32 or null"),
    "seed": _at_least(0),
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
            errors.append(f"{key}: '{value}' is not one of {list(allowed)}.{hint}")
    for key, (ok, text) in RULES.items():
        value = _get(cfg, key)
        try:
            bad = not ok(value)
        except TypeError:  # a wrong type, already reported by the loader
            continue
        if bad:
            errors.append(f"{key}: must be {text}, got {value!r}")
    if not (isinstance(cfg.train.device, str) and DEVICE.fullmatch(cfg.train.device)):
        errors.append(f"train.device: '{cfg.train.device}' is not auto, cpu, mps, cuda or "
                      "cuda:N")
    if cfg.optim.scheduler == "cosine" and _numbers(cfg.optim.min_lr, cfg.optim.lr) \
            and cfg.optim.min_lr > cfg.optim.lr:
        errors.append(f"optim.min_lr: the cosine floor {cfg.optim.min_lr} is above "
                      f"optim.lr {cfg.optim.lr}; lower it")
    if cfg.output_dir is not None and not (isinstance(cfg.output_dir, str) and cfg.output_dir):
        errors.append(f"output_dir: expected a folder path, got {cfg.output_dir!r}")
    return errors


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
