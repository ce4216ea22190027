"""``ferkit serve``: a local web page and JSON endpoint that find and read the faces in a photo.

A Starlette app (optional extra ``[serve]``: starlette, uvicorn, python-multipart) with:

- ``GET /``: one page (HTML, JS and CSS served from the package; no CDN, no web fonts) where a
  person drops, picks or takes (webcam) a photo and sees each face boxed and labelled, a bar chart
  of its class probabilities, its attention overlay, and the deployment prior as a control.
- ``POST /api/predict``: the same prediction as JSON. The body is the image itself
  (``Content-Type: image/...``) or a multipart form with the file in field ``image``; the prior is
  the query or form field ``prior`` (``default``: what the model recommends, ``train``, ``uniform``
  or K comma-separated frequencies; the answer names the prior and strength applied), and
  ``detect=0`` classifies the whole image as one face crop.
  With ``live=SESSION`` (1-64 letters, digits, ``-`` or ``_``; the page's live webcam mode) the
  image is one frame of a stream: no attention overlays (they cost more than the prediction), and
  each face gets a ``track`` id, stable across the frames of that session (docs/video.md).
- ``GET /api/info``: class names, backend, upload cap.

Bad uploads get a 4xx with ``{"error": message}``: 413 past the size cap (checked on the header
and while reading, so a large upload is cut off early) or past the decode budget
(:data:`SERVE_MAX_PIXELS`, checked from the image header before decoding), 408 when the body does
not arrive within :data:`BODY_TIMEOUT_S`, 400 for what is not an image or a bad prior, 415 for a
``text/plain`` or url-encoded body, 403 for a POST from another site (its ``Origin`` is not this
server, or ``Sec-Fetch-Site`` says cross-site). A photo without a face is a normal answer (200,
``"faces": []``); faces are numbered (``face``, from 1) in reading order, rows top to bottom and
left to right. The model is loaded once; inference runs in the threadpool, one request at a time
through a lock (one model, one core: queuing is the honest behaviour), and at most
:data:`DECODE_SLOTS` photos are decoded or held decoded at once, so memory stays bounded however
many uploads arrive together (each upload in flight holds at most ``--max-upload-mb`` of raw
bytes). Every response carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a
same-origin Content-Security-Policy and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from ferkit.cam import normalized_cams
from ferkit.errors import MissingExtra
from ferkit.inference.faces import DEFAULT_MIN_FACE, DEFAULT_THRESHOLDS
from ferkit.inference.images import ImageReadError, check_pixels
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import NAMES as PRIOR_NAMES
from ferkit.inference.prior import parse_prior
from ferkit.inference.tracking import LiveTracks
from ferkit.limits import SERVE_BODY_TIMEOUT_S as BODY_TIMEOUT_S
from ferkit.limits import SERVE_DECODE_SLOTS as DECODE_SLOTS
from ferkit.limits import SERVE_MAX_PIXELS

if TYPE_CHECKING:
    import torch

STATIC_FILES = {"app.js": "text/javascript", "live.js": "text/javascript", "style.css": "text/css",
                "favicon.svg": "image/svg+xml"}
OVERLAY_SIDE = 112  # pixels of the attention overlay image
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
# Content types a cross-site page may POST without a CORS preflight and that are never a photo.
REFUSED_TYPES = ("text/plain", "application/x-www-form-urlencoded")


class BadUpload(Exception):
    """An upload the app refuses; ``status`` is the HTTP code, the message goes to the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _starlette() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MissingExtra('ferkit serve needs starlette and uvicorn; install the optional extra: '
                          'pip install "ferkit[serve]"') from err


