"""Reading photographs the way a user expects: EXIF orientation applied, 16-bit images scaled to
8 bits (not clipped to white), and nothing that can hang or exhaust memory:

- only regular files are read (a FIFO, device or socket named ``x.png`` is reported, never
  opened for a blocking read);
- a decode budget in pixels, checked from the image header before any pixel is decoded
  (:data:`DEFAULT_MAX_PIXELS` for the CLI and the API; ``ferkit serve`` uses a lower one), and a
  file size limit that follows from it (:func:`max_file_bytes`);
- glob patterns and folders list each file once and never follow a directory symlink into a
  folder already visited (a link loop ends).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferkit.limits import DEFAULT_MAX_PIXELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(RuntimeError):
    """A file that is missing, not an image, or too large to decode safely."""


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow image -> uint8 ``[H, W, 3]`` RGB, EXIF orientation applied.

    16-bit greyscale (modes ``I;16*``, and ``I`` holding values above 255) is scaled by
    255 / 65535; float images (mode ``F``) by 255 when they lie in [0, 1], else clipped.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
            values = values * (255.0 / 65535.0)
        elif image.mode == "F" and values.max() <= 1.0:
            values = values * 255.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def max_file_bytes(max_pixels: int) -> int:
    """The per-file read limit of a decode budget: an uncompressed RGBA image of that many
    pixels, plus 16 MiB of headers and metadata."""
    return 4 * max_pixels + (16 << 20)


def check_pixels(size: tuple[int, int], max_pixels: int, raise_with: str) -> None:
    """Refuse an image of ``size`` (width, height) above ``max_pixels``, before decoding it.

    Raises:
        ImageReadError: naming the size, the budget and ``raise_with`` (how to raise it).
    """
    width, height = size
    if width * height > max_pixels:
        raise ImageReadError(
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the decode budget "
            f"of {max_pixels / 1e6:g} megapixels (about {3 * max_pixels / 1e6:.0f} MB decoded); "
            f"downscale it (faces need far fewer pixels) or raise the budget with {raise_with}")


def check_regular_file(path: Path, max_bytes: int | None = None) -> None:
    """Refuse anything but a regular file (of at most ``max_bytes``); the check opens ``path``
    non-blocking, so a FIFO cannot hang it.

    Raises:
        ImageReadError: missing, a FIFO, device, socket or folder, or a file over ``max_bytes``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
                 stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket",
                 stat.S_ISDIR: "a folder"}
        kind = next((name for test, name in kinds.items() if test(info.st_mode)), "not a file")
        raise ImageReadError(f"{path}: {kind}, not a regular file; only image files are read")
    if max_bytes is not None and info.st_size > max_bytes:
        raise ImageReadError(f"{path}: {info.st_size / 1e6:.0f} MB, more than an image within "
                             f"the decode budget can take ({max_bytes / 1e6:.0f} MB); not read")


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
               raise_with: str = "--max-megapixels") -> np.ndarray:
    """Decode an image file to uint8 ``[H, W, 3]`` RGB.

    Args:
        path: a regular image file.
        max_pixels: decode budget, checked from the header before decoding.
        raise_with: how the user raises the budget (named in the error).

    Raises:
        ImageReadError: missing file, not a regular file, not an image, larger than the budget
            (or than Pillow's safety limit: twice ``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    path = Path(path)
    try:
        check_regular_file(path, max_file_bytes(max_pixels))
        with Image.open(path) as image:
            try:
                check_pixels(image.size, max_pixels, raise_with)
            except ImageReadError as err:
                raise ImageReadError(f"{path}: {err}") from None
            return to_rgb_array(image)
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: file not found") from err
    except Image.DecompressionBombError as err:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow refuses above twice its warning limit
        raise ImageReadError(
            f"{path}: too large to decode safely ({err}). ferkit reads images up to "
            f"{limit / 1e6:.0f} megapixels (Pillow's safety limit); downscale it first (faces need "
            "far fewer pixels)") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err})") from err


def expand_inputs(inputs: Sequence[str], suffixes: Sequence[str] = IMAGE_SUFFIXES,
                  recursive: bool = False, skipped: list[Path] | None = None) -> Iterator[Path]:
    """Files, folders and glob patterns -> paths, sorted within each folder or pattern.

    A folder gives its files with one of ``suffixes`` (default :data:`IMAGE_SUFFIXES`), and with
    ``recursive`` those of all its subfolders (folder symlinks are not entered, so a link loop
    ends). Its other files (FIFOs and devices too), and its subfolders when not ``recursive``, are
    appended to ``skipped`` (when given) so they can be named instead of passed over in silence.
    A name that is neither a file nor a pattern is yielded as is, so the reader reports it as
    missing; a pattern that matches nothing is yielded as is too (see :func:`is_unmatched`).
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            entries = sorted(path.rglob("*") if recursive else path.iterdir())
            for entry in entries:
                # a FIFO or device named *.png is yielded too: the reader names what it is
                if not entry.is_dir() and entry.suffix.lower() in suffixes:
                    yield entry
                elif skipped is not None and not (recursive and entry.is_dir()):
                    skipped.append(entry)
        elif not os.path.lexists(path) and glob.has_magic(item):
            yield from glob_files(item) or [path]
        else:
            yield path


def is_unmatched(path: Path) -> bool:
    """Whether ``path`` is a glob pattern that :func:`expand_inputs` found no file for."""
    return not os.path.lexists(path) and glob.has_magic(str(path))


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Path components against pattern components (``**``: any number of folders), with glob's
    rule that ``*`` and ``**`` do not match names starting with a dot."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return _matches(parts, pattern[1:]) or (
            bool(parts) and not parts[0].startswith(".") and _matches(parts[1:], pattern))
    return (bool(parts) and (not parts[0].startswith(".") or head.startswith("."))
            and fnmatch.fnmatchcase(parts[0], head) and _matches(parts[1:], pattern[1:]))


def glob_files(pattern: str) -> list[Path]:
    """Every non-folder matching ``pattern`` (``**`` = any depth), sorted, each file once.

    Folder symlinks are followed, but never into a folder already visited, so a link loop or a
    link to a parent ends; two names of one file (a symlink beside its target) give one path.
    """
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base, rest = Path(*parts[:fixed]) if fixed else Path("."), parts[fixed:]
    depth = None if "**" in rest else len(rest) - 1  # folders below base worth entering
    visited: set[tuple[int, int]] = set()
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(base, followlinks=True):
        info = os.stat(folder)
        relative = Path(folder).relative_to(base).parts
        if (info.st_dev, info.st_ino) in visited or (depth is not None and len(relative) > depth):
            dirs[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in files:
            if _matches((*relative, name), rest):
                path = Path(folder, name)
                found.setdefault(os.path.realpath(path), path)
    return sorted(found.values())


def downscale_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most ``max_side`` and the factor back to the original."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0
    factor = max(height, width) / max_side
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(small), factor
