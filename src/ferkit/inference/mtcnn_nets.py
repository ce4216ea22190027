"""The three MTCNN networks (Zhang et al. 2016), with the parameter names of the published weight
files (``conv1``, ``prelu1``, ..., ``dense6_3``) so they load with ``strict=True``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def face_probability(head: nn.Conv2d | nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """P(face) of the two-logit head ``head`` on features ``x``: the softmax's second column,
    computed as the sigmoid of the logit difference (the same number) by one output unit whose
    weights are the difference of the two rows, so no softmax runs over the channel axis.
    ``[B, C, h, w]`` -> ``[B, h, w]`` for a convolution, ``[N, C]`` -> ``[N]`` for a linear layer."""
    weight = head.weight[1:] - head.weight[:1]
    bias = head.bias[1:] - head.bias[:1]
    if isinstance(head, nn.Conv2d):
        return torch.sigmoid(F.conv2d(x, weight, bias))[:, 0]
    return torch.sigmoid(F.linear(x, weight, bias))[:, 0]


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12x12 window per output cell, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, H, W]`` -> face probability ``[B, h, w]``, box offsets ``[B, 4, h, w]``."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return face_probability(self.conv4_1, x), self.conv4_2(x)


def _flatten(x: torch.Tensor) -> torch.Tensor:
    # The weight files were converted from a model whose dense layers read features in
    # (width, height, channel) order.
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 3, 24, 24]`` -> face probability ``[N]``, box offsets ``[N, 4]``."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten(self.prelu3(self.conv3(x)))))
        return face_probability(self.dense5_1, x), self.dense5_2(x)


class ONet(nn.Module):
    """Output network on 48x48 crops: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[N, 3, 48, 48]`` -> probability ``[N]``, offsets ``[N, 4]``, landmarks ``[N, 10]``
        (five x then five y, relative to the crop)."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten(self.prelu4(self.conv4(x)))))
        return face_probability(self.dense6_1, x), self.dense6_2(x), self.dense6_3(x)
