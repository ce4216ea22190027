"""Where faces sit in a photo: boxes clipped to the image and faces numbered in reading order.

Face numbers are what a person uses to match a row of the table, CSV or JSON (its ``face`` field)
with a box on the picture, so they follow the order a reader scans a photo: rows from top to
bottom, left to right within a row (a group photo's back row first), never the detector's order.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """``(x1, y1, x2, y2)`` kept inside a ``width`` x ``height`` image (no negative coordinates)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def reading_order(boxes: Sequence[Sequence[float]]) -> list[int]:
    """Indices of ``boxes`` in reading order: rows top to bottom, each row left to right.

    Faces are taken by the height of their centre; a face whose centre lies above the bottom edge
    of the first (highest) face of the current row belongs to that row, otherwise it starts the
    next row. Within a row, faces go by the horizontal position of their centre.

    Example:
        >>> reading_order([(300, 10, 340, 50), (0, 200, 40, 240), (10, 20, 50, 60)])
        [2, 0, 1]
    """
    def centre(i: int) -> tuple[float, float]:
        x1, y1, x2, y2 = boxes[i]
        return (x1 + x2) / 2, (y1 + y2) / 2

    rows: list[list[int]] = []
    row_bottom = float("-inf")
    for i in sorted(range(len(boxes)), key=lambda i: centre(i)[1]):
        if not rows or centre(i)[1] > row_bottom:
            rows.append([])
            row_bottom = boxes[i][3]
        rows[-1].append(i)
    return [i for row in rows for i in sorted(row, key=lambda i: centre(i)[0])]
