"""The three MTCNN networks on onnxruntime: exported once from the published weights, cached.

Each network is exported with torch's dynamo exporter the first time it is needed and kept in
``$FERKIT_CACHE/mtcnn`` (default ``~/.cache/ferkit/mtcnn``) as
``{pnet,rnet,onet}-DIGEST-FORM.onnx``, where DIGEST starts the sha256 of the weight file it was
exported from. The full digest is written into the file's metadata and checked on every load: a
file exported from other weights, or one that onnxruntime cannot read (truncated, corrupted), is
exported again. P-Net takes any image size, R-Net and O-Net any batch of crops.

The exported graphs compute PReLU as two per-channel scalings (:class:`ScaledPReLU`), which
onnxruntime runs faster than its PRelu kernel (``benchmarks/detector_forms.py``); FORM
(:data:`GRAPH_FORM`) changes whenever the exported form does, so a file cached by an older version
is not picked up.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.data.cache import default_cache_dir
from ferkit.inference.onnx_backend import dynamo_export, require
from ferkit.tempfiles import atomic_path

log = logging.getLogger(__name__)

GRAPH_FORM = "f2"  # the exported form: 2 = ScaledPReLU, face probability as a sigmoid
SOURCE_KEY = "source_sha256"  # metadata: sha256 of the weight file the graph was exported from
INPUT = "x"
OUTPUTS = {"pnet": ("prob", "offsets"), "rnet": ("prob", "offsets"),
           "onet": ("prob", "offsets", "landmarks")}


def cache_folder() -> Path:
    """Where the exported detector networks are kept."""
    return default_cache_dir() / "mtcnn"


def export_example(name: str) -> tuple[torch.Tensor, dict[str, dict[int, Any]]]:
    """An example input and the dynamic dimensions of network ``name``."""
    if name == "pnet":
        height = torch.export.Dim("height", min=12, max=16384)
        width = torch.export.Dim("width", min=12, max=16384)
        return torch.zeros(1, 3, 64, 80), {INPUT: {2: height, 3: width}}
    side = 24 if name == "rnet" else 48
    return torch.zeros(2, 3, side, side), {INPUT: {0: torch.export.Dim("batch", min=1, max=65536)}}


class ScaledPReLU(nn.PReLU):
    """:class:`torch.nn.PReLU` computed as ``a * x + (1 - a) * relu(x)``, the two per-channel
    scalings written as inference-mode batch normalisations: the same values (within float
    rounding) and the same parameter, in the form onnxruntime keeps in its blocked (NCHWc) layout
    beside the convolutions, where its own PRelu kernel runs in plain layout between reorders."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(self.weight)
        ones = torch.ones_like(self.weight)
        scaled = F.batch_norm(x, zeros, ones, self.weight, None, training=False, eps=0.0)
        rest = F.batch_norm(F.relu(x), zeros, ones, 1 - self.weight, None, training=False, eps=0.0)
        return scaled + rest


def export_form(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose PReLU layers are :class:`ScaledPReLU` (same parameters)."""
    net = copy.deepcopy(net)
    for name, module in list(net.named_children()):
        if type(module) is nn.PReLU:
            scaled = ScaledPReLU(module.num_parameters)
            scaled.load_state_dict(module.state_dict())
            setattr(net, name, scaled)
    return net


def export_net(net: nn.Module, name: str, digest: str, path: Path) -> None:
    """Export one network to ``path`` (written to a temporary name, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example, dynamic = export_example(name)
    with atomic_path(path) as tmp:
        dynamo_export(export_form(net).eval(), example, tmp, [INPUT], OUTPUTS[name], dynamic,
                      {SOURCE_KEY: digest})


class OnnxStages:
    """onnxruntime sessions of P-Net, R-Net and O-Net behind ``run(name, batch)``.

    Args:
        nets: the torch networks by name (``pnet``, ``rnet``, ``onet``), weights loaded.
        digests: sha256 of each network's weight file.
        threads: onnxruntime intra-op threads (None: onnxruntime's default, all cores).
        folder: the cache folder (default :func:`cache_folder`).
    """

    backend = "onnx"

    def __init__(self, nets: Mapping[str, nn.Module], digests: Mapping[str, str],
                 threads: int | None = None, folder: Path | None = None) -> None:
        self.ort = require("onnxruntime", "the ONNX face detector")
        self.options = self.ort.SessionOptions()
        if threads:
            self.options.intra_op_num_threads = threads
            self.options.inter_op_num_threads = 1
        folder = folder or cache_folder()
        self.paths = {name: folder / f"{name}-{digests[name][:16]}-{GRAPH_FORM}.onnx" for name in nets}
        self.sessions = {name: self._session(net, name, digests[name]) for name, net in nets.items()}

    def _open(self, path: Path, digest: str) -> Any | None:
        """A session on ``path`` when it is a readable export of the weights ``digest``."""
        if not path.is_file():
            return None
        try:
            session = self.ort.InferenceSession(str(path), self.options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            log.warning("re-exporting the unreadable cached detector network %s (%s)", path, err)
            return None
        if session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY) != digest:
            log.warning("re-exporting %s: it was not exported from the expected weights", path)
            return None
        return session

    def _session(self, net: nn.Module, name: str, digest: str) -> Any:
        path = self.paths[name]
        session = self._open(path, digest)
        if session is None:
            log.info("exporting the face detector's %s to ONNX once: %s", name, path)
            export_net(net, name, digest, path)
            session = self._open(path, digest)
            if session is None:
                raise RuntimeError(f"the exported {path} does not load in onnxruntime")
        return session

    def run(self, name: str, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Float32 NCHW input -> the network's outputs as arrays."""
        return tuple(self.sessions[name].run(None, {INPUT: batch}))
