"""A run config checked against the registries: the layer between :mod:`ferkit.config` (which
knows no dataset, backbone or method) and the code that builds them.

:func:`load_config` is :func:`ferkit.config.resolve_config` plus :func:`registry_errors`, so one
report lists every problem of a recipe; :func:`check_config` runs the same checks on a config
built in Python. Both remember the values they passed, so :func:`ensure_checked` (what
``ferkit.train`` calls) checks a config only when no check has seen it as it is now.
"""

from __future__ import annotations

from pathlib import Path

from ferkit.config import ConfigError, RunConfig, resolve_config, validate
from ferkit.data import data_config_errors
from ferkit.methods import METHODS, check_method_params
from ferkit.models import BACKBONES
from ferkit.models.backbones import output_stride_error


def registry_errors(cfg: RunConfig) -> list[str]:
    """Names checked against the registries: dataset (with its options and label mode),
    backbone, method and its parameters; one line each."""
    if not all(isinstance(v, str) for v in (cfg.data.dataset, cfg.model.backbone,
                                             cfg.method.name)):
        return []  # a name of the wrong type is reported by the loader
    errors = data_config_errors(cfg.data)
    if cfg.model.backbone not in BACKBONES:
        errors.append(f"model.backbone: {BACKBONES.unknown(cfg.model.backbone)}")
    elif cfg.model.output_stride in (8, 16, 32):  # other values fail CHOICES already
        errors += [e for e in [output_stride_error(cfg.model.backbone, cfg.model.output_stride)]
                   if e]
    errors += check_method_params(cfg.method.name, cfg.method.params)
    if (cfg.data.label_mode == "soft" and cfg.method.name in METHODS
            and not METHODS.info(cfg.method.name).uses_soft_labels):
        users = [n for n in METHODS.names() if METHODS.info(n).uses_soft_labels]
        errors.append(f"data.label_mode: 'soft' needs a method that trains on vote "
                      f"distributions; method '{cfg.method.name}' uses hard labels only. Use "
                      f"method.name={' or '.join(users)}, or data.label_mode=majority")
    return errors


_CHECKED = "_ferkit_checked"  # attribute of a passed config: its values (repr) as checked


def _mark_checked(cfg: RunConfig) -> RunConfig:
    setattr(cfg, _CHECKED, repr(cfg))
    return cfg


def was_checked(cfg: RunConfig) -> bool:
    """Whether :func:`check_config` or :func:`load_config` passed ``cfg`` with the values it
    holds now (a config changed since, or built in Python, was not)."""
    return getattr(cfg, _CHECKED, None) == repr(cfg)


def check_config(cfg: RunConfig) -> None:
    """Every value and registry check of a built config, all errors at once.

    Raises:
        ConfigError: listing every problem.
    """
    errors = validate(cfg) + registry_errors(cfg)
    if errors:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(errors))
    _mark_checked(cfg)


def ensure_checked(cfg: RunConfig) -> None:
    """:func:`check_config`, unless a check already passed ``cfg`` as it is (the usual case:
    a config from :func:`load_config`, which checked it with the recipe's line numbers)."""
    if not was_checked(cfg):
        check_config(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                registries: bool = True) -> RunConfig:
    """Resolve a run config (defaults, then the YAML recipe at ``path``, then ``overrides``) and
    check it, all problems in one report.

    Args:
        registries: also check names against the registries (dataset, backbone, method and its
            parameters), in the same report.

    Raises:
        ConfigError: listing every unknown key (with suggestions) and invalid value, each with
            where it was set (``--set`` or the recipe file).
    """
    if not registries:
        return resolve_config(path, overrides)
    return _mark_checked(resolve_config(path, overrides, registry_errors))


__all__ = ["check_config", "ensure_checked", "load_config", "registry_errors", "was_checked"]
