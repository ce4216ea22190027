"""Peak memory of ``ferkit serve`` under a flood of large uploads, and whether it keeps answering.

Starts the server (a seeded, untrained ``tiny_cnn`` checkpoint: the classifier's size does not
matter here, decoding does; the packaged face detector) in a child process with one torch thread,
then for each case sends N uploads at once and reads the server's resident memory from
``/proc/PID/status``: ``VmRSS`` before, ``VmHWM`` (the peak since the process started) after, and
the answer to a normal request sent after the flood. Cases:

- ``bomb``: N copies of a 12000 x 12000 grey PNG (165 KB on the wire, 144 megapixels decoded, below
  Pillow's own 179-megapixel refusal): refused from the header by the 24-megapixel decode budget.
- ``budget``: N copies of a 6000 x 4000 photo-sized PNG (24 megapixels, at the budget): decoded,
  at most ``SERVE_DECODE_SLOTS`` at a time.

Each case runs in a fresh server, so ``VmHWM`` is that case's peak. Linux only (``/proc``).

Usage: ``python benchmarks/serve_memory.py [--uploads 8] [--out docs/benchmarks/serve_memory.md]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CASES = {"bomb": (12000, 12000), "budget": (6000, 4000)}


def png(width: int, height: int) -> bytes:
    """A grey PNG with a soft gradient (compresses well, decodes to every pixel)."""
    row = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.broadcast_to(row, (height, width))).save(buffer, "PNG")
    return buffer.getvalue()


def serve(port: int, folder: str) -> None:
    """The child: a tiny predictor behind the real app, on one torch thread."""
    import torch
    import uvicorn

    from ferkit.engine.checkpoint import save_checkpoint
    from ferkit.inference import Predictor
    from ferkit.inference.serve import create_app
    from ferkit.methods import create_method
    from ferkit.models import build_classifier

    torch.set_num_threads(1)
    torch.manual_seed(0)
    counts = [50, 10, 5, 90, 40, 30, 100]
    method = create_method("ce", build_classifier("tiny_cnn", 7, width=8), counts, sum(counts))
    meta = {"class_names": ["surprise", "fear", "disgust", "happiness", "sadness", "anger",
                            "neutral"], "num_classes": 7, "image_size": 32, "channels": 3,
            "mean": [0.5] * 3, "std": [0.25] * 3, "backbone": "tiny_cnn",
            "backbone_options": {"width": 8}, "method": "ce", "method_params": {},
            "class_counts": counts, "num_samples": sum(counts), "dataset": "benchmark"}
    path = save_checkpoint(Path(folder) / "tiny.safetensors", method, meta)
    predictor = Predictor.from_checkpoint(path, device="cpu", warn_synthetic=False)
    predictor.detector  # noqa: B018  (loaded before the measurement, as run_server does)
    uvicorn.run(create_app(predictor, max_upload_bytes=10_000_000), host="127.0.0.1", port=port,
                log_level="warning")


def status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def post(url: str, body: bytes) -> tuple[int, float, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "image/png"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            code, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        code, text = err.code, err.read().decode()
    return code, time.perf_counter() - start, text


def run_case(name: str, uploads: int) -> dict[str, object]:
    body = png(*CASES[name])
    small = png(640, 480)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), folder])
        try:
            url = f"http://127.0.0.1:{port}/api/predict"
            for _ in range(600):  # wait until it answers
                try:
                    post(url, small)
                    break
                except OSError:
                    time.sleep(0.5)
            before = status_kb(child.pid)
            with ThreadPoolExecutor(uploads) as pool:
                answers = list(pool.map(lambda _: post(url, body), range(uploads)))
            peak = status_kb(child.pid)
            after_code, after_s, _ = post(url, small)
        finally:
            child.terminate()
            child.wait(30)
    return {"case": name, "size": "x".join(map(str, CASES[name])), "upload_kb": len(body) // 1024,
            "uploads": uploads, "statuses": sorted({a[0] for a in answers}),
            "slowest_s": round(max(a[1] for a in answers), 2),
            "error": json.loads(answers[0][2]).get("error", "")[:120],
            "rss_before_mb": before["VmRSS"] // 1024, "rss_peak_mb": peak["VmHWM"] // 1024,
            "rss_after_mb": peak["VmRSS"] // 1024, "next_request": after_code,
            "next_request_s": round(after_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--cases", default="bomb,budget")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    load_before = os.getloadavg()[0]
    rows = [run_case(name, args.uploads) for name in args.cases.split(",")]
    load_after = os.getloadavg()[0]
    print(f"load average (1 min): {load_before:.1f} before, {load_after:.1f} after; "
          f"{os.cpu_count()} cores")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
