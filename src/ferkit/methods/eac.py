"""Erasing Attention Consistency (EAC).

Zhang, Wang, Li, Liu and Wang, "Learn From All: Erasing Attention Consistency for Noisy Label
Facial Expression Recognition", ECCV 2022.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ferkit.losses import attention_consistency, weighted_cross_entropy
from ferkit.methods._two_view import FORWARD_MODES, two_view_forward
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


@METHODS.register("eac")
class ErasingAttentionConsistency(Method):
    """EAC: ``L = CE(f(x), y) + lam * mean_{i,l,y,x} (A(x) - flip_x(A(x~)))^2``.

    ``x~`` is the horizontal flip of the augmented batch ``x``; both run through the same two-view
    path as MEK (:func:`ferkit.methods._two_view.two_view_forward`; two forward calls by default,
    as the authors' code, or one 2B batch with ``forward_mode="joint"``), with CAMs
    ``A[i, l] = sum_c W[l, c] F[i, c]`` and W detached (as the authors' code). The flipped logits
    are unused. EAC is MEK's consistency without class weights (``B_l = 1``), "mean" reduction,
    no smooth labels and no CE on the flip.

    Data recipe (set in the recipe configs, not here): resize to 224 x 224, ImageNet mean/std,
    RandomErasing (scale 0.02-0.25) and Gaussian noise (p 0.5) on the raw image, NO random flip
    (the flip is the consistency view). Adam lr 1e-4 (2e-4 for ResNet-18), wd 1e-4, ExponentialLR
    gamma 0.9, 60 epochs, batch 32.

    Args:
        lam: weight of the consistency (5 in the paper and code).
        detach_head: CAMs use ``W.detach()`` (authors' code).
        forward_mode: "separate" (authors' code: one forward call per view) or "joint" (one batch
            of 2B; with BatchNorm the views then share batch statistics).

    Where ferkit's data path differs from the authors' (set in the configs): their random erasing
    runs after Normalize and so fills with the mean colour (``data.augment.erasing_fill: mean``);
    ferkit's default fills with 0 before normalisation ("zero").
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "lam": Range(0),
        "forward_mode": FORWARD_MODES,
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        lam: float = 5.0, detach_head: bool = True, forward_mode: str = "separate",
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        self.lam, self.detach_head, self.forward_mode = float(lam), detach_head, forward_mode

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        """One step; logs ``l_cls`` and the unweighted ``l_cons``."""
        views = two_view_forward(self.model, batch["image"], "flip", detach_head=self.detach_head,
                                 forward_mode=self.forward_mode)
        l_cls = weighted_cross_entropy(views.logits, batch["label"])
        l_cons = attention_consistency(views.att_maps, views.att_maps_aligned, None, "mean")
        loss = l_cls + self.lam * l_cons
        return StepOutput(loss, views.logits, {"l_cls": l_cls.detach(), "l_cons": l_cons.detach()})
