"""Predicting over many files: inputs expanded (files, folders, globs), read in bounded batches,
one :class:`~ferkit.inference.results.ImageResult` per file, optionally with annotated copies of
the photos and attention maps of the faces. Writing them: :mod:`ferkit.inference.formats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ferkit.inference.annotate import annotate
from ferkit.inference.formats import FORMATS, format_csv, format_jsonl, format_table, write_results
from ferkit.inference.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    expand_inputs,
    is_unmatched,
    read_image,
)
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import DEFAULT, Prior
from ferkit.inference.results import ImageResult
from ferkit.output_paths import check_output_folder

__all__ = ["FORMATS", "ImageResult", "annotate", "format_csv", "format_jsonl", "format_table",
           "predict_files", "write_results"]


def _decoded_batches(paths: Iterable[Path], size: int, max_pixels: int
                     ) -> Iterator[list[tuple[Path, np.ndarray | ImageReadError]]]:
    """Inputs decoded in order, ``size`` at a time and fewer when they hold ``max_pixels``
    pixels together (so a batch of large photos stays within one decode budget); an input that
    cannot be read comes with its error instead of pixels."""
    batch: list[tuple[Path, np.ndarray | ImageReadError]] = []
    pixels = 0
    for path in paths:
        try:
            image: np.ndarray | ImageReadError = read_image(path, max_pixels)
            pixels += image.shape[0] * image.shape[1]
        except ImageReadError as err:
            image = err
        batch.append((path, image))
        if len(batch) == size or pixels >= max_pixels:
            yield batch
            batch, pixels = [], 0
    if batch:
        yield batch


def _read_error(path: Path, err: ImageReadError) -> str:
    if is_unmatched(path):
        return "no file matches this pattern"
    return str(err).removeprefix(f"{path}: ")


def predict_files(
    predictor: Predictor, inputs: Sequence[str], detect: bool = True, prior: Prior = DEFAULT,
    tau: float | None = None, batch_size: int = 8, annotate_dir: str | Path | None = None,
    cam_dir: str | Path | None = None, cam_mirror: bool = False, recursive: bool = False,
    skipped: list[Path] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per input file, ``batch_size`` decoded images at a time and
    at most about ``max_pixels`` decoded pixels (memory stays bounded however many files);
    unreadable files, special files and images over the decode budget are reported, not fatal.

    ``annotate_dir`` receives a copy of each photo with its faces drawn, ``cam_dir`` the
    attention maps of each face (``STEM_faceN.png``; ``cam_mirror`` adds the mirrored row).
    Folders are searched for image files, their subfolders too with ``recursive``; the other
    files and subfolders of a folder are appended to ``skipped`` (see :func:`expand_inputs`).
    """
    for folder, option in ((annotate_dir, "--annotate"), (cam_dir, "--cam-dir")):
        if folder is not None:
            check_output_folder(folder, option)
    paths = expand_inputs(inputs, recursive=recursive, skipped=skipped)
    for batch in _decoded_batches(paths, batch_size, max_pixels):
        readable = [(path, image) for path, image in batch if isinstance(image, np.ndarray)]
        results = {path: ImageResult(path, error=_read_error(path, image))
                   for path, image in batch if isinstance(image, ImageReadError)}
        per_image = [predictor.face_crops(image, detect) for _, image in readable]
        answers = predictor.classify_faces(per_image, prior, tau)
        for (path, image), (_, crops), faces in zip(readable, per_image, answers):
            if cam_dir is not None and crops:
                stem = _free_name(Path(cam_dir), path, "_face1").name.removesuffix("_face1.png")
                predictor.save_cam_overlays(crops, cam_dir, [f"{stem}_face{i}" for i in
                                                             range(1, len(crops) + 1)], mirror=cam_mirror)
            if annotate_dir is not None and faces:
                annotate(image, faces).save(_free_name(Path(annotate_dir), path))
            results[path] = ImageResult(path, faces)
        yield from (results[path] for path, _ in batch)


def _free_name(folder: Path, source: Path, suffix: str = "", ext: str = ".png") -> Path:
    """``folder/STEM{suffix}{ext}``, or ``STEM_N{suffix}{ext}`` when taken (two inputs named alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    target, count = folder / f"{source.stem}{suffix}{ext}", 1
    while target.exists():
        target, count = folder / f"{source.stem}_{count}{suffix}{ext}", count + 1
    return target
