"""Annotated photos readable at any size: labels inside the photo, text and lines scaled to it,
the face number drawn, boxes clipped (hand-placed faces; no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageFont

from ferkit.inference.annotate import (
    BOX_COLOUR,
    annotate,
    label_position,
    label_text,
    line_width,
    text_size,
)
from ferkit.inference.results import FaceResult


def face(number: int, box: tuple[float, float, float, float]) -> FaceResult:
    return FaceResult("happiness", 0.874, {"happiness": 0.874, "neutral": 0.126}, face=number, box=box)


def yellow_rows_and_columns(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = (picture == BOX_COLOUR).all(axis=2)
    return np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))


def test_label_text_carries_the_face_number() -> None:
    assert label_text(face(3, (0, 0, 10, 10))) == "3: happiness 87%"


@pytest.mark.parametrize("box, expected", [
    ((100, 200, 180, 300), (100, 180)),   # room above the box: the label sits on its top edge
    ((100, 5, 180, 100), (100, 5)),       # at the top edge: inside the box, not above the photo
    ((590, 200, 640, 260), (540, 180)),   # at the right edge: moved left to stay on the photo
    ((0, 470, 40, 480), (0, 450)),        # at the bottom edge: above the box as usual
])
def test_label_position_stays_inside(box: tuple[float, ...], expected: tuple[int, int]) -> None:
    assert label_position(box, (100, 20), (640, 480)) == expected
    # a photo smaller than the label: its top-left corner
    assert label_position((0, 5, 10, 10), (100, 20), (50, 15)) == (0, 0)


def test_annotated_labels_inside_the_photo_at_the_edges() -> None:
    """A face touching the top edge and one past the right edge: both labels (yellow) are drawn
    inside the photo, the box is clipped (no negative coordinates)."""
    photo = np.zeros((300, 400, 3), np.uint8)
    faces = [face(1, (20, -6, 90, 70)), face(2, (350, 120, 430, 200))]
    picture = np.asarray(annotate(photo, faces))
    assert picture.shape == photo.shape
    rows, columns = yellow_rows_and_columns(picture)
    # the top face's label fills the band just under the top edge, inside its box
    assert (picture[1:10, 30:60] == BOX_COLOUR).all(axis=2).any()
    # the right face's label is pulled left of the right edge but stays on the photo
    label_width = ImageFont.load_default(size=text_size((400, 300))).getbbox(label_text(faces[1]))[2]
    assert (picture[105:118, 400 - label_width:399] == BOX_COLOUR).all(axis=2).any()
    assert rows.min() == 0 and columns.max() == 399  # the clipped boxes run along the edges


def test_text_and_lines_scale_with_the_photo() -> None:
    assert (text_size((640, 480)), line_width((640, 480))) == (14, 2)
    assert (text_size((1920, 1080)), line_width((1920, 1080))) == (43, 5)
    assert text_size((100, 80)) == 12  # never below 12 px
    small = np.asarray(annotate(np.zeros((480, 640, 3), np.uint8), [face(1, (200, 200, 300, 300))]))
    large = np.asarray(annotate(np.zeros((1080, 1920, 3), np.uint8), [face(1, (600, 600, 900, 900))]))
    label_height = []
    for picture in (small, large):
        mask = (picture == BOX_COLOUR).all(axis=2)
        filled = np.flatnonzero(mask.sum(axis=1) > 20)  # rows of the label band (not the box's sides)
        label_height.append(int(filled[filled < filled.min() + 100].size))
    assert label_height[1] >= 2.5 * label_height[0] and label_height[1] >= 40
