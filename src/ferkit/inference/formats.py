"""Writing predictions: an aligned table for people, JSON lines and CSV for programs.

Every output has the same fields. Each face is one record; an image without a face, or one that
could not be read, is one record whose face fields are empty. ``status`` is one of ``ok``,
``no_face``, ``error`` and the reason for an error is in its own ``error`` field. The CSV is
rectangular: every row has every column (empty where not applicable); the landmarks are named
(``left_eye_x`` ... ``mouth_right_y``). Values are rounded as :mod:`ferkit.inference.results`
says.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ferkit.errors import UsageError
from ferkit.inference.results import LANDMARK_NAMES, FaceResult, ImageResult
from ferkit.inference.tracking import format_summary

FORMATS = ("table", "jsonl", "csv")
BOX_WIDTH = 24  # "x1,y1,x2,y2" of a 10,000-px photo
NAMES_SHOWN = 5  # file names listed in the summary line before "and N more"


def records(result: ImageResult) -> list[dict[str, Any]]:
    """The JSON-ready records of one image (or video frame): one per face, or one with empty
    face fields. ``frame`` and ``time`` are None for photos."""
    head = {"image": str(result.path), "status": result.status, "error": result.error,
            "frame": result.frame, "time": result.time}
    if not result.faces:
        return [{**head, **dict.fromkeys(FaceResult("", 0.0, {}).to_dict())}]
    return [{**head, **face.to_dict()} for face in result.faces]


def csv_header(class_names: Sequence[str]) -> list[str]:
    """The CSV columns: image, status, error, face, frame, time, track (the last three for video
    frames), box, score, label, confidence, note, the five landmarks' x and y, then
    ``p_<class>`` for every class."""
    points = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y")]
    return ["image", "status", "error", "face", "frame", "time", "track", "x1", "y1", "x2", "y2",
            "score", "label", "confidence", "note", *points, *(f"p_{n}" for n in class_names)]


def _csv_row(record: dict[str, Any], class_names: Sequence[str]) -> list[Any]:
    box = record["box"] or [None] * 4
    points = [v for point in record["landmarks"] or [[None, None]] * len(LANDMARK_NAMES) for v in point]
    probs = record["probabilities"] or {}
    values = [record["image"], record["status"], record["error"], record["face"], record["frame"],
              record["time"], record["track"], *box, record["score"], record["label"],
              record["confidence"], record["note"], *points, *(probs.get(n) for n in class_names)]
    return ["" if v is None else v for v in values]


def format_csv(result: ImageResult, class_names: Sequence[str], header: bool) -> str:
    """CSV rows of one image (one per face; one row with empty face columns without faces)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(csv_header(class_names))
    writer.writerows(_csv_row(record, class_names) for record in records(result))
    return buffer.getvalue().rstrip("\n")


def format_jsonl(result: ImageResult) -> str:
    """One JSON object per face (one with empty face fields for an image without faces)."""
    return "\n".join(json.dumps(record) for record in records(result))


def format_table(result: ImageResult, class_names: Sequence[str], header: bool) -> str:
    """Aligned rows for reading: face number, box, detector score, label, confidence, every
    probability, then the image (last, so a long name cannot push the columns out of line) and
    any note or error. Landmarks are in the JSON lines and CSV outputs. A video frame's rows
    give the file and the time in seconds, and number each face by its track id (``#N``)."""
    label_width = max(len("no face"), *(len(n) for n in class_names))

    def row(face: str, box: str, score: str, label: str, conf: str, probs: list[str]) -> str:
        cells = " ".join(f"{p:>9}" for p in probs)
        return f"{face:>4} {box:<{BOX_WIDTH}} {score:>5} {label:<{label_width}} {conf:>6} {cells}"

    lines = []
    if header:
        names = [n[:9] for n in class_names]
        lines.append(row("face", "box (x1,y1,x2,y2)", "score", "label", "conf", names) + " image")
    name = str(result.path) if result.time is None else f"{result.path} {result.time:.2f}s"
    if not result.faces:
        label = "error" if result.error else "no face"
        detail = f": {result.error}" if result.error else ""
        lines.append(f"{row('-', '-', '-', label, '-', ['-'] * len(class_names))} {name}{detail}")
    for face in result.faces:
        number = str(face.face) if face.track is None else f"#{face.track}"
        box = ",".join(f"{v:.0f}" for v in face.box)
        score = "-" if face.score is None else f"{face.score:.2f}"
        probs = [f"{100 * face.probabilities[n]:.1f}%" for n in class_names]
        note = f"  (note: {face.note})" if face.note else ""
        lines.append(f"{row(number, box, score, face.label, f'{100 * face.confidence:.1f}%', probs)}"
                     f" {name}{note}")
    return "\n".join(lines)


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:NAMES_SHOWN])
    return shown + (f" and {len(paths) - NAMES_SHOWN} more" if len(paths) > NAMES_SHOWN else "")


@dataclass
class Tally:
    """What a run of ``ferkit predict`` read, for its closing summary line."""

    read: int = 0
    faces: int = 0
    without_face: int = 0
    unreadable: list[Path] = field(default_factory=list)

    def add(self, result: ImageResult) -> None:
        if result.error:
            self.unreadable.append(result.path)
            return
        self.read += 1
        self.faces += len(result.faces)
        self.without_face += not result.faces

    def line(self, skipped: Sequence[Path] = ()) -> str:
        """``summary: N images read (F faces; W without a face); U unreadable: ...; S skipped:
        ...``; folders in ``skipped`` are named as not searched (no ``--recursive``)."""
        parts = [f"{self.read} image{'' if self.read == 1 else 's'} read ({self.faces} "
                 f"face{'' if self.faces == 1 else 's'}; {self.without_face} without a face)"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable: {_names(self.unreadable)}")
        files = [p for p in skipped if not p.is_dir()]
        folders = [p for p in skipped if p.is_dir()]
        if files:
            parts.append(f"{len(files)} file{'' if len(files) == 1 else 's'} skipped (not an image "
                         f"type): {_names(files)}")
        if folders:
            parts.append(f"{len(folders)} subfolder{'' if len(folders) == 1 else 's'} not searched "
                         f"(add --recursive): {_names(folders)}")
        return "summary: " + "; ".join(parts)


def write_results(results: Iterable[ImageResult], class_names: Sequence[str], fmt: str = "table",
                  out: TextIO | None = None, err: TextIO | None = None) -> Tally:
    """Print every result as it comes (to ``out``, default stdout; unreadable files are also named
    on ``err``, default stderr) and return the tally for the summary line. A video's track
    summary goes to ``out`` in the table format, to ``err`` in the others."""
    out, err = out or sys.stdout, err or sys.stderr
    if fmt not in FORMATS:
        raise UsageError(f"output format '{fmt}' unknown; use one of {', '.join(FORMATS)}")
    tally, first = Tally(), True
    for result in results:
        if result.tracks is not None:
            print(format_summary(str(result.path), result.tracks), file=out if fmt == "table" else err)
            continue
        tally.add(result)
        if result.error:
            print(f"{result.path}: skipped: {result.error}", file=err)
        if fmt == "table":
            print(format_table(result, class_names, header=first), file=out)
        elif fmt == "jsonl":
            print(format_jsonl(result), file=out)
        else:
            print(format_csv(result, class_names, header=first), file=out)
        first = False
        out.flush()
    return tally
