"""FERClassifier: backbone -> feature map ``[B, C, h, w]`` -> global average pool -> ``head``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ferkit.models.backbones import BACKBONES, backbone_info, output_stride_error
from ferkit.models.weights import load_pretrained


@dataclass
class ClassifierOutput:
    """What one forward pass gives.

    Attributes:
        logits: ``[B, K]`` class scores.
        feature_map: ``[B, C, h, w]`` last-stage features (CAMs are computed from it).
        features: ``[B, C]`` pooled features (input of the head).
    """

    logits: torch.Tensor
    feature_map: torch.Tensor
    features: torch.Tensor


class FERClassifier(nn.Module):
    """A backbone with global average pooling and a linear classification head named ``head``.

    Args:
        backbone: module with attribute ``num_features`` returning ``[B, C, h, w]``.
        num_classes: number of expression classes K.
        drop_rate: dropout before the head.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features: int = backbone.num_features
        self.num_classes = num_classes
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, images: torch.Tensor) -> ClassifierOutput:
        feature_map = self.backbone(images)  # [B, C, h, w]
        features = feature_map.mean(dim=(2, 3))  # [B, C]
        logits = self.head(self.dropout(features))  # [B, K]
        return ClassifierOutput(logits, feature_map, features)


def build_classifier(
    backbone: str, num_classes: int, pretrained: str | None = None, drop_rate: float = 0.0,
    output_stride: int | None = None, **backbone_kwargs: object,
) -> FERClassifier:
    """Create a registered backbone (optionally with weights) wrapped in a FERClassifier.

    ``output_stride`` None or the backbone's native stride builds the published network; another
    value (one of its registered ``output_strides``) is passed to the backbone's constructor.
    """
    error = output_stride_error(backbone, output_stride)
    if error:
        raise ValueError(error)
    if output_stride not in (None, backbone_info(backbone).native_stride):
        backbone_kwargs["output_stride"] = output_stride
    net = BACKBONES.create(backbone, **backbone_kwargs)
    if pretrained:
        load_pretrained(net, backbone, pretrained)
    return FERClassifier(net, num_classes, drop_rate)
