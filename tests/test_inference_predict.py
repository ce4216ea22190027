"""The predictor on photos and crops, batching, the prior, attention figures and `ferkit predict`."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import tiny_overrides

from ferkit import api, load_config
from ferkit.cli import main as cli_main
from ferkit.engine.checkpoint import CheckpointError
from ferkit.inference import predictor as predictor_module
from ferkit.inference.attention import FRAME, LABEL, LEGEND, TILE, TITLE, shared_scale
from ferkit.inference.faces import DetectorWeightsError
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import adjust_logits
from ferkit.inference.results import FaceResult, Prediction, small_face_note

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed (dev extra)")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage_data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(skimage_data.coffee()).save(folder / "coffee.png")
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    return folder


def crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(count)]


def test_synthetic_checkpoint_warns(tiny_checkpoint: Path) -> None:
    with pytest.warns(UserWarning, match="trained on the synthetic dataset"):
        Predictor.from_checkpoint(tiny_checkpoint, device="cpu")


def test_batches_give_the_same_answers(predictor: Predictor) -> None:
    images = crops(5)
    predictor.batch_size = 2
    small = predictor.logits(images)
    predictor.batch_size = 64
    torch.testing.assert_close(small, predictor.logits(images))
    assert small.shape == (5, 7)


def test_logits_from_batch_is_the_network(predictor: Predictor) -> None:
    batch = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(predictor.logits_from_batch(batch), predictor.method.predict(batch))


def test_prior_in_predict(predictor: Predictor) -> None:
    images = crops(3)
    plain = predictor.logits(images)
    uniform = predictor.predict(images, prior="uniform", tau=0.5)
    expected = adjust_logits(plain, predictor.class_counts, "uniform", 0.5).softmax(dim=1)
    for row, probs in zip(uniform, expected):
        assert list(row.probabilities.values()) == pytest.approx(probs.tolist(), abs=1e-6)


def test_predict_photo(predictor: Predictor) -> None:
    try:
        found = predictor.predict_photo(skimage_data.astronaut())
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    assert len(found) == 1
    face = found[0]
    assert isinstance(face, FaceResult) and face.face == 1
    assert list(face.to_dict()) == ["face", "track", "box", "landmarks", "score", "label",
                                    "confidence", "probabilities", "note"]
    assert face.box == pytest.approx([178, 58, 268, 173], abs=3)
    assert np.asarray(face.landmarks).shape == (5, 2)
    assert face.label in predictor.class_names and sum(face.probabilities.values()) == pytest.approx(1)
    assert face["label"] == face.label  # the dict-style access of earlier versions
    # rounded in float64: no float32 noise such as 204.4199981689453 in the outputs
    points = [v for point in face.to_dict()["landmarks"] for v in point]
    assert all(v == round(v, 2) and len(repr(v).split(".")[1]) <= 2 for v in points)
    # the tiny model reads 32 px crops: a 90 px face is not small for it
    assert face.note is None
    assert predictor.predict_photo(skimage_data.coffee()) == []
    whole = predictor.predict_photo(skimage_data.coffee(), detect=False)
    assert whole[0].box == (0, 0, 600, 400) and whole[0].landmarks is None and whole[0].score is None


def test_predict_takes_one_image_or_a_sequence(predictor: Predictor, photos: Path) -> None:
    path = photos / "astronaut.png"
    one = predictor.predict(str(path))  # a string is one image, not a sequence of characters
    assert isinstance(one, Prediction) and one.label in predictor.class_names
    many = predictor.predict([str(path), skimage_data.astronaut()])
    assert isinstance(many, list) and len(many) == 2
    assert many[0].probabilities == pytest.approx(one.probabilities, abs=1e-6)
    assert predictor.predict(path).probabilities == pytest.approx(one.probabilities, abs=1e-6)
    assert predictor.predict(skimage_data.astronaut()).label == one.label  # an array [H, W, 3]
    assert predictor.predict(np.stack([crops(1)[0]] * 2)) == predictor.predict(crops(1) * 2)  # [B, H, W, 3]
    assert repr(predictor).startswith("Predictor(tiny_cnn / ce trained on synthetic, 7 classes (")


def test_small_faces_get_a_note(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    small = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((128, 128)))
    canvas = np.full((256, 256, 3), 128, np.uint8)
    canvas[64:192, 64:192] = small
    monkeypatch.setattr(predictor, "image_size", 64)  # as if the model read 64 px crops
    try:
        faces = predictor.predict_photo(canvas)
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    side = min(faces[0].box[2] - faces[0].box[0], faces[0].box[3] - faces[0].box[1])
    assert 16 < side < 32  # below half the model's input
    assert faces[0].note == f"small face: {side:.0f} px, model input 64 px; less reliable"
    assert small_face_note((0, 0, 32, 40), 64) is None  # half the input: no note


def test_large_photo_detected_on_a_downscaled_copy(predictor: Predictor) -> None:
    big = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((1024, 1024)))
    predictor.detect_max_side = 512
    try:
        found = predictor.predict_photo(big)
    finally:
        predictor.detect_max_side = 1600
    assert len(found) == 1
    assert found[0].box == pytest.approx([356, 116, 536, 346], abs=8)  # 2x the 512 px box


def test_from_pretrained_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(predictor_module, "pretrained_path", lambda: tmp_path / "none.safetensors")
    with pytest.raises(CheckpointError, match=r"packaged model .* is missing .* ferkit predict -c PATH"):
        Predictor.from_pretrained()


def test_attention_figures(predictor: Predictor, tmp_path: Path) -> None:
    paths = predictor.save_cam_overlays(crops(2), tmp_path / "single", ["a", "b"], mirror=True)
    assert [p.name for p in paths] == ["a.png", "b.png"]
    assert Image.open(paths[0]).size == (LABEL + 8 * TILE, 2 * (TILE + TITLE) + LEGEND)
    # the predicted class's tile is framed in black (a white frame vanished on the white page)
    best = predictor.predict(crops(2))[0].label
    left = LABEL + (1 + predictor.class_names.index(best)) * TILE
    pixels = np.asarray(Image.open(paths[0]))
    assert (pixels[TITLE:TITLE + TILE, left:left + FRAME] == 0).all()
    assert (pixels[TITLE:TITLE + FRAME, left:left + TILE] == 0).all()
    grid = predictor.save_cam_overlays(crops(3), tmp_path / "grid", grid=True)
    assert len(grid) == 1 and Image.open(grid[0]).height == 3 * (TILE + TITLE + LEGEND + 14)
    # One colour scale for all maps: a map whose values are half the other's stays at half.
    maps = torch.stack([torch.zeros(2, 2), torch.tensor([[0.0, 2.0], [2.0, 2.0]])])[None]
    maps[0, 0, 0, 1] = 1.0
    scaled = shared_scale(maps, 2)
    assert scaled[0, 0].max().item() == pytest.approx(0.5) and scaled[0, 1].max().item() == 1.0


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_photos_table_and_annotate(tiny_checkpoint: Path, photos: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(photos),
                              "--annotate", str(tmp_path / "ann")], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["face", "box", "(x1,y1,x2,y2)", "score", "label"]
    assert "happiness" in lines[0] and lines[0].endswith(" image")
    assert lines[1].split()[0] == "1" and lines[1].endswith(str(photos / "astronaut.png"))
    assert lines[2].endswith(f"{photos / 'broken.png'}: not a readable image (cannot identify image "
                             f"file '{photos / 'broken.png'}')")
    assert lines[2].split()[:5] == ["-", "-", "-", "error", "-"]
    assert lines[3].split()[:6] == ["-", "-", "-", "no", "face", "-"]
    # every column in line: the image column starts at the same place on every row
    starts = {line.index(str(photos)) for line in lines[1:]}
    assert len(starts) == 1 and lines[0].index(" image") + 1 == starts.pop()
    assert "broken.png: skipped: not a readable image" in err
    assert err.splitlines()[-1] == (f"summary: 2 images read (1 face; 1 without a face); 1 unreadable: "
                                    f"{photos / 'broken.png'}")
    assert [p.name for p in (tmp_path / "ann").iterdir()] == ["astronaut.png"]


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_jsonl_csv_and_old_form(tiny_checkpoint: Path, photos: Path, capsys) -> None:
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(photos / "*.png"),
                            "--format", "jsonl", "--prior", "uniform"], capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [Path(r["image"]).name for r in records] == ["astronaut.png", "broken.png",
                                                                        "coffee.png"]
    assert records[0]["face"] == 1 and len(records[0]["landmarks"]) == 5
    assert len(records[0]["probabilities"]) == 7
    assert [(r["status"], r["error"] is None) for r in records] == [("ok", True), ("error", False),
                                                                    ("no_face", True)]
    assert records[1]["error"].startswith("not a readable image")
    assert all(set(r) == set(records[0]) for r in records)  # the same fields on every line
    # The earlier positional form, crops without detection, CSV.
    code, out, _ = run_cli(["predict", str(tiny_checkpoint), str(photos / "coffee.png"),
                            str(photos / "astronaut.png"), "--no-detect", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [Path(r["image"]).name for r in rows] == ["coffee.png", "astronaut.png"]
    assert rows[0]["status"] == "ok" and rows[0]["x2"] == "600.0" and rows[0]["left_eye_x"] == ""
    probs = [float(rows[0][f"p_{n}"]) for n in ("surprise", "fear", "disgust", "happiness", "sadness",
                                                 "anger", "neutral")]
    assert sum(probs) == pytest.approx(1, abs=1e-5)


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_csv_is_rectangular(tiny_checkpoint: Path, photos: Path, tmp_path: Path, capsys) -> None:
    """Faces, no face, an unreadable file: every CSV row has every column; a folder's other files
    and subfolders are named in the summary line, and read with --recursive."""
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    for name in ("astronaut.png", "coffee.png", "broken.png"):
        (folder / name).write_bytes((photos / name).read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    (folder / "sub" / "again.png").write_bytes((photos / "astronaut.png").read_bytes())
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(folder), "--format", "csv"],
                             capsys)
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4 and {len(row) for row in rows} == {len(rows[0])} == {32}
    assert rows[0][:4] == ["image", "status", "error", "face"]
    assert rows[0][15:19] == ["left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y"]
    by_status = {row[1]: row for row in rows[1:]}
    assert by_status["error"][2].startswith("not a readable image") and by_status["error"][3] == ""
    assert by_status["no_face"][2:] == [""] * 30
    assert err.splitlines()[-1] == (
        f"summary: 2 images read (1 face; 1 without a face); 1 unreadable: {folder / 'broken.png'}; "
        f"1 file skipped (not an image type): {folder / 'notes.txt'}; 1 subfolder not searched "
        f"(add --recursive): {folder / 'sub'}")
    code, out, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(folder), "--format", "csv",
                              "--recursive"], capsys)
    assert [Path(row[0]).name for row in list(csv.reader(io.StringIO(out)))[1:]] == [
        "astronaut.png", "broken.png", "coffee.png", "again.png"]
    assert err.splitlines()[-1].startswith("summary: 3 images read (2 faces; 1 without a face)")


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_exit_status(tiny_checkpoint: Path, photos: Path, capsys) -> None:
    code, _, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(photos / "broken.png"),
                            str(photos / "missing.png")], capsys)
    assert code == 1 and "error: no image could be read (2 unreadable input(s))" in err
    code, _, err = run_cli(["predict", "-c", str(tiny_checkpoint), str(photos / "x.png"), "--prior", "a,b"],
                           capsys)
    assert code == 2 and "prior 'a,b' is not valid: use 'default', 'train', 'uniform' or" in err


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_files_bounded_batches(tiny_checkpoint: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferkit.inference import files

    seen: list[int] = []
    original = Predictor.classify_faces

    def spy(self, per_image, prior="train", tau=1.0):
        seen.append(len(per_image))
        return original(self, per_image, prior, tau)

    monkeypatch.setattr(Predictor, "classify_faces", spy)
    model = Predictor.from_checkpoint(tiny_checkpoint, device="cpu")
    inputs = [str(photos / "coffee.png")] * 5
    results = list(files.predict_files(model, inputs, detect=False, batch_size=2))
    assert seen == [2, 2, 1] and len(results) == 5 and all(r.status == "ok" for r in results)


@pytest.mark.filterwarnings("ignore:.*synthetic dataset")
def test_cli_without_checkpoint_uses_the_packaged_model(
    tiny_checkpoint: Path, photos: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setattr(predictor_module, "pretrained_path", lambda: tiny_checkpoint)
    code, out, _ = run_cli(["predict", str(photos / "astronaut.png")], capsys)
    assert code == 0 and out.splitlines()[1].split()[0] == "1"
    assert out.splitlines()[1].endswith(str(photos / "astronaut.png"))
    monkeypatch.setattr(predictor_module, "pretrained_path", lambda: tmp_path / "absent.safetensors")
    code, _, err = run_cli(["predict", str(photos / "astronaut.png")], capsys)
    assert code == 2 and "the packaged model" in err and "absent.safetensors is missing" in err


def test_attention_maps_refused_for_a_method_without_head_cams(tmp_path) -> None:
    """RUL (and fan, built on it) classify through their own fc head: CAMs from model.head would
    show nothing, so the predictor says so instead of drawing noise."""
    from ferkit.methods import METHODS

    # fan classifies through RUL's heads on its CBAM-refined map, so it inherits the flag
    assert [n for n in METHODS.names() if not METHODS.get(n).head_cams] == ["fan", "rul"]
    cfg = load_config(None, tiny_overrides(tmp_path / "rul", **{"method.name": "rul",
                                                                "train.epochs": 1}))
    api.train(cfg)
    predictor = Predictor.from_checkpoint(Path(cfg.output_dir) / "last.safetensors",
                                          warn_synthetic=False)
    assert not predictor.has_cams
    crop = np.zeros((32, 32, 3), dtype=np.uint8)
    assert len(predictor.predict([crop])) == 1
    with pytest.raises(ValueError, match="method 'rul' does not classify with the linear head"):
        predictor.cams([crop])


def test_default_prior_is_the_checkpoint_recommendation(tiny_checkpoint: Path, tmp_path: Path,
                                                        capsys) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from ship_model import ship

    shipped = ship(tiny_checkpoint, tmp_path / "shipped.safetensors",
                   {"prior": "uniform", "tau": 0.35, "how": "test"}, flip=True)
    plain = ship(tiny_checkpoint, tmp_path / "plain.safetensors")
    with pytest.warns(UserWarning, match="synthetic"):
        model = Predictor.from_checkpoint(shipped, device="cpu")
    images = crops(3)
    assert model.resolve_prior() == ("uniform", 0.35) and model.flip
    torch.testing.assert_close(model.logits(images), model.logits(images, "uniform", 0.35))
    torch.testing.assert_close(model.logits(images, tau=1.0), model.logits(images, "uniform", 1.0))
    assert not torch.equal(model.logits(images), model.logits(images, "train"))
    with pytest.warns(UserWarning, match="synthetic"):
        unflipped = Predictor.from_checkpoint(plain, device="cpu")
    assert unflipped.resolve_prior() == ("train", 1.0) and not unflipped.flip
    # the recommended flip: the mean of the face's and its mirror image's logits
    mirrored = [image[:, ::-1] for image in images]
    expected = (unflipped.logits(images, "train") + unflipped.logits(mirrored, "train")) / 2
    torch.testing.assert_close(model.logits(images, "train"), expected, atol=2e-2, rtol=0)
    pytest.importorskip("onnxruntime")
    from ferkit.inference.export import export_onnx

    onnx_model = Predictor.from_onnx(export_onnx(shipped, tmp_path / "m.onnx").path, threads=1,
                                     warn_synthetic=False)  # the recommendations travel along
    assert onnx_model.resolve_prior() == ("uniform", 0.35) and onnx_model.flip
    # the CLI's default is the recommendation too; --prior train is the model as trained
    image = tmp_path / "face.png"
    Image.fromarray(images[0]).save(image)
    outputs = []
    for extra in ([], ["--prior", "uniform", "--tau", "0.35"], ["--prior", "train"],
                  ["--no-flip"]):
        with pytest.warns(UserWarning, match="synthetic"):
            assert cli_main(["predict", "-c", str(shipped), "--no-detect", "--json", str(image),
                             *extra]) == 0
        outputs.append(json.loads(capsys.readouterr().out.splitlines()[0])["probabilities"])
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2] and outputs[0] != outputs[3]
