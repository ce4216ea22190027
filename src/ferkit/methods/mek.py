"""Mine Extra Knowledge (MEK): re-balanced attention consistency + re-balanced smooth labels.

Yuhang Zhang, Yaqi Li, Lixiong Qin, Xuannan Liu and Weihong Deng, "Leave No Stone Unturned: Mine
Extra Knowledge for Imbalanced Facial Expression Recognition", NeurIPS 2023.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ferkit.losses import (
    attention_consistency,
    class_weights,
    rebalanced_smooth_targets,
    soft_cross_entropy,
    weighted_cross_entropy,
)
from ferkit.losses.consistency import ERRORS, REDUCTIONS
from ferkit.losses.soft_targets import SMOOTH_FORMS
from ferkit.methods._two_view import FORWARD_MODES, TRANSFORMS, two_view_forward
from ferkit.methods.base import METHODS, Method, StepOutput
from ferkit.models.classifier import FERClassifier
from ferkit.params import Constraint, Range


@dataclass(frozen=True)
class MEKPreset:
    """Values that ``preset`` fills in for parameters left as None."""

    lam: float
    alpha: float
    weights: str
    beta: float
    weights_norm: str
    consistency_reduction: str
    smooth_form: str
    flipped_ce: bool


PRESETS: dict[str, MEKPreset] = {
    # Text of the paper (ResNet-18 tables).
    "paper": MEKPreset(lam=2.0, alpha=0.1, weights="effective", beta=0.9999, weights_norm="sum",
                       consistency_reduction="mean", smooth_form="paper", flipped_ce=True),
    # The authors' released Swin-T training code.
    "official": MEKPreset(lam=0.1, alpha=0.3, weights="inverse_ratio", beta=0.9999,
                          weights_norm="none", consistency_reduction="class_sum", smooth_form="official",
                          flipped_ce=False),
}
WEIGHT_KINDS = ("effective", "inverse_ratio", "inverse")
WEIGHT_NORMS = ("sum", "max", "none")


def mek_class_weights(class_counts: Sequence[int], weights: str, beta: float = 0.9999,
                      norm: str = "sum") -> torch.Tensor:
    """MEK's re-balancing weights B ``[K]`` from the training counts (float32).

    Args:
        weights: "effective" (Cui et al.: ``(1 - beta) / (1 - beta^n_l)``), "inverse_ratio"
            (``0.1 * N_train / n_l``; official code) or "inverse" (``1 / n_l``).
        norm: then "sum" (B sums to K, as Cui et al.), "max" (B / max B, the rarest class gets 1)
            or "none" (raw values; the official preset's ``0.1 * N_train / n_l``). The paper does
            not say. Since the paper's consistency weights the maps (B enters squared) and RSL
            hands out ``alpha * B_l / K``, the choice rescales the effective lambda by
            ``sum B^2``: on the FERPlus IF100 counts "sum" gives 13.9 times the ``sum B^2`` of
            "max".
    """
    if weights == "effective":
        raw = class_weights(class_counts, "effective", beta=beta, normalize="none")
    elif weights == "inverse_ratio":
        raw = class_weights(class_counts, "inverse", normalize="ratio", scale=0.1)
    elif weights == "inverse":
        raw = class_weights(class_counts, "inverse", normalize="none")
    else:
        raise ValueError(f"unknown MEK weights '{weights}'; use one of {', '.join(WEIGHT_KINDS)}")
    if norm == "sum":
        return raw * len(raw) / raw.sum()
    if norm == "max":
        return raw / raw.max()
    if norm == "none":
        return raw
    raise ValueError(f"unknown MEK weights_norm '{norm}'; use one of {', '.join(WEIGHT_NORMS)}")


@METHODS.register("mek")
class MineExtraKnowledge(Method):
    r"""MEK: cross-entropy with re-balanced smooth labels plus re-balanced attention consistency.

    Per step, ``x`` is the augmented batch and ``x~ = T(x)`` its view (``T`` = horizontal flip by
    default); both go through the network (two forward calls by default, as the authors' code;
    ``forward_mode="joint"``: one batch of 2B). With CAMs
    ``A[i, l] = sum_c W[l, c] F[i, c]`` (head detached by default) and weights ``B_l``::

        targets   y~[i, l] = RSL(y_i; B, alpha)                          (use_rsl; else one-hot)
        l_cls     = CE(f(x), y~) [+ CE(f(x~), y~)   if flipped_ce]       (paper eq. 1 sums both)
        l_cons    paper ("mean"):       mean_{i,l,y,x} (B_l A(x) - T^-1(B_l A(x~)))^2
                  official ("class_sum"): mean_i sum_l B_l mean_{y,x} (A(x) - T^-1(A(x~)))^2
        l         = l_cls + lam * l_cons                                  (l_cons only if use_rac)

    RSL, paper: ``y~ = (1 - alpha) onehot + alpha B_l / K``; official: the label keeps
    ``1 - alpha`` and ``alpha`` is shared by the K - 1 other classes in proportion to B.

    ==========================  ===============================  ===============================
    param                       ``preset="paper"``               ``preset="official"``
    ==========================  ===============================  ===============================
    weights (B_l)               effective, beta 0.9999           0.1 * N_train / n_l
    weights_norm                sum (B sums to K)                none (raw)
    lam                         2                                0.1
    consistency_reduction       mean over N, K, h, w             class_sum (B-weighted sum)
    alpha / smooth_form         0.1 / paper                      0.3 / official
    flipped_ce                  True                             False
    ==========================  ===============================  ===============================

    Where the official code and the paper differ (each with its switch): B (``weights``; the paper
    does not say how it normalises the effective number, we use sum = K as Cui et al., so
    ``alpha * B_l / K`` keeps rows summing to 1), ``lam``, the consistency reduction
    (``consistency_reduction``: the paper weights the maps, so B enters squared; the code weights
    the per-class squared error, so B enters once and classes are summed), the RSL form and
    ``alpha`` (``smooth_form``, ``alpha``), and the CE on the flipped view (``flipped_ce``; the code
    ignores the flipped logits). Optimiser and input recipes live in the configs, not here.
    Common to both: W is detached in the CAM (``detach_head``), the flip is applied to the
    augmented image (same crop, same erased box), ``flip_x`` replaces the code's ``grid_sample``
    (equal to ~1e-7). Class weights always come from ``class_counts`` (the training set used).

    Undocumented in the paper, each a switch (defaults follow the authors' code):

    - ``forward_mode``: "separate" (two forward calls, the code's way) or "joint" (one 2B batch:
      with BatchNorm the views share batch statistics).
    - ``consistency_error``: Eq. 5 writes ``||.||_2`` of a scalar difference, literally an
      absolute error ("absolute"); both codes square it ("squared", the default in both presets,
      so "paper" here means the paper's equations with the squared error).
    - ``weights_norm``: how B is normalised (see :func:`mek_class_weights`); it sets the
      effective lambda.
    - The erasing fill of the data recipe (``data.augment.erasing_fill``): the official MEK code
      erases with random pixels ("random"), EAC's after Normalize ("mean"), ferkit's default 0.

    Scale caution (METHODS.md): CAM magnitudes follow the backbone's feature scale, so the preset
    ``lam`` may let l_cons dominate on other backbones. ``normalize_maps=True`` divides both views'
    maps by one detached scalar, their root mean square over the batch, which makes l_cons a
    relative error independent of that scale (then re-tune ``lam``). Check ``l_cls`` / ``l_cons``
    in the logs.

    Args:
        preset: "paper" or "official"; fills every parameter below that is left as None.
        lam: weight of l_cons.
        alpha: smoothing mass of RSL.
        weights: "effective", "inverse_ratio" or "inverse" (see :func:`mek_class_weights`).
        beta: effective-number beta (used by ``weights="effective"``).
        weights_norm: "sum", "max" or "none" (see :func:`mek_class_weights`).
        consistency_error: "squared" (both codes) or "absolute" (Eq. 5 read literally).
        forward_mode: "separate" (authors' code) or "joint" (one batch of 2B).
        consistency_reduction: "mean" or "class_sum" (see ``attention_consistency``).
        smooth_form: "paper" or "official" (see ``rebalanced_smooth_targets``).
        flipped_ce: add the CE of the transformed view to l_cls.
        use_rac: add the attention consistency (Table 6 ablation).
        use_rsl: soft re-balanced targets; False = one-hot targets (plain CE).
        transform: "flip", "scale" (Table 7: x downscaled by ``scale_factor`` about the centre,
            zero-padded to the original size; the view's map resampled back onto the original
            grid) or "intensity" (contrast ``1 - intensity`` and brightness ``+intensity``).
        scale_factor: downscale factor s in (0, 1] of the "scale" view.
        intensity: strength of the "intensity" view.
        detach_head: CAMs use ``W.detach()`` (authors' code).
        normalize_maps: divide the maps by their detached RMS before the consistency.
    """

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "preset": tuple(PRESETS),
        "lam": Range(0),
        "alpha": Range(0, 1, high_open=True),
        "weights": WEIGHT_KINDS,
        "weights_norm": WEIGHT_NORMS,
        "beta": Range(0, 1, high_open=True),
        "transform": TRANSFORMS,
        "scale_factor": Range(0, 1, low_open=True),
        "consistency_error": ERRORS,
        "forward_mode": FORWARD_MODES,
        "consistency_reduction": REDUCTIONS,
        "smooth_form": SMOOTH_FORMS,
    }

    def __init__(
        self, model: FERClassifier, class_counts: Sequence[int], num_samples: int,
        preset: str = "paper", lam: float | None = None, alpha: float | None = None,
        weights: str | None = None, beta: float | None = None, weights_norm: str | None = None,
        consistency_reduction: str | None = None, smooth_form: str | None = None,
        flipped_ce: bool | None = None, use_rac: bool = True, use_rsl: bool = True,
        transform: str = "flip", scale_factor: float = 0.8, intensity: float = 0.2,
        detach_head: bool = True, normalize_maps: bool = False,
        consistency_error: str = "squared", forward_mode: str = "separate",
    ) -> None:
        super().__init__(model, class_counts, num_samples)
        given = {"lam": lam, "alpha": alpha, "weights": weights, "beta": beta,
                 "weights_norm": weights_norm, "consistency_reduction": consistency_reduction,
                 "smooth_form": smooth_form, "flipped_ce": flipped_ce}
        resolved = {k: (v if given[k] is None else given[k])
                    for k, v in asdict(PRESETS[preset]).items()}
        self.preset = preset
        self.lam, self.alpha = float(resolved["lam"]), float(resolved["alpha"])
        self.consistency_reduction = resolved["consistency_reduction"]
        self.smooth_form, self.flipped_ce = resolved["smooth_form"], bool(resolved["flipped_ce"])
        self.consistency_error, self.forward_mode = consistency_error, forward_mode
        self.use_rac, self.use_rsl = use_rac, use_rsl
        self.transform, self.scale_factor, self.intensity = transform, scale_factor, intensity
        self.detach_head, self.normalize_maps = detach_head, normalize_maps
        self.register_buffer(
            "class_weights",
            mek_class_weights(class_counts, resolved["weights"], float(resolved["beta"]),
                              resolved["weights_norm"]),
            persistent=False)

    @property
    def needs_view(self) -> bool:
        """Whether the step uses the second view (else one plain B forward, exactly CE's)."""
        return self.use_rac or self.flipped_ce

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Classification targets ``[B, K]`` float32: RSL soft labels, or one-hot without RSL."""
        weights = self.class_weights.to(labels.device)
        if not self.use_rsl:
            return F.one_hot(labels, self.num_classes).float()
        return rebalanced_smooth_targets(labels, weights, self.alpha, self.smooth_form)

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.use_rsl:
            return soft_cross_entropy(logits, self.targets(labels))
        return weighted_cross_entropy(logits, labels)  # float32 one-hot CE, as the ce method

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The step's terms with their graphs: ``logits`` ``[B, K]``, ``l_cls``, ``l_cons``.

        ``l_cons`` is present only with ``use_rac``. All losses are float32 scalars.
        """
        images, labels = batch["image"], batch["label"]
        if not self.needs_view:
            logits = self.model(images).logits
            return {"logits": logits, "l_cls": self._cross_entropy(logits, labels)}
        views = two_view_forward(self.model, images, self.transform, detach_head=self.detach_head,
                                 scale_factor=self.scale_factor, intensity=self.intensity,
                                 forward_mode=self.forward_mode)
        l_cls = self._cross_entropy(views.logits, labels)
        if self.flipped_ce:
            l_cls = l_cls + self._cross_entropy(views.view_logits, labels)
        out = {"logits": views.logits, "l_cls": l_cls}
        if self.use_rac:
            att_maps, aligned = views.att_maps, views.att_maps_aligned  # [B, K, h, w] float32
            if self.normalize_maps:
                rms = torch.cat([att_maps, aligned]).detach().pow(2).mean().sqrt().clamp(min=1e-6)
                att_maps, aligned = att_maps / rms, aligned / rms
            out["l_cons"] = attention_consistency(att_maps, aligned, self.class_weights,
                                                  self.consistency_reduction,
                                                  self.consistency_error)
        return out

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        """One training step; logs ``l_cls`` and (with ``use_rac``) ``l_cons`` unweighted, and
        ``cons_to_cls = lam * l_cons / l_cls``: how much of the loss the consistency is."""
        terms = self.losses(batch)
        loss = terms["l_cls"]
        logs = {"l_cls": terms["l_cls"].detach()}
        if "l_cons" in terms:
            loss = loss + self.lam * terms["l_cons"]
            logs["l_cons"] = terms["l_cons"].detach()
            logs["cons_to_cls"] = (self.lam * logs["l_cons"] / logs["l_cls"].clamp(min=1e-12))
        return StepOutput(loss, terms["logits"], logs)

    def extra_repr(self) -> str:
        return (f"preset={self.preset}, lam={self.lam}, alpha={self.alpha}, "
                f"reduction={self.consistency_reduction}, smooth_form={self.smooth_form}, "
                f"flipped_ce={self.flipped_ce}, use_rac={self.use_rac}, use_rsl={self.use_rsl}, "
                f"transform={self.transform}, detach_head={self.detach_head}, "
                f"normalize_maps={self.normalize_maps}, error={self.consistency_error}, "
                f"forward_mode={self.forward_mode}")


__all__ = ["PRESETS", "MEKPreset", "MineExtraKnowledge", "mek_class_weights"]
