"""Faces followed across video frames: a stable id per face (:class:`Tracker`), optional temporal
smoothing of each track's class probabilities (:class:`TrackSmoother`) and a per-track summary
(:class:`TrackLog`).

Matching is greedy on box overlap with each track's box moved to where its last velocity puts it
at the frame's time (constant motion, so a face that moves on while hidden is found again): a
detection continues a track when their IoU is at least ``min_iou`` or, for a face that moved
more than its overlap allows (fast motion, frames skipped), when the centres are at most
``max_shift + max_speed * elapsed`` track-box sizes apart (size = ``sqrt(width * height)``,
``elapsed`` = time since the track was last seen: the sparser the frames, the farther a face may
have gone).
Pairs are taken in order of decreasing IoU, then increasing centre distance, each track and each
detection at most once. A track that is not seen for more than ``max_gap`` seconds ends; its id is
never reused. New tracks are numbered 1, 2, ... in order of appearance (left to right within a
frame).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.errors import UsageError

if TYPE_CHECKING:
    from ferkit.inference.results import FaceResult

Box = Sequence[float]  # x1, y1, x2, y2
SMOOTHING_FORMS = "'ema:ALPHA' (0 < ALPHA <= 1) or 'window:N' (N >= 1 frames)"


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 when either is empty)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_shift(track_box: Box, box: Box) -> float:
    """Distance between the boxes' centres in units of the track box's size ``sqrt(w * h)``."""
    size = math.sqrt(max((track_box[2] - track_box[0]) * (track_box[3] - track_box[1]), 1e-9))
    dx = (box[0] + box[2] - track_box[0] - track_box[2]) / 2
    dy = (box[1] + box[3] - track_box[1] - track_box[3]) / 2
    return math.hypot(dx, dy) / size


@dataclass
class Track:
    """One face being followed: its id, latest box, when it was last seen (seconds) and the
    velocity of its box centre (pixels per second, from its last two sightings)."""

    id: int
    box: tuple[float, ...]
    last_seen: float
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self, time: float) -> tuple[float, ...]:
        """The box moved on at the track's velocity to ``time``."""
        dx, dy = (v * (time - self.last_seen) for v in self.velocity)
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def move(self, box: Box, time: float) -> None:
        """Continue the track with ``box`` seen at ``time``."""
        elapsed = time - self.last_seen
        if elapsed > 0:
            self.velocity = ((box[0] + box[2] - self.box[0] - self.box[2]) / (2 * elapsed),
                             (box[1] + box[3] - self.box[1] - self.box[3]) / (2 * elapsed))
        self.box, self.last_seen = tuple(box), time


class Tracker:
    """Links the faces of consecutive frames into tracks with stable ids (see the module doc).

    Args:
        min_iou: overlap at which a detection always may continue a track.
        max_shift: centre displacement (in track-box sizes) that always may continue a track.
        max_speed: track-box sizes per second (per time unit) a face may move on top of that.
        max_gap: seconds a track may go unseen (missed detections, occlusion) and still continue.
    """

    def __init__(self, min_iou: float = 0.2, max_shift: float = 1.0, max_speed: float = 2.0,
                 max_gap: float = 1.0) -> None:
        if not 0 < min_iou <= 1 or min(max_shift, max_speed, max_gap) < 0:
            raise UsageError(f"tracker settings min_iou={min_iou}, max_shift={max_shift}, max_speed="
                             f"{max_speed}, max_gap={max_gap}: need 0 < min_iou <= 1 and the others >= 0")
        self.min_iou, self.max_shift, self.max_speed = min_iou, max_shift, max_speed
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, boxes: Sequence[Box], time: float) -> list[int]:
        """Assign a track id to each box of the frame at ``time`` seconds (same order as ``boxes``)."""
        self.tracks = [t for t in self.tracks if time - t.last_seen <= self.max_gap]
        pairs = []
        for ti, track in enumerate(self.tracks):
            expected = track.predicted(time)
            reach = self.max_shift + self.max_speed * (time - track.last_seen)
            for di, box in enumerate(boxes):
                overlap, shift = iou(expected, box), centre_shift(expected, box)
                if overlap >= self.min_iou or shift <= reach:
                    pairs.append((-overlap, shift, ti, di))
        ids: list[int | None] = [None] * len(boxes)
        used_tracks: set[int] = set()
        for _, _, ti, di in sorted(pairs):
            if ti not in used_tracks and ids[di] is None:
                used_tracks.add(ti)
                ids[di] = self.tracks[ti].id
                self.tracks[ti].move(boxes[di], time)
        for di in sorted((d for d in range(len(boxes)) if ids[d] is None), key=lambda d: tuple(boxes[d])):
            ids[di] = self.next_id
            self.tracks.append(Track(self.next_id, tuple(boxes[di]), time))
            self.next_id += 1
        return [int(i) for i in ids if i is not None]

    def active_ids(self) -> set[int]:
        """Ids of the tracks that may still continue."""
        return {t.id for t in self.tracks}


