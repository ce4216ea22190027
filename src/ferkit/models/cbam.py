"""Convolutional Block Attention Module (Woo et al., "CBAM: Convolutional Block Attention
Module", ECCV 2018).

``CBAM(F) = M_s(F') * F'`` with ``F' = M_c(F) * F`` where

- channel attention ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``, one MLP
  ``C -> C / r -> C`` (ReLU between) shared by both pooled descriptors;
- spatial attention ``M_s(F) = sigmoid(conv7x7([mean_c(F); max_c(F)]))``.

This follows the paper's equations (2) and (3): the 7x7 convolution has a bias and no
BatchNorm (the authors' released code adds a BatchNorm after it and stacks max before mean).
"""

from __future__ import annotations

import torch
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models.backbones.resnet import BasicBlock, Bottleneck, ResNet


class ChannelAttention(nn.Module):
    """``x * sigmoid(MLP(avg_pool x) + MLP(max_pool x))`` with a shared bottleneck MLP.

    Args:
        channels: C.
        reduction: bottleneck ratio r (hidden width ``max(C // r, 1)``).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))  # [B, C]
        peak = self.mlp(x.amax(dim=(2, 3)))  # [B, C]
        return x * torch.sigmoid(avg + peak)[:, :, None, None]


class SpatialAttention(nn.Module):
    """``x * sigmoid(conv([mean_c x; max_c x]))``, a ``k x k`` convolution from 2 maps to 1.

    Args:
        kernel_size: odd kernel side (7 in the paper).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"CBAM kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))  # [B, C, h, w] * [B, 1, h, w]


class CBAM(nn.Module):
    """Channel attention, then spatial attention; shape-preserving ``[B, C, h, w]``.

    Args:
        channels: C.
        reduction: channel-MLP bottleneck ratio r (16 in the paper).
        kernel_size: spatial-attention kernel side (7 in the paper).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


def add_cbam_to_resnet(backbone: nn.Module, reduction: int = 16, kernel_size: int = 7) -> int:
    """Put a CBAM in every residual block of a ferkit ResNet, in place.

    As in Woo et al. (Fig. 3), CBAM refines the residual branch just before it is added to the
    shortcut: the block's last BatchNorm (``bn2`` of a BasicBlock, ``bn3`` of a Bottleneck)
    becomes ``Sequential(bn, CBAM)``, so its keys move from ``bnX.*`` to ``bnX.0.*``. Call it after
    loading pretrained weights.

    Returns:
        the number of CBAM modules inserted.

    Raises:
        ValueError: ``backbone`` is not a ferkit ResNet (resnet18 / resnet50).
    """
    if not isinstance(backbone, ResNet):
        raise ConfigError(
            f"CBAM in every residual block needs a ResNet backbone (resnet18, resnet50); got "
            f"{type(backbone).__name__}. Use cbam_placement='last' for other backbones."
        )
    inserted = 0
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in stage:
            name = "bn2" if isinstance(block, BasicBlock) else "bn3"
            if not isinstance(block, (BasicBlock, Bottleneck)):
                raise ValueError(f"unexpected ResNet block {type(block).__name__}")
            norm = getattr(block, name)
            setattr(block, name, nn.Sequential(norm, CBAM(norm.num_features, reduction,
                                                          kernel_size)))
            inserted += 1
    return inserted
