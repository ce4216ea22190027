"""Optimiser and learning-rate schedule from :class:`~ferkit.config.OptimConfig`."""

from __future__ import annotations

import math

import torch

from ferkit.config import OptimConfig
from ferkit.methods.base import Method


def effective_lr(cfg: OptimConfig, batch_size: int) -> float:
    """Base lr, linearly scaled by ``batch_size / lr_batch_reference`` when that is set."""
    return cfg.lr * batch_size / cfg.lr_batch_reference if cfg.lr_batch_reference else cfg.lr


def build_optimizer(method: Method, cfg: OptimConfig, batch_size: int) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over the method's parameter groups."""
    groups = method.param_groups(effective_lr(cfg, batch_size))
    if cfg.name == "adam":
        return torch.optim.Adam(groups, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer '{cfg.name}'")


def lr_factor(cfg: OptimConfig, step: int, steps_per_epoch: int, epochs: int,
              total_steps: int | None = None) -> float:
    """Multiplier of every group's base lr after ``step`` optimiser steps.

    "exponential": ``gamma ** epoch`` (stepped once per epoch, as ExponentialLR);
    "cosine": half-cosine from 1 to ``min_lr / lr`` over all steps; both after a linear warm-up.
    """
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.scheduler == "exponential":
        return cfg.gamma ** (step // max(steps_per_epoch, 1))
    if cfg.scheduler == "cosine":
        total = max((total_steps or steps_per_epoch * epochs) - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / total, 1.0)
        floor = cfg.min_lr / cfg.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int,
    total_steps: int | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR implementing :func:`lr_factor` (its state is just the step count)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch, epochs, total_steps)
    )
