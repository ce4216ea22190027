"""Backbones: pure-PyTorch networks returning a feature map ``[B, C, h, w]`` and ``num_features``.

Parameter names match torchvision (ResNet, MobileNetV2) and timm (Swin) so published weight files
load with ``strict=True``. Each module registers itself in :data:`BACKBONES` on import.
"""

from __future__ import annotations

from torch import nn

from ferkit.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")

from ferkit.models.backbones import mobilenet, resnet, swin, tiny  # noqa: E402,F401  (registration)

__all__ = ["BACKBONES"]
