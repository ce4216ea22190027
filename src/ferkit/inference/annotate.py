"""Photos with their faces drawn: box, landmarks and "N: label NN%", readable at any size.

Line width and text size grow with the photo (a label is about 1/45 of its longer side, at least
12 px), every label stays inside the photo (inside the box's top edge when there is no room above
it, moved left at the right edge), and ``N`` is the face's number: the ``face`` field of the
table, CSV and JSON outputs, in reading order.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ferkit.inference.face_layout import clip_box
from ferkit.inference.results import FaceResult

BOX_COLOUR = (255, 220, 0)
POINT_COLOUR = (0, 255, 255)
MIN_TEXT = 12  # pixels


def text_size(image_size: tuple[int, int]) -> int:
    """Label text height in pixels for a ``(width, height)`` photo."""
    return max(MIN_TEXT, round(max(image_size) / 45))


def line_width(image_size: tuple[int, int]) -> int:
    """Box line width in pixels for a ``(width, height)`` photo."""
    return max(2, round(max(image_size) / 400))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (FreeType)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def label_text(face: FaceResult) -> str:
    """``"N: label NN%"``, N being the face's number (``#ID`` in a video: its track id)."""
    number = face.face if face.track is None else f"#{face.track}"
    return f"{number}: {face.label} {100 * face.confidence:.0f}%"


def label_position(box: Sequence[float], label_size: tuple[int, int], image_size: tuple[int, int]
                   ) -> tuple[int, int]:
    """Top-left corner of a ``label_size`` label for ``box``: on the box's top edge, above it when
    there is room, inside it otherwise, and never outside the photo."""
    (width, height), (label_w, label_h) = image_size, label_size
    x = min(max(0, round(box[0])), max(0, width - label_w))
    y = round(box[1]) - label_h if box[1] >= label_h else round(box[1])
    return x, min(max(0, y), max(0, height - label_h))


def annotate(image: np.ndarray | Image.Image, faces: Sequence[FaceResult]) -> Image.Image:
    """A copy of the photo with each face's box (clipped to the photo), landmarks and label.

    Args:
        image: the photo, uint8 ``[H, W, 3]`` RGB or a Pillow image.
        faces: its faces, e.g. from :meth:`ferkit.Predictor.predict_photo`.

    Returns:
        An RGB Pillow image the size of the photo.
    """
    canvas = (image if isinstance(image, Image.Image) else Image.fromarray(image)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font, line = _font(text_size(canvas.size)), line_width(canvas.size)
    pad = max(2, line)
    for face in faces:
        box = clip_box(face.box, *canvas.size)
        draw.rectangle(box, outline=BOX_COLOUR, width=line)
        dot = max(1.0, min(line, (box[2] - box[0]) / 30))  # small faces keep their features visible
        for x, y in face.landmarks or []:
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=POINT_COLOUR)
        text = label_text(face)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x, y = label_position(box, (right - left + 2 * pad, bottom + pad), canvas.size)
        draw.rectangle([x, y, x + right - left + 2 * pad - 1, y + bottom + pad - 1], fill=BOX_COLOUR)
        draw.text((x + pad - left, y + pad // 2), text, fill="black", font=font)
    return canvas
