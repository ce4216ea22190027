"""Evaluation: logits for a whole split, the confusion matrix and every metric; device/AMP helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ferkit.cam import class_activation_maps
from ferkit.config_checks import DEVICE
from ferkit.data.loader import BatchLoader
from ferkit.data.transforms import normalize, to_float
from ferkit.errors import UsageError
from ferkit.losses.consistency import flip_x
from ferkit.metrics import confusion_matrix, per_class_report


class DeviceError(UsageError):
    """A device name this build or machine cannot run on."""


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """"auto" -> cuda when available, else cpu; any other name checked against what this torch
    build and machine offer (``option`` names the setting in the message).

    Raises:
        DeviceError: not a device name, or a device this build or machine does not have.
    """
    if not (isinstance(name, str) and DEVICE.fullmatch(name)):
        raise DeviceError(f"{option}: '{name}' is not a device; use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            why = (f"this torch build ({torch.__version__}) has no CUDA support"
                   if torch.version.cuda is None else f"{count} CUDA device(s) visible")
            raise DeviceError(f"{option}: '{name}' is not available: {why}; use cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{option}: 'mps' is not available on this machine; use cpu or auto")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Autocast dtype for ``amp``: "auto" = bf16 on bf16-capable GPUs (else fp16) and on CPUs with
    native bf16; fp32 (None) on other CPUs."""
    if amp == "none":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX512-BF16 / AMX). Without them bf16
    autocast is emulated and, measured on an AVX2-only EPYC, ~30x slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def preprocess(
    images: torch.Tensor, device: torch.device, mean: tuple[float, ...], std: tuple[float, ...],
    channels_last: bool = True,
) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` from the cache -> normalised float ``[B, 3, H, W]`` on ``device``."""
    images = normalize(to_float(images.to(device, non_blocking=True)), mean, std)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


@torch.no_grad()
def predict_logits(
    predict: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterator[dict[str, Any]] | BatchLoader,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``predict`` over all batches; returns logits ``[N, K]`` (float32, CPU) and labels ``[N]``."""
    all_logits, all_labels = [], []
    for batch in batches:
        images = preprocess(batch["image"], device, mean, std, channels_last)
        with autocast(device, dtype):
            logits = predict(images)
        all_logits.append(logits.float().cpu())
        all_labels.append(batch["label"])
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(
    predict: Callable[[torch.Tensor], torch.Tensor],
    loader: BatchLoader,
    class_names: list[str] | tuple[str, ...],
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> dict[str, Any]:
    """Confusion matrix, overall / mean class / per-class accuracy and macro-F1 of one split."""
    logits, labels = predict_logits(predict, loader, device, mean, std, dtype, channels_last)
    confusion = confusion_matrix(logits.argmax(dim=1), labels, len(class_names))
    return per_class_report(confusion, class_names)


@torch.no_grad()
def cam_flip_error(
    model: torch.nn.Module,
    loader: BatchLoader,
    max_images: int,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> dict[str, float]:
    """How far a classifier's attention maps are from flip-equivariant on the first
    ``max_images`` images of ``loader``: the quantity MEK's and EAC's consistency term trains.

    With ``A(x)`` the CAMs ``[B, K, h, w]`` of every class (:func:`ferkit.cam.class_activation_maps`,
    unweighted) and ``A~ = flip(A(flip(x)))``:

    - ``cam_flip_mse``: ``mean (A - A~)^2`` over images, classes and cells;
    - ``cam_flip_rel``: ``sum (A - A~)^2 / (sum (A^2 + A~^2) / 2)``, scale-free: 0 for maps that
      mirror exactly with the face, 2 for unrelated maps of equal energy.

    Args:
        model: a :class:`~ferkit.models.FERClassifier` (``feature_map`` and ``head``), eval mode.
    """
    squared_diff = energy = 0.0
    cells = seen = 0
    for batch in loader:
        if seen >= max_images:
            break
        images = preprocess(batch["image"][: max_images - seen], device, mean, std, channels_last)
        with autocast(device, dtype):
            maps = class_activation_maps(model(images).feature_map, model.head.weight).float()
            aligned = flip_x(class_activation_maps(model(images.flip(-1)).feature_map,
                                                   model.head.weight).float())
        squared_diff += (maps - aligned).pow(2).sum().item()
        energy += 0.5 * (maps.pow(2).sum() + aligned.pow(2).sum()).item()
        cells += maps.numel()
        seen += images.shape[0]
    return {"cam_flip_mse": squared_diff / max(cells, 1),
            "cam_flip_rel": squared_diff / max(energy, 1e-12)}
