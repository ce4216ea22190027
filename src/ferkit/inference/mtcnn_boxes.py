"""Box arithmetic of the MTCNN cascade in numpy: non-maximum suppression, squaring, regression."""

from __future__ import annotations

import numpy as np

NMS_BLOCK = 128  # boxes whose overlaps NMS computes together (memory: 8 bytes x boxes x block, a few times)


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
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for start in range(0, len(order), NMS_BLOCK):
        # the overlaps of this block's surviving boxes with every box from here on, at once
        alive = start + np.flatnonzero(~suppressed[start:start + NMS_BLOCK])
        over = _overlaps(boxes, areas, order[alive], order[start:], mode) > threshold
        for index, row in zip(alive.tolist(), over):
            if not suppressed[index]:
                keep.append(index)
                suppressed[start:] |= row
    return order[np.asarray(keep, dtype=np.int64)]


def _overlaps(boxes: np.ndarray, areas: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              mode: str) -> np.ndarray:
    """Overlap ``[len(rows), len(cols)]`` of boxes ``rows`` with boxes ``cols``: intersection over
    union ("union") or over the smaller area ("min")."""
    a, b = boxes[rows].T[:, :, None], boxes[cols].T[:, None, :]  # [4, R, 1], [4, 1, C]
    inter = ((np.minimum(a[2], b[2]) - np.maximum(a[0], b[0])).clip(min=0)
             * (np.minimum(a[3], b[3]) - np.maximum(a[1], b[1])).clip(min=0))
    if mode == "min":
        return inter / np.maximum(np.minimum(areas[rows, None], areas[None, cols]), 1e-9)
    return inter / np.maximum(areas[rows, None] + areas[None, cols] - inter, 1e-9)


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = the longer side)."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]).max(axis=1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply box offsets (fractions of the box width/height) predicted by a stage."""
    size = np.tile(boxes[:, 2:4] - boxes[:, :2], 2)
    return boxes[:, :4] + offsets * size
