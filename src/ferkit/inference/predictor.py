"""Inference on new face images from a checkpoint, and class-activation-map overlays.

Inputs are face crops (as the training data: aligned faces); no face detector is bundled. The
checkpoint carries everything preprocessing needs: input size, channels, normalisation, class names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ferkit.cam import class_activation_maps, normalized_cams
from ferkit.data.base import decode_image
from ferkit.data.cache import resize_image
from ferkit.engine.checkpoint import REQUIRED_META, check_compatible, load_checkpoint, load_weights
from ferkit.engine.evaluate import preprocess, resolve_device
from ferkit.methods import Method, create_method
from ferkit.models import build_classifier

ImageInput = str | Path | Image.Image | np.ndarray


class Predictor:
    """A trained method plus its preprocessing, ready for new images.

    Example:
        >>> predictor = Predictor.from_checkpoint("runs/ferplus-ce/best.safetensors")
        >>> predictor.predict(["face.png"])[0]["label"]
        'happiness'
    """

    def __init__(self, method: Method, meta: dict[str, Any], device: torch.device) -> None:
        self.method = method.eval().to(device)
        self.meta = meta
        self.device = device
        self.class_names: tuple[str, ...] = tuple(meta["class_names"])
        self.image_size: int = meta["image_size"]
        self.channels: int = meta.get("channels", 3)
        self.mean: tuple[float, ...] = tuple(meta["mean"])
        self.std: tuple[float, ...] = tuple(meta["std"])

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> Predictor:
        """Rebuild the method from the checkpoint's metadata and load its weights strictly."""
        ckpt = load_checkpoint(path, required=REQUIRED_META)
        meta = ckpt.meta
        model = build_classifier(meta["backbone"], meta["num_classes"],
                                 **meta.get("backbone_options", {}))
        check_compatible(meta, meta["backbone"], model.num_classes, ckpt.path)
        method = create_method(meta["method"], model, meta["class_counts"], meta["num_samples"],
                               meta.get("method_params"))
        load_weights(method, ckpt)
        return cls(method, meta, resolve_device(device))

    def load(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Decode and resize inputs to uint8 ``[B, C, S, S]`` as in training."""
        arrays = []
        for image in images:
            if isinstance(image, (str, Path)):
                array = decode_image(image, self.channels)
            else:
                pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
                array = np.asarray(pil.convert("L" if self.channels == 1 else "RGB"))
                array = array[:, :, None] if self.channels == 1 else array
            arrays.append(resize_image(array, self.image_size).transpose(2, 0, 1))
        return torch.from_numpy(np.stack(arrays))

    @torch.no_grad()
    def logits(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class scores ``[B, K]`` (float32, CPU)."""
        batch = preprocess(self.load(images), self.device, self.mean, self.std, False)
        return self.method.predict(batch).float().cpu()

    def predict(self, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
        """Predicted expression and class probabilities for each image."""
        probs = self.logits(images).softmax(dim=1)
        return [
            {"label": self.class_names[int(p.argmax())], "confidence": float(p.max()),
             "probabilities": {n: float(v) for n, v in zip(self.class_names, p)}}
            for p in probs
        ]

    @torch.no_grad()
    def cams(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class activation maps of all classes ``[B, K, h, w]`` from the classifier's last stage."""
        model = self.method.model
        batch = preprocess(self.load(images), self.device, self.mean, self.std, False)
        return class_activation_maps(model(batch).feature_map, model.head.weight).float().cpu()

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
