"""Inference on new images from a checkpoint or an exported ONNX file: photos (detect -> align ->
classify) or face crops.

The checkpoint (or the ONNX file's metadata) carries everything preprocessing needs: input size,
channels, normalisation, class names, training class counts (for the deployment prior) and
optionally the alignment template. The classifier runs behind one small interface (``logits`` and
``cams`` of a normalised batch) with two backends: :class:`TorchNet` and onnxruntime's
:class:`~ferkit.inference.onnx_backend.OnnxNet`. The face detector runs on onnxruntime when it is
installed and the device is the CPU, else in torch (``detector_backend``).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

from ferkit.engine.checkpoint import CheckpointError, ModelMeta, load_model
from ferkit.engine.evaluate import resolve_device
from ferkit.errors import UsageError
from ferkit.inference.align import align_face, template_from_meta
from ferkit.inference.attention import attention_figure, stack_figures
from ferkit.inference.export import export_onnx
from ferkit.inference.face_layout import clip_box, reading_order
from ferkit.inference.faces import (
    DEFAULT_MIN_FACE,
    DEFAULT_THRESHOLDS,
    MTCNN,
    Face,
    check_detector_options,
    stage_thresholds,
)
from ferkit.inference.images import downscale_for_detection
from ferkit.inference.onnx_backend import OnnxNet
from ferkit.inference.preprocess import ImageInput, as_rgb, face_batch, normalise
from ferkit.inference.prior import DEFAULT, Prior, adjust_logits, log_target_prior, resolve_prior
from ferkit.inference.results import FaceResult, Prediction, small_face_note
from ferkit.inference.torch_backend import TorchNet
from ferkit.inference.video import FrameResult, VideoOptions, VideoSource, predict_frames
from ferkit.methods import METHODS, Method

SingleImage = str | Path | Image.Image  # or an array [H, W] / [H, W, 3]: see _is_single
PRETRAINED = "weights/ferplus_mobilenet_v2.safetensors"


def pretrained_path() -> Path:
    """Where the packaged model lives (it may be absent in a source checkout)."""
    return Path(str(resources.files("ferkit.inference").joinpath(PRETRAINED)))


def backend_for(model_path: str | Path | None, backend: str | None = None) -> str:
    """``backend`` when given, else the one the model file needs: ``onnx`` for a ``.onnx`` file,
    ``torch`` for a checkpoint (and for the packaged model, ``model_path`` None)."""
    if backend is not None:
        return backend
    return "onnx" if model_path and str(model_path).lower().endswith(".onnx") else "torch"


def _is_single(images: object) -> bool:
    """One image (a path, a Pillow image, a 2-D or 3-D array) rather than a sequence of them."""
    if isinstance(images, (str, Path, Image.Image)):
        return True
    return isinstance(images, np.ndarray) and images.ndim in (2, 3)


def _warn_if_synthetic(meta: ModelMeta | dict[str, Any], path: Path | str) -> None:
    dataset = meta.dataset if isinstance(meta, ModelMeta) else meta.get("dataset")
    if dataset == "synthetic":
        warnings.warn(f"{path} was trained on the synthetic dataset (generated shapes, not "
                      "faces): its answers on real photos mean nothing", UserWarning, stacklevel=3)


class Predictor:
    """A trained classifier (torch or onnxruntime) plus its preprocessing, ready for photos and
    face crops.

    Example:
        >>> predictor = Predictor.from_pretrained()
        >>> face = predictor.predict_photo("astronaut.png")[0]
        >>> face.face, face.label, [round(v) for v in face.box]
        (1, 'happiness', [180, 59, 268, 174])
        >>> Predictor.from_onnx("model.onnx").predict("face.png").label
        'happiness'

    Detector knobs (also keyword arguments of the ``from_*`` constructors): ``min_face``, the
    smallest face side in pixels it looks for (default 20; larger is faster), ``det_threshold``,
    the face probability a detection needs (default 0.7), and ``detector_backend`` ("auto",
    "torch" or "onnx"). ``flip``: average each face's logits with its mirror image's (None: as
    the checkpoint recommends, metadata ``test_time_flip``; it doubles the classifier's work).
    """

    def __init__(self, net: TorchNet | OnnxNet, meta: ModelMeta | dict[str, Any], batch_size: int = 64,
                 detect_max_side: int = 1600, min_face: float = DEFAULT_MIN_FACE,
                 det_threshold: float = DEFAULT_THRESHOLDS[2], detector_backend: str = "auto",
                 threads: int | None = None, flip: bool | None = None) -> None:
        check_detector_options(min_face, det_threshold, detector_backend)
        self.net = net
        self.backend: str = net.backend
        record = meta if isinstance(meta, ModelMeta) else ModelMeta.from_dict(meta)
        self.record = record
        self.meta = record.to_dict()  # the stored form, as a dict
        self.device: torch.device = net.device
        self.class_names: tuple[str, ...] = record.class_names
        self.image_size: int = record.image_size
        self.channels: int = record.channels
        self.mean: tuple[float, ...] = record.mean
        self.std: tuple[float, ...] = record.std
        self.class_counts: list[int] = list(record.class_counts)
        self.flip: bool = record.test_time_flip if flip is None else bool(flip)
        self.template = template_from_meta(self.meta)
        self.batch_size = batch_size
        self.detect_max_side = detect_max_side
        self.min_face = min_face
        self.det_threshold = det_threshold
        self.detector_backend = detector_backend
        self.threads = threads
        self._detector: MTCNN | None = None

    def __repr__(self) -> str:
        meta = self.meta
        return (f"Predictor({meta.get('backbone')} / {meta.get('method')} trained on "
                f"{meta.get('dataset')}, {len(self.class_names)} classes "
                f"({', '.join(self.class_names)}), input {self.image_size}x{self.image_size}, "
                f"backend={self.backend}, device={self.device})")

    @property
    def method(self) -> Method:
        """The torch method (torch backend only)."""
        if not isinstance(self.net, TorchNet):
            raise AttributeError("an ONNX predictor has no torch method; use "
                                 "Predictor.from_checkpoint(path, backend='torch')")
        return self.net.method

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", warn_synthetic: bool = True,
                        backend: str = "torch", threads: int | None = None, **detector: Any
                        ) -> Predictor:
        """Rebuild the method from the checkpoint's metadata and load its weights strictly.

        Args:
            path: a ferkit ``.safetensors`` checkpoint, or (onnx backend) a ``.onnx`` file from
                ``ferkit export``; a checkpoint given to the onnx backend is exported to a
                temporary file first (with the export's parity check).
            device: torch device ("auto": cuda when available); onnxruntime runs on the CPU.
            warn_synthetic: warn when the model was trained on ferkit's synthetic data.
            backend: "torch" or "onnx".
            threads: onnxruntime intra-op threads (classifier with the onnx backend, and the face
                detector; None = all cores).
            **detector: ``min_face``, ``det_threshold``, ``detector_backend``, ``flip`` (see the
                class).
        """
        if backend not in ("torch", "onnx"):
            raise UsageError(f"unknown backend '{backend}'; use 'torch' or 'onnx'")
        if backend == "onnx":
            return cls._onnx_from_any(Path(path), threads, warn_synthetic, **detector)
        if Path(path).suffix == ".onnx":
            raise UsageError(f"{path} is an ONNX file; load it with backend='onnx' "
                             "(CLI: --backend onnx) or Predictor.from_onnx")
        loaded = load_model(path)
        if warn_synthetic:
            _warn_if_synthetic(loaded.meta, loaded.path)
        return cls(TorchNet(loaded.method, resolve_device(device)), loaded.meta, threads=threads,
                   **detector)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, warn_synthetic: bool = True,
                  **detector: Any) -> Predictor:
        """Load a ``.onnx`` file written by ``ferkit export`` on onnxruntime (CPU); ``detector``:
        the detector knobs of the class."""
        net = OnnxNet(path, threads)
        if warn_synthetic:
            _warn_if_synthetic(net.meta, path)
        return cls(net, net.meta, threads=threads, **detector)

    @classmethod
    def _onnx_from_any(cls, path: Path, threads: int | None, warn_synthetic: bool, **detector: Any
                       ) -> Predictor:
        if path.suffix == ".onnx":
            return cls.from_onnx(path, threads, warn_synthetic, **detector)
        with tempfile.TemporaryDirectory(prefix="ferkit-onnx-") as tmp:
            onnx_path = export_onnx(path, Path(tmp) / "model.onnx").path
            # the session keeps the model after the folder is gone
            return cls.from_onnx(onnx_path, threads, warn_synthetic, **detector)

    @classmethod
    def from_pretrained(cls, device: str = "auto", backend: str = "torch", threads: int | None = None,
                        **detector: Any) -> Predictor:
        """The model shipped in the package (MobileNetV2 trained on FERPlus, see the model card);
        ``detector``: the detector knobs of the class."""
        path = pretrained_path()
        if not path.is_file():
            raise CheckpointError(
                f"the packaged model {path} is missing (a source checkout without the weights "
                "file, or a broken install). Reinstall ferkit, or pass a checkpoint: "
                "Predictor.from_checkpoint(PATH) / ferkit predict -c PATH IMAGE")
        return cls.from_checkpoint(path, device, backend=backend, threads=threads, **detector)

    @property
    def detector(self) -> MTCNN:
        """The face detector, built on first use."""
        if self._detector is None:
            self._detector = MTCNN.from_package(
                device=self.device, backend=self.detector_backend, threads=self.threads,
                min_face_size=self.min_face, thresholds=stage_thresholds(self.det_threshold))
        return self._detector

    def to_batch(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Inputs -> uint8 ``[B, C, S, S]`` at the model's size and colour mode, as in training."""
        return face_batch(images, self.image_size, self.channels)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, S, S]`` from :meth:`to_batch` -> the network's normalised float input."""
        return normalise(images, self.mean, self.std, self.device)

    def logits_from_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[B, 3, S, S]`` -> ``[B, K]`` float32 on the CPU, on either backend;
        with :attr:`flip` the mean of the batch's and its mirror images' logits (one call of the
        network on both)."""
        return self._classify(batch, with_cams=False)[0]

    def _classify(self, batch: torch.Tensor, with_cams: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The one place the classifier runs: logits ``[B, K]`` as :meth:`logits_from_batch`,
        and (``with_cams``) the batch's class activation maps ``[B, K, h, w]`` from the same
        call."""
        count = len(batch)
        if self.flip:
            batch = torch.cat([batch, batch.flip(-1)])
        logits, cams = self.net.logits_and_cams(batch) if with_cams else (self.net.logits(batch), None)
        if self.flip:
            logits = (logits[:count] + logits[count:]) / 2
        return logits, None if cams is None else cams[:count]

    @property
    def has_cams(self) -> bool:
        """Whether this model's class activation maps mean anything (``Method.head_cams``)."""
        name = self.meta.get("method")
        return name not in METHODS or METHODS.get(name).head_cams

    def cams_from_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[B, 3, S, S]`` -> class activation maps ``[B, K, h, w]``.

        Raises:
            UsageError: the method classifies through another head than ``model.head``.
        """
        self._require_cams()
        return self.net.cams(batch)

    def _require_cams(self) -> None:
        if not self.has_cams:
            raise UsageError(f"method '{self.meta.get('method')}' does not classify with the "
                             "linear head the attention maps are computed from, so its maps "
                             "would show nothing; leave out --cam-dir for this checkpoint")

    def logits_and_cams(self, images: Sequence[ImageInput]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits ``[B, K]`` (no prior adjustment) and class activation maps
        ``[B, K, h, w]`` of face crops, in one run of the classifier on the onnx backend; give
        the logits to :meth:`classify_faces`.

        Raises:
            ValueError: as :meth:`cams_from_batch`.
        """
        self._require_cams()
        logits, cams = self._classify(self.normalise(self.to_batch(images)), with_cams=True)
        return logits, cams  # type: ignore[return-value]

    def logits(self, images: Sequence[ImageInput], prior: Prior = DEFAULT, tau: float | None = None
               ) -> torch.Tensor:
        """Class scores ``[B, K]`` of face crops, in batches of ``batch_size``, adjusted to the
        deployment prior."""
        return self.adjust(self.raw_logits(images), prior, tau)

    def raw_logits(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class scores ``[B, K]`` of face crops as the network gives them (no prior)."""
        parts = []
        for start in range(0, len(images), self.batch_size):
            uint8 = self.to_batch(images[start:start + self.batch_size])
            parts.append(self.logits_from_batch(self.normalise(uint8)))
        return torch.cat(parts) if parts else torch.zeros(0, len(self.class_names))

    def adjust(self, logits: torch.Tensor, prior: Prior = DEFAULT, tau: float | None = None
               ) -> torch.Tensor:
        """Raw logits ``[B, K]`` adjusted to the deployment prior (see :meth:`resolve_prior`)."""
        return adjust_logits(logits, self.class_counts, *self.resolve_prior(prior, tau))

    def resolve_prior(self, prior: Prior = DEFAULT, tau: float | None = None) -> tuple[Prior, float]:
        """The (prior, tau) this predictor applies for the given ones: ``"default"`` is the
        checkpoint's recommendation (metadata ``deploy_prior``) or ``"train"``; ``tau=None`` its
        strength (1 for an explicit prior).

        Raises:
            UsageError: a tau out of range, an unknown prior or wrong class frequencies.
        """
        chosen, strength = resolve_prior(prior, tau, self.record.deploy_prior)
        log_target_prior(chosen, self.class_counts)  # checks the prior against the classes
        return chosen, strength

    def describe(self, probs: torch.Tensor) -> list[Prediction]:
        """``[B, K]`` probabilities -> a :class:`Prediction` (label, confidence, all
        probabilities) per row."""
        return [Prediction(self.class_names[int(p.argmax())], float(p.max()),
                           {n: float(v) for n, v in zip(self.class_names, p)}) for p in probs]

    @overload
    def predict(self, images: SingleImage, prior: Prior = DEFAULT, tau: float | None = None
                ) -> Prediction: ...

    @overload
    def predict(self, images: Sequence[ImageInput], prior: Prior = DEFAULT, tau: float | None = None
                ) -> list[Prediction]: ...

    def predict(self, images: ImageInput | Sequence[ImageInput], prior: Prior = DEFAULT,
                tau: float | None = None) -> Prediction | list[Prediction]:
        """The expression of face crops (each whole image is one face; no detection).

        Args:
            images: one image or a sequence of them; an image is a file path, a Pillow image or a
                uint8 array ``[H, W]`` / ``[H, W, 3]`` (a ``[B, H, W, 3]`` array is a batch).
            prior: the class prior to assume at deployment: ``"default"`` (what the checkpoint
                recommends, else as trained), ``"train"`` (the model as trained), ``"uniform"``
                (every expression equally likely) or K class frequencies (post-hoc logit
                adjustment, see docs/prior.md).
            tau: strength of the prior adjustment (0: none, 1: the full adjustment; None: the
                recommended strength for ``"default"``, else 1).

        Returns:
            One :class:`Prediction` for a single image, a list for a sequence.
        """
        if _is_single(images):
            return self.predict([images], prior, tau)[0]  # type: ignore[list-item]
        return self.describe(self.logits(images, prior, tau).softmax(dim=1))  # type: ignore[arg-type]

    def find_faces(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB photo, in reading order (rows top to bottom, left to right), boxes
        clipped to the image; detection runs on a copy at most ``detect_max_side`` px long and
        boxes/landmarks are mapped back to the photo's pixels."""
        small, factor = downscale_for_detection(image, self.detect_max_side)
        height, width = image.shape[:2]
        found = [Face(clip_box([v * factor for v in f.box], width, height), f.landmarks * factor,
                      f.score) for f in self.detector.detect(small)]
        return [found[i] for i in reading_order([f.box for f in found])]

    def face_crops(self, image: ImageInput, detect: bool = True) -> tuple[list[Face], list[np.ndarray]]:
        """Detected faces and their aligned crops ``[S, S, 3]``; without detection the whole
        image is one face crop (box = the image, no landmarks)."""
        rgb = as_rgb(image)
        if not detect:
            height, width = rgb.shape[:2]
            return [Face((0.0, 0.0, float(width), float(height)), None, None)], [rgb]  # type: ignore[arg-type]
        found = self.find_faces(rgb)
        return found, [align_face(rgb, f.landmarks, self.template, self.image_size) for f in found]

    def predict_photos(self, images: Sequence[ImageInput], detect: bool = True, prior: Prior = DEFAULT,
                       tau: float | None = None) -> list[list[FaceResult]]:
        """:meth:`predict_photo` for several images, classifying all their faces in batches."""
        return self.classify_faces([self.face_crops(image, detect) for image in images], prior, tau)

    def classify_faces(self, per_image: Sequence[tuple[list[Face], list[np.ndarray]]],
                       prior: Prior = DEFAULT, tau: float | None = None,
                       logits: torch.Tensor | None = None) -> list[list[FaceResult]]:
        """Results of :meth:`face_crops` for several images -> one list of faces per image;
        ``logits``: the crops' raw logits ``[B, K]`` when already computed (by
        :meth:`logits_and_cams`), else the classifier runs here."""
        crops = [crop for _, image_crops in per_image for crop in image_crops]
        raw = self.raw_logits(crops) if logits is None else logits
        answers = iter(self.describe(self.adjust(raw, prior, tau).softmax(dim=1)))
        results = []
        for found, _ in per_image:
            faces = []
            for number, f in enumerate(found, 1):
                answer = next(answers)
                box = tuple(float(v) for v in f.box)
                faces.append(FaceResult(
                    answer.label, answer.confidence, answer.probabilities, face=number, box=box,
                    landmarks=None if f.landmarks is None else np.asarray(f.landmarks, np.float64).tolist(),
                    score=None if f.score is None else float(f.score),
                    note=small_face_note(box, self.image_size) if f.score is not None else None))
            results.append(faces)
        return results

    def predict_photo(self, image: ImageInput, detect: bool = True, prior: Prior = DEFAULT,
                      tau: float | None = None) -> list[FaceResult]:
        """Every face in a photo: detected (MTCNN), aligned to the training crops' geometry and
        classified.

        Args:
            image: a file path, a Pillow image or a uint8 array ``[H, W]`` / ``[H, W, 3]`` (RGB).
            detect: False treats the whole image as one face crop (box = the image, no landmarks).
            prior: the class prior to assume at deployment (``"default"``, ``"train"``,
                ``"uniform"`` or K class frequencies; see :meth:`predict`).
            tau: strength of the prior adjustment.

        Returns:
            One :class:`FaceResult` per face (number, box, landmarks, detector score, label,
            confidence, probabilities, note), numbered in reading order; an empty list when no
            face was found.
        """
        return self.predict_photos([image], detect, prior, tau)[0]

    def predict_video(
        self, path: str | Path, every: int = 1, fps: float | None = None, start: float = 0.0,
        end: float | None = None, track: bool = True, smoothing: str | None = None,
        max_gap: float = 1.0, detect: bool = True, prior: Prior = DEFAULT, tau: float | None = None,
        batch_size: int = 8,
    ) -> Iterator[FrameResult]:
        """Faces per processed frame of a video file, decoded and classified as a stream (needs
        the ``[video]`` extra; see docs/video.md).

        Args:
            path: any file FFmpeg (PyAV) decodes: MP4, MOV, MKV, WebM, AVI, ...
            every: process every N-th frame; ``fps``: or about this many frames per second.
            start, end: the time range to process, in seconds from the first frame.
            track: give each face a track id that stays the same across frames.
            smoothing: per-track smoothing of the probabilities, ``'ema:ALPHA'`` or
                ``'window:N'`` (None: off); label and confidence follow the smoothed values.
            max_gap: seconds a track may go unseen (missed detection, occlusion) and continue.
            detect, prior, tau: as in :meth:`predict_photo`.
            batch_size: frames held and classified together (memory is bounded by it).

        Yields:
            :class:`~ferkit.inference.video.FrameResult`: ``index`` (frame number in the stream),
            ``time`` (seconds), ``faces`` (the :meth:`predict_photo` dicts with ``track`` added)
            and ``image`` (the RGB frame).

        Raises:
            VideoReadError: at the call when the file is missing or not a video; during the
                iteration, after the frames before the damage, when it is truncated or damaged.
            VideoUnavailable: PyAV is not installed (``pip install "ferkit[video]"``).
        """
        options = VideoOptions(every, fps, start, end, track, smoothing, max_gap)
        return predict_frames(self, VideoSource(path, options), options, detect, prior, tau, batch_size)

    def cams(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class activation maps of all classes ``[B, K, h, w]`` from the classifier's last stage."""
        return self.cams_from_batch(self.normalise(self.to_batch(images)))

    def save_cam_overlays(
        self, images: Sequence[ImageInput], out_dir: str | Path, names: Sequence[str] | None = None,
        mirror: bool = False, grid: bool = False,
    ) -> list[Path]:
        """Readable attention maps of face crops, one PNG per image (or one grid for all).

        Each tile is a class's CAM over the face, titled with the class name and probability, on a
        colour scale shared by all classes of that face. ``mirror`` adds a second row for the
        mirrored face (the layout of Figure 4 in the MEK paper).
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        faces = self.to_batch(images)  # [B, C, S, S]
        flipped = faces.flip(-1)
        maps = self.cams(list(faces.permute(0, 2, 3, 1).numpy()))
        flip_maps = self.cams(list(flipped.permute(0, 2, 3, 1).numpy())) if mirror else None
        probs = self.logits(list(faces.permute(0, 2, 3, 1).numpy())).softmax(dim=1)
        flip_probs = self.logits(list(flipped.permute(0, 2, 3, 1).numpy())).softmax(dim=1) if mirror else None
        figures = []
        for i in range(faces.shape[0]):
            rows = [(faces[i], maps[i], probs[i])]
            if flip_maps is not None and flip_probs is not None:
                rows.append((flipped[i], flip_maps[i], flip_probs[i]))
            figures.append(attention_figure(rows, self.class_names))
        if grid:
            path = out_dir / "attention_grid.png"
            stack_figures(figures, names).save(path)
            return [path]
        paths = []
        for i, figure in enumerate(figures):
            paths.append(out_dir / f"{names[i] if names else f'cam_{i:04d}'}.png")
            figure.save(paths[-1])
        return paths
