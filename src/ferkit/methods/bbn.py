"""Bilateral-Branch Network (Zhou, Cui, Wei and Chen, "BBN: Bilateral-Branch Network with
Cumulative Learning for Long-Tailed Visual Recognition", CVPR 2020)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ferkit.data.loader import Sampler, class_weighted_sampler
from ferkit.losses import weighted_cross_entropy
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier

STREAM = "reversed"


def cumulative_alpha(epoch: int, num_epochs: int) -> float:
    """BBN's parabolic decay ``alpha = 1 - (epoch / num_epochs)^2`` (epoch 0-based)."""
    return 1.0 - (epoch / max(num_epochs, 1)) ** 2


def reversed_sample_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights for :func:`class_weighted_sampler` giving BBN's reversed sampler.

    BBN draws a class with probability proportional to ``n_max / n_l``, then a sample of it
    uniformly. ``class_weighted_sampler`` weighs each *sample* of class l by ``w_l``, so class l
    is drawn with probability proportional to ``n_l * w_l``; hence ``w_l = n_max / n_l^2``
    (``w_l = n_max / n_l`` would draw every class equally often). Empty classes get 0.
    """
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    safe = np.maximum(counts, 1)
    return np.where(counts > 0, counts.max() / safe**2, 0.0)


class BilateralBackbone(nn.Module):
    """A backbone whose last stage is doubled: shared trunk, conventional + re-balancing stages.

    ``forward(x)`` returns ``cat([last_stage(t), rebalancing(t)], dim=1)`` with
    ``t = forward_trunk(x)``: ``[B, 2C, h, w]``, the test-time input of BBN's classifier.
    Attributes it does not define are looked up on the wrapped backbone, so code that reaches
    into ``model.backbone`` (``.stem``, ``.layer1``, ...) keeps working; its state-dict keys are
    ``net.*`` (the original backbone, whose ``last_stage`` is the conventional branch) and
    ``rebalancing.*``.

    Args:
        backbone: a ferkit backbone with ``forward_trunk``, ``last_stage`` and ``num_features``.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        if not (hasattr(backbone, "forward_trunk") and hasattr(backbone, "last_stage")):
            raise TypeError(f"BBN needs a backbone split into forward_trunk() and last_stage; "
                            f"{type(backbone).__name__} has no such split")
        self.net = backbone  # its last_stage is the conventional branch
        self.rebalancing = copy.deepcopy(backbone.last_stage)
        self.num_features: int = 2 * backbone.num_features

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)

    def branches(self, images: torch.Tensor, images_reversed: torch.Tensor,
                 joint_trunk: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Conventional map of ``images`` and re-balancing map of ``images_reversed``."""
        if joint_trunk:
            trunk = self.net.forward_trunk(torch.cat([images, images_reversed]))
            trunk_c, trunk_r = trunk.split([images.shape[0], images_reversed.shape[0]])
        else:
            trunk_c, trunk_r = self.net.forward_trunk(images), self.net.forward_trunk(
                images_reversed)
        return self.net.last_stage(trunk_c), self.rebalancing(trunk_r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.net.forward_trunk(x)
        return torch.cat([self.net.last_stage(trunk), self.rebalancing(trunk)], dim=1)


@METHODS.register("bbn")
class BilateralBranch(Method):
    """BBN: a uniformly sampled and a reversed-sampled branch, mixed by cumulative learning.

    ``f_c = GAP(conv_stage(trunk(x_c)))`` (uniform batch), ``f_r = GAP(rebal_stage(trunk(x_r)))``
    (reversed batch, class l drawn with probability proportional to ``n_max / n_l``),
    ``alpha = 1 - (e / E)^2`` for 0-based epoch e of E,
    ``logits = fc(2 * cat(alpha f_c, (1 - alpha) f_r))``,
    ``L = alpha CE(logits, y_c) + (1 - alpha) CE(logits, y_r)``.
    Test: ``fc(cat(f_c, f_r))`` on one image, i.e. both branches with weight 0.5 (times 2).

    Structure: ``model.backbone`` becomes a :class:`BilateralBackbone` (trunk shared, last stage
    deep-copied) and ``model.head`` a ``Linear(2C, K)`` (the paper's two classifiers W_c, W_r as
    one layer, as coded), so ``model(images).logits`` is the test output, :meth:`predict` is the
    default and CAMs from ``model.head.weight`` ``[K, 2C]`` on the ``[B, 2C, h, w]`` map are the
    sum of both branches' CAMs.

    Follows the authors' code: one concatenated classifier, the factor 2 on the features (so the
    bias is not doubled), ``alpha`` from the epoch with ``div_epoch = E`` (their code uses 100 /
    200 for E = 90 / 180; not reproduced). ``alpha`` is recomputed in :meth:`on_epoch_start`, so
    a resumed run uses the same value. Switch: ``joint_trunk=True`` runs both batches through the
    trunk as one 2B batch (one pass; BatchNorm statistics over both); False runs two passes as the
    authors' code does.

    The extra stream ``batch["reversed"]`` comes from :meth:`samplers`.

    Args:
        joint_trunk: one trunk pass over both batches (True) or two (False).
    """

    schedule_uses_num_epochs = True
    per_image_train_logits = False  # each training logit row mixes a uniform and a reversed image

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        joint_trunk: bool = True,
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        model.backbone = BilateralBackbone(model.backbone)
        model.num_features = model.backbone.num_features
        model.head = nn.Linear(model.num_features, model.num_classes)
        self.joint_trunk = joint_trunk
        self.alpha = 1.0

    def samplers(self, labels: np.ndarray) -> dict[str, Sampler]:
        return {STREAM: class_weighted_sampler(labels, reversed_sample_weights(
            labels, self.num_classes))}

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.alpha = cumulative_alpha(epoch, num_epochs)

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        if STREAM not in batch:
            raise KeyError(f"BBN needs the '{STREAM}' batch stream: build the loader with "
                           f"streams=method.samplers(train_labels)")
        reversed_batch = batch[STREAM]
        map_c, map_r = self.model.backbone.branches(batch["image"], reversed_batch["image"],
                                                    self.joint_trunk)
        alpha = self.alpha
        features = 2 * torch.cat([alpha * map_c.mean(dim=(2, 3)),
                                  (1 - alpha) * map_r.mean(dim=(2, 3))], dim=1)  # [B, 2C]
        logits = self.model.head(self.model.dropout(features))
        l_conv = weighted_cross_entropy(logits, batch["label"])
        l_rebal = weighted_cross_entropy(logits, reversed_batch["label"])
        loss = alpha * l_conv + (1 - alpha) * l_rebal
        return StepOutput(loss, logits, {"l_conv": l_conv.detach(), "l_rebal": l_rebal.detach(),
                                         "alpha": torch.tensor(alpha, device=loss.device)})
