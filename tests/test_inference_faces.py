"""MTCNN on real photographs shipped by scikit-image (skips when a package is missing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.inference import faces
from ferkit.inference.faces import MTCNN, DetectorWeightsError, nms

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed (dev extra)")

ASTRONAUT_FACE = (178.0, 58.0, 268.0, 173.0)  # measured once, checked by eye on the photo


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    try:
        return MTCNN.from_package()
    except DetectorWeightsError as err:
        pytest.skip(str(err))


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
