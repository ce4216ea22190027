"""Box arithmetic of the MTCNN cascade in numpy: non-maximum suppression, squaring, regression."""

from __future__ import annotations

import numpy as np


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union",
        groups: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``[N, 4]`` ``(x1, y1, x2, y2)``.
        scores: ``[N]``.
        threshold: overlap above which the lower-scored box is dropped.
        mode: "union" (intersection over union) or "min" (intersection over the smaller area).
        groups: ``[N]`` integer group of each box; boxes of different groups never suppress each
            other (one call for the levels of a pyramid).

    Returns:
        Indices of kept boxes ``[M]``, highest score first.
    """
    boxes, scores = np.asarray(boxes, dtype=np.float64), np.asarray(scores)
    if groups is not None and len(boxes):  # shift each group far from the others
        boxes = boxes + (np.asarray(groups) * (boxes.max() - boxes.min() + 1))[:, None]
    areas = (boxes[:, 2] - boxes[:, 0]).clip(min=0) * (boxes[:, 3] - boxes[:, 1]).clip(min=0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(boxes[rest, :2], boxes[best, :2])
        bottom_right = np.minimum(boxes[rest, 2:], boxes[best, 2:])
        inter = (bottom_right - top_left).clip(min=0).prod(axis=1)
        if mode == "min":
            overlap = inter / np.maximum(np.minimum(areas[rest], areas[best]), 1e-9)
        else:
            overlap = inter / np.maximum(areas[rest] + areas[best] - inter, 1e-9)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = the longer side)."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]).max(axis=1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply box offsets (fractions of the box width/height) predicted by a stage."""
    size = np.tile(boxes[:, 2:4] - boxes[:, :2], 2)
    return boxes[:, :4] + offsets * size