class LiveTracks:
    """One :class:`Tracker` per live stream (a browser tab of ``ferkit serve``), keyed by the
    session id it sends; past ``max_sessions`` the least recently used is dropped.

    A live stream goes as fast as the server answers, so its time is counted in frames, not
    seconds: a face keeps its id while it is missed in at most ``max_missed`` consecutive
    frames, however slow each frame is.
    """

    def __init__(self, max_sessions: int = 16, max_missed: int = 10) -> None:
        self.sessions: OrderedDict[str, tuple[Tracker, list[int]]] = OrderedDict()
        self.max_sessions, self.max_missed = max_sessions, max_missed

    def assign(self, session: str, faces: Sequence[FaceResult]) -> None:
        """Set ``face.track`` on each face of the session's newest frame."""
        fresh = (Tracker(max_speed=0.5, max_gap=self.max_missed + 1), [0])  # time unit: one frame
        tracker, frames = self.sessions.pop(session, None) or fresh
        self.sessions[session] = (tracker, frames)
        while len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)
        frames[0] += 1
        for face, track_id in zip(faces, tracker.update([face.box for face in faces], frames[0])):
            face.track = track_id


@dataclass(frozen=True)
class Smoothing:
    """Per-track temporal smoothing of probabilities: ``ema`` (weight ``value`` on the newest
    frame) or ``window`` (mean of the last ``value`` frames of the track)."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str | None) -> Smoothing | None:
        """``'ema:0.3'`` / ``'window:5'`` -> Smoothing; ``None``, ``''`` or ``'none'`` -> None."""
        if text is None or text.strip().lower() in ("", "none", "off"):
            return None
        kind, _, number = text.strip().lower().partition(":")
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if (kind == "ema" and 0 < value <= 1) or (kind == "window" and value >= 1 and value.is_integer()):
            return cls(kind, value)
        raise UsageError(f"smoothing '{text}' is not valid: use {SMOOTHING_FORMS}, or 'none'")


class TrackSmoother:
    """Smooths each track's probability vectors over its frames; state is kept per live track.

    ``ema``: ``s_1 = p_1``, ``s_t = a * p_t + (1 - a) * s_(t-1)``. ``window``: ``s_t`` is the
    mean of the track's last N vectors (fewer at its start).
    """

    def __init__(self, smoothing: Smoothing) -> None:
        self.smoothing = smoothing
        self.state: dict[int, Any] = {}

    def __call__(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        kind, value = self.smoothing.kind, self.smoothing.value
        if kind == "ema":
            previous = self.state.get(track_id)
            smoothed = probs if previous is None else value * probs + (1 - value) * previous
            self.state[track_id] = smoothed
            return smoothed
        window = self.state.setdefault(track_id, deque(maxlen=int(value)))
        window.append(probs)
        return np.mean(np.stack(window), axis=0)

    def keep_only(self, track_ids: set[int]) -> None:
        """Forget the state of ended tracks (memory stays bounded on endless streams)."""
        for track_id in set(self.state) - track_ids:
            del self.state[track_id]


@dataclass
class TrackStats:
    """What one track's rows add up to."""

    first_frame: int
    first_time: float
    last_frame: int = 0
    last_time: float = 0.0
    labels: Counter = field(default_factory=Counter)


class TrackLog:
    """Collects per-face-per-frame rows into a summary per track."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.tracks: dict[int, TrackStats] = {}

    def add(self, frame: int, time: float, faces: Sequence[FaceResult]) -> None:
        for face in faces:
            if face.track is None:
                continue
            stats = self.tracks.setdefault(face.track, TrackStats(frame, time))
            stats.last_frame, stats.last_time = frame, time
            stats.labels[face.label] += 1

    def summary(self) -> list[dict[str, Any]]:
        """One dict per track: first/last frame and time, duration (first to last sighting, in
        seconds), frames seen, dominant expression and the share of its frames per expression."""
        rows = []
        for track_id, stats in sorted(self.tracks.items()):
            seen = sum(stats.labels.values())
            rows.append({
                "track": track_id, "first_frame": stats.first_frame, "last_frame": stats.last_frame,
                "start": round(stats.first_time, 4), "end": round(stats.last_time, 4),
                "duration": round(stats.last_time - stats.first_time, 4), "frames": seen,
                "dominant": max(self.class_names, key=lambda n: stats.labels[n]),
                "shares": {n: round(stats.labels[n] / seen, 4) for n in self.class_names}})
        return rows


def format_summary(source: str, rows: Sequence[dict[str, Any]]) -> str:
    """A readable block: one line per track of ``source`` with its top expressions."""
    if not rows:
        return f"{source}: no face tracked"
    lines = [f"{source}: {len(rows)} track{'s' if len(rows) != 1 else ''}"]
    for row in rows:
        top = sorted(row["shares"].items(), key=lambda item: -item[1])[:3]
        shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in top if share > 0)
        frames = f"{row['frames']} frame{'s' if row['frames'] != 1 else ''}"
        lines.append(f"  track {row['track']:>3}: {row['start']:8.2f}s to {row['end']:8.2f}s "
                     f"({frames}), mostly {row['dominant']} ({shares})")
    return "\n".join(lines)
