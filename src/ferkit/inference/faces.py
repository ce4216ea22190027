"""Face detection with 5-point landmarks: MTCNN (Zhang et al. 2016) on onnxruntime or PyTorch.

A three-stage cascade: P-Net proposes candidate windows on an image pyramid (packed into one canvas,
one network call, see :mod:`ferkit.inference.mtcnn_pyramid`), R-Net re-scores and refines them on
24x24 crops, O-Net does so again on 48x48 crops and adds five landmarks (two eyes, nose, two mouth
corners); the crops of a stage go through the network as one batch. The image work and
non-maximum suppression (numpy and Pillow) are the same for both
backends; only the three networks differ:
eager torch, or onnxruntime on graphs exported from the same weights
(:mod:`ferkit.inference.mtcnn_onnx`, cached after the first use). ``backend="auto"`` takes
onnxruntime when it is installed and the detector runs on the CPU.

The weights are the published MTCNN weight files as redistributed (MIT licence) inside the PyPI
package ``facenet-pytorch==2.6.0`` (``facenet_pytorch/data/{pnet,rnet,onet}.pt``). The files are
located without importing that package (its import pulls in torchvision), read with
``weights_only=True`` and checked against pinned sha256 digests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ferkit.errors import FerkitError, UsageError
from ferkit.inference.mtcnn_boxes import nms, regress, square
from ferkit.inference.mtcnn_nets import ONet, PNet, RNet
from ferkit.inference.mtcnn_onnx import OnnxStages
from ferkit.inference.mtcnn_pyramid import (
    STRIDE,
    WINDOW,
    crops,
    pack_levels,
    pyramid_canvas,
    pyramid_scales,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
BACKENDS = ("auto", "torch", "onnx")
DEFAULT_MIN_FACE = 20.0
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.7)  # face probability needed by P-Net, R-Net, O-Net
MIN_FACE_RANGE = (10.0, 10000.0)  # below 10 px the pyramid upsamples and no expression is legible
WEIGHT_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in image pixels.
        landmarks: ``[5, 2]`` float32 ``(x, y)``: left eye, right eye, nose, left and right mouth
            corner (left/right as seen in the image).
        score: O-Net face probability in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


class DetectorWeightsError(FerkitError, RuntimeError):
    """The MTCNN weight files are missing or are not the expected files."""


def weights_dir() -> Path:
    """The folder holding ``{pnet,rnet,onet}.pt`` inside the installed facenet-pytorch package.

    Raises:
        DetectorWeightsError: facenet-pytorch is not installed.
    """
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorWeightsError(
            "the MTCNN face-detector weights come from the PyPI package facenet-pytorch, which is "
            f"not installed. Install only its data files with: {INSTALL_HINT} (--no-deps: its "
            "declared pins are for old torch versions; ferkit never imports it)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_weight_file(path: Path, name: str) -> dict[str, torch.Tensor]:
    """Read one weight file after checking its sha256 against the pinned digest."""
    if not path.is_file():
        raise DetectorWeightsError(f"MTCNN weight file missing: {path}. Reinstall with: {INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHT_SHA256[name]:
        raise DetectorWeightsError(
            f"{path} has sha256 {digest}, expected {WEIGHT_SHA256[name]} (facenet-pytorch 2.6.0). "
            f"Reinstall with: {INSTALL_HINT}")
    return torch.load(path, map_location="cpu", weights_only=True)


def check_backend(backend: str) -> None:
    """Raise UsageError for a detector backend that is not one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown detector backend '{backend}'; use one of {', '.join(BACKENDS)}")


def check_detector_options(min_face: float, det_threshold: float, backend: str = "auto") -> None:
    """Raise UsageError naming the option when the detector's knobs are out of range."""
    check_backend(backend)
    low, high = MIN_FACE_RANGE
    if not low <= min_face <= high:  # also False for NaN
        raise UsageError(f"min_face (--min-face) must be between {low:g} and {high:g} pixels, got "
                         f"{min_face:g}: faces smaller than {low:g} px are too small to read")
    if not 0.0 < det_threshold < 1.0:
        raise UsageError(f"det_threshold (--det-threshold) must be above 0 and below 1, got "
                         f"{det_threshold:g}: it is the face probability a detection needs "
                         f"(default {DEFAULT_THRESHOLDS[2]:g})")


def stage_thresholds(det_threshold: float) -> tuple[float, float, float]:
    """The three stages' thresholds for a final (O-Net) one: the earlier stages are never stricter
    than the last, so lowering it finds more faces."""
    return (min(DEFAULT_THRESHOLDS[0], det_threshold), min(DEFAULT_THRESHOLDS[1], det_threshold),
            det_threshold)