def decode_upload(data: bytes, max_pixels: int = SERVE_MAX_PIXELS) -> np.ndarray:
    """Uploaded bytes -> uint8 ``[H, W, 3]`` RGB; :class:`BadUpload` (400/413) when they are not
    a readable image or hold more than ``max_pixels`` pixels (checked before decoding)."""
    from ferkit.inference.images import to_rgb_array

    if not data:
        raise BadUpload(400, "the upload is empty: choose a photo (JPEG, PNG, WebP, ...)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image.size, max_pixels, "ferkit serve --max-megapixels")
            return to_rgb_array(image)
    except ImageReadError as err:
        raise BadUpload(413, f"the image is too large: {err}") from err
    except Image.DecompressionBombError as err:
        raise BadUpload(413, f"the image has too many pixels to decode safely ({err}); "
                        "downscale it first") from err
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        raise BadUpload(400, f"the upload is not a readable image ({len(data)} bytes; "
                        f"{type(err).__name__}); send a JPEG, PNG or WebP photo") from err


class FacePage:
    """The model behind the app: one predictor, used by one request at a time."""

    def __init__(self, predictor: Predictor, max_upload_bytes: int,
                 max_pixels: int = SERVE_MAX_PIXELS) -> None:
        self.predictor = predictor
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.lock = threading.Lock()
        self.live = LiveTracks()
        self.decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)

    def info(self) -> dict[str, Any]:
        meta = self.predictor.meta
        default_prior, default_tau = self.predictor.resolve_prior()
        return {"class_names": list(self.predictor.class_names), "backend": self.predictor.backend,
                "model": f"{meta.get('backbone')} / {meta.get('method')} on {meta.get('dataset')}",
                "max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "priors": list(PRIOR_NAMES), "default_prior": {"prior": default_prior, "tau": default_tau}}

    def predict(self, data: bytes, prior_text: str | None, detect: bool, live: str | None = None
                ) -> dict[str, Any]:
        """Bytes of a photo (or of a frame of live session ``live``) -> JSON-ready result (runs
        in a worker thread)."""
        start = time.perf_counter()
        if live is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", live):
            raise BadUpload(400, f"live session '{live[:80]}' is not valid: use 1 to 64 letters, "
                            "digits, '-' or '_'")
        try:  # parse_prior checks finite positive values: one rule for the CLI and the page
            prior, tau = self.predictor.resolve_prior(
                parse_prior(prior_text, len(self.predictor.class_names)))
        except ValueError as err:
            raise BadUpload(400, str(err)) from None
        with self.decode_slots:  # decoded photos alive at once: at most DECODE_SLOTS
            image = decode_upload(data, self.max_pixels)
            with self.lock:
                found, crops = self.predictor.face_crops(image, detect)
                with_maps = self.predictor.has_cams and bool(crops) and live is None
                # one classifier run gives the answers and the attention maps
                logits, maps = self.predictor.logits_and_cams(crops) if with_maps else (None, None)
                faces = self.predictor.classify_faces([(found, crops)], prior, tau, logits)[0]
                if live is not None:
                    self.live.assign(live, faces)
                overlays = (self.overlays(crops, [face.label for face in faces], maps)
                            if with_maps else [None] * len(faces))
        # attention None: the model's maps would show nothing (or a live frame: not drawn)
        answers = [{**face.to_dict(), "attention": overlay} for face, overlay in zip(faces, overlays)]
        return {"width": int(image.shape[1]), "height": int(image.shape[0]), "faces": answers,
                "prior": prior, "tau": tau, "backend": self.predictor.backend,
                "elapsed_ms": round(1000 * (time.perf_counter() - start), 1)}

    def overlays(self, crops: list[np.ndarray], labels: list[str], cams: torch.Tensor) -> list[str]:
        """Each face's CAM of its predicted class (from the crops' maps ``[B, K, h, w]``) over
        the face crop, as a PNG data URL."""
        from ferkit.inference.attention import heat

        classes = [self.predictor.class_names.index(label) for label in labels]
        chosen = cams[list(range(len(classes))), classes][:, None]  # [B, 1, h, w]
        maps = normalized_cams(chosen, (OVERLAY_SIDE, OVERLAY_SIDE))
        urls = []
        for crop, face_map in zip(crops, maps[:, 0]):
            face = np.asarray(Image.fromarray(crop).resize((OVERLAY_SIDE,) * 2, Image.BILINEAR))
            blend = 0.5 * face / 255.0 + 0.5 * heat(face_map.numpy())
            buffer = io.BytesIO()  # lossless; the fastest compression (larger by ~10 %)
            Image.fromarray((blend.clip(0, 1) * 255).astype(np.uint8)).save(buffer, "PNG",
                                                                            compress_level=1)
            urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
        return urls


async def read_capped(request: Any, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request body, refusing (413) a declared or actual size above ``limit`` bytes and
    (408) a body that has not fully arrived after ``timeout_s`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadUpload(413, f"the upload is {int(declared):,} bytes; the limit is {limit:,} "
                        f"bytes ({limit / 1e6:g} MB, ferkit serve --max-upload-mb)")
    chunks, size = [], 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadUpload(413, f"the upload is over the limit of {limit:,} bytes "
                                f"({limit / 1e6:g} MB, ferkit serve --max-upload-mb)")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError as err:
        raise BadUpload(408, f"the upload did not arrive within {timeout_s:g} s ({size:,} bytes "
                        "received); send it again over a faster connection") from err
    return b"".join(chunks)


def cross_site_problem(headers: Any) -> tuple[int, str] | None:
    """Why a POST with these headers is refused as coming from another site (or with a body
    type that a cross-site page can send without asking), or None."""
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if fetch_site not in (None, "same-origin", "none") or (
            origin is not None and urlsplit(origin).netloc != headers.get("host")):
        return 403, (f"refused a request from another site ({origin or fetch_site}); the API "
                     "answers this page and local clients only")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in REFUSED_TYPES:
        return 415, (f"a {content_type} body is not a photo; send the image bytes with "
                     "Content-Type image/... or a multipart form with field 'image'")
    return None


async def _form_image(body: bytes, headers: Any) -> tuple[bytes, dict[str, str]]:
    """The ``image`` file and the text fields of a multipart body."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_part_size=64 * 1024).parse()
    except MultiPartException as err:
        raise BadUpload(400, f"malformed multipart form: {err}") from err
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise BadUpload(400, "the form has no file in field 'image'")
    data = await upload.read()
    return data, {k: v for k, v in form.items() if isinstance(v, str)}


def create_app(predictor: Predictor, max_upload_bytes: int = 10_000_000,
               max_pixels: int = SERVE_MAX_PIXELS) -> Any:
    """The Starlette app serving ``predictor`` (loaded once, shared by all requests)."""
    _starlette()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    page = FacePage(predictor, max_upload_bytes, max_pixels)
    static = resources.files("ferkit.inference").joinpath("static")

    async def index(request: Request) -> Response:
        return HTMLResponse(static.joinpath("index.html").read_text())

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return JSONResponse({"error": f"no file {name}"}, status_code=404)
        return Response(static.joinpath(name).read_text(), media_type=STATIC_FILES[name])

    async def info(request: Request) -> Response:
        return JSONResponse(page.info())

    async def predict(request: Request) -> Response:
        refused = cross_site_problem(request.headers)
        if refused:
            return JSONResponse({"error": refused[1]}, status_code=refused[0])
        try:
            body = await read_capped(request, max_upload_bytes)
            fields = dict(request.query_params)
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                body, form_fields = await _form_image(body, request.headers)
                fields.update(form_fields)
            detect = fields.get("detect", "1") not in ("0", "false", "no")
            result = await run_in_threadpool(page.predict, body, fields.get("prior"), detect,
                                             fields.get("live"))
        except BadUpload as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        return JSONResponse(result)

    async def favicon(request: Request) -> Response:
        return Response(static.joinpath("favicon.svg").read_text(), media_type="image/svg+xml")

    routes = [Route("/", index), Route("/static/{name}", asset), Route("/favicon.ico", favicon),
              Route("/api/info", info),
              Route("/api/predict", predict, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def run_server(checkpoint: str | None, host: str = "127.0.0.1", port: int = 8000,
               backend: str = "torch", device: str = "auto", max_upload_mb: float = 10.0,
               threads: int | None = None, min_face: float = DEFAULT_MIN_FACE,
               det_threshold: float = DEFAULT_THRESHOLDS[2], detector_backend: str = "auto",
               max_pixels: int = SERVE_MAX_PIXELS) -> None:
    """Load the model and the face detector once and serve the page with uvicorn (blocks until
    stopped); ``min_face``, ``det_threshold`` and ``detector_backend`` are the detector knobs of
    :class:`Predictor`, ``max_pixels`` the decode budget of one photo."""
    _starlette()
    import uvicorn

    options = {"device": device, "backend": backend, "threads": threads, "min_face": min_face,
               "det_threshold": det_threshold, "detector_backend": detector_backend}
    predictor = (Predictor.from_pretrained(**options) if checkpoint is None
                 else Predictor.from_checkpoint(checkpoint, **options))
    predictor.detector  # noqa: B018  (built now: the first request does not wait for it)
    app = create_app(predictor, int(max_upload_mb * 1e6), max_pixels)
    print(f"ferkit serve: {predictor.meta.get('backbone')} ({predictor.backend}) on "
          f"http://{host}:{port}/  (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
