"""A run folder belongs to one resolved config: the comparison that ``ferkit train`` (resume) and
``ferkit bench`` (finished runs) share.

Re-running ``ferkit train`` with an existing ``output_dir`` resumes only when the stored config
(``config.yaml``, else the metadata of ``last.safetensors``) equals the new one, apart from the
keys in :data:`RESUMABLE_KEYS`. Otherwise it stops before writing anything, naming each differing
key ``old -> new``; ``--overwrite`` deletes the run's files (:data:`RUN_FILES`) and starts again.

Keys that may change on resume, and why each is safe:

- ``output_dir``: the folder itself (a run folder that was moved or copied).
- ``data.cache_dir``: where decoded images are cached; the pixels are the same.
- ``train.progress``, ``train.tensorboard``: what is displayed or logged, not what is computed.
- ``train.num_threads``, ``train.device``, ``train.channels_last``: where and in which memory
  layout the same computation runs. The weights then match an uninterrupted run up to float
  rounding, not bit for bit (``train.amp: auto`` resolves per device, so moving CPU <-> GPU
  may also change the autocast dtype from that epoch on).
- ``data.eval_batch_size``: evaluation is in eval mode (no batch statistics), so only rounding.
- ``train.epochs``: more epochs (or fewer, down to the epochs already trained) continue the same
  run, but only when no schedule depends on the total: not with ``optim.scheduler: cosine`` or a
  method whose schedule reads it (``Method.schedule_uses_num_epochs``: BBN, LDAM-DRW). An epoch that
  was the last one keeps its validation record when ``train.eval_every`` > 1.

Not allowed, among others: ``data.root`` (another root may hold other images; the simplest
guarantee is the same path), ``seed``, anything of ``optim``, ``method``, ``model``, ``data``
(labels, sizes, augmentation) and ``train.amp``, ``train.grad_clip``, ``train.eval_every``,
``train.select_metric``, ``train.max_steps_per_epoch``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from ferkit.config import ConfigError, RunConfig, to_dict
from ferkit.engine.checkpoint import CheckpointError, ModelMeta, read_meta
from ferkit.methods import METHODS, resolved_method_params
from ferkit.nested import flatten
from ferkit.run_files import RUN_FILES, RunFiles

log = logging.getLogger(__name__)

# Where and how visibly a run executes, not what it computes (a finished bench run stays finished).
RUN_ONLY_KEYS = ("output_dir", "data.root", "data.cache_dir", "train.progress",
                 "train.tensorboard", "train.num_threads")
# Keys a resumed ``ferkit train`` may change (see the module docstring; ``train.epochs`` has a rule).
RESUMABLE_KEYS = ("output_dir", "data.cache_dir", "train.progress", "train.tensorboard",
                  "train.num_threads", "train.device", "train.channels_last",
                  "data.eval_batch_size", "train.epochs")


class RunFolderError(ConfigError):
    """The output folder holds another run (different config) or an unreadable one."""


def config_leaves(values: dict[str, Any]) -> dict[str, Any]:
    """Nested config dict -> dotted leaves; ``options`` / ``params`` mappings stay whole."""
    return flatten(values, whole=("options", "params"))


def config_changes(stored: dict[str, Any], current: RunConfig,
                   ignore: tuple[str, ...] = RUN_ONLY_KEYS) -> list[str]:
    """Keys whose stored value differs from ``current`` (``key: stored -> current``), except
    ``ignore``; a key added to RunConfig since the run was stored reads as its default."""
    defaults = config_leaves(json.loads(json.dumps(to_dict(RunConfig()))))
    old = {**defaults, **config_leaves(json.loads(json.dumps(stored)))}
    new = config_leaves(json.loads(json.dumps(to_dict(current))))
    # method parameters compare with the constructor's defaults filled in: a run stored with its
    # resolved parameters (ferkit.api.train) is refused when a default changed since; older
    # records, stored as given, can only be compared under today's defaults
    for side in (old, new):
        side["method.params"] = _resolved(side.get("method.name"), side.get("method.params"))
    return [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}"
            for k in sorted(set(old) | set(new))
            if k not in ignore and old.get(k) != new.get(k)]


def _resolved(name: Any, params: Any) -> Any:
    if not isinstance(name, str) or not isinstance(params, (dict, type(None))):
        return params
    return json.loads(json.dumps(resolved_method_params(name, params)))


def _last_meta(path: Path) -> ModelMeta:
    """The metadata of a ``last.safetensors`` (header only), or a RunFolderError naming it."""
    try:
        return read_meta(path)
    except CheckpointError as err:  # truncated, not safetensors, no or broken ferkit metadata
        raise RunFolderError(
            f"cannot resume from {path}: the file is damaged or not a ferkit checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}). "
            "Delete it to restart from scratch, or re-run with --overwrite") from err


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    """The config a run folder was trained with: ``config.yaml``, else the checkpoint's."""
    path = RunFiles(run_dir).config
    if path.is_file():
        try:
            stored = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{path} is not readable YAML ({type(err).__name__}); cannot "
                                 "tell which run this folder holds. Use another --output-dir "
                                 "or --overwrite") from err
        if not isinstance(stored, dict):
            raise RunFolderError(f"{path} does not hold a config mapping; use another "
                                 "--output-dir or --overwrite")
        return {k: v for k, v in stored.items() if k != "provenance"}
    last = RunFiles(run_dir).last
    if last.is_file():
        return _last_meta(last).config
    return None


