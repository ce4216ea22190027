"""MTCNN on real photographs shipped by scikit-image (skips when a package is missing)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.cli import main as cli_main
from ferkit.inference import faces, mtcnn_boxes, mtcnn_onnx
from ferkit.inference.faces import (
    MTCNN,
    WEIGHT_SHA256,
    DetectorWeightsError,
    nms,
    stage_thresholds,
)
from ferkit.inference.mtcnn_nets import face_probability
from ferkit.inference.mtcnn_onnx import OnnxStages, ScaledPReLU, export_form
from ferkit.inference.mtcnn_pyramid import area_resize, pack_levels, pyramid_canvas
from ferkit.inference.predictor import Predictor

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed (dev extra)")

ASTRONAUT_FACE = (178.0, 58.0, 268.0, 173.0)  # measured once, checked by eye on the photo


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    try:
        return MTCNN.from_package(backend="torch")
    except DetectorWeightsError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def onnx_detector(detector: MTCNN) -> MTCNN:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (onnx extra)")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (onnx extra)")
    return MTCNN.from_package(backend="onnx", threads=1)


def face_canvas() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Copies of the astronaut's face, rescaled (face width ~90 px down to ~24 px) and rotated, on
    a plain grey canvas; returns the canvas and each copy's centre."""
    face = Image.fromarray(skimage_data.astronaut()[30:200, 140:305])  # 165 x 170 around the face
    canvas = Image.new("RGB", (640, 400), (128, 128, 128))
    placements = [(160, 0, (20, 20)), (100, 15, (220, 40)), (70, -20, (380, 60)),
                  (50, 0, (500, 250)), (36, 10, (120, 280)), (44, 0, (300, 300))]
    centres = []
    for width, angle, (x, y) in placements:
        tile = face.resize((width, round(width * 170 / 165)), Image.BILINEAR)
        tile = tile.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=(128, 128, 128))
        canvas.paste(tile, (x, y))
        centres.append((x + tile.width / 2, y + tile.height / 2))
    return np.asarray(canvas), centres


def test_astronaut_one_face_with_landmarks(detector: MTCNN) -> None:
    found = detector.detect(skimage_data.astronaut())
    assert len(found) == 1
    face = found[0]
    assert face.score > 0.99
    np.testing.assert_allclose(face.box, ASTRONAUT_FACE, atol=3)
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < nx < rx and mlx < nx < mrx  # left eye / mouth corner left of the nose
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose, above the mouth
    x1, y1, x2, y2 = face.box
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in face.landmarks)


def test_coffee_has_no_face(detector: MTCNN) -> None:
    assert detector.detect(skimage_data.coffee()) == []


def test_canvas_every_copy_found_no_false_positive(detector: MTCNN) -> None:
    canvas, centres = face_canvas()
    found = detector.detect(canvas)
    assert len(found) == len(centres)
    for cx, cy in centres:
        hits = [f for f in found if f.box[0] < cx < f.box[2] and f.box[1] < cy < f.box[3]]
        assert len(hits) == 1, (cx, cy, [f.box for f in found])
    smallest = min(f.box[2] - f.box[0] for f in found)
    assert smallest < 30


def test_grayscale_input_and_bad_shape(detector: MTCNN) -> None:
    gray = np.asarray(Image.fromarray(skimage_data.astronaut()).convert("L"))
    assert len(detector.detect(gray)) == 1
    assert detector.detect(np.full((5, 5, 3), 128, np.uint8)) == []  # smaller than any window
    with pytest.raises(ValueError, match=r"RGB image \[H, W, 3\] uint8, got shape \(4, 4, 2\)"):
        detector.detect(np.zeros((4, 4, 2), np.uint8))


def test_nms_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 5, 5.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # IoU(0, 1) = 90 / 110 > 0.5; box 3 inside box 0: IoU 0.25, min-overlap 1.0.
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [3, 2]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DetectorWeightsError, match=r"pip install --no-deps facenet-pytorch==2\.6\.0"):
        MTCNN.from_package()


def test_wrong_file_rejected(tmp_path) -> None:
    bad = tmp_path / "pnet.pt"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(DetectorWeightsError, match="has sha256 .* expected a2a71925"):
        faces.load_weight_file(bad, "pnet")


def test_nms_groups_never_suppress_each_other() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10.0]])
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert nms(boxes, scores, 0.5, groups=np.array([0, 1, 1])).tolist() == [0, 1]



def greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str) -> list[int]:
    """NMS the slow, obvious way: keep the best remaining box, drop those it overlaps, repeat."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order, keep = list(np.argsort(-scores, kind="stable")), []
    while order:
        best = order.pop(0)
        keep.append(best)
        w = np.minimum(boxes[order, 2], boxes[best, 2]) - np.maximum(boxes[order, 0], boxes[best, 0])
        h = np.minimum(boxes[order, 3], boxes[best, 3]) - np.maximum(boxes[order, 1], boxes[best, 1])
        inter = w.clip(min=0) * h.clip(min=0)
        union = (np.minimum(areas[order], areas[best]) if mode == "min"
                 else areas[order] + areas[best] - inter)
        order = [i for i, o in zip(order, inter / union) if o <= threshold]
    return keep


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_equals_the_greedy_definition_across_blocks(mode: str) -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 200, size=(3 * mtcnn_boxes.NMS_BLOCK + 7, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, size=corners.shape)], axis=1)
    scores = rng.uniform(size=len(boxes))
    kept = nms(boxes, scores, 0.4, mode=mode).tolist()
    assert kept == greedy_nms(boxes, scores, 0.4, mode)
    assert 10 < len(kept) < len(boxes) - 10  # suppression happened, and not of everything


def test_area_resize_equals_torch_area_interpolation() -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(3, 97, 131), dtype=np.uint8)
    for height, width in [(58, 79), (13, 17), (97, 131), (40, 131)]:
        expected = torch.nn.functional.interpolate(torch.from_numpy(image)[None].float(),
                                                   size=(height, width), mode="area")[0].numpy()
        got = area_resize(image, height, width)
        assert got.shape == (3, height, width) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-4)

# Real photographs scikit-image ships, and how many faces each holds.
PHOTOS = {"astronaut": (skimage_data.astronaut, 1), "camera": (skimage_data.camera, 1),
          "canvas": (lambda: face_canvas()[0], 6), "coffee": (skimage_data.coffee, 0),
          "chelsea": (skimage_data.chelsea, 0), "rocket": (skimage_data.rocket, 0)}


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_onnx_detector_matches_torch(detector: MTCNN, onnx_detector: MTCNN, name: str) -> None:
    load, count = PHOTOS[name]
    image = load()
    by_torch, by_onnx = detector.detect(image), onnx_detector.detect(image)
    assert (detector.backend, onnx_detector.backend) == ("torch", "onnx")
    assert len(by_torch) == len(by_onnx) == count
    for a, b in zip(by_torch, by_onnx):
        np.testing.assert_allclose(b.box, a.box, atol=1.0)
        np.testing.assert_allclose(b.landmarks, a.landmarks, atol=1.0)
        assert abs(a.score - b.score) < 1e-3


def test_packed_pyramid_gives_each_level_its_own_cells(detector: MTCNN) -> None:
    image = skimage_data.astronaut()
    levels, (height, width) = pack_levels(512, 512, detector.scales(512, 512))
    assert len(levels) == len(detector.scales(512, 512)) > 5
    for i, a in enumerate(levels):
        assert a.top % 2 == a.left % 2 == 0
        assert a.top + a.height <= height and a.left + a.width <= width
        for b in levels[i + 1:]:  # no two levels overlap
            assert (a.left + a.width <= b.left or b.left + b.width <= a.left
                    or a.top + a.height <= b.top or b.top + b.height <= a.top)
    canvas = pyramid_canvas(image, levels, (height, width))
    prob, offsets = detector.stages.run("pnet", canvas)
    for level in levels:
        alone = np.ascontiguousarray(canvas[:, :, level.top:level.top + level.height,
                                            level.left:level.left + level.width])
        prob_alone, offsets_alone = detector.stages.run("pnet", alone)
        cells = level.cells(prob[0])
        rows, cols = cells.shape
        assert rows == (level.height - 12) // 2 + 1 and cols == (level.width - 12) // 2 + 1
        np.testing.assert_allclose(cells, prob_alone[0, :rows, :cols], atol=1e-5)
        np.testing.assert_allclose(level.cells(offsets[0]), offsets_alone[0, :, :rows, :cols],
                                   atol=1e-5)


def test_onnx_cache_reused_and_checked(detector: MTCNN, tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (onnx extra)")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (onnx extra)")
    nets, digests = {"onet": detector.onet}, {"onet": WEIGHT_SHA256["onet"]}
    first = OnnxStages(nets, digests, threads=1, folder=tmp_path)
    path = first.paths["onet"]
    assert path.name == f"onet-165bfbe42940416c-{mtcnn_onnx.GRAPH_FORM}.onnx"
    crops = np.random.default_rng(0).normal(size=(3, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in detector.onet(torch.from_numpy(crops))]
    for got, want in zip(first.run("onet", crops), expected):
        np.testing.assert_allclose(got, want, atol=1e-5)

    exports = []
    real_export = mtcnn_onnx.export_net
    monkeypatch.setattr(mtcnn_onnx, "export_net", lambda *args: exports.append(args[1]) or real_export(*args))
    OnnxStages(nets, digests, folder=tmp_path)
    assert exports == []  # the cached file is used
    path.write_bytes(b"not an onnx file")
    OnnxStages(nets, digests, folder=tmp_path)
    assert exports == ["onet"]  # unreadable: exported again
    other = {"onet": "ab" * 32}
    (tmp_path / f"onet-abababababababab-{mtcnn_onnx.GRAPH_FORM}.onnx").write_bytes(path.read_bytes())
    stages = OnnxStages(nets, other, folder=tmp_path)
    assert exports == ["onet", "onet"]  # exported from other weights: exported again
    meta = stages.sessions["onet"].get_modelmeta().custom_metadata_map
    assert meta["source_sha256"] == "ab" * 32


def test_auto_backend_falls_back_to_torch(monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(faces, "OnnxStages", broken)
    try:
        assert MTCNN.from_package(backend="auto").backend == "torch"
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    assert "face detector on torch: the ONNX export failed (exporter broke)" in caplog.text
    with pytest.raises(RuntimeError, match="exporter broke"):
        MTCNN.from_package(backend="onnx")
    with pytest.raises(ValueError, match="unknown detector backend 'tpu'; use one of auto, torch, onnx"):
        MTCNN.from_package(backend="tpu")
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    assert not faces._use_onnx("auto", torch.device("cpu"))
    assert not faces._use_onnx("auto", torch.device("cuda"))


@pytest.mark.parametrize("min_face, threshold, message", [
    (5, 0.7, r"min_face \(--min-face\) must be between 10 and 10000 pixels, got 5: faces smaller"),
    (float("nan"), 0.7, r"min_face \(--min-face\) must be between 10 and 10000 pixels, got nan"),
    (20, 1.0, r"det_threshold \(--det-threshold\) must be above 0 and below 1, got 1: it is the face"),
    (20, 0.0, r"det_threshold \(--det-threshold\) must be above 0 and below 1, got 0:"),
])
def test_detector_options_checked(min_face: float, threshold: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MTCNN(min_face_size=min_face, thresholds=(0.6, 0.7, threshold))


def test_stage_thresholds() -> None:
    assert stage_thresholds(0.9) == (0.6, 0.7, 0.9)
    assert stage_thresholds(0.5) == (0.5, 0.5, 0.5)


def test_min_face_and_threshold_change_what_is_found() -> None:
    canvas, centres = face_canvas()
    try:
        large_only = MTCNN.from_package(backend="torch", min_face_size=60).detect(canvas)
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    assert 0 < len(large_only) < len(centres)
    for face in large_only:  # only the three largest copies (160, 100 and 70 px tiles)
        hits = [i for i, (cx, cy) in enumerate(centres)
                if face.box[0] < cx < face.box[2] and face.box[1] < cy < face.box[3]]
        assert len(hits) == 1 and hits[0] < 3
    strict = MTCNN.from_package(backend="torch", thresholds=stage_thresholds(0.9999)).detect(canvas)
    assert 0 < len(strict) < len(centres) and min(face.score for face in strict) >= 0.9999


def test_predictor_cli_and_serve_pass_and_check_the_knobs(tiny_checkpoint: Path, capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny model was trained on synthetic faces
        predictor = Predictor.from_checkpoint(tiny_checkpoint, device="cpu", min_face=40,
                                              det_threshold=0.9, detector_backend="torch")
        with pytest.raises(ValueError, match=r"min_face \(--min-face\) must be between 10"):
            Predictor.from_checkpoint(tiny_checkpoint, device="cpu", min_face=5)
        try:
            detector = predictor.detector
        except DetectorWeightsError as err:
            pytest.skip(str(err))
        assert detector.min_face_size == 40 and detector.thresholds == (0.6, 0.7, 0.9)
        assert detector.backend == "torch"
        for command in ("predict", "serve"):
            args = [command, str(tiny_checkpoint), *(["astronaut.png"] if command == "predict" else [])]
            assert cli_main([*args, "--det-threshold", "1.5"]) == 2
            assert ("error: det_threshold (--det-threshold) must be above 0 and below 1, got 1.5"
                    in capsys.readouterr().err)


def test_export_form_computes_the_same_networks(detector: MTCNN) -> None:
    # PReLU slopes of mixed sign (the published ones are): a*x + (1-a)*relu(x) is PReLU for any a
    prelu = torch.nn.PReLU(4)
    prelu.weight.data = torch.tensor([-1.3, -0.2, 0.4, 1.2])
    scaled = ScaledPReLU(4)
    scaled.load_state_dict(prelu.state_dict())
    x = torch.randn(2, 4, 5, 3)
    torch.testing.assert_close(scaled(x), prelu(x), atol=1e-6, rtol=0)
    # face probability: the softmax's second column, as the sigmoid of the logit difference
    head = torch.nn.Conv2d(8, 2, 1)
    features = torch.randn(2, 8, 5, 4)
    torch.testing.assert_close(face_probability(head, features), head(features).softmax(dim=1)[:, 1])
    dense = torch.nn.Linear(8, 2)
    torch.testing.assert_close(face_probability(dense, features[:, :, 0, 0]),
                               dense(features[:, :, 0, 0]).softmax(dim=1)[:, 1])
    for name, shape in [("pnet", (1, 3, 30, 26)), ("rnet", (3, 3, 24, 24)), ("onet", (2, 3, 48, 48))]:
        net = getattr(detector, name)
        form = export_form(net)
        assert not any(type(m) is torch.nn.PReLU for m in form.modules())
        assert type(net.prelu1) is torch.nn.PReLU  # the detector's own networks are untouched
        x = torch.randn(shape)
        with torch.no_grad():
            for got, want in zip(form(x), net(x)):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
