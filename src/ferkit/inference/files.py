"""Predicting over many files: inputs expanded (files, folders, globs), read in bounded batches,
one record per face (or per image without a face / unreadable), written as a table, JSON lines
or CSV, optionally with annotated copies of the photos and attention maps of the faces.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ferkit.inference.images import ImageReadError, expand_inputs, read_image
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import Prior
from ferkit.inference.tracking import format_summary

FORMATS = ("table", "jsonl", "csv")


@dataclass
class ImageResult:
    """What happened to one input (or one processed frame of a video: ``frame`` and ``time``
    set): its faces, or why there are none. A video's last result carries its per-track
    summary in ``tracks`` (and no faces)."""

    path: Path
    faces: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    frame: int | None = None
    time: float | None = None
    tracks: list[dict[str, Any]] | None = None

    @property
    def status(self) -> str:
        if self.error:
            return f"error: {self.error}"
        return "ok" if self.faces else "no face found"


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
    cam_dir: str | Path | None = None, cam_mirror: bool = False,
) -> Iterator[ImageResult]:
    """Yield one :class:`ImageResult` per input file, ``batch_size`` decoded images at a time
    (memory stays bounded however many files); unreadable files are reported, not fatal.

    ``annotate_dir`` receives a copy of each photo with its faces drawn, ``cam_dir`` the
    attention maps of each face (``STEM_faceN.png``; ``cam_mirror`` adds the mirrored row).
    """
    for chunk in _chunks(expand_inputs(inputs), batch_size):
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


def annotate(image: np.ndarray, faces: Sequence[dict[str, Any]]) -> Image.Image:
    """A copy of the photo with each face's box, landmarks and "label NN%" drawn (prefixed
    with "#ID" for a face with a track id)."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(2, round(max(canvas.size) / 400))
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        draw.rectangle([x1, y1, x2, y2], outline=(255, 220, 0), width=line)
        for x, y in face["landmarks"] or []:
            draw.ellipse([x - line, y - line, x + line, y + line], fill=(0, 255, 255))
        text = f"{face['label']} {100 * face['confidence']:.0f}%"
        if face.get("track") is not None:
            text = f"#{face['track']} {text}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        offset = bottom - top + 4
        draw.rectangle([left, top - offset, right + 4, bottom - offset + 2], fill=(255, 220, 0))
        draw.text((x1 + 2, y1 - offset), text, fill="black", font=font)
    return canvas


def format_table(result: ImageResult, class_names: Sequence[str], header: bool) -> str:
    """Readable rows: image, face, box, detector score, label, confidence, every probability
    (landmarks are in the JSON lines and CSV outputs). A video frame's rows name the file and
    the time in seconds, and number each face with its track id (``#N``)."""
    lines = []
    if header:
        probs = " ".join(f"{n[:9]:>9}" for n in class_names)
        lines.append(f"{'image':<28} {'face':>4} {'box (x1,y1,x2,y2)':<22} {'score':>5} "
                     f"{'label':<10} {'conf':>6} {probs}")
    name = str(result.path) if result.time is None else f"{result.path} {result.time:.2f}s"
    if not result.faces:
        return "\n".join([*lines, f"{name:<28} {'-':>4} {result.status}"])
    for i, face in enumerate(result.faces, 1):
        i = f"#{face['track']}" if face.get("track") is not None else i  # type: ignore[assignment]
        box = ",".join(f"{v:.0f}" for v in face["box"])
        score = "-" if face["score"] is None else f"{face['score']:.2f}"
        probs = " ".join(f"{100 * face['probabilities'][n]:>8.1f}%" for n in class_names)
        lines.append(f"{name:<28} {i:>4} {box:<22} {score:>5} {face['label']:<10} "
                     f"{100 * face['confidence']:>5.1f}% {probs}")
    return "\n".join(lines)


def format_jsonl(result: ImageResult) -> str:
    """One JSON object per face; an image without faces gets one object with its status. A video
    frame's objects add ``frame`` and ``time`` (and each face its ``track``)."""
    where = {"image": str(result.path)}
    if result.frame is not None:
        where.update(frame=result.frame, time=result.time)
    if not result.faces:
        return json.dumps({**where, "face": None, "status": result.status})
    return "\n".join(json.dumps({**where, "face": i, "status": "ok", **face})
                     for i, face in enumerate(result.faces, 1))


def csv_header(class_names: Sequence[str]) -> list[str]:
    points = [f"{p}_{a}" for p in ("eye1", "eye2", "nose", "mouth1", "mouth2") for a in ("x", "y")]
    return ["image", "status", "face", "frame", "time", "track", "x1", "y1", "x2", "y2", "score",
            "label", "confidence", *points, *(f"p_{n}" for n in class_names)]


def format_csv(result: ImageResult, class_names: Sequence[str], header: bool) -> str:
    """CSV rows (one per face; an image without faces gets one row with its status), every row
    with every column (empty where a value does not apply: frame, time and track for photos)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = csv_header(class_names)
    if header:
        writer.writerow(columns)
    frame = ["" if result.frame is None else result.frame, "" if result.time is None else result.time]
    if not result.faces:
        writer.writerow([str(result.path), result.status, "", *frame] + [""] * (len(columns) - 5))
    for i, face in enumerate(result.faces, 1):
        points = np.asarray(face["landmarks"]).ravel().tolist() if face["landmarks"] else [""] * 10
        track = "" if face.get("track") is None else face["track"]
        writer.writerow([str(result.path), "ok", i, *frame, track, *face["box"], face["score"] or "",
                         face["label"], round(face["confidence"], 6), *points,
                         *(round(face["probabilities"][n], 6) for n in class_names)])
    return buffer.getvalue().rstrip("\n")


def write_results(results: Iterable[ImageResult], class_names: Sequence[str], fmt: str = "table",
                  out: TextIO | None = None, err: TextIO | None = None) -> tuple[int, int]:
    """Print every result as it comes (to ``out``, default stdout; skipped files also to ``err``,
    default stderr); return (images and frames read, inputs unreadable). A video's track
    summary goes to ``out`` in the table format, to ``err`` in the others."""
    out, err = out or sys.stdout, err or sys.stderr
    if fmt not in FORMATS:
        raise ValueError(f"output format '{fmt}' unknown; use one of {', '.join(FORMATS)}")
    read = failed = index = 0
    for result in results:
        if result.tracks is not None:
            print(format_summary(str(result.path), result.tracks), file=out if fmt == "table" else err)
            continue
        index += 1
        if result.error:
            failed += 1
            print(f"{result.path}: skipped: {result.error}", file=err)
        else:
            read += 1
        if fmt == "table":
            print(format_table(result, class_names, header=index == 1), file=out)
        elif fmt == "jsonl":
            print(format_jsonl(result), file=out)
        else:
            print(format_csv(result, class_names, header=index == 1), file=out)
        out.flush()
    return read, failed
