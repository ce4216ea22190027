"""What the decode cache's safety costs: the content fingerprint and the checksum verified on open.

Usage (from the project root)::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/cache_cost.py [--root ../shared/data/ferplus]

Times, each repeated ``--repeats`` times (the first fingerprint pass may be cold):
1. the old key (``os.stat`` of every file: name, size, mtime) over ``FER2013Train``;
2. :func:`ferkit.data.fingerprint.fingerprint_files` (resolved paths + SHA-1 of each file);
3. :func:`ferkit.data.cache.open_cache` (header checks + CRC-32 of all pixels) of a cache of
   FERPlus train's shape at 112 px, 28,558 x 1 x 112 x 112; its pixels are random, which does not
   change the cost. The file is written to a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ferkit.data import FERDataset
from ferkit.data.cache import cache_path, cached_images, open_cache, pixel_checksum
from ferkit.data.fingerprint import fingerprint_files
from ferkit.data.labels import CANONICAL_7


class _RandomFaces(FERDataset):
    """``num`` random grayscale images at ``size`` (cheap to "decode")."""

    def __init__(self, num: int, size: int) -> None:
        super().__init__([""] * num, np.zeros(num), CANONICAL_7, channels=1, name="bench")
        self.size = size

    def load_image(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        return rng.integers(0, 256, (self.size, self.size, 1), dtype=np.uint8)

    def cache_key(self, indices: np.ndarray | None = None) -> str:
        return f"bench-{len(self)}-{self.size}"


def _times(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _show(label: str, times: list[float]) -> None:
    runs = ", ".join(f"{t:.3f}" for t in times)
    print(f"{label}: median {statistics.median(times):.3f} s (runs: {runs})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/ferplus")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted((Path(args.root) / "FER2013Train").glob("*.png"))
    print(f"{len(paths)} files in {args.root}/FER2013Train")
    _show("old key (os.stat per file)", _times(
        lambda: [os.stat(p) for p in paths], args.repeats))
    _show("fingerprint (path + SHA-1 of bytes)", _times(
        lambda: fingerprint_files(paths), args.repeats))
    dataset = _RandomFaces(28_558, 112)
    with tempfile.TemporaryDirectory(dir=".") as folder:
        cached_images(dataset, 112, folder)
        path, key = cache_path(dataset, 112, Path(folder))
        shape = (len(dataset), 1, 112, 112)
        print(f"cache file {path.stat().st_size / 1e6:.0f} MB")
        _show("open_cache (header + CRC-32 from page cache)", _times(
            lambda: open_cache(path, key, shape), args.repeats))
        pixels = np.array(open_cache(path, key, shape))
        _show("CRC-32 of the same pixels in memory", _times(
            lambda: pixel_checksum(pixels), args.repeats))


if __name__ == "__main__":
    main()
