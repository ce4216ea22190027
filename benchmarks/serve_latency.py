"""Inference latency of the torch and ONNX backends, and requests/s of ``ferkit serve``, in one run.

    PYTHONPATH=src python benchmarks/serve_latency.py            # the shipped model if present
    PYTHONPATH=src python benchmarks/serve_latency.py --checkpoint runs/x/best.safetensors

Measures, on one thread: the classifier alone at batch 1 and 32 (normalised input, both backends);
end to end from a 640x480 photo with one face (decode -> detect -> align -> classify); and the
requests/s of ``ferkit serve`` pinned to one core (taskset) answering that photo as JSON, for both
backends. Without the shipped model it uses an untrained MobileNetV2 at the FERPlus geometry
(112 px, grayscale, 7 classes): speed does not depend on the weights. Writes
docs/benchmarks/serve_latency.md.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ferkit.api import hardware, provenance
from ferkit.engine.checkpoint import save_checkpoint
from ferkit.inference import Predictor
from ferkit.inference.export import export_onnx
from ferkit.inference.predictor import pretrained_path
from ferkit.methods import create_method
from ferkit.models import build_classifier

FERPLUS_COUNTS = [3149, 532, 119, 7287, 3013, 2099, 8739]
FERPLUS_NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]


def stand_in_checkpoint(folder: Path) -> Path:
    """An untrained MobileNetV2 with the FERPlus recipe's geometry (speed only)."""
    torch.manual_seed(0)
    method = create_method("ce", build_classifier("mobilenet_v2", 7), FERPLUS_COUNTS,
                           sum(FERPLUS_COUNTS))
    meta = {"class_names": FERPLUS_NAMES, "num_classes": 7, "image_size": 112, "channels": 1,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "backbone": "mobilenet_v2",
            "backbone_options": {}, "method": "ce", "method_params": {},
            "class_counts": FERPLUS_COUNTS, "num_samples": sum(FERPLUS_COUNTS),
            "dataset": "untrained stand-in"}
    return save_checkpoint(folder / "mobilenet_v2_untrained.safetensors", method, meta)


