"""Checkpoints: one safetensors file (weights + optional optimiser state) with JSON metadata.

A checkpoint ``NAME.safetensors`` holds the method's ``state_dict`` (the classifier under
``model.``, plus any method buffers such as SCN relabels) and, for resumable ``last`` checkpoints,
the optimiser state under ``optim/``. Its metadata (class names, input size, normalisation,
backbone, method, config, epoch, history, scheduler state) is stored inside the file and mirrored to
``NAME.json`` for people. Files are written under a temporary name and renamed, so a crash or kill
never leaves a truncated checkpoint where a good one was; the temporary files of a killed writer
are removed when the next run starts (:func:`ferkit.tempfiles.remove_dead_temp_files`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ferkit.engine.meta import FORMAT_VERSION, CheckpointError, ModelMeta  # noqa: F401 (re-exported)
from ferkit.methods import Method, create_method
from ferkit.models import build_classifier
from ferkit.run_files import RunFiles
from ferkit.tempfiles import atomic_path, atomic_write_text  # noqa: F401 (re-exported)

OPTIM_PREFIX = "optim/"


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights, metadata and (for ``last``) optimiser state."""

    state_dict: dict[str, torch.Tensor]
    meta: ModelMeta
    optimizer_state: dict[str, Any] | None
    path: Path


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM_PREFIX}{param_id}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        param_id, key = name[len(OPTIM_PREFIX):].split("/", 1)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, values in info["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}


def save_checkpoint(
    path: Path | str, module: nn.Module, meta: ModelMeta | Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write ``module.state_dict()`` (+ optimiser state) and ``meta`` atomically to ``path``.

    Raises:
        CheckpointError: ``meta`` given as a mapping lacks a required field.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    record = meta if isinstance(meta, ModelMeta) else ModelMeta.from_dict(meta, path)
    meta = record.to_dict()
    if optimizer is not None:
        optim_tensors, optim_info = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
        meta["optimizer"] = optim_info
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"ferkit": json.dumps(meta)})
    public = {k: v for k, v in meta.items() if k != "optimizer"}
    atomic_write_text(path.with_suffix(".json"), json.dumps(public, indent=2) + "\n")
    return path


def _checkpoint_file(path: Path | str) -> Path:
    path = Path(path)
    if path.is_dir():
        path = RunFiles(path).best
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (expected a ferkit .safetensors "
                              "file, e.g. runs/NAME/best.safetensors)")
    return path


def _unreadable(path: Path, err: Exception) -> str:
    return (f"cannot read checkpoint {path}: {err}. It is not a (complete) safetensors file: "
            "pass a ferkit checkpoint such as runs/NAME/best.safetensors")


def read_meta(path: Path | str, required: tuple[str, ...] = ()) -> ModelMeta:
    """The metadata of a ferkit checkpoint, from the file's header alone (no tensor is read);
    ``required``: keys its :attr:`~ModelMeta.extra` must hold (e.g. a resumable ``last``'s).

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    path = _checkpoint_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw_meta = (handle.metadata() or {}).get("ferkit")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(_unreadable(path, err)) from err
    if raw_meta is None:
        raise CheckpointError(f"{path} is a safetensors file but not a ferkit checkpoint "
                              "(no 'ferkit' metadata); to load plain weights use model.pretrained")
    return _parse_meta(raw_meta, path, required)


def load_checkpoint(path: Path | str, required: tuple[str, ...] = ()) -> Checkpoint:
    """Read a ferkit checkpoint (no pickle involved).

    Args:
        path: the ``.safetensors`` file (a folder: its ``best.safetensors``).
        required: keys the metadata's ``extra`` must hold (``history``, ``scheduler`` to resume).

    Raises:
        CheckpointError: missing file, not a safetensors file, not written by ferkit, or its
            metadata is not JSON or lacks a ``required`` key.
    """
    path = _checkpoint_file(path)
    meta = read_meta(path, required)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(_unreadable(path, err)) from err
    optim_info = meta.extra.pop("optimizer", None)
    optim_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)}
    optimizer_state = _unflatten_optimizer(optim_tensors, optim_info) if optim_info else None
    return Checkpoint(weights, meta, optimizer_state, path)


def _parse_meta(raw: str, path: Path, required: tuple[str, ...]) -> ModelMeta:
    """The ``ferkit`` metadata of ``path`` as the typed record, its extra holding ``required``."""
    try:
        values = json.loads(raw)
    except ValueError as err:
        raise CheckpointError(f"{path}: its 'ferkit' metadata is not JSON ({err}); the file was "
                              "not written by ferkit or was edited; use another checkpoint") from err
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: its 'ferkit' metadata is a {type(values).__name__}, not a "
                              "mapping; use a checkpoint written by ferkit")
    meta = ModelMeta.from_dict(values, path)
    missing = [key for key in required if key not in meta.extra]
    if missing:
        raise CheckpointError(f"{path}: its metadata lacks {', '.join(missing)}; it was not "
                              "written by this ferkit (or was edited); use another checkpoint")
    return meta


def load_weights(module: nn.Module, checkpoint: Checkpoint) -> None:
    """Load checkpoint weights strictly, with a readable error on mismatch."""
    try:
        result = module.load_state_dict(checkpoint.state_dict, strict=False)
    except RuntimeError as err:  # shape mismatch
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit the model: {err}") from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not match the model "
            f"(backbone {checkpoint.meta.backbone}, method {checkpoint.meta.method}): "
            f"missing keys {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected keys {result.unexpected_keys[:5]}"
            f"{'...' if len(result.unexpected_keys) > 5 else ''}"
        )


@dataclass
class LoadedModel:
    """A trained method rebuilt from its checkpoint, in eval mode."""

    method: Method
    meta: ModelMeta
    path: Path


def load_model(path: Path | str, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the method a checkpoint was trained with from its metadata and load its weights
    strictly: the one way evaluation, export and the predictor load a model.

    Raises:
        CheckpointError: the file is missing, unreadable, not ferkit's, lacks a field of
            :class:`ModelMeta` or ``num_samples``, or its weights do not fit the model its
            metadata describes.
    """
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    if meta.num_samples is None:
        raise CheckpointError(f"{ckpt.path}: its metadata lacks num_samples; it was not written "
                              "by this ferkit (or was edited); use another checkpoint")
    model = build_classifier(meta.backbone, meta.num_classes, output_stride=meta.output_stride,
                             **meta.backbone_options)
    method = create_method(meta.method, model, list(meta.class_counts), meta.num_samples,
                           meta.method_params)
    load_weights(method, ckpt)
    return LoadedModel(method.eval().to(device), meta, ckpt.path)
