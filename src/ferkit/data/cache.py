"""Decode once: every image of a dataset, resized, in one memory-mapped uint8 array on disk.

A cache file can only serve the pixels it was built from:

- Its name carries a key over what the pixels depend on: the dataset's content key (resolved
  absolute file paths and a hash of each file's bytes, :mod:`ferkit.data.fingerprint`), the
  image size, the channel count, the resize method and :data:`CACHE_FORMAT`. Two copies of a
  data set in different folders, or a copy whose images were rewritten in place with the same
  sizes and modification times, get different caches.
- The file is ``FERKIT-CACHE`` + a JSON header (format, key, shape, CRC-32 of the pixels) padded
  to :data:`HEADER_BYTES`, then the raw ``[N, C, S, S]`` pixels. Every open checks the header,
  the key, the shape, the file size and the CRC-32 of all pixels; on any mismatch or damage
  (empty, truncated, broken header, overwritten pixels, wrong shape) it logs a warning naming the
  file and the problem and rebuilds it.
- It is built under a temporary name (:func:`ferkit.tempfiles.temp_path`) and renamed when
  complete; temporary files of writers that died are removed on the next call. Its disk space is
  reserved before decoding starts (``posix_fallocate``), so a full disk fails at once instead of
  crashing the process (SIGBUS) halfway through the memory map.
- A folder that cannot be written (read-only, not a folder, disk full) is not an error: an existing
  valid cache in it is still read; otherwise the images are decoded into memory for this process,
  with a warning naming the folder and the settings that fix it.

Cost, loaded machine (AMD EPYC, 2 cores shared with training runs): the fingerprint of FERPlus
``FER2013Train`` (28,558 files) takes 0.6-1.7 s; opening its 112 px cache (28,558 x 1 x 112 x 112 =
358 MB: header checks + CRC-32 of all pixels, from the page cache) 0.23-0.30 s, so the full check
runs on every open (``python benchmarks/cache_cost.py``; docs/benchmarks/cache.md).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ferkit.data.base import FERDataset
from ferkit.tempfiles import atomic_path, remove_dead_temp_files

log = logging.getLogger(__name__)

CACHE_FORMAT = 2
RESIZE_METHOD = "PIL-bilinear"
MAGIC = b"FERKIT-CACHE\n"
HEADER_BYTES = 4096
_CHUNK = 64 << 20


class CacheDamaged(Exception):
    """A cache file that cannot be used as it is; the message says what is wrong with it."""


class CacheUnwritable(OSError):
    """The cache folder or file cannot be written (permissions, not a folder, no space left)."""


def default_cache_dir() -> Path:
    """``$FERKIT_CACHE`` or ``~/.cache/ferkit``."""
    return Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))


def resolve_cache_dir(setting: str | None) -> Path | None:
    """The folder ``data.cache_dir`` names: None = :func:`default_cache_dir`, ``"memory"`` = no
    disk cache (returns None), else that path."""
    if setting == "memory":
        return None
    return Path(setting) if setting else default_cache_dir()


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


def pixel_checksum(array: np.ndarray) -> int:
    """CRC-32 of the bytes of a C-contiguous array, in 64 MB chunks (memory maps stay mapped)."""
    flat = array.reshape(-1)
    crc = 0
    for start in range(0, flat.size, _CHUNK):
        crc = zlib.crc32(flat[start : start + _CHUNK], crc)
    return crc


def cache_path(dataset: FERDataset, size: int, cache_dir: Path) -> tuple[Path, str]:
    """Where the cache of ``dataset`` at ``size`` lives, and its full key."""
    text = (f"{CACHE_FORMAT}|{dataset.cache_key()}|{size}|{dataset.channels}|{RESIZE_METHOD}|"
            f"{len(dataset)}")
    key = hashlib.sha1(text.encode()).hexdigest()
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", dataset.name).strip("_")[:60]
    return cache_dir / f"{name}_{size}x{size}x{dataset.channels}_{key[:20]}.fkcache", key


def _read_header(path: Path, file_size: int) -> dict:
    if file_size < HEADER_BYTES:
        what = "empty" if file_size == 0 else f"{file_size} bytes"
        raise CacheDamaged(f"{what}, shorter than its {HEADER_BYTES}-byte header (truncated)")
    with open(path, "rb") as handle:
        raw = handle.read(HEADER_BYTES)
    if not raw.startswith(MAGIC):
        raise CacheDamaged("no ferkit cache header (overwritten, or not a cache file)")
    try:
        header = json.loads(raw[len(MAGIC):].decode("utf-8"))
        fields = (header["format"], header["key"], header["shape"], header["crc32"])
    except (ValueError, KeyError, TypeError) as err:
        raise CacheDamaged(f"broken header ({type(err).__name__}: {err})") from None
    types = (int, str, list, int)
    if not all(isinstance(v, t) for v, t in zip(fields, types)) or not all(
            isinstance(n, int) for n in header["shape"]):
        raise CacheDamaged(f"broken header (fields of the wrong type: {str(fields)[:80]})")
    return header


def open_cache(path: Path, key: str, shape: tuple[int, ...]) -> np.memmap:
    """Map a cache file read-only after checking its header, size and pixel checksum.

    Raises:
        CacheDamaged: anything that does not match (the message says what).
        FileNotFoundError: there is no such file.
    """
    file_size = path.stat().st_size
    header = _read_header(path, file_size)
    if header["format"] != CACHE_FORMAT:
        raise CacheDamaged(f"format {header['format']}, this ferkit writes {CACHE_FORMAT}")
    if header["key"] != key:
        raise CacheDamaged(f"key {str(header['key'])[:20]}..., expected {key[:20]}... "
                           "(renamed or copied from another cache)")
    if tuple(header["shape"]) != shape:
        raise CacheDamaged(f"shape {tuple(header['shape'])}, expected {shape}")
    expected = HEADER_BYTES + int(np.prod(shape))
    if file_size != expected:
        raise CacheDamaged(f"{file_size} bytes, expected {expected} (truncated or appended to)")
    array = np.memmap(path, np.uint8, "r", offset=HEADER_BYTES, shape=shape)
    if pixel_checksum(array) != header["crc32"]:
        raise CacheDamaged("pixel checksum mismatch (pixels overwritten or damaged on disk)")
    return array


def _allocate(path: Path, nbytes: int) -> None:
    """Create ``path`` (and its folder) with ``nbytes`` of disk space reserved (a sparse file where
    the file system cannot reserve), or raise :class:`CacheUnwritable`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(nbytes)
            reserve = getattr(os, "posix_fallocate", None)  # not on macOS / Windows: stays sparse
            try:
                if reserve is not None:
                    reserve(handle.fileno(), 0, nbytes)
            except OSError as err:
                if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # unsupported: stays sparse
                    raise
    except OSError as err:
        raise CacheUnwritable(err.errno, f"cannot write the decode cache in {path.parent}: "
                              f"{err.strerror or err}") from err


