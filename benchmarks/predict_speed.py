"""Photo to answer on one thread, eager torch and ONNX Runtime side by side in one run.

Measures, per backend (torch: the classifier and the MTCNN detector in eager torch; onnx: both on
onnxruntime): a 640x480 JPEG with one face and with five, from the file to the answer (read ->
detect -> align -> classify), and images per second of a folder of 500 face crops with
``ferkit predict --no-detect``, in process and as the command itself (start-up included). Each
photo run is timed end to end, and inside it the time spent detecting and classifying; the table
gives the mean of each (the means add up: other = total - detection - classification) and the
median and fastest total. Writes docs/benchmarks/predict_speed.md.

Usage:
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/predict_speed.py [-c CHECKPOINT] [--repeats 20]
    (default: the packaged model; the photos are built from scikit-image's astronaut)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import LoadRecord, page_header
from PIL import Image

from ferkit.inference.export import export_onnx
from ferkit.inference.files import predict_files
from ferkit.inference.predictor import Predictor, pretrained_path

REPO = Path(__file__).resolve().parents[1]
GOALS = {1: 50.0, 5: 120.0}  # ms per photo on one core (issue 18)
FOLDER_BASELINE = 63.0  # images/s of the folder at commit 8b54cef (issue 18)


def photo(faces: int) -> np.ndarray:
    """640x480 RGB: the astronaut's face (about 90 px wide) pasted ``faces`` times on a grey scene."""
    from skimage import data

    face = Image.fromarray(data.astronaut()[20:220, 130:315]).resize((110, 119))
    canvas = Image.new("RGB", (640, 480), (120, 130, 140))
    spots = [(265, 180), (40, 40), (480, 40), (40, 320), (480, 320)]
    for x, y in spots[:faces]:
        canvas.paste(face, (x, y))
    return np.asarray(canvas)


class StageClock:
    """Seconds spent in a predictor's detection and classification, by wrapping its methods."""

    STAGES = {"detect": "find_faces", "classify": "classify_faces"}

    def __init__(self, predictor: Predictor) -> None:
        self.spent = dict.fromkeys(self.STAGES, 0.0)
        for stage, attribute in self.STAGES.items():
            setattr(predictor, attribute, self._timed(stage, getattr(predictor, attribute)))

    def _timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[stage] += time.perf_counter() - start
        return timed

    def reset(self) -> None:
        self.spent = dict.fromkeys(self.STAGES, 0.0)