class TorchStages:
    """The three networks in eager torch behind ``run(name, batch)``."""

    backend = "torch"

    def __init__(self, detector: MTCNN) -> None:
        self.detector = detector

    @torch.no_grad()
    def run(self, name: str, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """Float32 NCHW input -> the network's outputs as arrays."""
        outputs = getattr(self.detector, name)(torch.from_numpy(batch).to(self.detector.device))
        return tuple(output.float().cpu().numpy() for output in outputs)


def _use_onnx(backend: str, device: torch.device) -> bool:
    check_backend(backend)
    if backend == "auto":
        return device.type == "cpu" and importlib.util.find_spec("onnxruntime") is not None
    return backend == "onnx"


class MTCNN(nn.Module):
    """The P-Net / R-Net / O-Net cascade over an image pyramid.

    Args:
        min_face_size: smallest face side (pixels) the pyramid looks for.
        thresholds: face-probability thresholds of the three stages.
        scale_factor: ratio between successive pyramid levels.
        device: where the torch networks run.

    Example:
        >>> detector = MTCNN.from_package(backend="onnx")
        >>> faces = detector.detect(np.asarray(Image.open("photo.jpg").convert("RGB")))
    """

    def __init__(
        self, min_face_size: float = DEFAULT_MIN_FACE,
        thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS,
        scale_factor: float = 0.709, device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        check_detector_options(min_face_size, thresholds[2])
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.scale_factor = scale_factor
        self.device = torch.device(device)
        self.stages: TorchStages | OnnxStages = TorchStages(self)
        self.eval().to(self.device)

    @property
    def backend(self) -> str:
        """Where the networks run: "torch" or "onnx"."""
        return self.stages.backend

    @classmethod
    def from_package(cls, device: str | torch.device = "cpu", backend: str = "torch",
                     threads: int | None = None, **options: float) -> MTCNN:
        """The detector with the published weights read from facenet-pytorch's data files.

        Args:
            device: where the torch networks run.
            backend: "torch", "onnx" (onnxruntime, CPU; exported and cached on first use) or
                "auto" (onnx when onnxruntime is installed and the device is the CPU; torch when
                the export fails).
            threads: onnxruntime intra-op threads (None: all cores).
            **options: ``min_face_size``, ``thresholds``, ``scale_factor``.
        """
        detector = cls(device=device, **options)
        folder, digests = weights_dir(), {}
        for name in ("pnet", "rnet", "onet"):
            state = load_weight_file(folder / f"{name}.pt", name)
            getattr(detector, name).load_state_dict(state)
            digests[name] = WEIGHT_SHA256[name]
        detector.to(detector.device)
        if _use_onnx(backend, detector.device):
            nets = {name: getattr(detector, name) for name in digests}
            try:
                detector.stages = OnnxStages(nets, digests, threads)
            except Exception as err:  # the exporter and onnxruntime raise many types
                if backend == "onnx":
                    raise
                log.warning("face detector on torch: the ONNX export failed (%s)", err)
        return detector

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face_size`` to P-Net's 12 px window."""
        return pyramid_scales(height, width, self.min_face_size, self.scale_factor)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB image ``[H, W, 3]`` uint8 (``[H, W]`` grayscale is accepted),
        highest score first."""
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"detect() takes an RGB image [H, W, 3] uint8, got shape {array.shape}")
        array = np.array(array, dtype=np.uint8)  # a writable copy (torch reads it)
        pixels = Image.fromarray(array)
        boxes = self._propose(array)
        if len(boxes):
            boxes = self._refine(pixels, boxes)
        if not len(boxes):
            return []
        boxes, scores, landmarks = self._output(pixels, boxes)
        return [Face(tuple(float(v) for v in box), points.astype(np.float32), float(score))
                for box, score, points in zip(boxes, scores, landmarks)]

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """P-Net over the packed pyramid of uint8 ``[H, W, 3]`` -> squared candidate boxes ``[N, 4]``."""
        height, width = image.shape[:2]
        levels, size = pack_levels(height, width, self.scales(height, width))
        if not levels:
            return np.zeros((0, 4))
        prob, reg = self.stages.run("pnet", pyramid_canvas(image, levels, size))
        boxes, offsets, scores, groups = [], [], [], []
        for index, level in enumerate(levels):
            level_prob = level.cells(prob[0])
            ys, xs = np.nonzero(level_prob >= self.thresholds[0])
            corner = np.stack([xs, ys], axis=1) * STRIDE
            boxes.append(np.concatenate([corner, corner + WINDOW], axis=1) / level.scale)
            offsets.append(level.cells(reg[0])[:, ys, xs].T)
            scores.append(level_prob[ys, xs])
            groups.append(np.full(len(ys), index))
        boxes, offsets, scores = np.concatenate(boxes), np.concatenate(offsets), np.concatenate(scores)
        keep = nms(boxes, scores, 0.5, groups=np.concatenate(groups))
        boxes, offsets, scores = boxes[keep], offsets[keep], scores[keep]
        keep = nms(boxes, scores, 0.7)
        return square(regress(boxes[keep], offsets[keep]))

    def _batched(self, name: str, batch: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, ...]:
        """Run network ``name`` over crops in chunks (memory stays bounded)."""
        parts = [self.stages.run(name, batch[i:i + chunk]) for i in range(0, len(batch), chunk)]
        return tuple(np.concatenate(outputs) for outputs in zip(*parts))

    def _refine(self, pixels: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """R-Net on 24x24 crops: keep, suppress, regress and square."""
        prob, reg = self._batched("rnet", crops(pixels, boxes, 24))
        mask = prob >= self.thresholds[1]
        boxes, reg, prob = boxes[mask], reg[mask], prob[mask]
        keep = nms(boxes, prob, 0.7)
        return square(regress(boxes[keep], reg[keep]))

    def _output(self, pixels: Image.Image, boxes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net on 48x48 crops -> final boxes ``[M, 4]``, scores ``[M]``, landmarks ``[M, 5, 2]``."""
        prob, reg, points = self._batched("onet", crops(pixels, boxes, 48))
        mask = prob >= self.thresholds[2]
        boxes, reg, prob, points = boxes[mask], reg[mask], prob[mask], points[mask]
        size = boxes[:, 2:4] - boxes[:, :2]  # [M, 2] (w, h)
        landmarks = boxes[:, None, :2] + np.stack([points[:, :5], points[:, 5:]], axis=2) * size[:, None]
        boxes = regress(boxes, reg)
        keep = nms(boxes, prob, 0.7, mode="min")
        return boxes[keep], prob[keep], landmarks[keep]
