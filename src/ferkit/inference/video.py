"""Expressions over time: video files and webcams decoded frame by frame with PyAV (optional extra
``[video]``: FFmpeg's decoders and encoders in a wheel), faces detected, classified and tracked
per processed frame, and annotated videos written as they stream.

Memory stays bounded whatever the video length: frames are decoded one at a time and only
``batch_size`` of them are held at once (their faces are classified in one forward pass).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.errors import FerkitError, MissingExtra, UsageError
from ferkit.inference.prior import DEFAULT, Prior
from ferkit.inference.tracking import Smoothing, Tracker, TrackSmoother

if TYPE_CHECKING:
    from ferkit.inference.predictor import Predictor
    from ferkit.inference.results import FaceResult

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".3gp", ".ts", ".mts", ".ogv", ".y4m")


class VideoUnavailable(MissingExtra):
    """PyAV (the ``[video]`` extra) is not installed."""


class VideoReadError(FerkitError, RuntimeError):
    """A video that is missing, unreadable, empty, truncated, or a camera that is absent."""


def require_av() -> Any:
    """The ``av`` module, or :class:`VideoUnavailable` saying how to install it."""
    try:
        import av
    except ImportError as err:
        raise VideoUnavailable('reading videos needs PyAV; install the optional extra: '
                               'pip install "ferkit[video]"') from err
    return av


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by its suffix; see ``VIDEO_SUFFIXES``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoOptions:
    """Which frames to process and how faces are followed.

    Attributes:
        every: process every N-th decoded frame (1 = all).
        fps: process frames at about this rate instead (frames per second of video time).
        start: first second of video time to process.
        end: last second of video time to process (None = to the end).
        track: link faces across frames into tracks with stable ids.
        smoothing: per-track smoothing of the probabilities, 'ema:ALPHA' or 'window:N' (None = off).
        max_gap: seconds a track may go unseen and still continue.
    """

    every: int = 1
    fps: float | None = None
    start: float = 0.0
    end: float | None = None
    track: bool = True
    smoothing: str | None = None
    max_gap: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.every < 1:
            problems.append(f"every={self.every}: process every N-th frame needs N >= 1")
        if self.fps is not None and not self.fps > 0:
            problems.append(f"fps={self.fps}: the frame rate must be above 0")
        if self.fps is not None and self.every != 1:
            problems.append("give either every (every N-th frame) or fps (a target rate), not both")
        if not self.start >= 0 or (self.end is not None and not self.end > self.start):
            problems.append(f"time range start={self.start}, end={self.end}: need 0 <= start < end")
        if not self.max_gap >= 0:
            problems.append(f"max_gap={self.max_gap}: seconds a track may go unseen, >= 0")
        if self.smoothing is not None and Smoothing.parse(self.smoothing) and not self.track:
            problems.append("smoothing works per track: it needs track=True")
        if problems:
            raise UsageError("; ".join(problems))


@dataclass
class Frame:
    """A decoded frame: its index in the stream (0-based), time in seconds, RGB pixels."""

    index: int
    time: float
    image: np.ndarray  # [H, W, 3] uint8


class VideoSource:
    """The frames of a video file or camera, decoded one at a time and selected by ``options``
    (every N-th, or at a target rate, within the time range).

    Opening raises :class:`VideoReadError` when the file is missing, not a video or has no video
    stream. When decoding fails later (a truncated or damaged file) the iteration ends after the
    frames before the damage and ``error`` holds the :class:`VideoReadError` (so the frames
    already read are not lost); :func:`predict_frames` raises it once they are processed.
    """

    def __init__(self, path: str | Path, options: VideoOptions | None = None, fmt: str | None = None,
                 open_options: dict[str, str] | None = None, label: str | None = None) -> None:
        av = require_av()
        self.path, self.options = str(path), options or VideoOptions()
        self.label = label or self.path
        self.error: VideoReadError | None = None
        self.stopped = False
        self.last_decoded = -1  # index of the last frame decoded
        try:
            self.container = av.open(self.path, format=fmt, options=open_options or {})
        except FileNotFoundError as err:
            raise VideoReadError(f"{self.label}: file not found") from err
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoReadError(f"{self.label}: not a readable video ({_reason(err)})") from err
        if not self.container.streams.video:
            self.container.close()
            raise VideoReadError(f"{self.label}: the file has no video stream")
        self.stream = self.container.streams.video[0]  # frame threading would hide decode errors
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate: float | None = float(rate) if rate else None  # frames per second declared
        self.duration = self._declared_duration()

    def _declared_duration(self) -> float | None:
        """Seconds the file declares for the video (None when it declares none, or only for the
        whole container while it holds other streams, such as a longer audio track)."""
        if self.stream.duration is not None and self.stream.time_base is not None:
            return float(self.stream.duration * self.stream.time_base)
        if self.container.duration and len(self.container.streams) == 1:
            return self.container.duration / 1e6
        return None

    def expected_frames(self) -> int | None:
        """About how many frames the options select (for a progress bar; None when unknown)."""
        if not self.rate or self.duration is None:
            return None
        end = self.duration if self.options.end is None else min(self.options.end, self.duration)
        per_second = min(self.options.fps or self.rate / self.options.every, self.rate)
        return max(0, math.ceil((end - self.options.start) * per_second))

    def stop(self) -> None:
        """End the iteration before the next frame (a live camera stopped with Ctrl+C)."""
        self.stopped = True

    def __iter__(self) -> Iterator[Frame]:
        av = require_av()
        try:
            for frame in self._selected():
                if self.stopped:
                    return
                yield frame
        except (av.FFmpegError, OSError, ValueError) as err:
            where = f"after frame {self.last_decoded}" if self.last_decoded >= 0 else "at the first frame"
            self.error = VideoReadError(f"{self.label}: decoding stopped {where} ({_reason(err)}): "
                                        "the file is truncated or damaged")
        except VideoReadError as err:
            self.error = err
        finally:
            self.container.close()

    def _selected(self) -> Iterator[Frame]:
        """Decode every frame; yield those the options select."""
        options, first_time, index, in_range, now = self.options, None, -1, -1, 0.0
        due = options.start  # with a target rate: the time of the next frame to take
        for decoded in self.container.decode(self.stream):
            index = self.last_decoded = index + 1
            stamp = decoded.time if decoded.time is not None else index / (self.rate or 1.0)
            first_time = stamp if first_time is None else first_time
            now = stamp - first_time  # seconds from the first frame
            if now < options.start - 1e-6:
                continue
            if options.end is not None and now > options.end + 1e-6:
                return
            in_range += 1
            if options.fps is not None:
                if now < due - 1e-6:
                    continue
                slots = math.floor((now - options.start) * options.fps + 1e-6) + 1
                due = options.start + slots / options.fps
            elif in_range % options.every:
                continue
            yield Frame(index, round(now, 6), decoded.to_ndarray(format="rgb24"))
        if index < 0:
            raise VideoReadError(f"{self.label}: the video has no decodable frame (empty or damaged)")
        rate = self.rate or 25.0  # a cut Matroska/WebM file ends early without a decoding error
        if self.duration is not None and self.duration - now > max(2.0 / rate, 0.5):
            raise VideoReadError(f"{self.label}: the frames end at {now:.2f} s but the file "
                                 f"declares {self.duration:.2f} s: it is truncated")


def _reason(err: BaseException) -> str:
    """FFmpeg's words without the errno and file name PyAV adds."""
    text = getattr(err, "strerror", None) or str(err)
    return text.split(": '")[0]


