"""Tiny fake trees in each dataset's published layout, for the registry-driven contract tests.

A dataset module's ``fake_tree`` hook writes a few 8x8 images and the label files that list them,
with a different number of images per class (so a parser that mixes up the class order fails),
and returns a :class:`~ferkit.data.registry.FakeTree` with the counts a correct parser finds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data.labels import CANONICAL_7

# Images per canonical class (surprise ... neutral) in the fake trees: all different per split.
FAKE_COUNTS: dict[str, list[int]] = {
    "train": [1, 2, 3, 4, 5, 6, 7],
    "val": [1, 1, 1, 1, 1, 1, 1],
    "test": [7, 6, 5, 4, 3, 2, 1],
}


def write_image(path: Path, value: int = 128, channels: int = 3, size: int = 8) -> None:
    """Write a flat ``size`` x ``size`` image (PNG or JPEG by the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if channels == 1 else (size, size, 3)
    Image.fromarray(np.full(shape, value % 256, np.uint8), "L" if channels == 1 else "RGB").save(path)


def fake_samples(split: str) -> list[tuple[int, str]]:
    """``(sample number, canonical class name)`` for every image of ``split`` in a fake tree."""
    names = [name for name, count in zip(CANONICAL_7, FAKE_COUNTS[split]) for _ in range(count)]
    return list(enumerate(names))


__all__ = ["FAKE_COUNTS", "fake_samples", "write_image"]
