"""SYNTHETIC faces: a built-in, procedurally drawn expression data set for quick starts and tests.

Nothing here is real data. Each image is a cartoon face drawn with numpy (head ellipse, eyes,
brows, nose, mouth) whose shapes carry the expression, following the facial action units of each
basic emotion:

- surprise: raised brows, wide eyes, open round mouth
- fear: raised inner brows, wide eyes, wide stretched half-open mouth
- disgust: lowered brows, squint, nose wrinkles, upper lip raised on one side
- happiness: upturned (smiling) mouth, slight squint
- sadness: inner brows raised, downturned mouth
- anger: brows lowered and drawn inward (V), narrowed eyes, short pressed lips
- neutral: flat brows and mouth
- contempt (8 classes): one lip corner raised, everything else neutral

Nuisance variation keeps the task from being trivial: expression intensity, head rotation, shift
and scale, left-right asymmetry, skin/background tone, a lighting gradient and pixel noise. Every
image is a pure function of ``(seed, split, index)`` and is drawn on the fly (about 0.1 ms).
Class counts are long-tailed by default (RAF-DB's training proportions: happiness and neutral
most, fear and disgust fewest); ``class_counts`` sets them explicitly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ferkit.data.base import DatasetError, FERDataset
from ferkit.data.fake import FAKE_COUNTS
from ferkit.data.labels import class_names
from ferkit.data.registry import DatasetRequest, FakeTree, register_dataset
from ferkit.data.splits import SPLITS

OFFICIAL_SPLITS: tuple[str, ...] = SPLITS
# Long-tailed default (RAF-DB train counts, canonical order; contempt like FERPlus's rarity).
DEFAULT_PROPORTIONS = (1290, 281, 717, 4772, 1982, 705, 2524, 250)
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
# Expression deltas from neutral, scaled by a per-image intensity:
# brow_in / brow_out: brow end heights (negative = up); eye: eye opening; curve: mouth centre
# drop (positive = smile); open: mouth opening; width: mouth half-width change; thick: lip
# thickness change; lift: one-sided lip-corner raise; wrinkle: nose-wrinkle strength.
_NEUTRAL = dict(brow_in=0.0, brow_out=0.0, eye=0.0, curve=0.0, open=0.0, width=0.0, thick=0.0,
                lift=0.0, wrinkle=0.0)
_EXPRESSIONS: dict[str, dict[str, float]] = {
    "surprise": dict(brow_in=-0.15, brow_out=-0.15, eye=0.045, open=0.16, width=-0.13),
    "fear": dict(brow_in=-0.15, brow_out=-0.02, eye=0.04, open=0.06, width=0.1, curve=-0.03),
    "disgust": dict(brow_in=0.08, brow_out=0.04, eye=-0.03, curve=-0.04, lift=0.12, wrinkle=1.0),
    "happiness": dict(curve=0.16, width=0.06, eye=-0.015),
    "sadness": dict(brow_in=-0.13, brow_out=0.05, curve=-0.12, width=-0.03, eye=-0.012),
    "anger": dict(brow_in=0.13, brow_out=-0.04, eye=-0.025, width=-0.1, thick=0.035),
    "neutral": {},
    "contempt": dict(lift=0.13, curve=0.01),
}


def _allocate(total: int, weights: Sequence[float]) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder, >= 1)."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    counts = np.maximum(np.floor(w * total).astype(np.int64), 1 if total >= len(w) else 0)
    remainder = np.argsort(-(w * total - np.floor(w * total)), kind="stable")
    i = 0
    while counts.sum() < total:
        counts[remainder[i % len(w)]] += 1
        i += 1
    while counts.sum() > total:
        counts[np.argmax(counts)] -= 1
    return counts


def _soft(signed_distance: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased coverage of a shape from its signed distance (negative inside)."""
    return np.minimum(np.maximum(0.5 - signed_distance / pixel, 0.0), 1.0)


def _ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return (np.hypot((u - cx) / a, (v - cy) / b) - 1.0) * min(a, b)


