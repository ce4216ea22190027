"""Inference latency of the torch and ONNX backends, and requests/s of ``ferkit serve``, in one run.

Backends: torch = the classifier and the MTCNN face detector in eager torch; onnx = both on
onnxruntime. The machine's load average is measured before and after and written to the page.

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
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from _machine import LoadRecord, interleaved_ms, page_header
from PIL import Image

from ferkit.engine.checkpoint import save_checkpoint
from ferkit.inference import Predictor
from ferkit.inference.export import export_onnx
from ferkit.inference.predictor import pretrained_path
from ferkit.methods import create_method
from ferkit.models import build_classifier

FERPLUS_COUNTS = [3149, 532, 119, 7287, 3013, 2099, 8739]
FERPLUS_NAMES = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
SERVE_GOAL = 20.0  # requests/s on one core (issue 18)


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


def photo_640x480(kind: str = "PNG") -> bytes:
    """scikit-image's astronaut (one face) scaled to 480 px high on a 640x480 grey canvas, as a
    PNG or a JPEG (quality 90)."""
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((480, 480), Image.BILINEAR)
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(face, (80, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return buffer.getvalue()


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
    for name, ms in interleaved_ms(fns, max(5, repeats // 2), clock=time.process_time).items():
        rows[name]["photo_cpu"] = ms
    return rows


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _http(url: str, body: bytes | None = None, timeout: float = 120) -> tuple[int, bytes]:
    """GET (or POST ``body`` as image/png) -> status and body; 0 when nothing answers."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def serve_rps(model: Path, backend: str, photo: bytes, requests: int, port: int
              ) -> tuple[float, float]:
    """Requests/s of ``ferkit serve`` on one core (taskset -c 0), 4 client threads: measured on
    the wall clock, and as requests per CPU-second of the server process (what a core of its own
    would answer)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = ["taskset", "-c", "0", sys.executable, "-m", "ferkit", "serve", str(model),
               "--backend", backend, "--detector-backend", backend, "--threads", "1",
               "--port", str(port), "--device", "cpu"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        while _http(f"{url}/api/info", timeout=1)[0] != 200:
            if server.poll() is not None:
                raise RuntimeError(f"ferkit serve stopped: {server.stderr.read().decode()[-500:]}")
            time.sleep(0.2)

        def post(_: int) -> int:
            status, body = _http(f"{url}/api/predict", photo)
            assert status != 200 or len(json.loads(body)["faces"]) == 1, body[:300]
            return status

        post(0)
        start, cpu_start = time.perf_counter(), cpu_seconds(server.pid)
        with ThreadPoolExecutor(max_workers=4) as pool:
            codes = list(pool.map(post, range(requests)))
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(server.pid) - cpu_start
        assert codes == [200] * requests, codes
        return requests / elapsed, requests / cpu
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
    load = LoadRecord()
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
    predictors = {"torch": Predictor.from_checkpoint(checkpoint, device="cpu", warn_synthetic=False,
                                                     detector_backend="torch"),
                  "onnx": Predictor.from_onnx(report.path, threads=1, warn_synthetic=False,
                                              detector_backend="onnx")}
    photo = photo_640x480()
    rows = latencies(predictors, photo, args.repeats)
    jpeg = photo_640x480("JPEG")
    rps = {"torch": serve_rps(checkpoint, "torch", photo, args.requests, args.port),
           "onnx": serve_rps(report.path, "onnx", photo, args.requests, args.port + 1)}
    rps_jpeg = {"torch": serve_rps(checkpoint, "torch", jpeg, args.requests, args.port + 2),
                "onnx": serve_rps(report.path, "onnx", jpeg, args.requests, args.port + 3)}
    load.stop()
    text = render(args, model_line, report, export_s, rows, rps, rps_jpeg, load)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


def render(args: argparse.Namespace, model_line: str, report, export_s: float, rows: dict,
           rps: dict, rps_jpeg: dict, load: LoadRecord) -> str:
    command = ("PYTHONPATH=src python benchmarks/serve_latency.py"
               f"{' --checkpoint ' + args.checkpoint if args.checkpoint else ''}")
    lines = [
        *page_header("Inference latency: torch vs ONNX backend, and `ferkit serve` requests/s",
                     command, load),
        "Backends: **torch** = the classifier and the MTCNN face detector in eager torch; **onnx** "
        "= both on onnxruntime (the detector's networks exported by ferkit and cached).",
        "", f"Model: {model_line}. ONNX file from `ferkit export` (dynamo exporter, {export_s:.0f} s "
        f"to export; parity on {report.parity_source}: max |logit difference| "
        f"{report.max_abs_diff:.2g}).", "",
        "One thread everywhere (torch.set_num_threads(1), onnxruntime intra-op 1). Median ms of "
        f"{args.repeats} (batch 1), {max(3, args.repeats // 4)} (batch 32) and "
        f"{max(5, args.repeats // 2)} (photo) runs, the two backends alternating.", "",
        "Wall-clock times are what the machine gave at the load recorded above; the CPU columns "
        "are the CPU time the work used (process CPU time for the photo; the server process's CPU "
        "seconds per request for serve), which is about what a core of its own would take, since "
        "every part runs on one thread.", "",
        "| backend | classifier, batch 1 | classifier, batch 32 | per image at 32 | photo 640x480 -> "
        "answer (decode + detect + align + classify), wall | same, CPU | `ferkit serve` on one "
        f"core, req/s, wall | same, per CPU-second (goal {SERVE_GOAL:.0f}) | same, the photo as a "
        "JPEG, req/s, wall | same, per CPU-second | label |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        wall, per_cpu = rps[name]
        jpeg_wall, jpeg_per_cpu = rps_jpeg[name]
        lines.append(f"| {name} | {row['batch1']:.1f} | {row['batch32']:.1f} | "
                     f"{row['batch32'] / 32:.2f} | {row['photo']:.1f} | {row['photo_cpu']:.1f} | "
                     f"{wall:.2f} | **{per_cpu:.1f}** | {jpeg_wall:.2f} | **{jpeg_per_cpu:.1f}** | "
                     f"{row['label']} |")
    ratio = rows["torch"]["batch1"] / rows["onnx"]["batch1"]
    lines += ["", f"torch / onnx: classifier {ratio:.1f}x at batch 1 "
              f"({rows['torch']['batch32'] / rows['onnx']['batch32']:.1f}x at batch 32), photo "
              f"{rows['torch']['photo'] / rows['onnx']['photo']:.2f}x, serve requests/s "
              f"{rps['onnx'][0] / rps['torch'][0]:.2f}x wall, "
              f"{rps['onnx'][1] / rps['torch'][1]:.2f}x per CPU-second (onnx / torch).", "",
              f"Serve: `taskset -c 0 ferkit serve MODEL --backend B --threads 1`, {args.requests} "
              "POSTs of the 640x480 photo from 4 client threads on the other core (the app answers "
              "one request at a time; each answer also carries every face's attention overlay), "
              f"after one warm-up request: the PNG ({len(photo_640x480()) // 1000} kB) and the same "
              f"picture as a JPEG of quality 90 "
              f"({len(photo_640x480('JPEG')) // 1000} kB).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
