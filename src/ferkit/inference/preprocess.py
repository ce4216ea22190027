"""Inference preprocessing in one place: any image input -> the network's normalised batch.

Exactly the training pipeline, by construction: the same bilinear resize as the decode cache
(:func:`ferkit.data.cache.resize_image`) and the same float conversion and normalisation as the
evaluation loop (:func:`ferkit.engine.evaluate.preprocess`), with the checkpoint's size, colour
mode, mean and std. The
predictor, the ONNX export's parity check and the evaluation all use these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferkit.data.cache import resize_image
from ferkit.engine.evaluate import preprocess
from ferkit.inference.images import read_image, to_rgb_array

ImageInput = str | Path | Image.Image | np.ndarray


def as_rgb(image: ImageInput) -> np.ndarray:
    """A path, Pillow image or array -> uint8 ``[H, W, 3]`` RGB (see :func:`read_image`)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb_array(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array


def face_batch(images: Sequence[ImageInput], image_size: int, channels: int = 3) -> torch.Tensor:
    """Face crops -> uint8 ``[B, C, S, S]`` at the model's size and colour mode, as in training."""
    arrays = []
    for image in images:
        pixels = as_rgb(image)
        if channels == 1:
            pixels = np.asarray(Image.fromarray(pixels).convert("L"))[:, :, None]
        arrays.append(resize_image(np.ascontiguousarray(pixels), image_size).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays))


def normalise(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``[B, C, S, S]`` (e.g. from :func:`face_batch`) -> normalised float
    ``[B, 3, S, S]`` on ``device``: the evaluation loop's own
    :func:`~ferkit.engine.evaluate.preprocess`."""
    return preprocess(batch, torch.device(device), tuple(mean), tuple(std), channels_last=False)