def _segment(u: np.ndarray, v: np.ndarray, p: tuple[float, float], q: tuple[float, float],
             half_thick: float) -> np.ndarray:
    du, dv = q[0] - p[0], q[1] - p[1]
    t = np.clip(((u - p[0]) * du + (v - p[1]) * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(u - p[0] - t * du, v - p[1] - t * dv) - half_thick


def draw_face(expression: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw one grayscale face ``[size, size]`` float in [0, 1] showing ``expression``."""
    k = rng.uniform(0.4, 1.0)  # expression intensity
    p = {name: _NEUTRAL[name] + k * _EXPRESSIONS[expression].get(name, 0.0) for name in _NEUTRAL}
    angle, scale = rng.uniform(-0.26, 0.26), rng.uniform(0.85, 1.1)
    shift = rng.uniform(-0.08, 0.08, 2)
    coords = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    x, y = coords[None, :] - shift[0], coords[:, None] - shift[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (cos * x + sin * y) / scale, (-sin * x + cos * y) / scale  # face frame, [S, S]
    pixel = 2.0 / (size * scale)
    skin, ink = rng.uniform(0.55, 0.9), rng.uniform(0.05, 0.3)
    image = np.full((size, size), rng.uniform(0.1, 0.5), np.float32)

    def paint(shape: Callable, value: float, center: tuple[float, float], radius: float) -> None:
        # Only the pixels near the shape are evaluated: map its face-frame centre to pixels.
        cu, cv = center
        col = (scale * (cos * cu - sin * cv) + shift[0] + 1) / 2 * size
        row = (scale * (sin * cu + cos * cv) + shift[1] + 1) / 2 * size
        half = radius * scale * size / 2 + 2
        rows = slice(max(int(row - half), 0), max(int(row + half) + 1, 0))
        cols = slice(max(int(col - half), 0), max(int(col + half) + 1, 0))
        cover = _soft(shape(u[rows, cols], v[rows, cols]), pixel)
        image[rows, cols] = image[rows, cols] * (1 - cover) + value * cover

    head_a = 0.7 + rng.uniform(-0.05, 0.05)
    paint(lambda a, b: _ellipse(a, b, 0.0, 0.05, head_a, 0.88), skin, (0.0, 0.05), 0.95)
    side = rng.choice([-1.0, 1.0])  # which side an asymmetric expression uses
    for s in (-1.0, 1.0):  # s = -1 left, +1 right; each side jitters on its own (asymmetry)
        ex, ey = s * (0.3 + rng.uniform(-0.02, 0.02)), -0.18 + rng.uniform(-0.02, 0.02)
        eye_h = max(0.07 + p["eye"] + rng.uniform(-0.01, 0.01), 0.015)
        paint(partial(_ellipse, cx=ex, cy=ey, a=0.12, b=eye_h), 0.95, (ex, ey), 0.14)
        pupil = min(0.045, eye_h)
        paint(partial(_ellipse, cx=ex, cy=ey, a=0.045, b=pupil), ink, (ex, ey), 0.06)
        inner = (s * (0.12 - 0.04 * max(p["brow_in"], 0.0) / 0.13),
                 -0.4 + rng.uniform(-0.02, 0.02) + p["brow_in"])
        outer = (s * 0.45, inner[1] - p["brow_in"] + p["brow_out"])
        mid = ((inner[0] + outer[0]) / 2, (inner[1] + outer[1]) / 2)
        paint(partial(_segment, p=inner, q=outer, half_thick=0.035), ink, mid, 0.25)
        if p["wrinkle"] > 0.3:
            wrinkle = partial(_segment, p=(s * 0.07, 0.0), q=(s * 0.14, 0.07), half_thick=0.012)
            paint(wrinkle, ink + 0.15, (s * 0.105, 0.035), 0.07)
    paint(lambda a, b: _segment(a, b, (0.0, -0.1), (0.0, 0.12), 0.02), skin * 0.7,
          (0.0, 0.01), 0.14)
    mouth_y = 0.48 + rng.uniform(-0.03, 0.03)
    width = 0.25 + p["width"] + rng.uniform(-0.02, 0.02)
    tilt = rng.uniform(-0.02, 0.02)
    half_open = p["open"] / 2 + (0.035 + p["thick"]) / 2

    def mouth(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t = np.clip(a / width, -1.0, 1.0)
        # Centre line: a parabola (curve), a one-sided corner lift, a small random tilt.
        line = (mouth_y + p["curve"] * (1 - t * t) - p["lift"] * np.maximum(side * t, 0.0) ** 2
                + tilt * t)
        return np.maximum(np.abs(b - line) - half_open * np.sqrt(1 - t * t + 0.05),
                          np.abs(a) - width)

    paint(mouth, ink, (0.0, mouth_y), width + 0.2)
    if p["open"] > 0.03:  # dark inside of an open mouth
        paint(lambda a, b: mouth(a, b) + 0.015, ink * 0.3, (0.0, mouth_y), width + 0.2)
    # Lighting gradient, then sensor noise.
    phi = rng.uniform(0, 2 * np.pi)
    image *= 1 + rng.uniform(0.0, 0.35) * (np.cos(phi) * x + np.sin(phi) * y)
    image += rng.normal(0.0, rng.uniform(0.02, 0.08), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


class SyntheticFaces(FERDataset):
    """SYNTHETIC procedurally drawn faces (not real data); see the module docstring.

    Args:
        split: "train", "val" or "test" (independent images per split).
        num_classes: 7 or 8.
        size: image side in pixels.
        num_images: images in this split (ignored when ``class_counts`` is given).
        seed: data seed; images are a pure function of ``(seed, split, index)``.
        channels: 1 (grayscale) or 3 (gray with a skin tint).
        class_counts: images per class in canonical order (overrides the long tail).
        proportions: relative class frequencies used with ``num_images``.
        transform: optional callable on the uint8 ``[C, H, W]`` tensor.
    """

    generated = True

    def __init__(self, split: str, num_classes: int = 7, size: int = 48, num_images: int = 2000,
                 seed: int = 0, channels: int = 1, class_counts: Sequence[int] | None = None,
                 proportions: Sequence[float] | None = None,
                 transform: Callable | None = None) -> None:
        names = class_names(num_classes)
        if channels not in (1, 3) or size < 16:
            raise DatasetError(f"synthetic: need channels 1 or 3 and size >= 16, "
                               f"got channels={channels}, size={size}")
        if class_counts is None:
            weights = proportions if proportions is not None else DEFAULT_PROPORTIONS[:num_classes]
            if len(weights) != num_classes:
                raise DatasetError(f"synthetic: {len(weights)} proportions given for "
                                   f"{num_classes} classes")
            class_counts = _allocate(num_images, weights)
        counts = np.asarray(class_counts, np.int64)
        if counts.shape != (num_classes,) or (counts < 0).any():
            raise DatasetError(f"synthetic: class_counts must be {num_classes} non-negative "
                               f"integers in canonical order {list(names)}, got {list(counts)}")
        self.seed, self.split, self.size = int(seed), split, int(size)
        order_rng = np.random.default_rng([self.seed, _SPLIT_CODE[split], 7919])
        labels = order_rng.permutation(np.repeat(np.arange(num_classes), counts))
        super().__init__([""] * len(labels), labels, names, channels=channels,
                         transform=transform, name=f"SYNTHETIC-faces-{split}")

    def load_image(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], int(index)])
        face = draw_face(self.class_names[self.labels[index]], rng, self.size)
        if self.channels == 3:
            face = face[:, :, None] * np.array([1.0, 0.88, 0.78])
        else:
            face = face[:, :, None]
        return (face * 255 + 0.5).astype(np.uint8)

    def cache_key(self, indices: np.ndarray | None = None) -> str:
        """Key of the generated images ``indices``: each is a pure function of
        ``(seed, split, index, label, size, channels)``."""
        text = (f"synthetic-v1|{self.seed}|{self.split}|{self.size}|{self.channels}|"
                f"{self.num_classes}|{self.class_counts.tolist()}")
        digest = hashlib.sha1(text.encode())
        if indices is None:
            digest.update(self.labels.tobytes())
        else:
            index = np.asarray(indices, np.int64)
            digest.update(b"subset" + index.tobytes() + self.labels[index].tobytes())
        return digest.hexdigest()


def fake_synthetic(folder: Path) -> FakeTree:
    """Options giving 1..7 images per class in every split (nothing is written)."""
    counts = FAKE_COUNTS["train"]
    options = {"size": 16, "num_train": 28, "num_val": 28, "num_test": 28, "proportions": counts}
    return FakeTree(None, {split: list(counts) for split in SPLITS}, options)


@register_dataset("synthetic", title="synthetic", splits=OFFICIAL_SPLITS,
                  fake_tree=fake_synthetic, needs_root=False)
def synthetic(
    request: DatasetRequest,
    *,
    size: int = 48,
    num_train: int = 2000,
    num_val: int = 500,
    num_test: int = 700,
    seed: int = 0,
    channels: int = 1,
    class_counts: Sequence[int] | None = None,
    proportions: Sequence[float] | None = None,
) -> FERDataset:
    """Registered constructor for :class:`SyntheticFaces` (``root`` and ``require_images`` are
    ignored: nothing is read from disk). ``class_counts`` applies to the requested split."""
    _, split, num_classes, transform, _ = request
    num_images = {"train": num_train, "val": num_val, "test": num_test}[split]
    return SyntheticFaces(split, num_classes, size, num_images, seed, channels, class_counts,
                          proportions, transform)
