"""Typed answers of the predictor: what a face crop is (:class:`Prediction`) and what a face in a
photo is (:class:`FaceResult`), each with ``to_dict()`` for JSON, CSV and the web page.

One rounding rule for every output: pixel coordinates to :data:`PIXEL_DIGITS` decimals (computed
in float64, so no float32 noise such as ``204.4199981689453``), the detector score to
:data:`SCORE_DIGITS`, probabilities and confidence to :data:`PROB_DIGITS`. The objects keep full
precision; ``to_dict()`` rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIXEL_DIGITS = 2
SCORE_DIGITS = 4
PROB_DIGITS = 6
# the five MTCNN points, left/right as seen in the image
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass
class Prediction:
    """The expression of one face crop.

    Attributes:
        label: the most probable class name.
        confidence: its probability, in [0, 1].
        probabilities: every class name -> probability (in the model's class order; sums to 1).
    """

    label: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, rounded (see the module docstring)."""
        return {"label": self.label, "confidence": round(self.confidence, PROB_DIGITS),
                "probabilities": {k: round(v, PROB_DIGITS) for k, v in self.probabilities.items()}}

    def __getitem__(self, key: str) -> Any:
        """``result["label"]``: the dict-style access of earlier versions, kept working (the
        attribute, unrounded)."""
        if key not in self.to_dict():
            raise KeyError(key)
        return getattr(self, key)


@dataclass
class FaceResult(Prediction):
    """One face found in a photo: where it is and what expression it shows.

    Attributes:
        face: its number in the photo, from 1, in reading order (rows top to bottom, left to
            right): the number drawn by :func:`ferkit.inference.annotate` and shown on the page.
        track: in a video, the id that follows this face from frame to frame (None in photos or
            without tracking).
        box: ``(x1, y1, x2, y2)`` in the photo's pixels, inside the photo.
        landmarks: ``[5, 2]`` points named by :data:`LANDMARK_NAMES`, or None (no detection).
        score: the detector's face probability, or None (no detection).
        note: a caution about this face (e.g. smaller than the model's input), or None.
    """

    face: int = 1
    track: int | None = None
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    landmarks: list[list[float]] | None = None
    score: float | None = None
    note: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, rounded: face, track, box, landmarks, score, label,
        confidence, probabilities, note."""
        return {"face": self.face, "track": self.track,
                "box": [round(float(v), PIXEL_DIGITS) for v in self.box],
                "landmarks": None if self.landmarks is None else
                [[round(float(v), PIXEL_DIGITS) for v in point] for point in self.landmarks],
                "score": None if self.score is None else round(float(self.score), SCORE_DIGITS),
                **super().to_dict(), "note": self.note}


def small_face_note(box: tuple[float, float, float, float], input_size: int) -> str | None:
    """A note when the face is smaller than half the model's input side (its crop is enlarged
    more than twice, so fine detail such as the mouth corners is guessed), else None."""
    side = min(box[2] - box[0], box[3] - box[1])
    if side >= input_size / 2:
        return None
    return f"small face: {side:.0f} px, model input {input_size} px; less reliable"


@dataclass
class ImageResult:
    """What happened to one input file, or to one processed frame of a video: its faces, or why
    there are none.

    Attributes:
        path: the file.
        faces: its faces in reading order (empty: none found, or unreadable).
        error: why the file could not be read (or why a video stopped), or None.
        frame: a video frame's index in the stream (None for photos).
        time: a video frame's time in seconds (None for photos).
        tracks: set on the result that closes a video: its per-track summary (and no faces).
    """

    path: Path
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    frame: int | None = None
    time: float | None = None
    tracks: list[dict[str, Any]] | None = None

    @property
    def status(self) -> str:
        """One of :data:`STATUSES`: ``ok`` (faces found), ``no_face`` or ``error`` (see
        :attr:`error` for the reason)."""
        if self.error:
            return "error"
        return "ok" if self.faces else "no_face"


STATUSES = ("ok", "no_face", "error")
