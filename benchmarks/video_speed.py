"""Video speed on one core: frames per second of decoding, of ``Predictor.predict_video`` (detect,
align, classify, track) and of writing the annotated video, for a 640x480 H.264 video with one
face (scikit-image's astronaut moving across a grey scene). Writes ``docs/benchmarks/video.md``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/video_speed.py [-c CHECKPOINT] [--frames 50] [--repeats 3]

The process pins itself to one CPU (Linux) and runs torch on one thread, so the figures are those
of one core; the machine's load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _machine import LoadRecord, page_header
from PIL import Image

from ferkit.inference.files import annotate, write_results
from ferkit.inference.predictor import Predictor
from ferkit.inference.video import VideoOptions, VideoSource, VideoWriter
from ferkit.inference.video_files import predict_media

REPO = Path(__file__).resolve().parents[1]
RATE = 25


def write_clip(path: Path, frames: int) -> Path:
    """640x480 at 25 fps: the astronaut's face (about 110 px wide) moving 4 px per frame."""
    import av
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()[20:220, 130:315]).resize((110, 119)))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            canvas = np.full((480, 640, 3), (120, 130, 140), np.uint8)
            x = 100 + 4 * i
            canvas[180:299, x:x + 110] = face
            container.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        container.mux(stream.encode())
    return path


def rate(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median frames per second of ``fn`` (which returns the frames it handled) after a warm-up:
    per wall-clock second and per second of this process's CPU time."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        count = fn()
        wall.append(count / (time.perf_counter() - start))
        cpu.append(count / (time.process_time() - start_cpu))
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--checkpoint", help="default: the packaged model")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/video.md"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    load = LoadRecord()
    options = {"device": "cpu", "threads": 1}  # onnxruntime (classifier or detector) on one thread too
    predictor = (Predictor.from_checkpoint(args.checkpoint, **options) if args.checkpoint
                 else Predictor.from_pretrained(**options))
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "clip.mp4", args.frames)
        decode = rate(lambda: sum(1 for _ in VideoSource(clip)), 5)
        results = list(predictor.predict_video(clip))
        found = sum(len(r.faces) for r in results)
        tracks = {f["track"] for r in results for f in r.faces}
        if found < 0.9 * args.frames or tracks != {1}:
            raise RuntimeError(f"expected one tracked face per frame, got {found} faces, tracks {tracks}")
        predict = rate(lambda: sum(1 for _ in predictor.predict_video(clip)), args.repeats)
        every5 = rate(lambda: sum(1 for _ in predictor.predict_video(clip, every=5)) * 5, args.repeats)

        def write_annotated() -> int:
            writer = VideoWriter(Path(folder) / "annotated.mp4", RATE)
            for r in results:
                writer.write(np.asarray(annotate(r.image, r.faces)), r.time)
            writer.close()
            return len(results)

        writing = rate(write_annotated, args.repeats)

        def command_path() -> int:
            rows = predict_media(predictor, [str(clip)], VideoOptions(), annotate_dir=Path(folder) / "ann",
                                 summary_file=io.StringIO())
            write_results(rows, predictor.class_names, "csv", out=io.StringIO(), err=io.StringIO())
            return args.frames

        whole = rate(command_path, 1)
    load.stop()
    meta = predictor.meta
    command = "OMP_NUM_THREADS=1 python benchmarks/video_speed.py " + " ".join(sys.argv[1:])
    lines = [
        *page_header(
            "Video speed", command, load,
            f"Model: {meta.get('backbone')} at {meta.get('image_size')} px ({meta.get('method')}, "
            f"{args.checkpoint or 'packaged model'}), MTCNN detection on "
            f"{predictor.detector.backend}. One core (the process pinned to one CPU, torch and "
            f"onnxruntime on one thread), median of {args.repeats} runs after a warm-up (decoding: "
            "of 5; the whole command path: one run after a warm-up)."),
        f"Video: {args.frames} frames of 640x480 H.264 at {RATE} fps, one face (the astronaut's, "
        "about 110 px wide) moving 4 px per frame; every frame gives one face on track 1.", "",
        "Frames per wall-clock second on the core the process was given (at the load recorded "
        "above), and per second of the process's own CPU time (what a core of its own would "
        "approach):", "",
        "| stage | frames/s (wall) | frames per CPU second |", "|---|---|---|",
        f"| decoding only (PyAV, RGB frames) | {decode[0]:.0f} | {decode[1]:.0f} |",
        f"| `predict_video` (decode, detect, align, classify, track), every frame | {predict[0]:.2f} | "
        f"{predict[1]:.2f} |",
        f"| annotating and encoding the output video (H.264) | {writing[0]:.1f} | {writing[1]:.1f} |",
        f"| `ferkit predict clip.mp4 --format csv --annotate DIR` path (all of the above) | "
        f"{whole[0]:.2f} | {whole[1]:.2f} |",
        "", f"With `--every 5` (decoding every frame, processing one in five), video frames covered "
        f"per second: **{every5[0]:.1f}** wall ({every5[1]:.1f} per CPU second), that is "
        f"{every5[0] / RATE:.2f}x real time for {RATE} fps video on the wall clock.",
        "", "Detection dominates (see [predict_speed.md](predict_speed.md): MTCNN on a 640x480 photo); "
        "decoding and encoding are small beside it. For live use, `--every` or `--fps` choose how much "
        "of the video is read. On one core pass `threads=1` (CLI `--threads 1`): onnxruntime's "
        "default pool has a thread per core, and on a single core they spend CPU waiting for "
        "each other (this script at commit a9a6d2b, with the default pool on the pinned core: "
        "7.20 frames per CPU second for `predict_video`).", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