def photo_640x480() -> bytes:
    """scikit-image's astronaut (one face) scaled to 480 px high on a 640x480 grey canvas, PNG."""
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((480, 480), Image.BILINEAR)
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(face, (80, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
                   ) -> dict[str, float]:
    """Median ms of each function, run in alternation so a change of machine load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def latencies(predictors: dict[str, Predictor], photo: bytes, repeats: int) -> dict[str, dict]:
    """Classifier at batch 1 and 32 and end to end from the photo, per backend (ms, median)."""
    from ferkit.inference.serve import decode_upload

    rows: dict[str, dict] = {name: {} for name in predictors}
    size = next(iter(predictors.values())).image_size
    for batch, count in ((1, repeats), (32, max(3, repeats // 4))):
        x = torch.randn(batch, 3, size, size)
        fns = {name: (lambda p=p, x=x: p.logits_from_batch(x)) for name, p in predictors.items()}
        for name, ms in interleaved_ms(fns, count).items():
            rows[name][f"batch{batch}"] = ms
    for name, predictor in predictors.items():
        faces = predictor.predict_photo(decode_upload(photo))
        assert len(faces) == 1, f"expected one face in the benchmark photo, found {len(faces)}"
        rows[name]["label"] = faces[0].label
    fns = {name: (lambda p=p: p.predict_photo(decode_upload(photo))) for name, p in predictors.items()}
    for name, ms in interleaved_ms(fns, max(5, repeats // 2)).items():
        rows[name]["photo"] = ms
    return rows


def serve_rps(model: Path, backend: str, photo: bytes, requests: int, port: int) -> float:
    """Requests/s of ``ferkit serve`` on one core (taskset -c 0), 4 client threads."""
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = ["taskset", "-c", "0", sys.executable, "-m", "ferkit", "serve", str(model),
               "--backend", backend, "--threads", "1", "--port", str(port), "--device", "cpu"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/info", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"ferkit serve did not start: {server.stderr.read().decode()[-500:]}")

        def post(_: int) -> int:
            return httpx.post(f"{url}/api/predict", content=photo, timeout=120).status_code

        post(0)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            codes = list(pool.map(post, range(requests)))
        elapsed = time.perf_counter() - start
        assert codes == [200] * requests, codes
        return requests / elapsed
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="default: the shipped model, else an untrained stand-in")
    parser.add_argument("--repeats", type=int, default=40, help="batch-1 repeats (others: /4)")
    parser.add_argument("--requests", type=int, default=24, help="requests per serve measurement")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default="docs/benchmarks/serve_latency.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="ferkit-bench-"))
    if args.checkpoint:
        checkpoint, model_line = Path(args.checkpoint), f"checkpoint `{args.checkpoint}`"
    elif pretrained_path().is_file():
        checkpoint, model_line = pretrained_path(), "the shipped model (ferplus_mobilenet_v2)"
    else:
        checkpoint = stand_in_checkpoint(tmp)
        model_line = ("an untrained MobileNetV2 stand-in (112 px, grayscale, 7 classes; the shipped "
                      "model was not in this checkout; speed does not depend on the weights)")
    start = time.perf_counter()
    report = export_onnx(checkpoint, tmp / "model.onnx")
    export_s = time.perf_counter() - start
    predictors = {"torch": Predictor.from_checkpoint(checkpoint, device="cpu", warn_synthetic=False),
                  "onnx": Predictor.from_onnx(report.path, threads=1, warn_synthetic=False)}
    photo = photo_640x480()
    rows = latencies(predictors, photo, args.repeats)
    rps = {"torch": serve_rps(checkpoint, "torch", photo, args.requests, args.port),
           "onnx": serve_rps(report.path, "onnx", photo, args.requests, args.port + 1)}
    text = render(args, model_line, report, export_s, rows, rps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


def render(args: argparse.Namespace, model_line: str, report, export_s: float, rows: dict,
           rps: dict) -> str:
    info = provenance()
    load = os.getloadavg()[0]
    lines = [
        "# Inference latency: torch vs ONNX backend, and `ferkit serve` requests/s", "",
        f"Command: `PYTHONPATH=src python benchmarks/serve_latency.py"
        f"{' --checkpoint ' + args.checkpoint if args.checkpoint else ''}`  ",
        f"Commit {info['git_commit']}, torch {info['torch_version']}, {hardware()}, "
        f"{datetime.date.today()}; loaded machine (shared with training runs; 1-min load average "
        f"{load:.1f} at the end), so absolute times are pessimistic and the ratios are the point.",
        "", f"Model: {model_line}. ONNX file from `ferkit export` (dynamo exporter, {export_s:.0f} s "
        f"to export; parity on {report.parity_source}: max |logit difference| "
        f"{report.max_abs_diff:.2g}).", "",
        "One thread everywhere (torch.set_num_threads(1), onnxruntime intra-op 1). Median ms of "
        f"{args.repeats} (batch 1), {max(3, args.repeats // 4)} (batch 32) and "
        f"{max(5, args.repeats // 2)} (photo) runs, the two backends alternating.", "",
        "| backend | classifier, batch 1 | classifier, batch 32 | per image at 32 | photo 640x480 -> "
        "answer (detect + align + classify) | `ferkit serve` on one core, req/s | label |",
        "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['batch1']:.1f} | {row['batch32']:.1f} | "
                     f"{row['batch32'] / 32:.2f} | {row['photo']:.1f} | {rps[name]:.2f} | "
                     f"{row['label']} |")
    ratio = rows["torch"]["batch1"] / rows["onnx"]["batch1"]
    lines += ["", f"ONNX is {ratio:.1f}x faster than eager torch for the classifier at batch 1 "
              f"({rows['torch']['batch32'] / rows['onnx']['batch32']:.1f}x at batch 32). End to end the "
              "MTCNN detector (torch in both rows) dominates, so the photo and serve columns differ "
              "less.", "",
              f"Serve: `taskset -c 0 ferkit serve MODEL --backend B --threads 1`, {args.requests} "
              "POSTs of the 640x480 PNG from 4 client threads on the other core (the app answers "
              "one request at a time), after one warm-up request.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
