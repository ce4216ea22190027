"""Inference on new face images from a checkpoint or an exported ONNX file, and
class-activation-map overlays.

Inputs are face crops (as the training data: aligned faces). The checkpoint (or the ONNX file's
metadata) carries everything preprocessing needs: input size, channels, normalisation, class
names. The network runs behind one small interface (``logits``, ``cams`` of a normalised batch)
with two implementations: :class:`TorchNet` and the onnxruntime :class:`OnnxNet`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ferkit.cam import class_activation_maps, normalized_cams
from ferkit.data.base import decode_image
from ferkit.data.cache import resize_image
from ferkit.engine.checkpoint import check_compatible, load_checkpoint, load_weights
from ferkit.engine.evaluate import preprocess, resolve_device
from ferkit.inference.onnx_backend import OnnxNet
from ferkit.methods import Method, create_method
from ferkit.models import build_classifier

ImageInput = str | Path | Image.Image | np.ndarray


class TorchNet:
    """A trained method on a torch device behind the interface the predictor uses."""

    backend = "torch"

    def __init__(self, method: Method, device: torch.device) -> None:
        self.method = method.eval().to(device)
        self.device = device

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> logits ``[B, K]`` (float32, CPU)."""
        return self.method.predict(batch.to(self.device)).float().cpu()

    @torch.no_grad()
    def cams(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` -> class activation maps ``[B, K, h, w]`` (float32, CPU)."""
        model = self.method.model
        feature_map = model(batch.to(self.device)).feature_map
        return class_activation_maps(feature_map, model.head.weight).float().cpu()


class Predictor:
    """A trained classifier (torch or onnxruntime) plus its preprocessing, ready for new images.

    Example:
        >>> predictor = Predictor.from_checkpoint("runs/ferplus-ce/best.safetensors")
        >>> predictor.predict(["face.png"])[0]["label"]
        'happiness'
        >>> Predictor.from_onnx("model.onnx").predict(["face.png"])[0]["label"]
        'happiness'
    """

    def __init__(self, net: TorchNet | OnnxNet, meta: dict[str, Any]) -> None:
        self.net = net
        self.meta = meta
        self.device: torch.device = net.device
        self.backend: str = net.backend
        self.class_names: tuple[str, ...] = tuple(meta["class_names"])
        self.image_size: int = meta["image_size"]
        self.channels: int = meta.get("channels", 3)
        self.mean: tuple[float, ...] = tuple(meta["mean"])
        self.std: tuple[float, ...] = tuple(meta["std"])

    @property
    def method(self) -> Method:
        """The torch method (torch backend only)."""
        if not isinstance(self.net, TorchNet):
            raise AttributeError("an ONNX predictor has no torch method; use "
                                 "Predictor.from_checkpoint(path, backend='torch')")
        return self.net.method

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", backend: str = "torch",
                        threads: int | None = None) -> Predictor:
        """Load a checkpoint on the torch backend, or on onnxruntime (``backend="onnx"``).

        Args:
            path: a ferkit ``.safetensors`` checkpoint, or (onnx backend) a ``.onnx`` file from
                ``ferkit export``; a checkpoint given to the onnx backend is exported to a
                temporary file first (with the export's parity check).
            device: torch device ("auto": cuda when available); the onnx backend runs on CPU.
            backend: "torch" or "onnx".
            threads: onnxruntime intra-op threads (onnx backend; None = all cores).
        """
        if backend not in ("torch", "onnx"):
            raise ValueError(f"unknown backend '{backend}'; use 'torch' or 'onnx'")
        if backend == "onnx":
            return cls._onnx_from_any(Path(path), threads)
        if Path(path).suffix == ".onnx":
            raise ValueError(f"{path} is an ONNX file; load it with backend='onnx' "
                             "(CLI: --backend onnx) or Predictor.from_onnx")
        ckpt = load_checkpoint(path)
        meta = ckpt.meta
        model = build_classifier(meta["backbone"], meta["num_classes"],
                                 **meta.get("backbone_options", {}))
        check_compatible(meta, meta["backbone"], model.num_classes, ckpt.path)
        method = create_method(meta["method"], model, meta["class_counts"], meta["num_samples"],
                               meta.get("method_params"))
        load_weights(method, ckpt)
        return cls(TorchNet(method, resolve_device(device)), meta)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None) -> Predictor:
        """Load a ``.onnx`` file written by ``ferkit export`` on onnxruntime (CPU)."""
        net = OnnxNet(path, threads)
        return cls(net, net.meta)

    @classmethod
    def _onnx_from_any(cls, path: Path, threads: int | None) -> Predictor:
        if path.suffix == ".onnx":
            return cls.from_onnx(path, threads)
        from ferkit.inference.export import export_onnx

        with tempfile.TemporaryDirectory(prefix="ferkit-onnx-") as tmp:
            onnx_path = export_onnx(path, Path(tmp) / "model.onnx").path
            return cls.from_onnx(onnx_path, threads)  # the session holds the model in memory

    def logits_from_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[B, 3, S, S]`` -> logits ``[B, K]`` (float32, CPU): the one place
        the network runs for predictions, on either backend."""
        return self.net.logits(batch)

    def cams_from_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[B, 3, S, S]`` -> class activation maps ``[B, K, h, w]``."""
        return self.net.cams(batch)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, S, S]`` from :meth:`load` -> the network's normalised float input."""
        return preprocess(images, self.device, self.mean, self.std, False)

    def load(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Decode and resize inputs to uint8 ``[B, C, S, S]`` as in training."""
        arrays = []
        for image in images:
            if isinstance(image, (str, Path)):
                array = decode_image(image, self.channels)
            else:
                if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 1:
                    image = image[:, :, 0]  # [H, W, 1] (as datasets return grayscale) -> [H, W]
                pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
                array = np.asarray(pil.convert("L" if self.channels == 1 else "RGB"))
                array = array[:, :, None] if self.channels == 1 else array
            arrays.append(resize_image(array, self.image_size).transpose(2, 0, 1))
        return torch.from_numpy(np.stack(arrays))

    def logits(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class scores ``[B, K]`` (float32, CPU)."""
        return self.logits_from_batch(self.normalise(self.load(images)))

    def predict(self, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
        """Predicted expression and class probabilities for each image."""
        probs = self.logits(images).softmax(dim=1)
        return [
            {"label": self.class_names[int(p.argmax())], "confidence": float(p.max()),
             "probabilities": {n: float(v) for n, v in zip(self.class_names, p)}}
            for p in probs
        ]

    def cams(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class activation maps of all classes ``[B, K, h, w]`` from the classifier's last stage."""
        return self.cams_from_batch(self.normalise(self.load(images)))

    def save_cam_overlays(
        self, images: Sequence[ImageInput], out_dir: str | Path, names: Sequence[str] | None = None
    ) -> list[Path]:
        """For each image, save a strip: the input, then its CAM for every class (predicted class
        marked by a white border). Returns the written PNG paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        raw = self.load(images)  # [B, C, S, S]
        maps = normalized_cams(self.cams(images), (self.image_size, self.image_size))
        predicted = self.logits(images).argmax(dim=1)
        paths = []
        for i in range(raw.shape[0]):
            gray = raw[i].float().mean(0).numpy() / 255.0
            tiles = [np.repeat(gray[:, :, None], 3, axis=2)]
            for k in range(len(self.class_names)):
                tile = 0.5 * tiles[0] + 0.5 * _heat(maps[i, k].numpy())
                if k == int(predicted[i]):
                    tile[:2], tile[-2:], tile[:, :2], tile[:, -2:] = 1, 1, 1, 1
                tiles.append(tile)
            strip = (np.concatenate(tiles, axis=1).clip(0, 1) * 255).astype(np.uint8)
            name = names[i] if names else f"cam_{i:04d}"
            path = out_dir / f"{name}.png"
            Image.fromarray(strip).save(path)
            paths.append(path)
        return paths


def _heat(values: np.ndarray) -> np.ndarray:
    """A blue-to-red colour map for values in [0, 1]: ``[H, W]`` -> ``[H, W, 3]``."""
    r = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
    return np.stack([r, g, b], axis=2)
