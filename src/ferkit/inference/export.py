"""Export a checkpoint's classifier to one self-describing ONNX file, with a parity check.

The graph maps normalised images ``[B, 3, S, S]`` (dynamic batch) to ``logits`` ``[B, K]`` and, for
methods that classify with the linear head (``Method.head_cams``), ``cams`` ``[B, K, h, w]`` (RUL
and fan classify through their own head, so their files have no ``cams`` output); the metadata (see
:mod:`ferkit.inference.onnx_backend`) makes the file alone enough to predict. The exporter is
torch's ``torch.export``-based one (``dynamo=True``, the default since torch 2.9; it needs
onnxscript): the TorchScript exporter still works in torch 2.13 but warns that it is deprecated and
will be removed. The weights are stored inside the file (no external data).

Before the file is written, onnxruntime and torch predict the same face crops (the checkpoint's
validation images when its dataset is readable here, else generated faces) and the export fails
when the largest logit difference exceeds the tolerance.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferkit.cam import class_activation_maps
from ferkit.data import DATASETS, DatasetError, SplitNotAvailable
from ferkit.engine.checkpoint import ModelMeta, load_model
from ferkit.errors import UsageError
from ferkit.inference.onnx_backend import (
    CAMS,
    INPUT_NAME,
    LOGITS,
    OnnxNet,
    dynamo_export,
    metadata_props,
    require,
)
from ferkit.inference.preprocess import face_batch, normalise
from ferkit.inference.torch_backend import TorchNet
from ferkit.methods.base import Method
from ferkit.output_paths import OutputPathError, check_output_folder, make_output_folder
from ferkit.tempfiles import atomic_path

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4  # max |logit_onnx - logit_torch| (docs/serving.md: measured values)
PARITY_IMAGES = 32
EXPORTERS = ("dynamo", "torchscript")


class ExportError(RuntimeError):
    """The exported model does not reproduce the checkpoint within the tolerance."""


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote and how closely it matches torch."""

    path: Path
    max_abs_diff: float
    tolerance: float
    parity_source: str
    num_parity_images: int
    labels_agree: float  # fraction of parity images whose argmax agrees


class _ExportNet(nn.Module):
    """The graph that is exported: images -> (logits, cams), or logits alone for a method whose
    class activation maps mean nothing (``head_cams`` False)."""

    def __init__(self, net: TorchNet) -> None:
        super().__init__()
        self.method = net.method
        self.with_cams = type(net.method).head_cams
        self.output_names = (LOGITS, CAMS) if self.with_cams else (LOGITS,)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.method.model
        if type(self.method).predict is Method.predict:  # the plain head: one backbone pass
            out = model(images)
            logits, feature_map = out.logits, out.feature_map
        else:  # a method with its own test-time path
            logits = self.method.predict(images)
            feature_map = model(images).feature_map if self.with_cams else None
        if not self.with_cams:
            return (logits,)
        return logits, class_activation_maps(feature_map, model.head.weight)  # [B, K, h, w]


def parity_crops(meta: ModelMeta, count: int = PARITY_IMAGES) -> tuple[list[np.ndarray], str]:
    """Face crops to compare the backends on: the first ``count`` validation images of the
    checkpoint's dataset (from its stored config) when readable, else generated faces."""
    data = (meta.config or {}).get("data") or {}
    name = data.get("dataset") or meta.dataset
    if name and name != "synthetic" and name in DATASETS:
        for split in ("val", "train"):
            try:
                dataset = DATASETS.create(name, root=data.get("root"), split=split,
                                          num_classes=meta.num_classes, **data.get("options", {}))
                images = [dataset.load_image(i) for i in range(min(count, len(dataset)))]
                return images, f"{dataset.name} ({split}, first {len(images)})"
            except (DatasetError, SplitNotAvailable, FileNotFoundError, TypeError) as err:
                log.info("parity images: %s %s not readable (%s)", name, split, str(err)[:120])
    dataset = DATASETS.create("synthetic", root=None, split="val", num_classes=meta.num_classes,
                              size=meta.image_size, num_val=count, channels=meta.channels)
    return [dataset.load_image(i) for i in range(len(dataset))], f"generated faces ({count})"


def _to_onnx(net: TorchNet, image_size: int, path: Path, exporter: str) -> None:
    require("onnx", "ONNX export")
    module = _ExportNet(net).eval()
    example = torch.zeros(2, 3, image_size, image_size)
    if exporter == "torchscript":  # deprecated in torch >= 2.9, kept as a fallback
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[INPUT_NAME],
                              output_names=list(module.output_names),
                              dynamic_axes={name: {0: "batch"}
                                            for name in (INPUT_NAME, *module.output_names)})
        return
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamo_export(module, example, path, [INPUT_NAME], list(module.output_names),
                  {"images": {0: batch}})


def _add_metadata(path: Path, meta: ModelMeta) -> None:
    onnx = require("onnx", "ONNX export")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata_props(meta.to_dict()).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = (f"ferkit {meta.backbone} / {meta.method} expression "
                        f"classifier: {', '.join(meta.class_names)}")
    onnx.save(model, str(path), save_as_external_data=False)


def export_onnx(checkpoint: str | Path, out: str | Path, tolerance: float = DEFAULT_TOLERANCE,
                num_parity_images: int = PARITY_IMAGES, exporter: str = "dynamo") -> ExportReport:
    """Export ``checkpoint`` to the single ONNX file ``out`` after a parity check.

    Args:
        checkpoint: ferkit ``.safetensors`` checkpoint.
        out: the ``.onnx`` file to write (weights inside it).
        tolerance: largest accepted ``|logit_onnx - logit_torch|`` on the parity crops.
        num_parity_images: how many crops the parity check uses.
        exporter: "dynamo" (torch.export-based, the default) or "torchscript" (deprecated).

    Raises:
        ExportError: onnxruntime's logits differ from torch's by more than ``tolerance``
            (nothing is written then).
        OnnxUnavailable: the ``[onnx]`` extra is not installed.
    """
    out = Path(out)
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter '{exporter}'; use one of {', '.join(EXPORTERS)}")
    if out.suffix != ".onnx":
        raise UsageError(f"--out must end in .onnx, got {out}")
    if out.is_dir():
        raise OutputPathError(f"--out: {out} is a folder; give the .onnx file to write")
    check_output_folder(out.parent, "--out")
    loaded = load_model(checkpoint)
    net, meta = TorchNet(loaded.method, torch.device("cpu")), loaded.meta
    make_output_folder(out.parent, "--out")
    with atomic_path(out) as tmp:
        _to_onnx(net, meta.image_size, tmp, exporter)
        _add_metadata(tmp, meta)
        crops, source = parity_crops(meta, num_parity_images)
        batch = normalise(face_batch(crops, meta.image_size, meta.channels), meta.mean, meta.std)
        expected = net.logits(batch)
        got = OnnxNet(tmp, threads=1).logits(batch)
        diff = float((got - expected).abs().max())
        agree = float((got.argmax(1) == expected.argmax(1)).float().mean())
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(f"ONNX export of {checkpoint} failed the parity check: max |logit "
                              f"difference| {diff:.3g} > tolerance {tolerance:g} on {source}; "
                              "nothing written. Raise --tolerance only if you accept that error.")
    return ExportReport(out, diff, tolerance, source, len(crops), agree)
