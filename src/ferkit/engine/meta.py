"""The typed metadata record of a checkpoint: what a trained model is, read and written only
through :class:`ModelMeta` (:mod:`ferkit.engine.checkpoint` stores it as JSON in the file).

The fields describe the model (how to rebuild it, preprocess its input and name its classes);
everything else the writer stored (provenance, and the training state of ``last`` checkpoints:
``epoch``, ``val``, ``history``, ``scheduler``) is kept as written in :attr:`ModelMeta.extra`.
``format_version`` is checked when a file is read: a file of a newer ferkit, an old file that
lacks a field, or a foreign one fails with a :class:`CheckpointError` that names the file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import CheckpointError

FORMAT_VERSION = 1
REQUIRED = ("class_names", "num_classes", "image_size", "mean", "std", "backbone", "method",
            "class_counts")


@dataclass(frozen=True)
class ModelMeta:
    """What a checkpoint (or an exported ONNX file) says about its model.

    Attributes:
        class_names: class names in the order of the logits.
        num_classes: their number.
        image_size: side of the square network input.
        mean, std: input normalisation per channel.
        backbone: registered backbone name; ``backbone_options`` its keyword options.
        method: registered method name; ``method_params`` its parameters.
        class_counts: training images per class (the deployment prior).
        num_samples: training images (rebuilding a method needs it; ONNX files omit it).
        channels: 1 (grayscale) or 3 (RGB) input images.
        output_stride: overall stride of the feature map (None: the backbone's own).
        feature_map_size: side of the feature (and attention) map at ``image_size``.
        dataset: the training dataset's name; ``val_source`` where validation came from.
        config: the resolved run config as a dict.
        align_template: five (x, y) landmark positions of the training crops, if not the default.
        deploy_prior: the deployment prior the model recommends, ``{"prior": "uniform" | "train" |
            [K frequencies], "tau": float, "how": str}`` (``ferkit.inference.prior``); None: the
            model as trained.
        test_time_flip: whether the model recommends averaging each face's logits with its
            mirror image's (chosen on validation data with ``deploy_prior``).
        format_version: version of this record's layout.
        extra: every other key the writer stored, unchanged.
    """

    class_names: tuple[str, ...]
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    backbone: str
    method: str
    class_counts: tuple[int, ...]
    num_samples: int | None = None
    channels: int = 3
    backbone_options: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, Any] = field(default_factory=dict)
    output_stride: int | None = None
    feature_map_size: int | None = None
    dataset: str | None = None
    val_source: str | None = None
    config: dict[str, Any] | None = None
    align_template: list[list[float]] | None = None
    deploy_prior: dict[str, Any] | None = None
    test_time_flip: bool = False
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: Path | str = "<metadata>") -> ModelMeta:
        """Read a stored record.

        Raises:
            CheckpointError: a newer format, or a required field missing (an old or foreign file).
        """
        version = values.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{source}: metadata format_version {version!r} is newer than "
                                  f"this ferkit reads ({FORMAT_VERSION}); upgrade ferkit")
        missing = [key for key in REQUIRED if values.get(key) is None]
        if missing:
            raise CheckpointError(f"{source}: its metadata lacks {', '.join(missing)}; it was not "
                                  "written by this ferkit (or was edited); use another checkpoint")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names and v is not None}
        for key in ("class_names", "mean", "std", "class_counts"):
            known[key] = tuple(known[key])
        for key in ("backbone_options", "method_params"):
            known[key] = dict(known.get(key) or {})
        problems = _value_problems(known)
        if problems:
            raise CheckpointError(f"{source}: its metadata does not hold together ("
                                  f"{'; '.join(problems)}); it was edited or damaged: use the "
                                  "checkpoint as ferkit wrote it")
        return cls(**known, extra={k: v for k, v in values.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The stored form: ``format_version`` first, then the fields, then :attr:`extra`."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("extra", "format_version")}
        for key in ("class_names", "mean", "std", "class_counts"):
            values[key] = list(values[key])
        return {"format_version": self.format_version, **values, **self.extra}

    def with_extra(self, **extra: Any) -> ModelMeta:
        """A copy with ``extra`` updated (e.g. the epoch and scores of a checkpoint)."""
        return dataclasses.replace(self, extra={**self.extra, **extra})


def _is_number(value: Any, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def _value_problems(known: dict[str, Any]) -> list[str]:
    """What in a stored record contradicts itself or is out of range (the weights' shapes are
    checked against ``num_classes`` when they are loaded)."""
    problems = []
    count = known["num_classes"]
    if not (isinstance(count, int) and count >= 1):
        return [f"num_classes {count!r} is not a positive whole number"]
    if len(known["class_names"]) != count or not all(isinstance(n, str)
                                                     for n in known["class_names"]):
        problems.append(f"{len(known['class_names'])} class_names for num_classes {count}")
    if len(known["class_counts"]) != count or not all(
            _is_number(c, 1e-12, math.inf) for c in known["class_counts"]):
        problems.append(f"class_counts {list(known['class_counts'])} are not {count} positive "
                        "counts")
    deploy = known.get("deploy_prior")
    if deploy is not None and not (isinstance(deploy, dict) and "prior" in deploy
                                   and _is_number(deploy.get("tau"), 0, 10)):
        problems.append(f"deploy_prior {deploy!r} is not {{'prior': ..., 'tau': number in [0, 10]}}")
    size = known["image_size"]
    if not (isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= 4096):
        problems.append(f"image_size {size!r} is not a whole number of pixels in [1, 4096]")
    mean, std = known["mean"], known["std"]
    if len(mean) not in (1, 3) or len(std) != len(mean) or not all(
            _is_number(m, 0, 1) for m in mean) or not all(_is_number(v, 1e-6, 1) for v in std):
        problems.append(f"mean {list(mean)} / std {list(std)} are not 1 or 3 values each in "
                        "[0, 1] (std above 0)")
    return problems


__all__ = ["FORMAT_VERSION", "CheckpointError", "ModelMeta"]
