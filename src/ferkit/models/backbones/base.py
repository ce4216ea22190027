"""The backbone registry and what each backbone declares about itself (as timm's
``default_cfg``): strides, input size, feature channels, and where its ImageNet weights come from.

A backbone module registers its constructor with these facts::

    @BACKBONES.register("resnet18", native_stride=32, output_strides=(8, 16, 32),
                        input_size=224, min_input_size=64, num_features=512,
                        imagenet=(OnlineWeights("torchvision", "ResNet18_Weights"),))

Everything that needs a backbone fact (the config checks, the classifier, checkpoint metadata,
:mod:`ferkit.models.weights`, the contract tests) reads it from :func:`backbone_info`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferkit.registry import Registry

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class PackagedFile:
    """A weights file inside a pip package, usable offline; checked against its sha256.

    Attributes:
        package: the top-level package that holds it (located, never imported).
        file: its path inside the package.
        sha256: hex digest the file must have.
        pip: the command that installs the package.
    """

    package: str
    file: str
    sha256: str
    pip: str


@dataclass(frozen=True)
class OnlineWeights:
    """Weights an optional library downloads (once) on first use.

    Attributes:
        library: "torchvision" (``name``: its weights enum, ``IMAGENET1K_V1`` is taken) or
            "timm" (``name``: the pretrained model's name).
        name: see ``library``.
    """

    library: str
    name: str


WeightSource = PackagedFile | OnlineWeights


@dataclass(frozen=True)
class BackboneInfo:
    """Facts a backbone declares at registration.

    Attributes:
        native_stride: overall stride of its feature map as published.
        output_strides: the strides it can be built with (``output_stride=``; dilation in place
            of the last strides).
        input_size: side of the square input it was designed (and pretrained) for.
        min_input_size: smallest input side it is built and tested at (its fixed grid for
            backbones that take ``img_size``).
        num_features: channels of its feature map (default options).
        imagenet: where ``pretrained="imagenet"`` comes from, tried in order (empty: none known).
    """

    native_stride: int
    output_strides: tuple[int, ...]
    input_size: int
    min_input_size: int
    num_features: int
    imagenet: tuple[WeightSource, ...] = ()

    def feature_map_size(self, image_size: int, output_stride: int | None = None) -> int:
        """Side of the square feature map (and of every attention map) for a square input.

        Every downsampling layer of the registered backbones halves a side rounding up (3x3
        stride-2 convolutions with padding 1; Swin's grids divide exactly), so the side is
        ``image_size`` halved ``log2(stride)`` times: 4 at 112 px with stride 32, 7 with 16.
        """
        side = image_size
        for _ in range((output_stride or self.native_stride).bit_length() - 1):
            side = (side + 1) // 2
        return side


# The facts are plain data, so the generated catalogue holds them: no backbone module (and no
# torch) is imported to list the backbones or check a config against them.
BACKBONES: Registry[nn.Module] = Registry("backbone", info_type=BackboneInfo,
                                          catalogue="ferkit._registered:BACKBONES")

DILATED_STRIDES = (8, 16, 32)  # output strides of the convolutional backbones (ResNet, MobileNetV2)


def check_output_stride(output_stride: int) -> None:
    """Raise ValueError unless ``output_stride`` is one of :data:`DILATED_STRIDES`."""
    if output_stride not in DILATED_STRIDES:
        raise ValueError(f"output_stride must be one of {DILATED_STRIDES}, got {output_stride}")


def stage_stride(stride: int, current_stride: int, output_stride: int,
                 dilation: int) -> tuple[int, int]:
    """``(stride, dilation)`` for a stage that would downsample by ``stride`` when the features
    are already at ``current_stride``: past ``output_stride`` the stride becomes dilation (the
    stage's first block keeps the previous dilation; the caller passes it on)."""
    if stride > 1 and current_stride >= output_stride:
        return 1, dilation * stride
    return stride, dilation


def backbone_info(name: str) -> BackboneInfo:
    """The facts ``name`` registered (an unknown name raises with the choices)."""
    return BACKBONES.info(name)


def resolved_output_stride(backbone: str, output_stride: int | None = None) -> int:
    """``output_stride``, or the backbone's native stride when None."""
    return output_stride or backbone_info(backbone).native_stride


def output_stride_error(backbone: str, output_stride: int | None) -> str | None:
    """Why ``output_stride`` cannot be built for ``backbone`` (one line), or None when it can."""
    allowed = backbone_info(backbone).output_strides
    if output_stride is None or output_stride in allowed:
        return None
    return (f"model.output_stride: backbone '{backbone}' supports "
            f"{', '.join(map(str, allowed)) or 'only its own stride (leave it unset)'}; got "
            f"{output_stride}")


def feature_map_size(backbone: str, image_size: int, output_stride: int | None = None) -> int:
    """:meth:`BackboneInfo.feature_map_size` of a registered backbone."""
    return backbone_info(backbone).feature_map_size(image_size, output_stride)
