"""Inference speed on one thread: detection, alignment and classification time per 640x480 photo
with one face and with five, and images per second for a folder of 500 face crops
(``ferkit predict --no-detect`` path: read, preprocess, classify). Writes
``docs/benchmarks/predict_speed.md``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/predict_speed.py [-c CHECKPOINT] [--repeats 10]
    (default: the packaged model; the photos are built from scikit-image's astronaut)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferkit.api import hardware, provenance
from ferkit.inference.align import align_face
from ferkit.inference.files import predict_files
from ferkit.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]


def photo(faces: int) -> np.ndarray:
    """640x480 RGB: the astronaut's face (about 90 px wide) pasted ``faces`` times on a grey scene."""
    from skimage import data

    face = Image.fromarray(data.astronaut()[20:220, 130:315]).resize((110, 119))
    canvas = Image.new("RGB", (640, 480), (120, 130, 140))
    spots = [(265, 180), (40, 40), (480, 40), (40, 320), (480, 320)]
    for x, y in spots[:faces]:
        canvas.paste(face, (x, y))
    return np.asarray(canvas)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def photo_row(predictor: Predictor, faces: int, repeats: int) -> dict:
    image = photo(faces)
    found = predictor.find_faces(image)
    if len(found) != faces:
        raise RuntimeError(f"expected {faces} faces in the benchmark photo, found {len(found)}")
    crops = [align_face(image, f.landmarks, predictor.template, predictor.image_size) for f in found]
    return {
        "faces": faces,
        "detect": median_ms(lambda: predictor.find_faces(image), repeats),
        "align": median_ms(lambda: [align_face(image, f.landmarks, predictor.template,
                                               predictor.image_size) for f in found], repeats),
        "classify": median_ms(lambda: predictor.predict(crops), repeats),
        "total": median_ms(lambda: predictor.predict_photo(image), repeats),
    }


def folder_rate(predictor: Predictor, count: int = 500, batch: int = 64) -> float:
    """Images per second of ``predict --no-detect`` over ``count`` 112 px face-crop files."""
    rng = np.random.default_rng(0)
    base = photo(1)[180:299, 265:375]
    with tempfile.TemporaryDirectory() as folder:
        for i in range(count):
            noisy = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).resize((112, 112)).save(Path(folder) / f"crop{i:03d}.png")
        start = time.perf_counter()
        results = list(predict_files(predictor, [folder], detect=False, batch_size=batch))
        seconds = time.perf_counter() - start
    assert len(results) == count
    return count / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--checkpoint", help="default: the packaged model")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/predict_speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = provenance().get("git_commit", "?")
    predictor = (Predictor.from_checkpoint(args.checkpoint, device="cpu") if args.checkpoint
                 else Predictor.from_pretrained(device="cpu"))
    from skimage import data

    astronaut = data.astronaut()
    astronaut_ms = median_ms(lambda: predictor.find_faces(astronaut), args.repeats)
    rows = [photo_row(predictor, faces, args.repeats) for faces in (1, 5)]
    rate = folder_rate(predictor)
    meta = predictor.meta
    command = "OMP_NUM_THREADS=1 python benchmarks/predict_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "# Inference speed", "",
        f"Command: `{command}`  ",
        f"Model: {meta.get('backbone')} at {meta.get('image_size')} px ({meta.get('method')}, "
        f"{args.checkpoint or 'packaged model'}). Commit {commit}, torch {torch.__version__}, "
        f"{hardware()}: a **loaded machine** (its cores were shared with training runs), one "
        f"thread, median of {args.repeats} runs after a warm-up.", "",
        "| 640x480 photo | detection (MTCNN) ms | alignment ms | classification ms | "
        "predict_photo total ms |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['faces']} face{'s' if r['faces'] > 1 else ''} | {r['detect']:.1f} | "
                     f"{r['align']:.2f} | {r['classify']:.1f} | {r['total']:.1f} |")
    lines += ["", f"MTCNN alone on scikit-image's `astronaut` (512x512, one face): "
              f"**{astronaut_ms:.0f} ms**.", "",
              f"Folder of 500 face crops (112 px PNG, `--no-detect`, batches of 64, reading "
              f"included): **{rate:.1f} images/s**.", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
