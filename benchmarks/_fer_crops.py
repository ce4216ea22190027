"""Shared by the alignment benchmarks: FER2013Valid crops as small "photos" for the detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.data import DATASETS
from ferkit.inference.faces import MTCNN, Face

UPSAMPLE = 160  # 48 px crops are too small for MTCNN's 12 px P-Net window to see fine detail
PAD = 48  # grey margin: a face that fills the whole frame is often missed by the cascade


def valid_set(root: str | Path, num_classes: int = 7):
    """FER2013Valid (FERPlus PublicTest, majority labels)."""
    return DATASETS.create("ferplus", root=root, split="val", num_classes=num_classes)


def as_photo(crop: np.ndarray, upsample: int = UPSAMPLE, pad: int = PAD) -> np.ndarray:
    """A 48x48 grey crop ``[48, 48, 1]`` -> RGB ``[S, S, 3]`` upsampled (bicubic) in a grey margin."""
    face = Image.fromarray(crop[:, :, 0]).resize((upsample, upsample), Image.BICUBIC)
    canvas = Image.new("L", (upsample + 2 * pad, upsample + 2 * pad), 128)
    canvas.paste(face, (pad, pad))
    return np.asarray(canvas.convert("RGB"))


def best_face(detector: MTCNN, photo: np.ndarray) -> Face | None:
    """The highest-scoring face, or None."""
    found = detector.detect(photo)
    return found[0] if found else None


def detector(min_face_size: float = 40.0) -> MTCNN:
    """The packaged detector; faces in these photos are >= 160 px, so the pyramid can start coarse."""
    return MTCNN.from_package(min_face_size=min_face_size)


def scores(predictions: list[int], targets: list[int], num_classes: int) -> dict[str, float]:
    """Overall and mean class accuracy (fractions) of integer predictions."""
    import torch

    from ferkit.metrics import accuracy, confusion_matrix, mean_class_accuracy

    confusion = confusion_matrix(torch.as_tensor(predictions), torch.as_tensor(targets), num_classes)
    return {"accuracy": accuracy(confusion), "mean_class_accuracy": mean_class_accuracy(confusion),
            "n": len(targets)}


def replace_section(path: Path, name: str, block: str, title: str) -> None:
    """Replace ``<!-- name:start --> ... <!-- name:end -->`` in ``path`` (append when absent)."""
    text = path.read_text() if path.exists() else f"# {title}\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{block.strip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
