"""The image side of MTCNN: the P-Net pyramid packed into one canvas, and the crops of the later
stages (numpy and Pillow).

P-Net is fully convolutional with a 12x12 window and stride 2, so its output cell ``(i, j)`` sees
exactly the input pixels ``[2i, 2i + 12) x [2j, 2j + 12)``. The pyramid levels are placed at even
offsets in one canvas (shelf packing, about 20 % more pixels than the levels alone),
P-Net runs once on the canvas, and each level keeps the cells whose window lies inside it: those
are the values P-Net gives on the level alone (a level of odd height or width loses the one row or
column of cells whose window would run a pixel past its edge).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

WINDOW = 12  # P-Net's window (pixels of a pyramid level)
STRIDE = 2  # P-Net's output stride
FILL = 128  # canvas pixels outside every level (never read by a kept cell)


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` in about [-1, 1], the networks' input."""
    moved = np.moveaxis(pixels, -1, -3).astype(np.float32)
    return (moved - np.float32(127.5)) * np.float32(0.0078125)


def pyramid_scales(height: int, width: int, min_face_size: float, scale_factor: float) -> list[float]:
    """Pyramid scales: the first maps ``min_face_size`` to P-Net's 12 px window; the last level's
    shorter side is still at least 12 px."""
    scale = WINDOW / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= WINDOW:
        scales.append(scale)
        scale *= scale_factor
        side *= scale_factor
    return scales


def _even(n: int) -> int:
    return n + n % 2


@dataclass
class Level:
    """One pyramid level in the canvas: its scale, size and top-left corner (even)."""

    scale: float
    height: int
    width: int
    top: int = 0
    left: int = 0

    def cells(self, grid: np.ndarray) -> np.ndarray:
        """The part of a P-Net output grid ``[..., h, w]`` (canvas cells) that belongs to this
        level, ``[..., rows, cols]`` with cell ``(0, 0)`` at the level's corner."""
        rows = (self.height - WINDOW) // STRIDE + 1
        cols = (self.width - WINDOW) // STRIDE + 1
        top, left = self.top // STRIDE, self.left // STRIDE
        return grid[..., top:top + rows, left:left + cols]


def _shelves(levels: list[Level], width: int) -> int:
    """Place the levels (tallest first) on shelves of ``width``, each in the first shelf with room
    (first-fit decreasing); the canvas height."""
    shelves: list[list[int]] = []  # [top, height, used width]
    for level in levels:
        shelf = next((s for s in shelves if s[2] + level.width <= width and level.height <= s[1]),
                     None)
        if shelf is None:
            shelf = [shelves[-1][0] + shelves[-1][1] if shelves else 0, _even(level.height), 0]
            shelves.append(shelf)
        level.top, level.left = shelf[0], shelf[2]
        shelf[2] += _even(level.width)
    return shelves[-1][0] + shelves[-1][1] if shelves else 0


def pack_levels(height: int, width: int, scales: list[float]) -> tuple[list[Level], tuple[int, int]]:
    """Levels at even offsets in one canvas, and its size ``(H, W)``: the smallest of the canvas
    widths "first level plus level k beside it" (k = 0: the first level alone)."""
    levels = [Level(s, math.ceil(height * s), math.ceil(width * s)) for s in scales]
    if not levels:
        return [], (0, 0)
    widths = [_even(levels[0].width) + (_even(level.width) if k else 0)
              for k, level in enumerate(levels)]
    best = min(widths, key=lambda w: w * _shelves(levels, w))
    return levels, (_shelves(levels, best), best)


@functools.lru_cache(maxsize=256)
def _area_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices ``[K, size_out]`` and weights ``[K, size_out]`` of an area resize along one
    axis: output ``i`` is the mean of inputs ``floor(i * n / m)`` to ``ceil((i + 1) * n / m) - 1``
    (the windows of torch's adaptive average pooling); unused taps have weight 0."""
    out = np.arange(size_out)
    starts = out * size_in // size_out
    ends = -(-(out + 1) * size_in // size_out)
    taps = starts + np.arange(int((ends - starts).max()))[:, None]
    weights = (taps < ends) / (ends - starts)
    return np.minimum(taps, size_in - 1), weights.astype(np.float32)


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[C, H, W]`` (uint8 or float) -> float32 ``[C, height, width]``, each output pixel the mean
    of its window of input pixels: torch's ``interpolate(mode="area")``, computed separably (rows,
    then columns) with a few gathers instead of a window loop per output pixel."""
    result = image
    for axis, size in ((1, height), (2, width)):
        source, result = result, None
        index, weights = _area_taps(source.shape[axis], size)
        shape = (1, size, 1) if axis == 1 else (1, 1, size)
        for taps, tap_weights in zip(index, weights):
            term = np.take(source, taps, axis=axis) * tap_weights.reshape(shape)
            if result is None:
                result = term
            else:
                result += term
    return result


def pyramid_canvas(image: np.ndarray, levels: list[Level], size: tuple[int, int]) -> np.ndarray:
    """The levels of uint8 ``[H, W, 3]`` ``image`` in one canvas, normalised ``[1, 3, H, W]``.

    The first level is an area-average downscale of the image, the others area-average downscales
    of the first (a fraction of the cost of downscaling the full image each time; boxes within
    about 1 px of it on scikit-image's astronaut, where a chain of levels each from the one before
    moves them 4 px). In float: rounding the levels to uint8 changes P-Net's proposals enough to
    let a false positive through on the astronaut.
    """
    canvas = np.full((1, 3, *size), FILL, dtype=np.float32)
    source = np.ascontiguousarray(image.transpose(2, 0, 1))  # [3, H, W], uint8
    for index, level in enumerate(levels):
        pixels = area_resize(source, level.height, level.width)
        canvas[0, :, level.top:level.top + level.height, level.left:level.left + level.width] = pixels
        source = pixels if index == 0 else source
    canvas -= np.float32(127.5)
    canvas *= np.float32(0.0078125)
    return canvas


def crops(image: Image.Image, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box (rounded to pixels; zeros outside the image) resized to ``size`` x ``size``,
    normalised ``[N, 3, size, size]``."""
    out = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(np.int64).tolist()):
        box = (x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))
        out[i] = np.asarray(image.crop(box).resize((size, size), Image.BILINEAR))
    return normalize(out)
