"""RandAugment (Cubuk et al., 2020) on batched float tensors, on the batch's own device.

Each image of a ``[B, 3, H, W]`` batch in [0, 1] draws ``num_ops`` operations uniformly from the 14
standard ones (with replacement, as torchvision's ``RandAugment``) and applies them in turn. The
strength of every operation is fixed by one ``magnitude`` on a scale of ``num_bins`` steps (the
torchvision convention: magnitude 9 of 31 bins for the MEK authors' ``RandAugment(m=9)``); signed
operations take a random sign per image. Geometric operations resample with nearest neighbours and
fill with 0, like torchvision's defaults.

=================  =========================================  ==============================
operation          effect                                     value at bin m of n (signed: +-)
=================  =========================================  ==============================
Identity           none                                       -
ShearX / ShearY    ``x' = x + s y`` (about the image centre)  s = +-0.3 m / (n - 1)
TranslateX / Y     shift by t pixels                          t = +-(150 / 331) W m / (n - 1)
Rotate             rotate by a degrees about the centre       a = +-30 m / (n - 1)
Brightness         blend with black by factor f               f = 1 +- 0.9 m / (n - 1)
Color              blend with the image's grayscale           f = 1 +- 0.9 m / (n - 1)
Contrast           blend with the mean of its grayscale       f = 1 +- 0.9 m / (n - 1)
Sharpness          blend with a 3x3 smoothed copy             f = 1 +- 0.9 m / (n - 1)
Posterize          keep the top b bits of each 8-bit value    b = 8 - round(4 m / (n - 1))
Solarize           invert values >= threshold                 1 - m / (n - 1)
AutoContrast       stretch each channel to [0, 1]             -
Equalize           histogram-equalise each 8-bit channel      -
=================  =========================================  ==============================

All randomness comes from the caller's ``torch.Generator`` (CPU), so a batch is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
       "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
          "Contrast", "Sharpness")


def op_value(name: str, magnitude: int, num_bins: int, width: int) -> float:
    """The unsigned strength of operation ``name`` at ``magnitude`` (see the module table)."""
    level = magnitude / (num_bins - 1)
    if name in ("ShearX", "ShearY"):
        return 0.3 * level
    if name in ("TranslateX", "TranslateY"):
        return 150.0 / 331.0 * width * level
    if name == "Rotate":
        return 30.0 * level
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 0.9 * level
    if name == "Posterize":
        return float(8 - round(4 * level))
    if name == "Solarize":
        return 1.0 - level
    return 0.0


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``[B, 1, H, W]``."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
    return (images * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (other + factor.view(-1, 1, 1, 1) * (images - other)).clamp(0, 1)


def _affine(images: torch.Tensor, name: str, value: torch.Tensor) -> torch.Tensor:
    """Shear / translate (``value`` in pixels) / rotate (degrees) each image, nearest, fill 0."""
    b, _, h, w = images.shape
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if name == "ShearX":
        theta[:, 0, 1] = value
    elif name == "ShearY":
        theta[:, 1, 0] = value
    elif name == "TranslateX":
        theta[:, 0, 2] = -2.0 * value / w  # the grid reads the source: content moves by +value
    elif name == "TranslateY":
        theta[:, 1, 2] = -2.0 * value / h
    else:  # Rotate: the grid reads the source at the inverse rotation
        rad = value * math.pi / 180.0
        theta[:, 0, 0], theta[:, 0, 1] = rad.cos(), -rad.sin()
        theta[:, 1, 0], theta[:, 1, 1] = rad.sin(), rad.cos()
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _sharpness_base(images: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (centre weight 5, others 1, sum 13) inside; border pixels unchanged."""
    kernel = torch.ones(3, 1, 3, 3, device=images.device, dtype=images.dtype)
    kernel[:, :, 1, 1] = 5.0
    smoothed = F.conv2d(images, kernel / 13.0, groups=3)
    out = images.clone()
    out[:, :, 1:-1, 1:-1] = smoothed
    return out


def _equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of each 8-bit channel (PIL's ImageOps.equalize rule)."""
    b, c, h, w = images.shape
    values = (images * 255).round().long().clamp(0, 255).view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=images.device).scatter_add_(
        1, values, torch.ones_like(values, dtype=torch.float32))
    last_bin = 255 - hist.flip(1).gt(0).float().argmax(dim=1)  # highest value present
    last_count = hist.gather(1, last_bin.view(-1, 1)).squeeze(1)
    step = ((hist.sum(1) - last_count) / 255).floor()  # [B*C]
    safe = step.clamp(min=1).view(-1, 1)
    lut = ((hist.cumsum(1) + (safe / 2).floor()) / safe).floor()
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp(0, 255)
    equalized = lut.gather(1, values) / 255.0
    out = torch.where(step.view(-1, 1) > 0, equalized, values.float() / 255.0)
    return out.view(b, c, h, w).to(images.dtype)


def apply_op(images: torch.Tensor, name: str, value: torch.Tensor | float) -> torch.Tensor:
    """Apply one operation with signed strength ``value`` (scalar or ``[B]``) to ``[B, 3, H, W]``."""
    value = torch.as_tensor(value, dtype=images.dtype, device=images.device).expand(images.shape[0])
    if name == "Identity":
        return images
    if name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        return _affine(images, name, value)
    if name == "Brightness":
        return _blend(images, torch.zeros_like(images), 1 + value)
    if name == "Color":
        return _blend(images, _grayscale(images).expand_as(images), 1 + value)
    if name == "Contrast":
        mean = _grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
        return _blend(images, mean.expand_as(images), 1 + value)
    if name == "Sharpness":
        return _blend(images, _sharpness_base(images), 1 + value)
    if name == "Posterize":
        shift = (8 - value).long().view(-1, 1, 1, 1)
        levels = (images * 255).round().long().clamp(0, 255)
        return ((levels >> shift) << shift).to(images.dtype) / 255.0
    if name == "Solarize":
        return torch.where(images >= value.view(-1, 1, 1, 1), 1 - images, images)
    if name == "AutoContrast":
        low = images.amin(dim=(2, 3), keepdim=True)
        high = images.amax(dim=(2, 3), keepdim=True)
        scale = torch.where(high > low, 1 / (high - low).clamp(min=1e-8), torch.ones_like(high))
        offset = torch.where(high > low, low, torch.zeros_like(low))
        return ((images - offset) * scale).clamp(0, 1)
    if name == "Equalize":
        return _equalize(images)
    raise ValueError(f"unknown RandAugment operation '{name}'; use one of {', '.join(OPS)}")


def rand_augment(images: torch.Tensor, num_ops: int, magnitude: int, num_bins: int,
                 generator: torch.Generator) -> torch.Tensor:
    """RandAugment a float batch ``[B, 3, H, W]`` in [0, 1] (see the module docstring)."""
    if not 0 <= magnitude < num_bins:
        raise ValueError(f"RandAugment magnitude must be in [0, {num_bins - 1}], got {magnitude}")
    b, width = images.shape[0], images.shape[-1]
    for _ in range(num_ops):
        choice = torch.randint(len(OPS), (b,), generator=generator)
        sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
        for k, name in enumerate(OPS):
            members = (choice == k).nonzero().flatten()
            if members.numel() == 0 or name == "Identity":
                continue
            value = op_value(name, magnitude, num_bins, width)
            values = sign[members] * value if name in SIGNED else torch.full((len(members),), value)
            idx = members.to(images.device)
            images = images.index_copy(0, idx, apply_op(images[idx], name, values))
    return images
