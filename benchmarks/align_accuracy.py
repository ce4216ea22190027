"""Does detect -> align -> classify lose accuracy against classifying the crops directly?

Each FER2013Valid crop is turned into a small "photo" (upsampled to 160 px in a grey margin, see
``_fer_crops.py``), run through the predictor's photo path (MTCNN, alignment onto the checkpoint's
template, classification) and compared with classifying the crop itself. Writes the table into
``docs/alignment.md`` between ``<!-- accuracy:start -->`` and ``<!-- accuracy:end -->``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/align_accuracy.py CHECKPOINT --root ../shared/data/ferplus
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _fer_crops import as_photo, best_face, detector, replace_section, scores, valid_set

from ferkit.api import hardware, provenance
from ferkit.inference.align import align_face
from ferkit.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]


def predicted(predictor: Predictor, images: list[np.ndarray], batch: int = 256) -> list[int]:
    """Argmax class of each image (the model's own prior)."""
    out: list[int] = []
    for start in range(0, len(images), batch):
        out += predictor.logits(images[start:start + batch]).argmax(dim=1).tolist()
    return out


def measure(predictor: Predictor, root: str, limit: int | None) -> dict:
    """Predictions on the crops and through the photo path, and the rows of the table."""
    data = valid_set(root, num_classes=len(predictor.class_names))
    count = len(data) if limit is None else min(limit, len(data))
    mtcnn = detector()
    crops, aligned, found = [], [], []
    for index in range(count):
        crop = data.load_image(index)
        photo = as_photo(crop)
        face = best_face(mtcnn, photo)
        crops.append(crop)
        found.append(face is not None)
        aligned.append(crop if face is None else
                       align_face(photo, face.landmarks, predictor.template, predictor.image_size))
    direct, through = predicted(predictor, crops), predicted(predictor, aligned)
    targets = data.labels[:count].tolist()
    hit = [i for i in range(count) if found[i]]
    k = len(predictor.class_names)
    rows = [
        ("crops classified directly", "all", scores(direct, targets, k)),
        ("detect -> align -> classify (a miss falls back to the crop)", "all",
         scores(through, targets, k)),
        ("crops classified directly", "detected only", scores([direct[i] for i in hit],
                                                              [targets[i] for i in hit], k)),
        ("detect -> align -> classify", "detected only", scores([through[i] for i in hit],
                                                                [targets[i] for i in hit], k)),
    ]
    return {"rows": rows, "detected": len(hit), "images": count}


def _prior_text(meta: dict) -> str:
    deploy = meta.get("deploy_prior")
    return "as trained" if not deploy else f"{deploy['prior']} (tau {deploy['tau']:g})"


def table(result: dict, command: str, meta: dict, seconds: float, commit: str) -> str:
    lines = [
        "## Accuracy: detect -> align -> classify vs the crops directly",
        "",
        f"Command: `{command}`  ",
        f"Checkpoint: {meta.get('backbone')} / {meta.get('method')}, {meta.get('image_size')} px, "
        f"epoch {meta.get('epoch')}, trained on {meta.get('dataset')}. Commit {commit}, "
        f"{hardware()}, {seconds:.0f} s. Classified as `ferkit predict` does by default: prior "
        f"{_prior_text(meta)}, test-time flip {'on' if meta.get('test_time_flip') else 'off'}.",
        f"FER2013Valid, {result['images']} crops, faces detected in {result['detected']} "
        f"({100 * result['detected'] / result['images']:.1f} %).",
        "Where alignment rotates or shrinks a face, the aligned crop shows the grey margin of this "
        "set-up (a real photo shows the scene around the face there), which the model never saw "
        "in training: the photo path is measured here at a small disadvantage.",
        "",
        "| path | crops | n | mean class acc | overall acc |",
        "|---|---|---|---|---|",
    ]
    for name, subset, s in result["rows"]:
        lines.append(f"| {name} | {subset} | {s['n']} | {100 * s['mean_class_accuracy']:.2f} | "
                     f"{100 * s['accuracy']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--root", default="../shared/data/ferplus")
    parser.add_argument("--limit", type=int, help="only the first N crops (a quick look)")
    parser.add_argument("--doc", default=str(REPO / "docs/alignment.md"), help="markdown file to update")
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = provenance().get("git_commit", "?")
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    start = time.perf_counter()
    result = measure(predictor, args.root, args.limit)
    command = "OMP_NUM_THREADS=1 python benchmarks/align_accuracy.py " + " ".join(sys.argv[1:])
    text = table(result, command, predictor.meta, time.perf_counter() - start, commit)
    print(text)
    replace_section(Path(args.doc), "accuracy", text, "Alignment: from a photo to a training-like crop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