def photo_runs(predictors: dict[str, Predictor], clocks: dict[str, StageClock], path: Path,
               faces: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per backend: mean ms of detection, classification, other and total, median and min total;
    the backends alternate run by run so a change of load hits both alike."""
    for name, predictor in predictors.items():
        found = len(predictor.predict_photo(path))  # also the warm-up
        if found != faces:
            raise RuntimeError(f"{name}: expected {faces} faces in the benchmark photo, found {found}")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in predictors}
    for _ in range(repeats):
        for name, predictor in predictors.items():
            clocks[name].reset()
            start, cpu_start = time.perf_counter(), time.process_time()
            predictor.predict_photo(path)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            if not all(clocks[name].spent.values()):  # a stage the photo path no longer calls
                raise RuntimeError(f"{name}: a stage was not timed ({clocks[name].spent}); "
                                   f"StageClock.STAGES names methods predict_photo must call")
            runs[name].append({"total": total, "cpu": cpu, **clocks[name].spent})
    rows = {}
    for name, records in runs.items():
        mean = {key: 1000 * statistics.fmean(r[key] for r in records) for key in records[0]}
        totals = [1000 * r["total"] for r in records]
        rows[name] = {**mean, "other": mean["total"] - mean["detect"] - mean["classify"],
                      "median": statistics.median(totals), "min": min(totals)}
    return rows


def crop_folder(folder: Path, count: int = 500) -> None:
    """``count`` 112 px PNG face crops (the astronaut's face with a little noise each)."""
    rng = np.random.default_rng(0)
    base = photo(1)[180:299, 265:375]
    for i in range(count):
        noisy = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).resize((112, 112)).save(folder / f"crop{i:03d}.png")


def folder_rate(predictor: Predictor, folder: Path, batch: int = 64) -> tuple[float, float]:
    """Images per second (wall) and per CPU-second of ``predict --no-detect`` in process (reading
    included)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    results = list(predict_files(predictor, [str(folder)], detect=False, batch_size=batch))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert all(r.faces for r in results), "a crop was not classified"
    return len(results) / seconds, len(results) / cpu


def cli_rate(model: Path, backend: str, folder: Path, count: int) -> tuple[float, float]:
    """Images per second (wall) and per CPU-second of the command ``ferkit predict --no-detect``
    on the folder, start-up, model loading and writing the CSV included."""
    command = [sys.executable, "-m", "ferkit", "predict", "-c", str(model), str(folder),
               "--no-detect", "--format", "csv", "--batch-size", "64", "--backend", backend,
               "--threads", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    start, cpu_start = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    rows = done.stdout.strip().splitlines()[1:]
    assert len(rows) == count and all(",ok," in row for row in rows), done.stdout[-500:]
    return count / seconds, count / cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--checkpoint", help="default: the packaged model")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/predict_speed.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = LoadRecord()
    checkpoint = Path(args.checkpoint) if args.checkpoint else pretrained_path()
    tmp = Path(tempfile.mkdtemp(prefix="ferkit-speed-"))
    onnx_file = export_onnx(checkpoint, tmp / "model.onnx").path
    predictors = {
        "torch": Predictor.from_checkpoint(checkpoint, device="cpu", detector_backend="torch"),
        "onnx": Predictor.from_onnx(onnx_file, threads=1, detector_backend="onnx")}
    clocks = {name: StageClock(p) for name, p in predictors.items()}
    rows = {}
    for faces in (1, 5):
        path = tmp / f"photo{faces}.jpg"
        Image.fromarray(photo(faces)).save(path, quality=90)
        rows[faces] = photo_runs(predictors, clocks, path, faces, args.repeats)
    folder = tmp / "crops"
    folder.mkdir()
    crop_folder(folder)
    rates = {name: folder_rate(p, folder) for name, p in predictors.items()}
    cli = {"torch": cli_rate(checkpoint, "torch", folder, 500),
           "onnx": cli_rate(onnx_file, "onnx", folder, 500)}
    load.stop()
    text = render(args, predictors["torch"].meta, checkpoint, rows, rates, cli, load)
    print(text)
    Path(args.out).write_text(text)
    return 0


def render(args: argparse.Namespace, meta: dict, checkpoint: Path, rows: dict, rates: dict,
           cli: dict, load: LoadRecord) -> str:
    command = "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/predict_speed.py " + " ".join(sys.argv[1:])
    lines = [
        *page_header("Photo to answer: torch and ONNX Runtime on one thread", command.strip(), load,
                     f"Model: {meta.get('backbone')} at {meta.get('image_size')} px "
                     f"({meta.get('method')}, {args.checkpoint or 'packaged model'}; test-time flip "
                     f"{'on' if meta.get('test_time_flip') else 'off'}, as the model recommends); "
                     "one thread (torch.set_num_threads(1), onnxruntime intra-op 1)."),
        "Rows: **torch** = classifier and MTCNN detector in eager torch; **onnx** = both on "
        "onnxruntime (classifier from `ferkit export`, detector networks exported by ferkit and "
        f"cached). Each photo is a 640x480 JPEG read from disk; {args.repeats} runs per row after "
        "a warm-up, the two backends alternating. Detection and classification are timed inside "
        "each end-to-end run; the wall-clock columns are means, so other (reading, alignment, "
        "result records) = total - detection - classification. CPU = the process's CPU time per "
        "run (mean): everything runs on one thread, so it is about what the run takes on a core "
        "of its own, where the wall clock shows what the machine gave at the load recorded above.", "",
        "| photo | backend | detection ms | classification ms | other ms | **total ms (mean)** | "
        "total median | total fastest | **total CPU ms** | goal |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for faces, by_backend in rows.items():
        for name, r in by_backend.items():
            lines.append(
                f"| {faces} face{'s' if faces > 1 else ''} | {name} | {r['detect']:.1f} | "
                f"{r['classify']:.1f} | {r['other']:.1f} | **{r['total']:.1f}** | {r['median']:.1f} | "
                f"{r['min']:.1f} | **{r['cpu']:.1f}** | {GOALS[faces]:.0f} |")
    lines += ["", "torch / onnx, mean total: " + ", ".join(
        f"{faces} face{'s' if faces > 1 else ''} {r['torch']['total'] / r['onnx']['total']:.2f}x"
        for faces, r in rows.items()) + ".", "",
        "Folder of 500 face crops (112 px PNG, `--no-detect`, batches of 64, reading included):", "",
        "| backend | in process, images/s | same, per CPU-second | the command `ferkit predict "
        "--no-detect`, images/s (start-up and model loading included) | same, per CPU-second |",
        "|---|---|---|---|---|"]
    for name in rates:
        lines.append(f"| {name} | {rates[name][0]:.1f} | {rates[name][1]:.1f} | {cli[name][0]:.1f} | "
                     f"{cli[name][1]:.1f} |")
    lines += ["", f"Goal: 3x the {FOLDER_BASELINE:.0f} images/s measured at commit 8b54cef "
              f"(torch, in process), i.e. {3 * FOLDER_BASELINE:.0f} images/s. onnx / torch in "
              f"process: {rates['onnx'][0] / rates['torch'][0]:.2f}x wall, "
              f"{rates['onnx'][1] / rates['torch'][1]:.2f}x per CPU-second.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
