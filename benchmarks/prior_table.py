"""What the deployment prior does on FER2013Valid: overall and mean class accuracy of a checkpoint
with its training prior (no adjustment) and with post-hoc logit adjustment towards a uniform prior
at several strengths tau (``ferkit.inference.prior``). Writes ``docs/prior.md``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/prior_table.py CHECKPOINT --root ../shared/data/ferplus
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _fer_crops import scores, valid_set

from ferkit.api import hardware, provenance
from ferkit.inference.predictor import Predictor
from ferkit.inference.prior import adjust_logits

REPO = Path(__file__).resolve().parents[1]
SETTINGS = (("train", 1.0), ("uniform", 0.5), ("uniform", 1.0), ("uniform", 1.5))


def logits_on_valid(predictor: Predictor, root: str, limit: int | None) -> tuple[torch.Tensor, list[int]]:
    """Logits ``[N, K]`` of the FER2013Valid crops (classified directly) and their labels."""
    data = valid_set(root, num_classes=len(predictor.class_names))
    count = len(data) if limit is None else min(limit, len(data))
    parts = []
    for start in range(0, count, 256):
        parts.append(predictor.logits([data.load_image(i) for i in range(start, min(start + 256, count))]))
    return torch.cat(parts), data.labels[:count].tolist()


def rows(predictor: Predictor, logits: torch.Tensor, targets: list[int]) -> list[tuple[str, float, dict]]:
    """One row per (prior, tau): overall and mean class accuracy."""
    k = len(predictor.class_names)
    out = []
    for prior, tau in SETTINGS:
        adjusted = adjust_logits(logits, predictor.class_counts, prior, tau)
        out.append((prior, tau, scores(adjusted.argmax(dim=1).tolist(), targets, k)))
    return out


def document(result: list, command: str, meta: dict, seconds: float, commit: str) -> str:
    counts = ", ".join(f"{n} {c}" for n, c in zip(meta["class_names"], meta["class_counts"]))
    lines = [
        "# The deployment prior (post-hoc logit adjustment)",
        "",
        "A model trained on an imbalanced set assumes the training class frequencies. `ferkit "
        "predict --prior uniform` (Python: `predict(..., prior=\"uniform\")`) replaces them by "
        "uniform ones: `logits - tau * log p_train + tau * log p_target` (Menon et al., ICLR 2021), "
        "with `p_train` from the checkpoint's `class_counts`; `--prior v1,v2,...` gives explicit "
        "target frequencies and `--tau` the strength. Uniform is what mean class accuracy rewards; "
        "`train` (the default) keeps the model as trained and maximises overall accuracy when the "
        "deployment looks like the training set.",
        "",
        f"Command: `{command}`  ",
        f"Checkpoint: {meta.get('backbone')} / {meta.get('method')}, epoch {meta.get('epoch')}, "
        f"trained on {meta.get('dataset')} ({counts}). Commit {commit}, {hardware()} "
        f"(loaded machine), {seconds:.0f} s. FER2013Valid crops classified directly, "
        f"{result[0][2]['n']} images.",
        "",
        "| prior | tau | overall acc | mean class acc |",
        "|---|---|---|---|",
    ]
    for prior, tau, s in result:
        shown = "-" if prior == "train" else f"{tau:g}"
        lines.append(f"| {prior} | {shown} | {100 * s['accuracy']:.2f} | "
                     f"{100 * s['mean_class_accuracy']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--root", default="../shared/data/ferplus")
    parser.add_argument("--limit", type=int, help="only the first N crops (a quick look)")
    parser.add_argument("--out", default=str(REPO / "docs/prior.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = provenance().get("git_commit", "?")
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    start = time.perf_counter()
    logits, targets = logits_on_valid(predictor, args.root, args.limit)
    result = rows(predictor, logits, targets)
    command = "OMP_NUM_THREADS=1 python benchmarks/prior_table.py " + " ".join(sys.argv[1:])
    text = document(result, command, predictor.meta, time.perf_counter() - start, commit)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
