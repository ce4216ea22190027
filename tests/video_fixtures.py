"""Test videos built from real photographs (scikit-image's astronaut), written with PyAV.

The scene (400x300 px, 10 frames per second, 40 frames): face A (about 100x120 px) moves left to
right along the top, hidden in frames 14 and 15 (an occlusion shorter than the tracker's gap
tolerance), and gone from frame 32; face B (the same face mirrored) sits still at the bottom
right from frame 10; from frame 34 a face enters again at the top left, far from where A left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT, RATE, FRAMES = 400, 300, 10, 40
HIDDEN = (14, 15)
B_FROM, RETURN_FROM = 10, 34
TOP, BOTTOM = 20, 170  # y of the upper and lower faces


def face_image() -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()[0:300, 100:350]).resize((100, 120)))


def face_a_x(frame: int) -> int | None:
    """Left edge of face A in ``frame`` (None when A is not in the picture)."""
    if frame in HIDDEN:
        return None
    if frame >= RETURN_FROM:
        return 20
    x = -100 + 16 * frame
    return x if x < WIDTH else None


def paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int) -> None:
    x0, x1 = max(x, 0), min(x + face.shape[1], canvas.shape[1])
    if x1 > x0:
        canvas[y:y + face.shape[0], x0:x1] = face[:, x0 - x:x1 - x]


def scene(frame: int, face: np.ndarray) -> np.ndarray:
    canvas = np.full((HEIGHT, WIDTH, 3), (110, 120, 130), np.uint8)
    x = face_a_x(frame)
    if x is not None:
        paste(canvas, face, x, TOP)
    if frame >= B_FROM:
        paste(canvas, face[:, ::-1], 280, BOTTOM)
    return canvas


def write_video(path: Path, frames: list[np.ndarray], rate: int = RATE, codec: str = "libx264",
                options: dict[str, str] | None = None) -> Path:
    import av

    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_scene(path: Path) -> Path:
    face = face_image()
    return write_video(path, [scene(i, face) for i in range(FRAMES)])
