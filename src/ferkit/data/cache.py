"""Decode once: every image of a dataset, resized, in one memory-mapped uint8 array on disk.

The cache file is keyed by the dataset's content key (file names, sizes, modification times), the
image size and the channel count, so changing any of them builds a new cache and a stale one is
never read. It is written to a temporary name and renamed when complete: a killed build leaves
no half-written cache behind. After the first epoch no image is ever decoded again.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ferkit.data.base import FERDataset

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$FERKIT_CACHE`` or ``~/.cache/ferkit``."""
    return Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[H, W, C]`` uint8 to ``[size, size, C]`` (bilinear; a no-op at the right size)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    mode = "L" if image.shape[2] == 1 else "RGB"
    pil = Image.fromarray(image[:, :, 0] if mode == "L" else image, mode)
    out = np.asarray(pil.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return out[:, :, None] if mode == "L" else out


def _decode_into(dataset: FERDataset, size: int, out: np.ndarray, workers: int, desc: str) -> None:
    def work(index: int) -> None:
        out[index] = resize_image(dataset.load_image(index), size).transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(pool.map(work, range(len(dataset))), total=len(dataset), desc=desc,
                      leave=False, disable=len(dataset) < 2000):
            pass


def cached_images(
    dataset: FERDataset, size: int, cache_dir: Path | str | None = None, workers: int = 4
) -> np.ndarray:
    """All images of ``dataset`` as uint8 ``[N, C, size, size]``, decoded at most once.

    Args:
        dataset: any :class:`FERDataset`.
        size: side of the square images in the cache.
        cache_dir: folder for ``.npy`` cache files; ``None`` keeps the array in memory only.
        workers: decoding threads.
    """
    shape = (len(dataset), dataset.channels, size, size)
    if cache_dir is None:
        array = np.empty(shape, np.uint8)
        _decode_into(dataset, size, array, workers, f"decoding {dataset.name}")
        return array
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{dataset.cache_key()}_{size}x{size}x{dataset.channels}_n{len(dataset)}.npy"
    if path.exists():
        array = np.load(path, mmap_mode="r")
        if array.shape == shape and array.dtype == np.uint8:
            return array
        log.warning("cache %s has shape %s, expected %s: rebuilding", path, array.shape, shape)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    try:
        _decode_into(dataset, size, array, workers, f"caching {dataset.name} at {size}px")
        array.flush()
        del array
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("cached %d images of %s in %s", shape[0], dataset.name, path)
    return np.load(path, mmap_mode="r")
