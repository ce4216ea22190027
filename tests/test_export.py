"""ONNX export (metadata, single file, dynamic batch, parity check) and the onnxruntime backend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import SHARED_DATA

from ferkit.cli import main
from ferkit.data import DATASETS
from ferkit.engine.checkpoint import ModelMeta, save_checkpoint
from ferkit.errors import CheckpointError, MissingFileError, UsageError
from ferkit.inference import Predictor
from ferkit.methods import create_method
from ferkit.models import build_classifier

onnx = pytest.importorskip("onnx", reason='needs the [onnx] extra: pip install "ferkit[onnx]"')
pytest.importorskip("onnxruntime", reason='needs the [onnx] extra: pip install "ferkit[onnx]"')

from ferkit.inference.export import ExportError, export_onnx, parity_crops  # noqa: E402
from ferkit.inference.onnx_backend import OnnxNet, OnnxUnavailable  # noqa: E402

NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
COUNTS = [5, 3, 2, 9, 4, 3, 10]
TEMPLATE = [[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]]


def write_tiny_checkpoint(path: Path, channels: int = 1, seed: int = 0, method_name: str = "ce",
                          **params: object) -> Path:
    """A tiny_cnn checkpoint through the real checkpoint writer (untrained, seeded)."""
    torch.manual_seed(seed)
    method = create_method(method_name, build_classifier("tiny_cnn", 7, width=8), COUNTS,
                           sum(COUNTS), params)
    meta = {"class_names": NAMES, "num_classes": 7, "image_size": 32, "channels": channels,
            "mean": [0.5, 0.45, 0.4], "std": [0.25, 0.2, 0.22], "backbone": "tiny_cnn",
            "backbone_options": {"width": 8}, "method": method_name, "method_params": params,
            "class_counts": COUNTS, "num_samples": sum(COUNTS), "dataset": "test-fixture",
            "align_template": TEMPLATE}
    return save_checkpoint(path, method, meta)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, onnx file) exported once with the default (dynamo) exporter."""
    folder = tmp_path_factory.mktemp("export")
    ckpt = write_tiny_checkpoint(folder / "tiny.safetensors")
    report = export_onnx(ckpt, folder / "onnx" / "tiny.onnx")
    assert report.max_abs_diff <= 1e-4 and report.labels_agree == 1.0
    assert report.parity_source == "generated faces (32)" and report.num_parity_images == 32
    return ckpt, report.path


def crops(count: int, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def test_metadata_makes_the_file_self_describing(tiny_export: tuple[Path, Path]) -> None:
    _, path = tiny_export
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["class_names"]) == NAMES
    assert json.loads(props["mean"]) == [0.5, 0.45, 0.4] and json.loads(props["std"]) == [0.25, 0.2, 0.22]
    assert props["input_size"] == "32" and props["colour_mode"] == "grayscale"
    assert json.loads(props["class_counts"]) == COUNTS
    assert json.loads(props["align_template"]) == TEMPLATE
    record = json.loads(props["ferkit"])
    assert record["backbone"] == "tiny_cnn" and record["method"] == "ce" and record["channels"] == 1
    # one file: no external tensor data, nothing else written beside it
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.onnx"]
    # dynamic batch axis on the input and both outputs
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param, value.name
    assert [o.name for o in model.graph.output] == ["logits", "cams"]


def test_methods_with_their_own_head_export_logits_only(tmp_path: Path) -> None:
    """rul classifies through its own head: its file has no meaningless cams output, the ONNX
    predictor refuses attention maps with the reason, and its logits still match torch's."""
    ckpt = write_tiny_checkpoint(tmp_path / "rul.safetensors", method_name="rul",
                                 feature_hw=4)  # tiny_cnn: stride 8 at 32 px
    report = export_onnx(ckpt, tmp_path / "rul.onnx")
    assert [o.name for o in onnx.load(str(report.path)).graph.output] == ["logits"]
    onnx_pred = Predictor.from_onnx(report.path, threads=1)
    torch_pred = Predictor.from_checkpoint(ckpt, device="cpu")
    images = crops(3)
    assert float((onnx_pred.logits(images) - torch_pred.logits(images)).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="own head"):
        onnx_pred.net.cams(onnx_pred.normalise(onnx_pred.to_batch(images)))
    with pytest.raises(ValueError, match="does not classify with the linear head"):
        onnx_pred.cams(images)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_backend_matches_torch(tiny_export: tuple[Path, Path], batch: int) -> None:
    ckpt, path = tiny_export
    torch_pred = Predictor.from_checkpoint(ckpt, device="cpu")
    onnx_pred = Predictor.from_onnx(path, threads=1)
    assert onnx_pred.backend == "onnx" and onnx_pred.class_names == tuple(NAMES)
    assert onnx_pred.meta["align_template"] == TEMPLATE and onnx_pred.channels == 1
    images = crops(batch)
    expected, got = torch_pred.logits(images), onnx_pred.logits(images)
    assert got.shape == (batch, 7)
    assert float((got - expected).abs().max()) < 1e-4
    assert [r["label"] for r in onnx_pred.predict(images)] == [r["label"] for r in
                                                              torch_pred.predict(images)]
    torch_cams, onnx_cams = torch_pred.cams(images), onnx_pred.cams(images)
    assert onnx_cams.shape == torch_cams.shape == (batch, 7, 4, 4)  # tiny_cnn: stride 8 at 32 px
    assert float((onnx_cams - torch_cams).abs().max()) < 1e-4
    flipping = Predictor.from_onnx(path, threads=1, flip=True)
    for pred, cams in ((torch_pred, torch_cams), (onnx_pred, onnx_cams), (flipping, onnx_cams)):
        logits, maps = pred.logits_and_cams(images)  # one run, the same values
        assert torch.allclose(logits, pred.logits(images, prior="train"), atol=1e-6)
        assert torch.allclose(maps, cams, atol=1e-6)  # the maps of the images, never the mirrors
    assert not torch.allclose(flipping.logits(images), onnx_pred.logits(images), atol=1e-6)


