"""``ferkit predict`` over photos and videos mixed (files, folders, globs) or a webcam: photos go
through :func:`~ferkit.inference.files.predict_files`, each video streams one result per
processed frame, then its per-track summary; a video that cannot be read (missing, not a video,
empty, truncated) is reported like an unreadable photo, after the rows it did give.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from ferkit.inference.files import ImageResult, _free_name, annotate, predict_files
from ferkit.inference.images import (
    IMAGE_SUFFIXES,
    ImageReadError,
    check_regular_file,
    expand_inputs,
)
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import DEFAULT, Prior
from ferkit.inference.tracking import TrackLog
from ferkit.inference.video import (
    VIDEO_SUFFIXES,
    VideoOptions,
    VideoReadError,
    VideoSource,
    VideoWriter,
    is_video,
    open_webcam,
    predict_frames,
)
from ferkit.limits import DEFAULT_MAX_PIXELS


def predict_media(
    predictor: Predictor, inputs: Sequence[str], video: VideoOptions | None = None,
    detect: bool = True, prior: Prior = DEFAULT, tau: float | None = None, batch_size: int = 8,
    annotate_dir: str | Path | None = None, cam_dir: str | Path | None = None,
    cam_mirror: bool = False, summary_file: TextIO | None = None, recursive: bool = False,
    skipped: list[Path] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ImageResult]:
    """One :class:`ImageResult` per photo and per processed video frame, in input order, and a
    summary result (``tracks`` set) after each video; ``summary_file`` also receives each
    track's summary as a JSON line. ``annotate_dir`` gets annotated photos and videos. Folders
    are searched as :func:`~ferkit.inference.images.expand_inputs` says (``recursive``,
    ``skipped``). ``max_pixels`` is the decode budget of a photo; a video that is not a regular
    file (a FIFO, a device) is reported, never opened."""
    options = video or VideoOptions()
    paths = expand_inputs(inputs, IMAGE_SUFFIXES + VIDEO_SUFFIXES, recursive, skipped)
    for videos, group in groupby(paths, key=is_video):
        if not videos:
            yield from predict_files(predictor, [str(p) for p in group], detect, prior, tau,
                                     batch_size, annotate_dir, cam_dir, cam_mirror,
                                     max_pixels=max_pixels)
            continue
        for path in group:
            try:
                check_regular_file(path)
                source = VideoSource(path, options)
            except (VideoReadError, ImageReadError) as err:
                yield ImageResult(path, error=str(err).removeprefix(f"{path}: "))
                continue
            writer = (VideoWriter(_free_name(Path(annotate_dir), path, ext=".mp4"), _output_rate(source))
                      if annotate_dir is not None else None)
            yield from stream_results(predictor, source, path, options, detect, prior, tau,
                                      batch_size, writer, summary_file)


def predict_webcam(
    predictor: Predictor, index: int, video: VideoOptions | None = None, detect: bool = True,
    prior: Prior = DEFAULT, tau: float | None = None, batch_size: int = 1,
    annotate_dir: str | Path | None = None, summary_file: TextIO | None = None,
) -> Iterator[ImageResult]:
    """Like :func:`predict_media` for camera ``index`` until Ctrl+C, which ends the stream
    cleanly (the summary and the annotated video are still written)."""
    source = open_webcam(index, video)
    name = Path(f"webcam{index}")
    writer = VideoWriter(_free_name(Path(annotate_dir), name, ext=".mp4"), _output_rate(source)) \
        if annotate_dir is not None else None
    with stop_on_interrupt(source):
        yield from stream_results(predictor, source, name, video or VideoOptions(), detect, prior,
                                  tau, batch_size, writer, summary_file)


def _output_rate(source: VideoSource) -> float | None:
    rate = source.rate
    if source.options.fps is not None:
        return min(source.options.fps, rate) if rate else source.options.fps
    return rate / source.options.every if rate else None


def stream_results(
    predictor: Predictor, source: VideoSource, path: Path, options: VideoOptions, detect: bool,
    prior: Prior, tau: float | None, batch_size: int, writer: VideoWriter | None,
    summary_file: TextIO | None,
) -> Iterator[ImageResult]:
    """The results of one video source (see :func:`predict_media`), with a progress bar on an
    interactive terminal."""
    log = TrackLog(predictor.class_names)
    stream = predict_frames(predictor, source, options, detect, prior, tau, batch_size)
    bar = tqdm(total=source.expected_frames(), desc=path.name, unit="frame", disable=None, leave=False)
    try:
        for result in stream:
            bar.update()
            log.add(result.index, result.time, result.faces)
            if writer is not None:
                drawn = np.asarray(annotate(result.image, result.faces)) if result.faces else result.image
                writer.write(drawn, result.time)
            yield ImageResult(path, result.faces, frame=result.index, time=result.time)
    except VideoReadError as err:
        yield ImageResult(path, error=str(err).removeprefix(f"{source.label}: "))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    summary = log.summary()
    if summary_file is not None:
        for row in summary:
            summary_file.write(json.dumps({"video": str(path), **row}) + "\n")
        summary_file.flush()
    yield ImageResult(path, tracks=summary)


@contextlib.contextmanager
def stop_on_interrupt(source: VideoSource) -> Iterator[None]:
    """Within the block, Ctrl+C (SIGINT) stops ``source`` after the frame being processed instead
    of raising (main thread only; elsewhere Ctrl+C keeps its usual effect)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: source.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def video_options(args: Any) -> VideoOptions:
    """``ferkit predict``'s parsed video flags -> :class:`VideoOptions` (checked)."""
    return VideoOptions(every=args.every, fps=args.fps, start=args.start, end=args.end,
                        track=not args.no_track, smoothing=args.smooth, max_gap=args.track_gap)
