"""The face detector's networks on onnxruntime: exported with their PReLU layers as they are
(onnxruntime's PRelu kernel) against ferkit's export form (PReLU as two per-channel scalings), in
one run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/detector_forms.py

Inputs are what a 640x480 photo gives the detector: P-Net on the packed pyramid canvas of the
default minimum face (20 px), and R-Net and O-Net on batches of crops of the sizes the benchmark
photo of serve_latency.py gives (104 and 9). One thread; CPU time per run (median), the two forms
alternating. Also checks that both forms give the same outputs. Writes
docs/benchmarks/detector_forms.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _machine import LoadRecord, interleaved_ms, page_header

from ferkit.inference.faces import MTCNN
from ferkit.inference.mtcnn_onnx import INPUT, OUTPUTS, export_example, export_form
from ferkit.inference.mtcnn_pyramid import pack_levels, pyramid_scales
from ferkit.inference.onnx_backend import dynamo_export, require

REPO = Path(__file__).resolve().parents[1]


def inputs() -> dict[str, np.ndarray]:
    """Random inputs of the shapes a 640x480 photo gives each network."""
    _, (height, width) = pack_levels(480, 640, pyramid_scales(480, 640, 20.0, 0.709))
    rng = np.random.default_rng(0)
    shapes = {"pnet": (1, 3, height, width), "rnet": (104, 3, 24, 24), "onet": (9, 3, 48, 48)}
    return {name: rng.uniform(-1, 1, size=shape).astype(np.float32) for name, shape in shapes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default=str(REPO / "docs/benchmarks/detector_forms.md"))
    args = parser.parse_args()
    ort = require("onnxruntime", "this benchmark")
    torch.set_num_threads(1)
    load = LoadRecord()
    detector = MTCNN.from_package(backend="torch")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, x in inputs().items():
            net = getattr(detector, name).eval()
            sessions = {}
            for form, module in (("PRelu", net), ("export form", export_form(net).eval())):
                path = Path(folder) / f"{name}-{form.replace(' ', '_')}.onnx"
                example, dynamic = export_example(name)
                dynamo_export(module, example, path, [INPUT], OUTPUTS[name], dynamic)
                sessions[form] = ort.InferenceSession(str(path), options,
                                                      providers=["CPUExecutionProvider"])
            outputs = [s.run(None, {INPUT: x}) for s in sessions.values()]
            diff = max(float(np.abs(a - b).max()) for a, b in zip(*outputs))
            ms = interleaved_ms({form: (lambda s=s, x=x: s.run(None, {INPUT: x}))
                                 for form, s in sessions.items()}, args.repeats, clock=time.process_time)
            rows.append((name, "x".join(map(str, x.shape)), ms["PRelu"], ms["export form"], diff))
    load.stop()
    lines = [
        *page_header("Face detector on onnxruntime: PRelu against ferkit's export form",
                     f"OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/detector_forms.py "
                     f"--repeats {args.repeats}", load,
                     f"One thread (onnxruntime intra-op 1), CPU time per run, median of "
                     f"{args.repeats}, the two forms alternating; onnxruntime {ort.__version__}."),
        "**PRelu**: each network exported with its PReLU layers as they are (ONNX PRelu, which "
        "onnxruntime runs in plain layout between reorders of its blocked convolution layout); "
        "**export form**: what ferkit exports and caches (`ferkit.inference.mtcnn_onnx.export_form`: "
        "PReLU as `a * x + (1 - a) * relu(x)`, the two scalings as inference batch norms, which "
        "onnxruntime keeps in the blocked layout). Both compute the face probability as the sigmoid "
        "of the logit difference (`mtcnn_nets.face_probability`, in the networks themselves).", "",
        "| network | input | PRelu, ms | export form, ms | speed-up | max output difference |",
        "|---|---|---|---|---|---|",
        *(f"| {name} | {shape} | {old:.2f} | {new:.2f} | {old / new:.2f}x | {diff:.1e} |"
          for name, shape, old, new, diff in rows),
        "", "Inputs: P-Net on the packed pyramid canvas of a 640x480 photo (minimum face 20 px), "
        "R-Net and O-Net on as many crops as serve_latency.py's photo gives them; values uniform "
        "in [-1, 1].", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