def _epoch_problem(stored: dict[str, Any], cfg: RunConfig, run_dir: Path) -> str | None:
    """Why ``train.epochs`` may not change here, or None."""
    old = config_leaves(stored).get("train.epochs", RunConfig().train.epochs)
    if old == cfg.train.epochs:
        return None
    change = f"train.epochs: {old!r} -> {cfg.train.epochs!r}"
    if cfg.optim.scheduler == "cosine":
        return f"{change} (the cosine schedule depends on the total number of epochs)"
    method = METHODS.get(cfg.method.name) if cfg.method.name in METHODS else None
    if getattr(method, "schedule_uses_num_epochs", False):
        return f"{change} (method '{cfg.method.name}' schedules by the total number of epochs)"
    last = RunFiles(run_dir).last
    done = len(_last_meta(last).extra.get("history") or []) if last.is_file() else 0
    if cfg.train.epochs < done:
        return f"{change} (the folder already holds {done} trained epochs)"
    return None


def check_run_folder(cfg: RunConfig) -> None:
    """Refuse (before anything is written) an ``output_dir`` that holds a different run.

    Raises:
        RunFolderError: naming every differing key ``old -> new`` and the two ways out.
    """
    run_dir = Path(cfg.output_dir)
    if not run_dir.is_dir():
        return
    if RunFiles(run_dir).last.is_file():
        _last_meta(RunFiles(run_dir).last)  # a damaged checkpoint stops here
    stored = stored_config(run_dir)
    if stored is None:
        return
    changes = config_changes(stored, cfg, ignore=RESUMABLE_KEYS)
    epochs = _epoch_problem(stored, cfg, run_dir)
    changes += [epochs] if epochs else []
    if changes:
        raise RunFolderError(
            f"{run_dir} holds a run trained with a different config; nothing was changed. "
            "Differences (stored -> now):\n  - " + "\n  - ".join(changes) +
            f"\nUse a new --output-dir, or --overwrite to delete this run's files "
            f"({', '.join(RUN_FILES)}) and train from scratch. Keys that may change on resume: "
            f"{', '.join(RESUMABLE_KEYS)}")


def clear_run_folder(run_dir: Path) -> list[str]:
    """Delete what ``ferkit train`` wrote into ``run_dir`` (:data:`RUN_FILES`); other files stay.

    Returns:
        The names deleted.
    """
    deleted = []
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        deleted.append(name)
    if deleted:
        log.warning("--overwrite: deleted %s from %s", ", ".join(deleted), run_dir)
    return deleted
