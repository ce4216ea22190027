"""Face detection with 5-point landmarks: MTCNN (Zhang et al. 2016) in pure PyTorch.

A three-stage cascade: P-Net proposes candidate windows on an image pyramid, R-Net re-scores and
refines them on 24x24 crops, O-Net does so again on 48x48 crops and adds five landmarks (two eyes,
nose, two mouth corners). Non-maximum suppression is written in torch (no torchvision).

The weights are the published MTCNN weight files as redistributed (MIT licence) inside the PyPI
package ``facenet-pytorch==2.6.0`` (``facenet_pytorch/data/{pnet,rnet,onet}.pt``). The files are
located without importing that package (its import pulls in torchvision), read with
``weights_only=True`` and checked against pinned sha256 digests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.inference.mtcnn_nets import ONet, PNet, RNet

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
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


class DetectorWeightsError(RuntimeError):
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


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``[N, 4]`` ``(x1, y1, x2, y2)``.
        scores: ``[N]``.
        threshold: overlap above which the lower-scored box is dropped.
        mode: "union" (intersection over union) or "min" (intersection over the smaller area).

    Returns:
        Indices of kept boxes ``[M]``, highest score first.
    """
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = torch.maximum(boxes[rest, :2], boxes[best, :2])
        bottom_right = torch.minimum(boxes[rest, 2:], boxes[best, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
        if mode == "min":
            overlap = inter / torch.minimum(areas[rest], areas[best]).clamp(min=1e-9)
        else:
            overlap = inter / (areas[rest] + areas[best] - inter).clamp(min=1e-9)
        order = rest[overlap <= threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (side = the longer side)."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]).amax(dim=1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply box offsets (fractions of the box width/height) predicted by a stage."""
    size = (boxes[:, 2:4] - boxes[:, :2]).repeat(1, 2)
    return boxes[:, :4] + offsets * size


class MTCNN(nn.Module):
    """The P-Net / R-Net / O-Net cascade over an image pyramid.

    Args:
        min_face_size: smallest face side (pixels) the pyramid looks for.
        thresholds: face-probability thresholds of the three stages.
        scale_factor: ratio between successive pyramid levels.
        device: where the networks run.

    Example:
        >>> detector = MTCNN.from_package()
        >>> faces = detector.detect(np.asarray(Image.open("photo.jpg").convert("RGB")))
    """

    def __init__(
        self, min_face_size: float = 20.0, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709, device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.scale_factor = scale_factor
        self.device = torch.device(device)
        self.eval().to(self.device)

    @classmethod
    def from_package(cls, device: str | torch.device = "cpu", **options: float) -> MTCNN:
        """The detector with the published weights read from facenet-pytorch's data files."""
        detector = cls(device=device, **options)
        folder = weights_dir()
        for name in ("pnet", "rnet", "onet"):
            getattr(detector, name).load_state_dict(load_weight_file(folder / f"{name}.pt", name))
        return detector.to(detector.device)

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face_size`` to P-Net's 12 px window."""
        scale = 12.0 / self.min_face_size
        side = min(height, width) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.scale_factor
            side *= self.scale_factor
        return scales

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB image ``[H, W, 3]`` uint8 (``[H, W]`` grayscale is accepted),
        highest score first."""
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"detect() takes an RGB image [H, W, 3] uint8, got shape {array.shape}")
        pixels = torch.from_numpy(np.array(array, dtype=np.uint8)).to(self.device)  # a writable copy
        pixels = pixels.permute(2, 0, 1).float()  # [3, H, W], 0..255
        boxes = self._propose(pixels)
        if boxes.shape[0]:
            boxes = self._refine(pixels, boxes)
        if not boxes.shape[0]:
            return []
        boxes, scores, landmarks = self._output(pixels, boxes)
        return [Face(tuple(float(v) for v in box), points.numpy().astype(np.float32), float(score))
                for box, score, points in zip(boxes.cpu(), scores.cpu(), landmarks.cpu())]

    def _propose(self, pixels: torch.Tensor) -> torch.Tensor:
        """P-Net over the pyramid -> squared candidate boxes ``[N, 4]``."""
        height, width = pixels.shape[1:]
        candidates, offsets, scores = [], [], []
        for scale in self.scales(height, width):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            level = F.interpolate(pixels[None], size=size, mode="area")
            prob, reg = self.pnet(_normalize(level))
            ys, xs = torch.nonzero(prob[0] >= self.thresholds[0], as_tuple=True)
            corner = torch.stack([xs, ys], dim=1).float() * 2
            boxes = torch.cat([corner, corner + 12], dim=1) / scale
            keep = nms(boxes, prob[0, ys, xs], 0.5)
            candidates.append(boxes[keep])
            offsets.append(reg[0, :, ys, xs].T[keep])
            scores.append(prob[0, ys, xs][keep])
        if not candidates:
            return torch.zeros(0, 4, device=pixels.device)
        boxes, offsets, scores = torch.cat(candidates), torch.cat(offsets), torch.cat(scores)
        keep = nms(boxes, scores, 0.7)
        return _square(_regress(boxes[keep], offsets[keep]))

    def _refine(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """R-Net on 24x24 crops: keep, suppress, regress and square."""
        prob, reg = _batched(self.rnet, _crops(pixels, boxes, 24))
        mask = prob >= self.thresholds[1]
        boxes, reg, prob = boxes[mask], reg[mask], prob[mask]
        keep = nms(boxes, prob, 0.7)
        return _square(_regress(boxes[keep], reg[keep]))

    def _output(self, pixels: torch.Tensor, boxes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """O-Net on 48x48 crops -> final boxes ``[M, 4]``, scores ``[M]``, landmarks ``[M, 5, 2]``."""
        prob, reg, points = _batched(self.onet, _crops(pixels, boxes, 48))
        mask = prob >= self.thresholds[2]
        boxes, reg, prob, points = boxes[mask], reg[mask], prob[mask], points[mask]
        size = boxes[:, 2:4] - boxes[:, :2]  # [M, 2] (w, h)
        landmarks = boxes[:, None, :2] + torch.stack([points[:, :5], points[:, 5:]], dim=2) * size[:, None]
        boxes = _regress(boxes, reg)
        keep = nms(boxes, prob, 0.7, mode="min")
        return boxes[keep], prob[keep], landmarks[keep]


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    """0..255 -> about [-1, 1], the networks' input range."""
    return (pixels - 127.5) * 0.0078125


def _crops(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each box out of ``[3, H, W]`` (zeros outside the image), resized to ``[N, 3, size, size]``
    and normalised."""
    height, width = pixels.shape[1:]
    out = torch.empty(boxes.shape[0], 3, size, size, device=pixels.device)
    for i, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        crop = pixels.new_zeros(3, y2 - y1, x2 - x1)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            crop[:, sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = pixels[:, sy1:sy2, sx1:sx2]
        out[i] = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)[0]
    return _normalize(out)


def _batched(net: nn.Module, crops: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, ...]:
    """Run ``net`` over crops in chunks (memory stays bounded however many candidates)."""
    parts = [net(crops[i:i + chunk]) for i in range(0, crops.shape[0], chunk)]
    if not parts:
        parts = [net(crops)]
    return tuple(torch.cat(p) for p in zip(*parts))