def test_parity_failure_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    real = OnnxNet.logits
    monkeypatch.setattr(OnnxNet, "logits", lambda self, batch: real(self, batch) + 0.5)
    with pytest.raises(ExportError, match=r"max \|logit difference\| 0\.5 > tolerance 0\.0001 on "
                       r"generated faces \(8\); nothing written"):
        export_onnx(ckpt, tmp_path / "bad.onnx", num_parity_images=8, exporter="torchscript")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_export_argument_errors(tmp_path: Path) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="--out must end in .onnx, got .*model.pt"):
        export_onnx(ckpt, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="unknown exporter 'jit'; use one of dynamo, torchscript"):
        export_onnx(ckpt, tmp_path / "m.onnx", exporter="jit")


def test_missing_extra_names_it(tiny_export: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(OnnxUnavailable, match=r"the ONNX backend needs the 'onnxruntime' package, "
                       r'which is not installed\. Install the optional extra: pip install "ferkit\[onnx\]"'):
        Predictor.from_onnx(tiny_export[1])


def test_foreign_onnx_and_wrong_backend(tiny_export: tuple[Path, Path], tmp_path: Path) -> None:
    model = onnx.load(str(tiny_export[1]))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(CheckpointError, match="not one written by ferkit export"):
        Predictor.from_onnx(tmp_path / "plain.onnx")
    with pytest.raises(UsageError, match="is an ONNX file; load it with backend='onnx'"):
        Predictor.from_checkpoint(tiny_export[1])
    with pytest.raises(UsageError, match="unknown backend 'tf'; use 'torch' or 'onnx'"):
        Predictor.from_checkpoint(tiny_export[0], backend="tf")
    with pytest.raises(MissingFileError, match="ONNX model not found: .*missing.onnx"):
        Predictor.from_onnx(tmp_path / "missing.onnx")


def test_cli_export_then_predict_with_onnx(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.safetensors", channels=3, seed=3)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out), "--exporter", "torchscript",
                 "--parity-images", "4"]) == 0
    printed = capsys.readouterr().out
    assert "parity on generated faces (4): max |logit difference|" in printed
    assert f"wrote {out}" in printed
    faces = [tmp_path / f"face{i}.png" for i in range(3)]
    from PIL import Image

    for face, image in zip(faces, crops(3)):
        Image.fromarray(image).save(face)
    lines = {}
    for backend, model in (("torch", ckpt), ("onnx", out)):
        assert main(["predict", *map(str, faces), "-c", str(model), "--no-detect", "--json",
                     "--backend", backend, "--threads", "1", "--device", "cpu"]) == 0
        lines[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in lines["onnx"]] == [r["label"] for r in lines["torch"]]
    for a, b in zip(lines["onnx"], lines["torch"]):
        assert abs(a["confidence"] - b["confidence"]) < 1e-5


def record(image_size: int, config: dict) -> ModelMeta:
    """Grayscale 7-class checkpoint metadata with a stored run config."""
    return ModelMeta(class_names=tuple(NAMES), num_classes=7, image_size=image_size,
                     mean=(0.5,) * 3, std=(0.25,) * 3, backbone="tiny_cnn", method="ce",
                     class_counts=tuple(COUNTS), channels=1, config=config)


@pytest.mark.realdata
def test_parity_crops_are_the_checkpoints_validation_images() -> None:
    root = SHARED_DATA / "ferplus"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (see ../shared/data/README.md)")
    meta = record(48, {"data": {"dataset": "ferplus", "root": str(root), "options": {}}})
    images, source = parity_crops(meta, count=5)
    dataset = DATASETS.create("ferplus", root=str(root), split="val", num_classes=7)
    assert source == f"{dataset.name} (val, first 5)"
    assert all(np.array_equal(a, dataset.load_image(i)) for i, a in enumerate(images))


def test_parity_crops_fall_back_to_generated_faces(tmp_path: Path) -> None:
    meta = record(24, {"data": {"dataset": "ferplus", "root": str(tmp_path / "absent")}})
    images, source = parity_crops(meta, count=3)
    assert source == "generated faces (3)" and [a.shape for a in images] == [(24, 24, 1)] * 3


def test_checkpoint_on_the_onnx_backend_is_exported_on_the_fly(tiny_export: tuple[Path, Path]) -> None:
    ckpt, _ = tiny_export
    onnx_pred = Predictor.from_checkpoint(ckpt, backend="onnx", threads=1)
    images = crops(3)
    assert onnx_pred.backend == "onnx" and isinstance(onnx_pred.net, OnnxNet)
    expected = Predictor.from_checkpoint(ckpt, device="cpu").logits(images)
    assert float((onnx_pred.logits(images) - expected).abs().max()) < 1e-4
    with pytest.raises(AttributeError, match="an ONNX predictor has no torch method"):
        onnx_pred.method  # noqa: B018


@pytest.mark.realdata
def test_shipped_model_exports_and_agrees_on_real_crops(tmp_path: Path) -> None:
    from ferkit.inference.predictor import pretrained_path

    if not pretrained_path().is_file():
        pytest.skip(f"the shipped model {pretrained_path()} is not in this checkout")
    report = export_onnx(pretrained_path(), tmp_path / "shipped.onnx", exporter="torchscript")
    assert report.max_abs_diff <= 1e-4 and report.labels_agree == 1.0
    assert report.num_parity_images == 32