def open_webcam(index: int = 0, options: VideoOptions | None = None) -> VideoSource:
    """Camera ``index`` as a :class:`VideoSource` (Linux: /dev/videoN via v4l2; macOS:
    AVFoundation device N); :class:`VideoReadError` saying so when there is no such camera."""
    label = f"webcam {index}"
    if sys.platform.startswith("linux"):
        device = Path(f"/dev/video{index}")
        if not device.exists():
            present = sorted(str(p) for p in Path("/dev").glob("video*"))
            raise VideoReadError(f"{label}: no camera at {device} (video devices here: "
                                 f"{', '.join(present) or 'none'}); connect a webcam, pick another "
                                 "with --webcam INDEX, or pass a video file")
        return VideoSource(device, options, fmt="v4l2", label=label)
    if sys.platform == "darwin":
        return VideoSource(str(index), options, fmt="avfoundation", label=label,
                           open_options={"framerate": "30"})
    raise VideoReadError(f"{label}: --webcam reads cameras on Linux and macOS; on {sys.platform} "
                         "record a video and pass the file instead")


@dataclass
class FrameResult:
    """The faces of one processed frame (see :meth:`Predictor.predict_video`)."""

    index: int
    time: float
    faces: list[FaceResult]
    image: np.ndarray  # [H, W, 3] uint8, the decoded frame


