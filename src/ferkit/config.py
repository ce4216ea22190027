"""Typed run configuration: dataclass defaults -> recipe YAML -> ``--set key=value`` overrides.

Every error is collected before anything runs (unknown keys with a close-match suggestion, wrong
types, values out of range) and reported in one :class:`ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferkit.config_checks import CHOICES, RULES, validate  # noqa: F401 (re-exported)
from ferkit.config_types import build_dataclass, to_dict  # noqa: F401 (re-exported)
from ferkit.config_yaml import (  # noqa: F401 (re-exported)
    ConfigError,
    find_recipe,
    load_yaml,
    parse_overrides,
    read_yaml_file,
)
from ferkit.nested import deep_merge, flatten
from ferkit.tempfiles import atomic_write_text

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """Training augmentation. Defaults: a light FER recipe (resized crop, flip, erasing).

    Attributes:
        crop: "resized" (random resized crop), "pad" (crop with padding), or "none".
        crop_scale: area range of the random resized crop.
        crop_ratio: aspect ratio range of the random resized crop.
        pad_fraction: padding for "pad" crops, as a fraction of the image side.
        flip: probability of a horizontal flip.
        erasing: probability of random erasing (one box per image).
        erasing_scale: area range of the erased box.
        erasing_fill: what erased pixels become: "zero" (0 before normalisation: torchvision
            RandomErasing's default value on a [0, 1] image), "mean" (the normalisation mean, i.e.
            0 after Normalize: EAC's code erases after Normalize) or "random" (per-pixel
            ``mean + std * N(0, 1)``, i.e. standard normal after Normalize: torchvision's
            ``value="random"``, as the official MEK code).
        noise: probability of additive Gaussian noise.
        noise_std: its standard deviation (on the [0, 1] scale).
        brightness, contrast, saturation: colour jitter strength (0 = off); factors drawn
            from [1 - s, 1 + s] per image (saturation blends with the image's grayscale).
        randaugment_ops: RandAugment operations per image (0 = off; the MEK authors' recipe: 2).
        randaugment_magnitude: their strength, on a scale of ``randaugment_bins`` steps.
        randaugment_bins: the magnitude scale (torchvision's convention: 31).
    """

    crop: str = "resized"
    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    pad_fraction: float = 0.125
    flip: float = 0.5
    erasing: float = 0.25
    erasing_scale: tuple[float, float] = (0.02, 0.25)
    erasing_fill: str = "zero"
    noise: float = 0.0
    noise_std: float = 0.05
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    randaugment_ops: int = 0
    randaugment_magnitude: int = 9
    randaugment_bins: int = 31


@dataclass
class DataConfig:
    """What to train and evaluate on.

    Attributes:
        dataset: registered dataset name (``ferkit list`` shows them).
        root: dataset root folder (not needed for ``synthetic``).
        num_classes: 7 (basic expressions) or 8 (with contempt).
        label_mode: FERPlus labels: "majority" (hard) or "soft" (vote distributions as targets).
        image_size: side of the square network input.
        imbalance_factor: keep an exponential-profile subset of train with n_max / n_min = IF.
        imbalance_seed: seed of that subset.
        imbalance_max: cap on the largest class of that subset before the profile is applied
            (None = its full count); e.g. 4772 gives FERPlus the RAF-DB IF100 subset's sizes.
        val_fraction: hold-out fraction of train when the dataset has no official validation split.
        val_seed: seed of that hold-out.
        batch_size: training batch size per process.
        eval_batch_size: evaluation batch size.
        mean, std: input normalisation (carried in checkpoints for inference).
        cache_dir: decode cache folder; None = $FERKIT_CACHE or ~/.cache/ferkit; "memory" = none.
        options: typed options of the dataset (e.g. synthetic sizes; ``ferkit config`` lists them).
        augment: training augmentation.
    """

    dataset: str = "synthetic"
    root: str | None = None
    num_classes: int = 7
    label_mode: str = "majority"
    image_size: int = 112
    imbalance_factor: float | None = None
    imbalance_seed: int = 0
    imbalance_max: int | None = None
    val_fraction: float = 0.1
    val_seed: int = 0
    batch_size: int = 64
    eval_batch_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    cache_dir: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    """Backbone and initialisation.

    Attributes:
        backbone: registered backbone name.
        pretrained: None (random init), a weight file path, or a known source name
            ("imagenet": offline MobileNetV2 file when installed, else torchvision/timm online).
        drop_rate: dropout before the head.
        output_stride: overall stride of the feature map, 8, 16 or 32 (None: the backbone's
            own, 32 for ResNet and MobileNetV2), which sets the attention maps' size (input /
            stride, rounded up: 4x4 at 112 px with 32, 7x7 with 16). Below 32 the last strides
            of ResNet / MobileNetV2 become dilation, keeping the ImageNet weights, at ~1.7x the
            training cost for MobileNetV2 at 16. Swin's map size is set by its patch size and
            input size (it accepts only its own stride).
        options: extra backbone arguments (e.g. ``width_mult`` for MobileNetV2).
    """

    backbone: str = "mobilenet_v2"
    pretrained: str | None = None
    drop_rate: float = 0.0
    output_stride: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodConfig:
    """Training method: registered name plus its keyword parameters.

    Attributes:
        name: registered method name (``ferkit list`` shows them).
        params: keyword parameters of that method, checked by name and type before training
            (``ferkit config`` lists each method's parameters).
    """

    name: str = "ce"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: "adam", "adamw" or "sgd".
        lr: base learning rate (scaled by batch_size / lr_batch_reference when that is set).
        lr_batch_reference: linear-scaling reference batch (the official MEK run: 512).
        weight_decay, momentum, betas: the optimiser's own.
        scheduler: "exponential" (gamma per epoch), "cosine" (per step, with warm-up), "none".
        gamma: exponential decay per epoch.
        warmup_steps: linear warm-up steps (cosine and exponential).
        min_lr: floor of the cosine schedule.
    """

    name: str = "adam"
    lr: float = 1e-4
    lr_batch_reference: int | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "exponential"
    gamma: float = 0.9
    warmup_steps: int = 0
    min_lr: float = 0.0


@dataclass
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: number of epochs.
        steps: train for exactly this many optimiser steps instead (None = ``epochs`` full
            epochs): ``ceil(steps / steps_per_epoch)`` epochs, the last one cut short; schedules
            span these steps (the MEK authors' recipe counts steps: 60,000 of batch 32).
        device: "auto" (cuda when available), "cpu" or "cuda[:N]".
        amp: "auto" (bf16 on CUDA with bf16 support, else fp16; on CPU bf16 only where the CPU
            has native bf16, else fp32), "bf16", "fp16" or "none".
        channels_last: NHWC memory format (measured 1.25x faster for MobileNetV2 fp32 on CPU).
        grad_clip: max gradient norm, or None.
        max_steps_per_epoch: cap on steps per epoch (quick runs), or None.
        eval_every: evaluate on validation every this many epochs (and always at the end).
        select_metric: validation metric that picks the ``best`` checkpoint.
        num_threads: torch CPU threads (None = torch's default).
        progress: show a progress bar (on a terminal only; redirected output gets one plain
            line per epoch).
        tensorboard: also log to TensorBoard when it is installed.
        cam_diagnostics: at each validation, measure how far the attention maps are from
            flip-equivariant on the first this many validation images (0 = off; methods whose
            maps come from the classifier head only): ``cam_flip_mse``, the mean squared
            difference between A(x) and flip(A(flip(x))) over every class map, and
            ``cam_flip_rel``, that difference relative to the maps' mean square (0 = perfectly
            consistent). Costs two forward passes of those images per validation.
    """

    epochs: int = 10
    steps: int | None = None
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None
    eval_every: int = 1
    select_metric: str = "mean_class_accuracy"
    num_threads: int | None = None
    progress: bool = True
    tensorboard: bool = True
    cam_diagnostics: int = 0


@dataclass
class RunConfig:
    """Everything a training run needs; written resolved to ``output_dir/config.yaml``.

    Attributes:
        data, model, method, optim, train: the sections above.
        output_dir: folder for the config, checkpoints, metrics and reports of the run.
        seed: seed of the model initialisation and of each epoch's shuffling and augmentation.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str | None = None  # None: runs/<recipe file stem, or "default">/<method.name>
    seed: int = 0


def _merge_params(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """:func:`deep_merge` with method.params from several sources merged key by key (one
    level: a parameter's own mapping is replaced whole)."""
    merged = deep_merge(base, update, whole=("params",))
    if isinstance(base.get("method"), dict) and isinstance(update.get("method"), dict):
        params = dict(base["method"].get("params") or {})
        params.update(update["method"].get("params") or {})
        merged["method"] = {**merged["method"], "params": params}
    return merged


def _error_key(error: str) -> str:
    match = re.match(r"unknown config key '([^']+)'", error) or re.match(r"([\w.]+):", error)
    return match.group(1) if match else ""


def _attribute(error: str, from_set: set[str], from_file: set[str], path: Path | None) -> str:
    """``error`` with where its key was set: ``(--set ...)``, ``(in FILE)`` or (default) nothing."""
    key = _error_key(error)
    parts = key.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    def hit(keys: set[str]) -> bool:
        return bool(prefixes & keys) or any(k.startswith(key + ".") for k in keys)
    if key and hit(from_set):
        return f"{error} (--set)"
    if key and path is not None and hit(from_file):
        return f"{error} (in {path})"
    return error


def default_output_dir(method: str, recipe: str | Path | None = None) -> str:
    """``runs/<recipe file stem>/<method>`` (``runs/default/<method>`` without a recipe)."""
    return f"runs/{Path(recipe).stem if recipe else 'default'}/{method}"


def resolve_config(path: str | Path | None = None, overrides: list[str] | None = None,
                   checks: Callable[[RunConfig], list[str]] | None = None) -> RunConfig:
    """Resolve a run config: defaults, then the YAML recipe at ``path``, then ``overrides``.

    ``output_dir`` left unset becomes :func:`default_output_dir` of the recipe and method. The
    names of datasets, backbones and methods are not known here: :func:`ferkit.checks.load_config`
    passes their check as ``checks``.

    Args:
        checks: more checks of the built config, one error line each, reported with the others.

    Raises:
        ConfigError: listing every unknown key (with suggestions) and invalid value, each with
            where it was set (``--set`` or the recipe file).
    """
    values: dict[str, Any] = {}
    loaded: Any = {}
    if path is not None:
        path = find_recipe(path)
        loaded = read_yaml_file(path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got "
                              f"{type(loaded).__name__}")
        values = loaded
    cli = parse_overrides(overrides or [])
    values = _merge_params(values, cli)
    errors: list[str] = []
    cfg = build_dataclass(RunConfig, values, "", errors)
    errors += validate(cfg)
    if checks is not None:
        errors += checks(cfg)
    if errors:
        lines = [_attribute(e, set(flatten(cli)), set(flatten(loaded if path else {})), path)
                 for e in errors]
        raise ConfigError(f"invalid configuration ({len(lines)} problem"
                          f"{'s' if len(lines) > 1 else ''}):\n  - " + "\n  - ".join(lines))
    if cfg.output_dir is None:
        cfg.output_dir = default_output_dir(cfg.method.name, path)
    return cfg


def config_text(cfg: RunConfig, extra: dict[str, Any] | None = None) -> str:
    """The resolved config (after ``extra`` as ``provenance``, when given) as YAML text."""
    data = to_dict(cfg)
    if extra:
        data = {"provenance": extra, **data}
    return yaml.safe_dump(data, sort_keys=False)


def save_config(cfg: RunConfig, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write the resolved config (plus provenance in ``extra``) as YAML, atomically."""
    atomic_write_text(path, config_text(cfg, extra))


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from its dict form (e.g. checkpoint metadata)."""
    values = {k: v for k, v in values.items() if k != "provenance"}
    errors = []
    cfg = build_dataclass(RunConfig, values, "", errors)
    if errors:
        raise ConfigError("invalid stored configuration:\n  - " + "\n  - ".join(errors))
    return cfg
