"""A run folder belongs to one resolved config: the comparison that ``ferkit train`` (resume) and
``ferkit bench`` (finished runs) share.

Re-running ``ferkit train`` with an existing ``output_dir`` resumes only when the stored config
(``config.yaml`` and the config stored inside ``last.safetensors``: both) equals the new one,
apart from the keys in :data:`RESUMABLE_KEYS`. Otherwise it stops before writing anything, naming
each differing key ``old -> new``; ``--overwrite`` deletes the run's files (:data:`RUN_FILES`) and
starts again. ``data.root`` is compared as an absolute path (``ferkit.api.train`` records it so);
a relative root stored by an older ferkit is read relative to the current folder.

A run folder has one writer: ``ferkit train`` and ``ferkit bench`` hold its lock file
:data:`LOCK` (created exclusively, holding pid, host and start time) while they write there. A
second writer is refused at once, naming the holder; a lock left by a process of this host that
no longer runs is stale and taken over (with a warning); one from another host stays until that
host's process removes it, or you delete it.

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

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ferkit.config import ConfigError, RunConfig, to_dict
from ferkit.engine.checkpoint import CheckpointError, ModelMeta, read_meta
from ferkit.methods import METHODS, resolved_method_params
from ferkit.nested import flatten
from ferkit.run_files import LOCK, RUN_FILES, RunFiles  # noqa: F401 (LOCK re-exported)
from ferkit.tempfiles import pid_alive

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


class RunFolderBusy(RunFolderError):
    """Another live process holds the run folder's lock."""


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


def _absolute_root(stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with a relative ``data.root`` (written by an older ferkit) made absolute."""
    data = stored.get("data")
    root = data.get("root") if isinstance(data, dict) else None
    if not isinstance(root, str) or os.path.isabs(root):
        return stored
    return {**stored, "data": {**data, "root": os.path.abspath(root)}}


def _stored_configs(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every record of the config a folder was trained with: ``config.yaml`` and the config
    inside ``last.safetensors`` (each that exists), as ``(file name, config)``."""
    found = []
    files = RunFiles(run_dir)
    if files.config.is_file():
        found.append((files.config.name, stored_config(run_dir)))
    last = files.last
    if last.is_file():
        in_checkpoint = _last_meta(last).config  # a damaged checkpoint stops here
        if isinstance(in_checkpoint, dict):
            found.append((last.name, in_checkpoint))
    return [(name, _absolute_root(stored)) for name, stored in found if stored is not None]


def check_run_folder(cfg: RunConfig) -> None:
    """Refuse (before anything is written) an ``output_dir`` that holds a different run: one whose
    ``config.yaml`` or ``last.safetensors`` was written with another config.

    Raises:
        RunFolderError: naming every differing key ``old -> new`` (per file when the two
            records disagree) and the two ways out.
    """
    run_dir = Path(cfg.output_dir)
    if not run_dir.is_dir():
        return
    problems: dict[str, list[str]] = {}
    for name, stored in _stored_configs(run_dir):
        changes = config_changes(stored, cfg, ignore=RESUMABLE_KEYS)
        epochs = _epoch_problem(stored, cfg, run_dir)
        problems[name] = changes + ([epochs] if epochs else [])
    if not any(problems.values()):
        return
    if len(set(map(tuple, problems.values()))) == 1:  # the records agree: one list
        details = "\n  - ".join(next(iter(problems.values())))
    else:  # the records disagree (the folder mixes two runs): name each file
        details = "\n  - ".join(f"{name}: {change}" for name, changes in problems.items()
                                for change in changes)
    raise RunFolderError(
        f"{run_dir} holds a run trained with a different config; nothing was changed. "
        "Differences (stored -> now):\n  - " + details +
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


def _read_lock(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_mine(holder: dict[str, Any]) -> bool:
    return holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock (``{"pid", "host", "started"}``), or None if nobody live does.

    A lock written by a process of this host that no longer exists is stale (None). An unreadable
    lock counts as held (``{"path": ...}``), so two processes never write one run together.
    """
    path = RunFiles(run_dir).lock
    if not path.exists():
        return None
    holder = _read_lock(path)
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return {"path": str(path)}
    if holder.get("host") == socket.gethostname() and not pid_alive(holder["pid"]):
        return None
    return holder


def acquire_lock(run_dir: Path) -> dict[str, Any] | None:
    """Take ``run_dir``'s lock for this process; returns None on success, else the live holder
    (this process too, when it already holds it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunFiles(run_dir).lock
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(run_dir)
            if holder is not None:
                return holder
            stale = _read_lock(path) or {}
            path.unlink(missing_ok=True)  # stale: its process is gone
            log.warning("took over the lock %s left by pid %s on %s (started %s), which no "
                        "longer runs", path, stale.get("pid"), stale.get("host"),
                        stale.get("started", "?"))
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(mine) + "\n")
        return None
    return lock_holder(run_dir) or {"path": str(path)}


def release_lock(run_dir: Path) -> None:
    """Remove ``run_dir``'s lock if this process holds it."""
    holder = _read_lock(RunFiles(run_dir).lock)
    if isinstance(holder, dict) and _is_mine(holder):
        RunFiles(run_dir).lock.unlink(missing_ok=True)


def busy_message(run_dir: Path, holder: dict[str, Any]) -> str:
    """Why ``run_dir`` cannot be written now, naming the lock's holder and the ways out."""
    if "pid" not in holder:
        return (f"{run_dir} is locked by {holder['path']}, which cannot be read; if no process "
                "is writing there, delete that file")
    return (f"{run_dir} is being written by another process (pid {holder['pid']} on host "
            f"{holder.get('host')}, since {holder.get('started', '?')}); two runs in one folder "
            "would mix their files. Wait for it to finish or use another --output-dir (if that "
            f"process is gone for good, delete {RunFiles(run_dir).lock})")


def refuse_if_busy(run_dir: Path) -> None:
    """Raise :class:`RunFolderBusy` when another live process holds ``run_dir``'s lock."""
    holder = lock_holder(run_dir)
    if holder is not None and not _is_mine(holder):
        raise RunFolderBusy(busy_message(run_dir, holder))


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (creating the folder); re-entrant within one process
    (``ferkit bench`` holds it around ``ferkit.api.train``). A folder created here and left empty
    (the block failed before writing) is removed again.

    Raises:
        RunFolderBusy: another live process holds the lock.
    """
    holder = lock_holder(run_dir)
    if holder is not None and _is_mine(holder):
        yield
        return
    created = not run_dir.exists()
    holder = acquire_lock(run_dir)
    if holder is not None:
        raise RunFolderBusy(busy_message(run_dir, holder))
    try:
        yield
    finally:
        release_lock(run_dir)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote its files
                run_dir.rmdir()
