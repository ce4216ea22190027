"""A small CNN for the quick start, tests and smoke runs on CPU (not a published architecture)."""

from __future__ import annotations

import torch
from torch import nn

from ferkit.models.backbones.base import BACKBONES


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class TinyCNN(nn.Module):
    """Four conv stages (stride 2 each but the last): 112x112 input -> 14x14 feature map.

    Like every ferkit backbone it splits into ``forward_trunk`` and ``last_stage`` so methods that
    duplicate the last stage (BBN) work on it.

    Args:
        width: channels of the first stage (doubled per stage).
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = _block(3, width, 2)
        self.stage1 = _block(width, width * 2, 2)
        self.stage2 = _block(width * 2, width * 4, 2)
        self.last_stage = nn.Sequential(_block(width * 4, width * 8, 1))
        self.num_features = width * 8

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage2(self.stage1(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_stage(self.forward_trunk(x))  # [B, C, h, w]


@BACKBONES.register("tiny_cnn", native_stride=8, output_strides=(8,), input_size=112,
                    min_input_size=32, num_features=128)
def tiny_cnn(width: int = 16) -> TinyCNN:
    return TinyCNN(width)
