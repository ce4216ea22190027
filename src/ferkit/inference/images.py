"""Reading photographs the way a user expects: EXIF orientation applied, 16-bit images scaled to
8 bits (not clipped to white), and oversized images refused with a clear message instead of
Pillow's raw ``DecompressionBombError``.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 ``[H, W, 3]`` RGB.

    Raises:
        ImageReadError: missing file, not an image, or more pixels than Pillow decodes safely
            (twice ``PIL.Image.MAX_IMAGE_PIXELS``: about 179 megapixels by default).
    """
    try:
        with Image.open(path) as image:
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
    ``recursive`` those of all its subfolders. Its other files, and its subfolders when not
    ``recursive``, are appended to ``skipped`` (when given) so they can be named instead of passed
    over in silence.
    A name that matches nothing is yielded as is, so the reader reports it as missing.
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            entries = sorted(path.rglob("*") if recursive else path.iterdir())
            for entry in entries:
                if entry.is_file() and entry.suffix.lower() in suffixes:
                    yield entry
                elif skipped is not None and not (recursive and entry.is_dir()):
                    skipped.append(entry)
        elif not path.exists() and glob.has_magic(item):
            yield from sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            yield path


def downscale_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most ``max_side`` and the factor back to the original."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, 1.0
    factor = max(height, width) / max_side
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(small), factor
