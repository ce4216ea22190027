"""The Method contract: one training step of one method, plugged into the one engine.

A method is an ``nn.Module`` that wraps a :class:`~ferkit.models.FERClassifier` (``self.model``)
and implements ``forward(batch) -> StepOutput``. The engine never branches on a method's name;
it only uses the hooks below:

- ``forward(batch)``: the training loss. ``batch`` holds ``image`` ``[B, 3, H, W]`` (augmented,
  normalised), ``label`` ``[B]``, ``index`` ``[B]`` (dataset positions, for per-sample state),
  optionally ``soft_label`` ``[B, K]``, plus one sub-dict per extra stream from ``samplers``.
- ``predict(images)``: logits for evaluation and inference (default ``self.model(images).logits``).
- ``samplers(labels)``: extra named batch streams (e.g. BBN's reversed sampler).
- ``param_groups(lr)``: optimiser parameter groups (e.g. a 10x learning rate for a new head).
- ``on_epoch_start(epoch, num_epochs)``: schedules that depend on training progress.

Per-sample state (relabels, buffers) lives in registered buffers so checkpoints carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ferkit.data.loader import Sampler
from ferkit.errors import ConfigError
from ferkit.methods.registry import (  # noqa: F401  (re-exported: the registry and its checks)
    METHODS,
    RESERVED,
    check_method_params,
    method_params,
    resolved_method_params,
)
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint


@dataclass
class StepOutput:
    """Result of one training step: the loss to minimise, the logits and scalar logs."""

    loss: torch.Tensor
    logits: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of all training methods.

    Args:
        model: the classifier being trained.
        class_counts: training images per class (of the set actually used), ``[K]``.
        num_samples: size of the training set (for per-sample buffers).

    A subclass declares the ranges and choices of its own parameters in ``param_constraints``
    (e.g. ``{"lam": Range(0), "forward_mode": ("joint", "separate")}``); they are checked with
    the parameter types before training starts.

    Attributes:
        uses_soft_labels: the method trains on ``batch["soft_label"]`` when present
            (``data.label_mode: soft``); the others are refused with soft labels.
    """

    uses_soft_labels = False
    # True when on_epoch_start reads num_epochs (its schedule depends on the total), so a resumed
    # run may not change train.epochs (ferkit.run_folder).
    schedule_uses_num_epochs = False
    # True when the logits are the linear ``model.head`` over pooled features, so the class
    # activation maps from that head show what drove each class (ferkit.cam); False for a method
    # that classifies through another head, whose maps would show nothing (RUL).
    head_cams = True
    # True when ``StepOutput.logits`` score each image of the batch against its own label, so
    # the logged training accuracy means "fraction of training images fitted"; False for a method
    # whose training logits mix two images' features (BBN's two streams, RUL's pairs), where an
    # argmax-vs-label rate would be a different, incomparable number (not logged for them).
    per_image_train_logits = True
    param_constraints: ClassVar[dict[str, Constraint]] = {}

    def __init__(self, model: FERClassifier, class_counts: Sequence[int], num_samples: int) -> None:
        super().__init__()
        self.model = model
        self.num_samples = num_samples
        self.register_buffer("class_counts", torch.as_tensor(class_counts, dtype=torch.long),
                             persistent=False)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def forward(self, batch: dict[str, Any]) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` for evaluation and inference."""
        return self.model(images).logits

    def samplers(self, labels: np.ndarray) -> dict[str, Sampler]:
        """Extra batch streams: name -> sampler. The default has none."""
        return {}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups. Default: all trainable parameters at ``lr``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Called before each training epoch (0-based)."""


def create_method(
    name: str, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
    params: dict[str, Any] | None = None,
) -> Method:
    """Build a registered method; unknown or mistyped parameters and values outside the declared
    ``param_constraints`` raise ConfigError before anything is built (the same check the config
    runs before any data is read), so constructors trust their arguments."""
    params = dict(params or {})
    errors = check_method_params(name, params)
    if errors:
        raise ConfigError("\n".join(errors))
    return METHODS.create(name, model=model, class_counts=class_counts, num_samples=num_samples,
                          **params)
