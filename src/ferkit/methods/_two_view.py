"""The two-view step shared by EAC and MEK: view -> forward(s) -> CAMs -> aligned maps.

One definition of "run an image batch and its transformed view through the network and put the
view's class activation maps back onto the grid of the original's", so EAC and MEK differ only in
their losses. The view is built inside the method (from the already-augmented batch).

Forward modes (``forward_mode``):

- "separate" (default; the authors' MEK and EAC code): two forward calls, ``model(x)`` then
  ``model(x~)``. With a BatchNorm backbone each view is normalised by its own batch statistics
  and each call updates the running statistics once (two momentum updates per step).
- "joint": ONE forward over ``cat(x, x~)`` (2B images): batch statistics are shared by both views
  and the running statistics move once per step. Faster on some hardware, but not what the
  authors ran; with a LayerNorm backbone (Swin-T) and in eval mode the two modes are equal.

Transforms (MEK paper, Table 7):

- "flip": ``x~ = flip_W(x)``; aligned maps ``flip_x(A(x~))`` (exact).
- "scale": ``x~`` = x downscaled by ``s`` about the image centre onto a canvas of the original
  size (bilinear, zero padding, i.e. the normalisation mean colour), so both views still stack as
  one 2B batch. The view's map is resampled back onto the original map grid (bilinear): the
  original's normalised position ``u`` in [-1, 1] sits at ``s * u`` in the view.
- "intensity": contrast ``(1 - k)`` about each image's mean plus a brightness shift ``+k`` (in
  normalised units, i.e. ``k`` standard deviations); the maps are compared directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ferkit.cam import class_activation_maps
from ferkit.losses import flip_x
from ferkit.models.classifier import FERClassifier

TRANSFORMS = ("flip", "scale", "intensity")
FORWARD_MODES = ("separate", "joint")


@dataclass
class TwoViewOutput:
    """Outputs of :func:`two_view_forward` (B images, K classes, ``h x w`` map grid).

    Attributes:
        logits: ``[B, K]`` of the original view (what the engine reports).
        view_logits: ``[B, K]`` of the transformed view.
        att_maps: ``[B, K, h, w]`` float32 CAMs of the original view.
        att_maps_aligned: ``[B, K, h, w]`` float32 CAMs of the view, mapped onto the original grid.
    """

    logits: torch.Tensor
    view_logits: torch.Tensor
    att_maps: torch.Tensor
    att_maps_aligned: torch.Tensor


def _scale_grid(scale: float, like: torch.Tensor) -> torch.Tensor:
    """Sampling grid ``[B, h, w, 2]`` that reads ``like`` at ``scale * u`` for output position u."""
    batch, _, height, width = like.shape
    theta = torch.zeros(batch, 2, 3, device=like.device, dtype=torch.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    return F.affine_grid(theta, [batch, 1, height, width], align_corners=False)


def make_view(
    images: torch.Tensor, transform: str = "flip", scale_factor: float = 0.8,
    intensity: float = 0.2,
) -> torch.Tensor:
    """The second view ``[B, 3, H, W]`` of an already-augmented, normalised batch ``[B, 3, H, W]``.

    Args:
        transform: "flip", "scale" or "intensity" (see the module docstring).
        scale_factor: image downscale factor s in (0, 1] for "scale".
        intensity: strength k for "intensity".
    """
    if transform == "flip":
        return torch.flip(images, dims=[3])
    if transform == "scale":
        # output u reads input at u / s: the image shrinks by s about the centre, zeros around it
        grid = _scale_grid(1.0 / scale_factor, images)
        view = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False).to(images.dtype)
        if images.is_contiguous(memory_format=torch.channels_last):
            view = view.contiguous(memory_format=torch.channels_last)
        return view
    if transform == "intensity":
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (1 - intensity) * (images - mean) + mean + intensity
    raise ValueError(f"unknown view transform '{transform}'; use one of {', '.join(TRANSFORMS)}")


def align_maps(view_maps: torch.Tensor, transform: str = "flip", scale_factor: float = 0.8
               ) -> torch.Tensor:
    """Map the view's CAMs ``[B, K, h', w']`` back onto the original grid ``[B, K, h, w]``."""
    if transform == "flip":
        return flip_x(view_maps)
    if transform == "scale":
        grid = _scale_grid(scale_factor, view_maps)
        return F.grid_sample(view_maps, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)
    if transform == "intensity":
        return view_maps
    raise ValueError(f"unknown view transform '{transform}'; use one of {', '.join(TRANSFORMS)}")


def two_view_forward(
    model: FERClassifier, images: torch.Tensor, transform: str = "flip", *,
    detach_head: bool = True, scale_factor: float = 0.8, intensity: float = 0.2,
    forward_mode: str = "separate",
) -> TwoViewOutput:
    """Run ``x`` and ``view(x)`` through ``model`` and return logits and aligned CAMs.

    Args:
        model: the classifier; its ``head.weight`` ``[K, C]`` gives the CAMs.
        images: ``[B, 3, H, W]`` augmented, normalised batch (may be channels_last).
        transform: "flip", "scale" or "intensity".
        detach_head: CAMs use ``W.detach()`` (authors' code): the consistency trains features only.
        scale_factor, intensity: strengths of the "scale" / "intensity" views.
        forward_mode: "separate" (two forward calls, the authors' way) or "joint" (one 2B batch).
    """
    if forward_mode not in FORWARD_MODES:
        raise ValueError(f"unknown forward_mode '{forward_mode}'; use one of "
                         f"{', '.join(FORWARD_MODES)}")
    view = make_view(images, transform, scale_factor, intensity)
    if forward_mode == "joint":
        out = model(torch.cat([images, view]))  # one forward over 2B images
        feature_map, logits = out.feature_map, out.logits
    else:
        out, view_out = model(images), model(view)
        feature_map = torch.cat([out.feature_map, view_out.feature_map])
        logits = torch.cat([out.logits, view_out.logits])
    # The CAM is cheap next to the backbone ([2B, C, h, w] x [K, C]): compute it in float32 even
    # under autocast, so the squared differences are not taken between bf16-rounded maps.
    with torch.autocast(device_type=images.device.type, enabled=False):
        att_maps = class_activation_maps(feature_map.float(), model.head.weight.float(),
                                         detach_head)  # [2B, K, h, w]
    att_maps, view_maps = att_maps.chunk(2)
    logits, view_logits = logits.chunk(2)
    return TwoViewOutput(logits, view_logits, att_maps,
                         align_maps(view_maps, transform, scale_factor))
