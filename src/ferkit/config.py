"""Typed run configuration: dataclass defaults -> recipe YAML -> ``--set key=value`` overrides.

Every error is collected before anything runs (unknown keys with a close-match suggestion, wrong
types, values out of range) and reported in one :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferkit.data.transforms import AugmentConfig
from ferkit.registry import suggest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(ValueError):
    """One or more invalid configuration entries; the message lists all of them."""


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
        options: extra backbone arguments (e.g. ``width_mult`` for MobileNetV2).
    """

    backbone: str = "mobilenet_v2"
    pretrained: str | None = None
    drop_rate: float = 0.0
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
        device: "auto" (cuda when available), "cpu" or "cuda[:N]".
        amp: "auto" (bf16 on CUDA with bf16 support, else fp16; on CPU bf16 only where the CPU
            has native bf16, else fp32), "bf16", "fp16" or "none".
        channels_last: NHWC memory format (measured 1.25x faster for MobileNetV2 fp32 on CPU).
        grad_clip: max gradient norm, or None.
        max_steps_per_epoch: cap on steps per epoch (quick runs), or None.
        eval_every: evaluate on validation every this many epochs (and always at the end).
        select_metric: validation metric that picks the ``best`` checkpoint.
        num_threads: torch CPU threads (None = torch's default).
        progress: show a progress bar.
        tensorboard: also log to TensorBoard when it is installed.
    """

    epochs: int = 10
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
    output_dir: str = "runs/default"
    seed: int = 0


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


def _coerce(value: Any, hint: Any, key: str, errors: list[str]) -> Any:
    """Convert a YAML value to the annotated type, or record an error."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping, got {value!r}")
            return hint()
        return _build(hint, value, key + ".", errors)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            errors.append(f"{key}: expected a list of {len(args)} values, got {value!r}")
            return value
        return tuple(_coerce(v, a, key, errors) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping, got {value!r}")
        return dict(value) if isinstance(value, dict) else {}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        errors.append(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str, errors: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            errors.append(f"unknown config key '{prefix}{key}'.{suggest(key, names)} "
                          f"Valid keys here: {', '.join(prefix + n for n in names)}")
            continue
        kwargs[key] = _coerce(value, hints[key], prefix + key, errors)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-able data (tuples become lists)."""
    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(dataclasses.asdict(cfg))


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "params":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=40", "method.params.lam=2"]`` -> nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value (e.g. train.epochs=40)")
        key, raw = item.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return nested


def _merge_params(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Like _merge, but method.params from several sources are merged key by key."""
    merged = _merge(base, update)
    if "method" in base and "method" in update:
        params = dict(base["method"].get("params") or {})
        params.update(update["method"].get("params") or {})
        merged["method"] = {**merged["method"], "params": params}
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Resolve a run config: defaults, then the YAML recipe at ``path``, then ``overrides``.

    Raises:
        ConfigError: listing every unknown key (with suggestions) and invalid value.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        values = loaded
    values = _merge_params(values, parse_overrides(overrides or []))
    errors: list[str] = []
    cfg = _build(RunConfig, values, "", errors)
    errors += validate(cfg)
    if errors:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}:\n  - " + "\n  - ".join(errors))
    return cfg


def validate(cfg: RunConfig) -> list[str]:
    """Value checks that do not need the registries (those are checked by ``api``)."""
    errors = []
    for key, allowed in CHOICES.items():
        node: Any = cfg
        for part in key.split("."):
            node = getattr(node, part)
        if node not in allowed:
            hint = suggest(str(node), [str(a) for a in allowed])
            errors.append(f"{key}: '{node}' is not one of {list(allowed)}.{hint}")
    positive = {"data.image_size": cfg.data.image_size, "data.batch_size": cfg.data.batch_size,
                "train.epochs": cfg.train.epochs, "optim.lr": cfg.optim.lr}
    errors += [f"{k}: must be > 0, got {v}" for k, v in positive.items()
               if isinstance(v, (int, float)) and v <= 0]
    if cfg.data.imbalance_factor is not None and cfg.data.imbalance_factor < 1:
        errors.append(f"data.imbalance_factor: must be >= 1, got {cfg.data.imbalance_factor}")
    if not 0 < cfg.data.val_fraction < 1:
        errors.append(f"data.val_fraction: must be in (0, 1), got {cfg.data.val_fraction}")
    return errors


def save_config(cfg: RunConfig, path: Path, extra: dict[str, Any] | None = None) -> None:
    """Write the resolved config (plus provenance in ``extra``) as YAML."""
    data = to_dict(cfg)
    if extra:
        data = {"provenance": extra, **data}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from its dict form (e.g. checkpoint metadata)."""
    values = {k: v for k, v in values.items() if k != "provenance"}
    errors: list[str] = []
    cfg = _build(RunConfig, values, "", errors)
    if errors:
        raise ConfigError("invalid stored configuration:\n  - " + "\n  - ".join(errors))
    return cfg
