"""Attention maps people can read: each class's CAM over the face, titled with the class name and
probability, on one colour scale shared by every class (and both rows) of a face.

Drawn with Pillow and its default font only (no matplotlib). The two-row layout (the face and its
mirror, a column per class) is the layout of Figure 4 in the MEK paper (Zhang et al., NeurIPS 2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

TILE = 112  # displayed tile side (pixels)
TITLE = 16  # title band above each tile
LABEL = 54  # row-label column
LEGEND = 34
FRAME = 4  # width of the frame around the predicted class's tile


def heat(values: np.ndarray) -> np.ndarray:
    """A blue-to-red colour map for values in [0, 1]: ``[H, W]`` -> ``[H, W, 3]`` in [0, 1]."""
    r = np.clip(1.5 - np.abs(4 * values - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * values - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * values - 1), 0, 1)
    return np.stack([r, g, b], axis=2)


def shared_scale(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Upsample maps ``[..., h, w]`` to ``size`` and map them to [0, 1] with ONE min and max over
    all of them, so tiles compare across classes (a per-map scale would make every class look
    equally confident)."""
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    low, high = up.min(), up.max()
    return ((up - low) / (high - low).clamp(min=1e-8)).reshape(*maps.shape[:-2], size, size)


def _face_tile(face: torch.Tensor) -> np.ndarray:
    """uint8 ``[C, S, S]`` -> float RGB ``[TILE, TILE, 3]`` in [0, 1]."""
    array = face.permute(1, 2, 0).numpy()
    array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
    resized = Image.fromarray(np.ascontiguousarray(array)).resize((TILE, TILE), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float64) / 255.0


def attention_figure(
    rows: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], class_names: Sequence[str]
) -> Image.Image:
    """One figure: per row (face ``[C, S, S]`` uint8, CAMs ``[K, h, w]``, probabilities ``[K]``)
    the face then a tile per class; the predicted class of each row is framed in black (visible
    on the white page and on any colour of the map).

    Returns:
        An RGB image with a legend explaining the shared colour scale.
    """
    font = ImageFont.load_default()
    scaled = shared_scale(torch.stack([maps for _, maps, _ in rows]), TILE).numpy()  # [R, K, T, T]
    columns = 1 + len(class_names)
    canvas = Image.new("RGB", (LABEL + columns * TILE, len(rows) * (TILE + TITLE) + LEGEND), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (face, _, probs) in enumerate(rows):
        top = r * (TILE + TITLE)
        face_rgb = _face_tile(face)
        draw.text((4, top + TITLE + TILE // 2 - 6), "face" if r == 0 else "mirror", fill="black", font=font)
        canvas.paste(Image.fromarray((face_rgb * 255).astype(np.uint8)), (LABEL, top + TITLE))
        best = int(probs.argmax())
        for k, name in enumerate(class_names):
            tile = (0.45 * face_rgb + 0.55 * heat(scaled[r, k])).clip(0, 1)
            if k == best:
                tile[:FRAME], tile[-FRAME:], tile[:, :FRAME], tile[:, -FRAME:] = 0, 0, 0, 0
            left = LABEL + (k + 1) * TILE
            canvas.paste(Image.fromarray((tile * 255).astype(np.uint8)), (left, top + TITLE))
            draw.text((left + 3, top + 2), f"{name} {100 * float(probs[k]):.0f}%",
                      fill="black", font=font)
    _legend(draw, canvas.height - LEGEND, canvas.width, font)
    return canvas


def _legend(draw: ImageDraw.ImageDraw, top: int, width: int, font: ImageFont.ImageFont) -> None:
    """A colour bar with its meaning."""
    bar = heat(np.linspace(0, 1, 120)[None])[0]  # [120, 3]
    for x, colour in enumerate((bar * 255).astype(int)):
        draw.line([(LABEL + x, top + 6), (LABEL + x, top + 14)], fill=tuple(int(c) for c in colour))
    draw.text((LABEL, top + 17), "low", fill="black", font=font)
    draw.text((LABEL + 100, top + 17), "high", fill="black", font=font)
    draw.text((LABEL + 130, top + 4), "class activation, one colour scale shared by all classes "
              "and rows of this face;", fill="black", font=font)
    draw.text((LABEL + 130, top + 17), "black frame = predicted class; % = class probability",
              fill="black", font=font)


def stack_figures(figures: Sequence[Image.Image], names: Sequence[str] | None = None) -> Image.Image:
    """Several faces' figures one under another, each headed by its name (a grid for a folder)."""
    font = ImageFont.load_default()
    head = 14
    width = max(f.width for f in figures)
    canvas = Image.new("RGB", (width, sum(f.height + head for f in figures)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for i, figure in enumerate(figures):
        draw.text((4, top + 1), names[i] if names else f"image {i}", fill="black", font=font)
        canvas.paste(figure, (0, top + head))
        top += figure.height + head
    return canvas
