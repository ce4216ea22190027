"""Alignment: map a face's five landmarks onto a template, so a photo's crop has the geometry of a
training crop.

The template is five ``(x, y)`` points in ``[0, 1]`` crop coordinates (the mean detector landmarks
over the training crops, see ``benchmarks/align_template.py`` and ``docs/alignment.md``). A
checkpoint may carry its own in ``meta["align_template"]``; otherwise the packaged default
``ferplus_template.json`` is used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image

from ferkit.errors import CheckpointError

TEMPLATE_FILE = "ferplus_template.json"


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
    taking ``src`` points onto ``dst`` points (Umeyama 1991).

    Args:
        src: ``[N, 2]`` points, N >= 2.
        dst: ``[N, 2]`` points.

    Returns:
        ``[2, 3]`` matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"similarity_transform needs two [N, 2] arrays with N >= 2, "
                         f"got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)  # [2, 2]
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # forbid a reflection
    rotation = u @ sign @ vt
    variance = (src_c ** 2).sum(axis=1).mean()
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` so that ``landmarks`` land on ``template * size``.

    Args:
        image: ``[H, W, 3]`` (or ``[H, W]``) uint8.
        landmarks: ``[5, 2]`` ``(x, y)`` image pixels.
        template: ``[5, 2]`` in ``[0, 1]`` crop coordinates.
        size: output side in pixels.

    Returns:
        ``[size, size, 3]`` uint8 (black outside the photo).
    """
    array = np.asarray(image)
    array = np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array
    forward = np.vstack([similarity_transform(landmarks, np.asarray(template) * size), [0, 0, 1]])
    # PIL maps output pixels back to input pixels, both in continuous coordinates (pixel i covers
    # [i, i + 1)), the convention of the landmarks and of ``template * size``.
    coefficients = np.linalg.inv(forward)[:2].ravel()
    warped = Image.fromarray(array).transform((size, size), Image.AFFINE, tuple(coefficients),
                                              resample=Image.BILINEAR)
    return np.asarray(warped, dtype=np.uint8)


def default_template() -> np.ndarray:
    """The packaged template ``[5, 2]`` (mean MTCNN landmarks over FER2013Valid crops)."""
    text = resources.files("ferkit.inference").joinpath(TEMPLATE_FILE).read_text()
    return np.asarray(json.loads(text)["template"], dtype=np.float64)


def template_from_meta(meta: dict[str, Any]) -> np.ndarray:
    """``meta["align_template"]`` when a checkpoint carries one, else the packaged default."""
    value: Sequence[Sequence[float]] | None = meta.get("align_template")
    if value is None:
        return default_template()
    template = np.asarray(value, dtype=np.float64)
    if template.shape != (5, 2):
        raise CheckpointError(f"checkpoint meta 'align_template' must be 5 (x, y) pairs in [0, 1], got "
                         f"shape {template.shape}; remove the key to use the packaged default")
    return template
