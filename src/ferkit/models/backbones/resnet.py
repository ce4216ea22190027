"""ResNet-18 / ResNet-50 (He et al., CVPR 2016) as feature-map backbones.

Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1`` .. ``layer4``,
``downsample.0/1``) so torchvision ImageNet files and the MS-Celeb-1M ResNet-18 files used by FER
papers load with ``strict=True``. There is no ``avgpool`` and no ``fc``: pooling and the head
live in :class:`ferkit.models.classifier.FERClassifier`.

``output_stride`` 16 (or 8) gives ``layer4`` (and ``layer3``) stride 1 and dilates their 3x3
convolutions instead, as torchvision's ``replace_stride_with_dilation`` and DeepLabV3 do (the first
block of a dilated stage keeps the previous dilation). No parameter changes shape, so torchvision
and MS-Celeb-1M files load unchanged; stride 32 builds exactly the standard network.
"""

from __future__ import annotations

import torch
from torch import nn

from ferkit.models.backbones.base import (
    BACKBONES,
    DILATED_STRIDES,
    OnlineWeights,
    check_output_stride,
    stage_stride,
)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, as torchvision "ResNet v1.5") -> 1x1 with a residual connection."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut (``downsample.0`` conv, ``downsample.1`` BN) when the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(_conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class ResNet(nn.Module):
    """ResNet trunk returning the last-stage feature map.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages.
        in_chans: input channels.
        output_stride: overall stride of the feature map: 32 (standard), 16 (``layer4``
            dilated) or 8 (``layer3`` and ``layer4`` dilated).

    Shapes:
        input ``[B, 3, H, W]`` -> output ``[B, num_features, H/s, W/s]`` for output stride ``s``
        (rounded up: 4x4 at 112 with s=32, 7x7 at 112 with s=16 or at 224 with s=32).
    """

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
        in_chans: int = 3, output_stride: int = 32,
    ) -> None:
        super().__init__()
        check_output_stride(output_stride)
        self.output_stride = output_stride
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        planes, in_planes = (64, 128, 256, 512), 64
        current_stride, dilation = 4, 1
        for stage, (width, depth) in enumerate(zip(planes, layers, strict=True), start=1):
            first_dilation = dilation
            stride, dilation = stage_stride(1 if stage == 1 else 2, current_stride, output_stride,
                                            dilation)
            current_stride *= stride
            blocks = []
            for i in range(depth):
                blocks.append(block(in_planes, width, stride if i == 0 else 1,
                                    first_dilation if i == 0 else dilation))
                in_planes = width * block.expansion
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.num_features: int = in_planes
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def last_stage(self) -> nn.Module:
        """The last stage (``layer4``), for methods that duplicate it (BBN); not a new key."""
        return self.layer4

    def forward_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Everything before :attr:`last_stage`: ``[B, 3, H, W]`` -> ``[B, C3, H/16, W/16]``
        (``H/8`` at output stride 8)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # [B, 64, H/4, W/4]
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.forward_trunk(images))  # [B, C, H/s, W/s]


@BACKBONES.register("resnet18", native_stride=32, output_strides=DILATED_STRIDES, input_size=224,
                    min_input_size=64, num_features=512,
                    imagenet=(OnlineWeights("torchvision", "ResNet18_Weights"),))
def resnet18(*, in_chans: int = 3, output_stride: int = 32) -> ResNet:
    """ResNet-18 trunk, ``num_features`` 512."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_chans=in_chans, output_stride=output_stride)


@BACKBONES.register("resnet50", native_stride=32, output_strides=DILATED_STRIDES, input_size=224,
                    min_input_size=64, num_features=2048,
                    imagenet=(OnlineWeights("torchvision", "ResNet50_Weights"),))
def resnet50(*, in_chans: int = 3, output_stride: int = 32) -> ResNet:
    """ResNet-50 trunk, ``num_features`` 2048."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_chans=in_chans, output_stride=output_stride)
