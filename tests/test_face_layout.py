"""Face numbering in reading order and boxes kept inside the image (hand-placed boxes)."""

from __future__ import annotations

from ferkit.inference.face_layout import clip_box, reading_order


def test_reading_order_rows_then_left_to_right() -> None:
    boxes = [
        (500, 410, 540, 450),  # bottom right, small (a detector's favourite first face)
        (300, 10, 380, 90),    # top row, middle
        (20, 30, 90, 100),     # top row, left, slightly lower than the middle one
        (600, 0, 700, 100),    # top row, right
        (40, 400, 100, 460),   # bottom left
    ]
    assert reading_order(boxes) == [2, 1, 3, 4, 0]


def test_reading_order_row_break_and_edge_cases() -> None:
    # the second face's centre (y 75) is below the first's bottom edge (y 60): a new row
    assert reading_order([(100, 50, 150, 100), (0, 0, 60, 60)]) == [1, 0]
    assert reading_order([]) == []
    assert reading_order([(1, 2, 3, 4)]) == [0]


def test_clip_box() -> None:
    assert clip_box((-12.5, -3, 80, 50), 64, 48) == (0.0, 0.0, 64.0, 48.0)
    assert clip_box((10, 5, 20, 30), 64, 48) == (10.0, 5.0, 20.0, 30.0)
