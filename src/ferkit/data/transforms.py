"""Batch augmentations on tensors, on any device: one affine resample per batch, then photometric.

Images arrive as uint8 ``[B, C, H, W]`` straight from the cache (C = 1 or 3). Geometry (random
resized crop, crop with padding, horizontal flip) is one ``affine_grid`` + ``grid_sample`` for the
whole batch; erasing, noise and colour jitter are vectorised masks. All randomness comes from an
explicit ``torch.Generator`` so an epoch is reproducible from its seed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ferkit.config import AugmentConfig  # defined in the config layer; importable from here too
from ferkit.data.randaugment import apply_op, rand_augment


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float in [0, 1], grayscale repeated to 3 channels."""
    images = images.float().div_(255)
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def _affine(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    b = images.shape[0]
    if cfg.crop == "resized":
        area = _uniform(b, *cfg.crop_scale, generator)
        log_ratio = _uniform(b, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), generator)
        ratio = log_ratio.exp()
        sx = (area * ratio).sqrt().clamp(max=1.0)
        sy = (area / ratio).sqrt().clamp(max=1.0)
        tx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sx)
        ty = (torch.rand(b, generator=generator) * 2 - 1) * (1 - sy)
    elif cfg.crop == "pad":
        sx = sy = torch.ones(b)
        tx = (torch.rand(b, generator=generator) * 2 - 1) * 2 * cfg.pad_fraction
        ty = (torch.rand(b, generator=generator) * 2 - 1) * 2 * cfg.pad_fraction
    elif cfg.crop == "none":
        sx = sy = torch.ones(b)
        tx = ty = torch.zeros(b)
    else:
        raise ValueError(f"unknown crop '{cfg.crop}'; choose resized, pad or none")
    flip = torch.where(torch.rand(b, generator=generator) < cfg.flip, -1.0, 1.0)
    if cfg.crop == "none" and not (flip < 0).any():
        return images
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    # Zero padding outside the image for "pad" crops, as torchvision's RandomCrop(padding=...).
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


ERASING_FILLS = ("zero", "mean", "random")


def _erase(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator,
           mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    b, _, h, w = images.shape
    apply = torch.rand(b, generator=generator) < cfg.erasing
    area = _uniform(b, *cfg.erasing_scale, generator) * h * w
    ratio = _uniform(b, math.log(0.3), math.log(3.3), generator).exp()
    eh = (area * ratio).sqrt().clamp(1, h).floor()
    ew = (area / ratio).sqrt().clamp(1, w).floor()
    y0 = (torch.rand(b, generator=generator) * (h - eh + 1)).floor()
    x0 = (torch.rand(b, generator=generator) * (w - ew + 1)).floor()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    box = ((ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1))
           & (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1)) & apply.view(b, 1, 1))
    box = box.unsqueeze(1).to(images.device)  # [B, 1, H, W]
    if cfg.erasing_fill == "zero":
        return images.masked_fill(box, 0.0)
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    if cfg.erasing_fill == "mean":
        fill = m.expand_as(images)
    elif cfg.erasing_fill == "random":
        s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
        fill = m + s * torch.randn(images.shape, generator=generator, dtype=images.dtype)
    else:
        raise ValueError(f"unknown erasing_fill '{cfg.erasing_fill}'; use one of "
                         f"{', '.join(ERASING_FILLS)}")
    return torch.where(box, fill.to(images.device), images)


def augment_batch(
    images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator,
    mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5),
) -> torch.Tensor:
    """Apply the training augmentation to float images ``[B, 3, H, W]`` in [0, 1].

    ``mean`` / ``std`` are the normalisation that follows (used by the "mean" and "random"
    erasing fills only).
    """
    b = images.shape[0]
    images = _affine(images, cfg, generator)
    if cfg.randaugment_ops > 0:
        images = rand_augment(images, cfg.randaugment_ops, cfg.randaugment_magnitude,
                              cfg.randaugment_bins, generator)
    if cfg.brightness > 0 or cfg.contrast > 0:
        bright = _uniform(b, 1 - cfg.brightness, 1 + cfg.brightness, generator).view(b, 1, 1, 1)
        contr = _uniform(b, 1 - cfg.contrast, 1 + cfg.contrast, generator).view(b, 1, 1, 1)
        level = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - level) * contr.to(images.device) + level) * bright.to(images.device)
        images = images.clamp(0, 1)
    if cfg.saturation > 0:
        factor = _uniform(b, 1 - cfg.saturation, 1 + cfg.saturation, generator)
        images = apply_op(images, "Color", factor.to(images.device) - 1)
    if cfg.noise > 0:
        apply = (torch.rand(b, generator=generator) < cfg.noise).float().view(b, 1, 1, 1)
        noise = torch.randn(images.shape, generator=generator) * cfg.noise_std
        images = (images + (noise * apply).to(images.device)).clamp(0, 1)
    if cfg.erasing > 0:
        images = _erase(images, cfg, generator, mean, std)
    return images
