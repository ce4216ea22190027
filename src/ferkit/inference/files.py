"""Predicting over many files: inputs expanded (files, folders, globs), read in bounded batches,
one :class:`~ferkit.inference.results.ImageResult` per file, optionally with annotated copies of
the photos and attention maps of the faces. Writing them: :mod:`ferkit.inference.formats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ferkit.inference.annotate import annotate
from ferkit.inference.formats import FORMATS, format_csv, format_jsonl, format_table, write_results
from ferkit.inference.images import ImageReadError, expand_inputs, read_image
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import Prior
from ferkit.inference.results import ImageResult

__all__ = ["FORMATS", "ImageResult", "annotate", "format_csv", "format_jsonl", "format_table",
           "predict_files", "write_results"]


def _chunks(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_files(
    predictor: Predictor, inputs: Sequence[str], detect: bool = True, prior: Prior = "train",
    tau: float = 1.0, batch_size: int = 8, annotate_dir: str | Path | None = None,
    cam_dir: str | Path | None = None, cam_mirror: bool = False, recursive: bool = False,
    skipped: list[Path] | None = None,
) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per input file, ``batch_size`` decoded images at a time
    (memory stays bounded however many files); unreadable files are reported, not fatal.

    ``annotate_dir`` receives a copy of each photo with its faces drawn, ``cam_dir`` the
    attention maps of each face (``STEM_faceN.png``; ``cam_mirror`` adds the mirrored row).
    Folders are searched for image files, their subfolders too with ``recursive``; the other
    files and subfolders of a folder are appended to ``skipped`` (see :func:`expand_inputs`).
    """
    for chunk in _chunks(expand_inputs(inputs, recursive=recursive, skipped=skipped), batch_size):
        readable, results = [], []
        for path in chunk:
            try:
                readable.append((path, read_image(path)))
            except ImageReadError as err:
                results.append(ImageResult(path, error=str(err).removeprefix(f"{path}: ")))
        per_image = [predictor.face_crops(image, detect) for _, image in readable]
        answers = predictor.classify_faces(per_image, prior, tau)
        for (path, image), (_, crops), faces in zip(readable, per_image, answers):
            if cam_dir is not None and crops:
                stem = _free_name(Path(cam_dir), path, "_face1").name.removesuffix("_face1.png")
                predictor.save_cam_overlays(crops, cam_dir, [f"{stem}_face{i}" for i in
                                                             range(1, len(crops) + 1)], mirror=cam_mirror)
            if annotate_dir is not None and faces:
                annotate(image, faces).save(_free_name(Path(annotate_dir), path))
            results.append(ImageResult(path, faces))
        order = {p: i for i, p in enumerate(chunk)}
        yield from sorted(results, key=lambda r: order[r.path])


def _free_name(folder: Path, source: Path, suffix: str = "", ext: str = ".png") -> Path:
    """``folder/STEM{suffix}{ext}``, or ``STEM_N{suffix}{ext}`` when taken (two inputs named alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    target, count = folder / f"{source.stem}{suffix}{ext}", 1
    while target.exists():
        target, count = folder / f"{source.stem}_{count}{suffix}{ext}", count + 1
    return target