def _build(dataset: FERDataset, size: int, path: Path, key: str, workers: int) -> np.memmap:
    shape = (len(dataset), dataset.channels, size, size)
    with atomic_path(path) as tmp:
        _allocate(tmp, HEADER_BYTES + int(np.prod(shape)))
        array = np.memmap(tmp, np.uint8, "r+", offset=HEADER_BYTES, shape=shape)
        _decode_into(dataset, size, array, workers, f"caching {dataset.name} at {size}px")
        array.flush()
        header = {"format": CACHE_FORMAT, "key": key, "shape": list(shape),
                  "crc32": pixel_checksum(array), "dataset": dataset.name, "size": size,
                  "resize": RESIZE_METHOD}
        del array
        raw = MAGIC + json.dumps(header).encode()
        with open(tmp, "r+b") as handle:
            handle.write(raw + b" " * (HEADER_BYTES - len(raw)))
            handle.flush()
            os.fsync(handle.fileno())
    log.info("cached %d images of %s in %s", shape[0], dataset.name, path)
    return np.memmap(path, np.uint8, "r", offset=HEADER_BYTES, shape=shape)


def cached_images(
    dataset: FERDataset, size: int, cache_dir: Path | str | None = None, workers: int = 4
) -> np.ndarray:
    """All images of ``dataset`` as uint8 ``[N, C, size, size]``, decoded at most once.

    Args:
        dataset: any :class:`FERDataset`.
        size: side of the square images in the cache.
        cache_dir: folder for cache files; ``None`` keeps the array in memory only.
        workers: decoding threads.
    """
    shape = (len(dataset), dataset.channels, size, size)
    if cache_dir is not None and len(dataset) > 0:
        cache_dir = Path(cache_dir)
        path, key = cache_path(dataset, size, cache_dir)
        remove_dead_temp_files(cache_dir)
        try:
            return open_cache(path, key, shape)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (CacheDamaged, PermissionError) as err:
            log.warning("decode cache %s is unusable: %s; rebuilding it", path, err)
        try:
            return _build(dataset, size, path, key, workers)
        except CacheUnwritable as err:
            log.warning("%s; decoding %s into memory for this run instead. Set data.cache_dir "
                        "(or $FERKIT_CACHE) to a writable folder to decode only once, or "
                        "data.cache_dir: memory to skip the cache without this warning",
                        err.strerror, dataset.name)
    array = np.empty(shape, np.uint8)
    _decode_into(dataset, size, array, workers, f"decoding {dataset.name}")
    return array
