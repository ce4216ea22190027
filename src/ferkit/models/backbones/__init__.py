"""Backbones: pure-PyTorch networks returning a feature map ``[B, C, h, w]`` and ``num_features``.

Parameter names match torchvision (ResNet, MobileNetV2) and timm (Swin) so published weight files
load with ``strict=True``. Each module registers itself in :data:`BACKBONES` on import with its
:class:`~ferkit.models.backbones.base.BackboneInfo`: ``native_stride`` (the overall stride of its
feature map as published), the ``output_strides`` it can be built with (``output_stride=``
keyword; dilation replaces the last strides, so the attention maps are 7x7 at 112 px with stride
16), its input size, feature channels and ImageNet weight sources.

Importing this package imports no backbone (nor torch): :data:`BACKBONES` knows the names and
facts from the generated catalogue (``ferkit._registered``) and imports a backbone's module on
its first ``BACKBONES.get`` / ``create``.
"""

from ferkit.models.backbones.base import (
    BACKBONES,
    BackboneInfo,
    OnlineWeights,
    PackagedFile,
    backbone_info,
    feature_map_size,
    output_stride_error,
    resolved_output_stride,
)

__all__ = ["BACKBONES", "BackboneInfo", "OnlineWeights", "PackagedFile", "backbone_info",
           "feature_map_size", "output_stride_error", "resolved_output_stride"]
