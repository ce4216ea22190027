"""The onnxruntime backend: run an exported classifier from its ONNX file alone.

A file written by ``ferkit export`` has one input ``images`` (normalised float ``[B, 3, S, S]``,
dynamic batch) and the outputs ``logits`` ``[B, K]`` and, for methods that classify with the linear
head, ``cams`` ``[B, K, h, w]`` (class activation maps for the attention overlay). Everything
preprocessing and the deployment prior need is in the model's ``metadata_props``: the full record
as JSON under ``ferkit``, and the main fields one per key for people and other tools
(``class_names``, ``mean``, ``std``, ``input_size``, ``colour_mode``, ``class_counts``,
``align_template``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferkit.errors import CheckpointError, MissingExtra, MissingFileError, UsageError

INPUT_NAME = "images"
LOGITS, CAMS = "logits", "cams"  # output names; CAMS only where Method.head_cams
META_KEY = "ferkit"
# Checkpoint metadata that travels into the ONNX file (what prediction needs, plus provenance).
PORTABLE_KEYS = ("class_names", "num_classes", "image_size", "channels", "mean", "std",
                 "class_counts", "align_template", "deploy_prior", "test_time_flip", "backbone",
                 "method", "dataset", "ferkit_version", "git_commit", "torch_version")
INSTALL_HINT = 'pip install "ferkit[onnx]"'


class OnnxUnavailable(MissingExtra):
    """onnx / onnxruntime / onnxscript are not installed (they are the optional ``[onnx]`` extra)."""


def require(module: str, purpose: str) -> Any:
    """Import an optional module of the ``[onnx]`` extra, or raise a message naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OnnxUnavailable(f"{purpose} needs the '{module}' package, which is not installed. "
                              f"Install the optional extra: {INSTALL_HINT}") from err


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress notes (one INFO line per optimisation pass, a WARNING per missing
    torchvision op, printed summaries) hidden for the duration; errors still show."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch-internal pytree deprecation notes
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def dynamo_export(module: torch.nn.Module, example: torch.Tensor, path: Path,
                  input_names: Sequence[str], output_names: Sequence[str],
                  dynamic_shapes: dict[str, dict[int, Any]], metadata: dict[str, str] | None = None
                  ) -> None:
    """Export ``module`` called on ``example`` to one ONNX file with torch's dynamo exporter (the
    weights inside the file), optionally with ``metadata_props``.

    Raises:
        OnnxUnavailable: onnxscript (the exporter's dependency) is not installed.
    """
    require("onnxscript", "ONNX export (torch's dynamo exporter)")
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=list(input_names),
            output_names=list(output_names), dynamic_shapes=dynamic_shapes, external_data=False,
            verbose=False)
    if metadata:
        program.model.metadata_props.update(metadata)
    program.save(str(path), external_data=False)


def metadata_props(meta: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` of an exported model: the portable record as JSON under ``ferkit``
    and its main fields one per key (strings, as ONNX requires)."""
    record = {key: meta[key] for key in PORTABLE_KEYS if meta.get(key) is not None}
    props = {
        META_KEY: json.dumps(record),
        "class_names": json.dumps(record["class_names"]),
        "mean": json.dumps(record["mean"]),
        "std": json.dumps(record["std"]),
        "input_size": str(record["image_size"]),
        "colour_mode": "grayscale" if record.get("channels", 3) == 1 else "rgb",
        "class_counts": json.dumps(record.get("class_counts")),
    }
    if "align_template" in record:
        props["align_template"] = json.dumps(record["align_template"])
    return props


class OnnxNet:
    """An onnxruntime session behind the interface the predictor uses (``logits``, ``cams``).

    Args:
        path: ``.onnx`` file written by ``ferkit export``.
        threads: onnxruntime intra-op threads (None: onnxruntime's default, all cores).
    """

    backend = "onnx"
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = require("onnxruntime", "the ONNX backend")
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"ONNX model not found: {self.path} (write one with "
                                    "`ferkit export CHECKPOINT --out model.onnx`)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise CheckpointError(f"cannot load ONNX model {self.path}: {err}") from err
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise CheckpointError(f"{self.path} is an ONNX model but not one written by ferkit export "
                             f"(no '{META_KEY}' metadata); export it with `ferkit export`")
        self.meta: dict[str, Any] = json.loads(props[META_KEY])
        self.output_names = {output.name for output in self.session.get_outputs()}

    def _run(self, batch: torch.Tensor, *outputs: str) -> tuple[torch.Tensor, ...]:
        feed = {INPUT_NAME: batch.detach().float().cpu().contiguous().numpy()}
        return tuple(torch.from_numpy(np.asarray(value))
                     for value in self.session.run(list(outputs), feed))

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> logits ``[B, K]`` (float32, CPU)."""
        return self._run(batch, LOGITS)[0]

    def cams(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> class activation maps ``[B, K, h, w]``.

        Raises:
            UsageError: the file has no ``cams`` output (exported from a method whose maps mean
                nothing, such as rul or fan).
        """
        return self.logits_and_cams(batch)[1]

    def logits_and_cams(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`logits` and :meth:`cams` of one batch from one run of the network."""
        if CAMS not in self.output_names:
            raise UsageError(f"{self.path} has no '{CAMS}' output: its method classifies through "
                             "its own head, so it has no attention maps")
        logits, cams = self._run(batch, LOGITS, CAMS)
        return logits, cams
