"""Backbones: pure-PyTorch networks returning a feature map ``[B, C, h, w]`` and ``num_features``.

Parameter names match torchvision (ResNet, MobileNetV2) and timm (Swin) so published weight files
load with ``strict=True``. Each module registers itself in :data:`BACKBONES` on import, declaring
its ``native_stride`` (the overall stride of its feature map as published) and the
``output_strides`` it can be built with (``output_stride=`` keyword; dilation replaces the last
strides, so the attention maps are 7x7 at 112 px with stride 16).
"""

from __future__ import annotations

from torch import nn

from ferkit.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")


def resolved_output_stride(backbone: str, output_stride: int | None = None) -> int | None:
    """``output_stride``, or the backbone's native stride when None (None if it declares none)."""
    return output_stride or BACKBONES.info(backbone).get("native_stride")


def output_stride_error(backbone: str, output_stride: int | None) -> str | None:
    """Why ``output_stride`` cannot be built for ``backbone`` (one line), or None when it can."""
    info = BACKBONES.info(backbone)
    allowed = info.get("output_strides", ())
    if output_stride is None or output_stride in allowed:
        return None
    return (f"model.output_stride: backbone '{backbone}' supports "
            f"{', '.join(map(str, allowed)) or 'only its own stride (leave it unset)'}; got "
            f"{output_stride}")


def feature_map_size(backbone: str, image_size: int, output_stride: int | None = None) -> int:
    """Side of the square feature map (and of every attention map) for a square input.

    Every downsampling layer of the registered backbones halves a side rounding up (3x3 stride-2
    convolutions with padding 1; Swin's grids divide exactly), so the side is ``image_size``
    halved ``log2(stride)`` times: 4 at 112 px with stride 32, 7 with stride 16.
    """
    stride = resolved_output_stride(backbone, output_stride)
    if stride is None:
        raise ValueError(f"backbone '{backbone}' declares no native_stride in its registration")
    side = image_size
    for _ in range(stride.bit_length() - 1):
        side = (side + 1) // 2
    return side

from ferkit.models.backbones import mobilenet, resnet, swin, tiny  # noqa: E402,F401  (registration)

__all__ = ["BACKBONES", "feature_map_size", "output_stride_error", "resolved_output_stride"]
