"""Derive the alignment template from the training data's own geometry.

Runs ferkit's MTCNN over every FER2013Valid crop (48x48, upsampled to 160 px inside a grey margin,
see ``_fer_crops.py``), reports the detection rate and writes the mean landmark positions, in
``[0, 1]`` coordinates of the original crop, to ``src/ferkit/inference/ferplus_template.json``
(the packaged default template) and the numbers to ``docs/alignment.md``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/align_template.py --root ../shared/data/ferplus
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _fer_crops import PAD, UPSAMPLE, as_photo, best_face, detector, replace_section, valid_set

from ferkit.api import hardware, provenance

REPO = Path(__file__).resolve().parents[1]
POINTS = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")


def measure(root: str, limit: int | None) -> dict:
    """Detect on every crop; the mean and std of the normalised landmarks of detected faces."""
    data, mtcnn = valid_set(root), detector()
    count = len(data) if limit is None else min(limit, len(data))
    points, start = [], time.perf_counter()
    for index in range(count):
        face = best_face(mtcnn, as_photo(data.load_image(index)))
        if face is not None:
            points.append((face.landmarks - PAD) / UPSAMPLE)
    seconds = time.perf_counter() - start
    stacked = np.stack(points).astype(np.float64)  # [N, 5, 2]
    return {"template": stacked.mean(0).round(4).tolist(), "std": stacked.std(0).round(4).tolist(),
            "detected": len(points), "images": count, "detection_rate": len(points) / count,
            "seconds": round(seconds, 1)}


def write_doc(result: dict, command: str, path: Path) -> None:
    """Write (or refresh) the template section of docs/alignment.md, keeping other sections."""
    lines = [
        "## The alignment template",
        "",
        f"Command: `{command}`  ",
        f"Commit {result['commit']}, {result['hardware']} (loaded machine), {result['seconds']} s.",
        "",
        f"MTCNN found a face in **{result['detected']} of {result['images']} FER2013Valid crops "
        f"({100 * result['detection_rate']:.1f} %)** (48 px crops upsampled to {UPSAMPLE} px "
        f"in a {PAD} px grey margin; min face 40 px). The crops are the 7-class FER2013Valid "
        "set (majority label in the 7 classes; 3,186 of the folder's 3,579 images).",
        "",
        "Mean landmark positions over the detected crops, in [0, 1] coordinates of the 48x48 crop "
        "(x right, y down); this is the packaged template `src/ferkit/inference/ferplus_template.json`:",
        "",
        "| point | x | y | std x | std y |",
        "|---|---|---|---|---|",
    ]
    for name, (x, y), (sx, sy) in zip(POINTS, result["template"], result["std"]):
        lines.append(f"| {name} | {x:.4f} | {y:.4f} | {sx:.4f} | {sy:.4f} |")
    replace_section(path, "template", "\n".join(lines), "Alignment: from a photo to a training-like crop")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="../shared/data/ferplus")
    parser.add_argument("--limit", type=int, help="only the first N crops (a quick look)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = provenance().get("git_commit", "?")  # before the run writes its outputs
    result = {**measure(args.root, args.limit), "commit": commit, "hardware": hardware()}
    print(json.dumps(result, indent=2))
    if not args.no_write:
        command = "OMP_NUM_THREADS=1 python benchmarks/align_template.py " + " ".join(sys.argv[1:])
        package = {"template": result["template"], "source": "mean MTCNN landmarks over "
                   f"{result['detected']} FER2013Valid crops", "command": command}
        (REPO / "src/ferkit/inference/ferplus_template.json").write_text(json.dumps(package, indent=2) + "\n")
        write_doc(result, command, REPO / "docs/alignment.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