def predict_frames(predictor: Predictor, frames: Iterable[Frame], options: VideoOptions | None = None,
                   detect: bool = True, prior: Prior = DEFAULT, tau: float | None = None,
                   batch_size: int = 8) -> Iterator[FrameResult]:
    """Detect, classify, track (and smooth) the faces of ``frames``, ``batch_size`` at a time.

    Each face is the photo's :class:`~ferkit.inference.results.FaceResult` with ``track`` set
    (None when tracking is off); with smoothing, label, confidence and probabilities are the
    smoothed values.
    """
    options = options or VideoOptions()
    tracker = Tracker(max_gap=options.max_gap) if options.track else None
    smoothing = Smoothing.parse(options.smoothing)
    smoother = TrackSmoother(smoothing) if smoothing else None
    iterator = iter(frames)
    while chunk := list(islice(iterator, batch_size)):
        per_image = [predictor.face_crops(frame.image, detect) for frame in chunk]
        for frame, faces in zip(chunk, predictor.classify_faces(per_image, prior, tau)):
            ids = tracker.update([face.box for face in faces], frame.time) if tracker else []
            for face, track_id in zip(faces, ids):
                face.track = track_id
            if smoother is not None and tracker is not None:
                for face in faces:
                    probs = np.array([face.probabilities[n] for n in predictor.class_names])
                    smoothed = predictor.describe([smoother(face.track, probs)])[0]
                    face.label, face.confidence = smoothed.label, smoothed.confidence
                    face.probabilities = smoothed.probabilities
                smoother.keep_only(tracker.active_ids())
            yield FrameResult(frame.index, frame.time, faces, frame.image)
    if getattr(frames, "error", None) is not None:
        raise frames.error  # type: ignore[attr-defined]  # a VideoSource cut short by damage


class VideoWriter:
    """An annotated video written frame by frame: H.264 in MP4 (browsers and players open it)
    when FFmpeg has libx264, else VP9 in WebM; frames carry their source timestamps."""

    def __init__(self, path: str | Path, rate: float | None) -> None:
        av = require_av()
        codec = "libx264" if "libx264" in av.codecs_available else "libvpx-vp9"
        self.path = Path(path).with_suffix(".mp4" if codec == "libx264" else ".webm")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = {"movflags": "+faststart"} if codec == "libx264" else {}
        self.container = av.open(str(self.path), "w", options=options)
        self.stream = self.container.add_stream(codec, rate=Fraction(rate or 25).limit_denominator(1001))
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, 1000)
        self.opened = False
        self.last_pts = -1

    def write(self, image: np.ndarray, time: float) -> None:
        """Append ``image`` (RGB, cropped to even sides for 4:2:0) shown from ``time`` seconds."""
        av = require_av()
        height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        if not self.opened:
            self.stream.width, self.stream.height, self.opened = width, height, True
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
        frame.pts = self.last_pts = max(round(time * 1000), self.last_pts + 1)
        frame.time_base = Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file (removed when no frame was written)."""
        if self.opened:
            self.container.mux(self.stream.encode())
            self.container.close()
            return
        try:
            self.container.close()
        except require_av().FFmpegError:
            pass  # an MP4 without frames cannot be finished
        self.path.unlink(missing_ok=True)
