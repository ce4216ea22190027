"""ferkit serve: the JSON endpoint through an HTTP client, and against a live uvicorn server."""

from __future__ import annotations

import base64
import contextlib
import io
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.engine.checkpoint import save_checkpoint
from ferkit.inference import Predictor
from ferkit.inference.faces import MTCNN, DetectorWeightsError
from ferkit.methods import create_method
from ferkit.models import build_classifier

pytest.importorskip("starlette", reason='needs the [serve] extra: pip install "ferkit[serve]"')
pytest.importorskip("httpx2", reason="starlette's TestClient needs httpx2 (dev extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image not installed (dev extra)")

from starlette.testclient import TestClient  # noqa: E402

from ferkit.inference.serve import create_app  # noqa: E402

NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
COUNTS = [50, 10, 5, 90, 40, 30, 100]
ASTRONAUT_FACE = (178.0, 58.0, 268.0, 173.0)  # as in test_inference_faces
LIMIT = 1_500_000


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def tiny_predictor(folder: Path) -> Predictor:
    """An untrained, seeded tiny_cnn checkpoint written by the real checkpoint writer."""
    torch.manual_seed(0)
    method = create_method("ce", build_classifier("tiny_cnn", 7, width=8), COUNTS, sum(COUNTS))
    meta = {"class_names": NAMES, "num_classes": 7, "image_size": 32, "channels": 3,
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "backbone": "tiny_cnn",
            "backbone_options": {"width": 8}, "method": "ce", "method_params": {},
            "class_counts": COUNTS, "num_samples": sum(COUNTS), "dataset": "test-fixture"}
    return Predictor.from_checkpoint(save_checkpoint(folder / "tiny.safetensors", method, meta),
                                     device="cpu")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    try:
        MTCNN.from_package()
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    return tiny_predictor(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    return png_bytes(skimage_data.astronaut())


def test_good_photo(client: TestClient, predictor: Predictor, astronaut: bytes) -> None:
    response = client.post("/api/predict", content=astronaut, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["width"], result["height"], result["backend"]) == (512, 512, "torch")
    assert result["prior"] == "train" and len(result["faces"]) == 1
    face = result["faces"][0]
    np.testing.assert_allclose(face["box"], ASTRONAUT_FACE, atol=3)
    assert np.asarray(face["landmarks"]).shape == (5, 2) and face["score"] > 0.99
    assert face["label"] in NAMES and sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["confidence"] == max(face["probabilities"].values())
    # the same answer as the Python API on the same photo
    expected = predictor.predict_photo(skimage_data.astronaut())[0]
    assert face["label"] == expected["label"]
    assert face["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    overlay = Image.open(io.BytesIO(base64.b64decode(face["attention"].split(",", 1)[1])))
    assert face["attention"].startswith("data:image/png;base64,") and overlay.size == (112, 112)


def test_prior_control_and_multipart(client: TestClient, predictor: Predictor, astronaut: bytes) -> None:
    response = client.post("/api/predict", files={"image": ("a.png", astronaut, "image/png")},
                           data={"prior": "uniform"})
    assert response.status_code == 200, response.text
    face = response.json()["faces"][0]
    expected = predictor.predict_photo(skimage_data.astronaut(), prior="uniform")[0]
    assert response.json()["prior"] == "uniform" and face["label"] == expected["label"]
    assert face["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    explicit = client.post("/api/predict?prior=1,1,1,1,1,1,1", content=astronaut).json()
    assert explicit["faces"][0]["probabilities"] == pytest.approx(face["probabilities"], abs=1e-6)


def test_no_face_is_a_normal_answer(client: TestClient) -> None:
    response = client.post("/api/predict", content=png_bytes(skimage_data.coffee()))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["faces"] == [] and (result["width"], result["height"]) == (600, 400)
    assert "error" not in result


def test_faces_numbered_in_reading_order(client: TestClient) -> None:
    """Four astronauts of different sizes: the answer numbers them top row first, left to right,
    whatever order the detector found them in."""
    face = skimage_data.astronaut()
    canvas = Image.new("RGB", (900, 700), (128, 128, 128))
    # (left, top, side): two in the top row (the right one larger), two lower down
    for left, top, side in ((560, 0, 330), (40, 20, 300), (480, 360, 260), (60, 380, 200)):
        canvas.paste(Image.fromarray(face).resize((side, side)), (left, top))
    response = client.post("/api/predict", content=png_bytes(np.asarray(canvas)))
    faces = response.json()["faces"]
    assert [f["face"] for f in faces] == [1, 2, 3, 4]
    centres = [((f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2) for f in faces]
    assert centres[0][0] < centres[1][0] and centres[2][0] < centres[3][0]  # left to right
    assert max(centres[0][1], centres[1][1]) < min(centres[2][1], centres[3][1])  # top row first


@pytest.mark.parametrize("body, status, message", [
    (b"\x00garbage\xffbytes" * 10, 400, r"the upload is not a readable image \(140 bytes"),
    (b"", 400, "the upload is empty"),
])
def test_bad_photos(client: TestClient, body: bytes, status: int, message: str) -> None:
    response = client.post("/api/predict", content=body)
    assert response.status_code == status and re.search(message, response.json()["error"])


def test_favicon(client: TestClient) -> None:
    for url in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(url)
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg")
        assert response.text.startswith("<svg")


def test_bad_prior_and_bad_form(client: TestClient, astronaut: bytes) -> None:
    response = client.post("/api/predict?prior=1,2", content=astronaut)
    assert response.status_code == 400
    assert response.json()["error"] == ("prior '1,2' is not valid: use 'default', 'train', 'uniform' or 7 "
                                        "finite positive comma-separated class frequencies")
    response = client.post("/api/predict?prior=inf,1,1,1,1,1,1", content=astronaut)
    assert response.status_code == 400 and "7 finite positive" in response.json()["error"]
    response = client.post("/api/predict", files={"photo": ("a.png", astronaut, "image/png")})
    assert response.status_code == 400
    assert response.json()["error"] == "the form has no file in field 'image'"


def test_oversized_upload_declared_and_streamed(client: TestClient) -> None:
    big = b"\xff" * (LIMIT + 1)
    response = client.post("/api/predict", content=big)
    assert response.status_code == 413
    assert response.json()["error"] == ("the upload is 1,500,001 bytes; the limit is 1,500,000 "
                                        "bytes (1.5 MB, ferkit serve --max-upload-mb)")

    def chunks() -> Iterator[bytes]:  # no content-length: the cap is enforced while reading
        for _ in range(4):
            yield b"\xff" * 500_000

    response = client.post("/api/predict", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == ("the upload is over the limit of 1,500,000 bytes "
                                        "(1.5 MB, ferkit serve --max-upload-mb)")


def test_page_and_assets_are_local(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Drop a photo here" in page.text
    info = client.get("/api/info").json()
    assert info["class_names"] == NAMES and info["max_upload_bytes"] == LIMIT
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    assert client.get("/static/secret.py").status_code == 404
    static = resources.files("ferkit.inference").joinpath("static")
    for item in static.iterdir():  # nothing fetched from outside: no absolute URLs, no @import
        text = item.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a URL
        assert not re.search(r"https?://|//cdn|@import|fonts\.", text), item.name


@contextlib.contextmanager
def live_server(predictor: Predictor) -> Iterator[str]:
    """The app on a real uvicorn server on a free port of 127.0.0.1, in a thread; yields its URL."""
    import uvicorn

    config = uvicorn.Config(create_app(predictor, max_upload_bytes=LIMIT), host="127.0.0.1", port=0,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_url(predictor: Predictor) -> Iterator[str]:
    with live_server(predictor) as url:
        yield url


def test_concurrent_requests_on_a_live_server(live_url: str, astronaut: bytes) -> None:
    import httpx2

    coffee = png_bytes(skimage_data.coffee())
    bodies = [astronaut, b"not an image", astronaut, coffee, astronaut, astronaut]

    def post(body: bytes) -> httpx2.Response:
        return httpx2.post(f"{live_url}/api/predict", content=body, timeout=60)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(post, bodies))
    assert [r.status_code for r in responses] == [200, 400, 200, 200, 200, 200]
    faces = [r.json()["faces"] for r in responses if r.status_code == 200]
    assert faces[2] == []  # coffee: no face
    del faces[2]
    assert all(f == faces[0] for f in faces)  # one model, one lock: identical answers


def test_onnx_backend_serves_the_same_answer(predictor: Predictor, astronaut: bytes,
                                             tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason='needs the [onnx] extra: pip install "ferkit[onnx]"')
    from ferkit.inference.export import export_onnx

    ckpt = save_checkpoint(tmp_path / "same.safetensors", predictor.method, predictor.meta)
    onnx_predictor = Predictor.from_onnx(export_onnx(ckpt, tmp_path / "m.onnx", exporter="torchscript",
                                                     num_parity_images=4).path, threads=1)
    answers = {}
    for name, model in (("torch", predictor), ("onnx", onnx_predictor)):
        with TestClient(create_app(model, max_upload_bytes=LIMIT)) as test_client:
            response = test_client.post("/api/predict?prior=uniform", content=astronaut)
        assert response.status_code == 200 and response.json()["backend"] == name
        answers[name] = response.json()["faces"][0]
    overlays = [np.asarray(Image.open(io.BytesIO(base64.b64decode(answers[name]["attention"]
                                                                  .split(",", 1)[1]))), np.int16)
                for name in ("torch", "onnx")]
    assert np.abs(overlays[0] - overlays[1]).max() <= 2  # the same map of the same class
    assert answers["onnx"]["label"] == answers["torch"]["label"]
    assert answers["onnx"]["box"] == answers["torch"]["box"]
    assert answers["onnx"]["probabilities"] == pytest.approx(answers["torch"]["probabilities"], abs=1e-5)


def test_cli_serve_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from ferkit.cli import main
    from ferkit.inference.predictor import pretrained_path

    if not pretrained_path().is_file():
        assert main(["serve", "--port", "0"]) == 2
        assert "error: the packaged model" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # the [serve] extra "not installed"
    assert main(["serve", "missing.safetensors"]) == 2
    assert capsys.readouterr().err == ('error: ferkit serve needs starlette and uvicorn; install the '
                                       'optional extra: pip install "ferkit[serve]"\n')


def test_decode_budget_is_checked_from_the_header(predictor: Predictor) -> None:
    """A 4000x3000 grey PNG (tiny when compressed) over a 10-megapixel budget: refused before
    decoding, naming the size, the budget and the option that raises it."""
    body = png_bytes(np.zeros((3000, 4000), np.uint8))
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT, max_pixels=10_000_000)) as app:
        response = app.post("/api/predict", content=body, headers={"content-type": "image/png"})
    assert response.status_code == 413
    assert response.json()["error"] == (
        "the image is too large: 4000x3000 is 12.0 megapixels, over the decode budget of 10 "
        "megapixels (about 30 MB decoded); downscale it (faces need far fewer pixels) or raise "
        "the budget with ferkit serve --max-megapixels")


def test_decodes_are_bounded(predictor: Predictor, astronaut: bytes,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ferkit.inference import serve

    live, peak, guard = [0], [0], threading.Lock()
    real = serve.decode_upload

    def counting(data: bytes, max_pixels: int) -> np.ndarray:
        with guard:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        try:
            time.sleep(0.2)  # long enough for every waiting request to pile up here, unbounded
            return real(data, max_pixels)
        finally:
            with guard:
                live[0] -= 1

    monkeypatch.setattr(serve, "decode_upload", counting)
    page = serve.FacePage(predictor, LIMIT)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: page.predict(astronaut, None, True), range(8)))
    assert all(r["faces"] for r in results) and peak[0] == serve.DECODE_SLOTS


@pytest.mark.parametrize("headers, status, message", [
    ({"origin": "http://evil.example", "content-type": "image/png"}, 403,
     r"refused a request from another site \(http://evil.example\)"),
    ({"sec-fetch-site": "cross-site"}, 403, r"another site \(cross-site\)"),
    ({"origin": "null"}, 403, "another site"),
    ({"content-type": "text/plain"}, 415, "a text/plain body is not a photo"),
])
def test_cross_site_and_simple_posts_are_refused(client: TestClient, astronaut: bytes,
                                                 headers: dict[str, str], status: int,
                                                 message: str) -> None:
    response = client.post("/api/predict", content=astronaut, headers=headers)
    assert response.status_code == status and re.search(message, response.json()["error"])
    same = client.post("/api/predict", content=astronaut, headers={
        "origin": "http://testserver", "sec-fetch-site": "same-origin",
        "content-type": "image/png"})
    assert same.status_code == 200


def test_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/info", "/static/app.js", "/static/missing"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_body_read_timeout() -> None:
    import asyncio

    from ferkit.inference.serve import BadUpload, read_capped

    class Trickle:  # a client that sends one byte and then nothing
        headers: dict[str, str] = {}

        async def stream(self):
            yield b"x"
            await asyncio.sleep(60)

    with pytest.raises(BadUpload, match=r"did not arrive within 0.2 s \(1 bytes received\)") as err:
        asyncio.run(read_capped(Trickle(), 1000, timeout_s=0.2))
    assert err.value.status == 408
