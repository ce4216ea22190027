"""Reading user images: 16-bit, EXIF orientation, oversized files, inputs expansion; alignment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.errors import CheckpointError
from ferkit.inference.align import align_face, default_template, similarity_transform, template_from_meta
from ferkit.inference.images import (
    ImageReadError,
    downscale_for_detection,
    expand_inputs,
    is_unmatched,
    max_file_bytes,
    read_image,
)


def test_16_bit_png_is_scaled_not_white(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896], [65535, 1285, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    rgb = read_image(tmp_path / "deep.png")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[:, :, 0], [[0, 1, 128], [255, 5, 255]])
    np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20, 3), np.uint8)  # landscape, a white block in the top-left corner
    pixels[:3, :3] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "turned.png", exif=exif.tobytes())
    rgb = read_image(tmp_path / "turned.png")
    assert rgb.shape == (20, 10, 3)  # shown as portrait
    assert rgb[:3, -3:].min() == 255 and rgb[:3, :3].max() == 0  # top-left went to top-right


def test_oversized_image_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow refuses images above 2 * MAX_IMAGE_PIXELS (15000 x 15000 with the default limit);
    # a low limit takes the same path without a 225-megapixel file.
    Image.new("RGB", (100, 100)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match=r"huge.png: too large to decode safely .* downscale it first"):
        read_image(tmp_path / "huge.png")


def test_unreadable_and_missing(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.png: not a readable image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match="gone.png: file not found"):
        read_image(tmp_path / "gone.png")


def test_expand_inputs(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "readme.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"")
    assert [p.name for p in expand_inputs([str(tmp_path)])] == ["a.JPG", "b.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "**" / "*.png")])] == ["b.png", "c.png"]
    assert list(expand_inputs(["missing.png"])) == [Path("missing.png")]
    # what a folder holds besides images is named, not passed over in silence
    skipped: list[Path] = []
    assert [p.name for p in expand_inputs([str(tmp_path)], skipped=skipped)] == ["a.JPG", "b.png"]
    assert [p.name for p in skipped] == ["readme.txt", "sub"]
    skipped.clear()
    found = list(expand_inputs([str(tmp_path)], recursive=True, skipped=skipped))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.JPG", "b.png", "sub/c.png"]
    assert [p.name for p in skipped] == ["readme.txt"]


def test_globs_follow_no_link_loop_and_list_each_file_once(tmp_path: Path) -> None:
    g = tmp_path / "g"
    (g / "a" / "b").mkdir(parents=True)
    for name in ("g/x.jpg", "g/a/y.jpg", "g/a/b/z.jpg", "g/.hidden.jpg"):
        (tmp_path / name).write_bytes(b"")
    (g / "self").symlink_to(".")  # a link to its own folder
    (g / "a" / "b" / "up").symlink_to("../..")  # a loop back to g
    (g / "a" / "also_z.jpg").symlink_to("b/z.jpg")  # a second name of one file
    found = [p.relative_to(tmp_path).as_posix() for p in expand_inputs([str(g / "**" / "*.jpg")])]
    assert found == ["g/a/also_z.jpg", "g/a/y.jpg", "g/x.jpg"]  # each file once (its first name
    # in walk order), sorted, no dot-file
    assert [p.name for p in expand_inputs([str(g / "*.jpg")])] == ["x.jpg"]
    assert [p.name for p in expand_inputs([str(g / "*" / "*.jpg")])] == ["also_z.jpg", "y.jpg"]
    assert [p.name for p in expand_inputs([str(g / ".*.jpg")])] == [".hidden.jpg"]
    nothing = str(g / "**" / "*.gif")
    assert list(expand_inputs([nothing])) == [Path(nothing)] and is_unmatched(Path(nothing))


def test_relative_glob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "p.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert list(expand_inputs(["**/*.png"])) == [Path("d/p.png")]
    assert list(expand_inputs(["d/*.png"])) == [Path("d/p.png")]


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "stuck.png"
    os.mkfifo(fifo)  # a read would block forever: no writer
    with pytest.raises(ImageReadError, match=r"stuck.png: a FIFO \(named pipe\), not a regular "
                                             "file; only image files are read"):
        read_image(fifo)
    with pytest.raises(ImageReadError, match="null: a character device, not a regular file"):
        read_image("/dev/null")
    with pytest.raises(ImageReadError, match=r": a folder, not a regular file"):
        read_image(tmp_path)


def test_decode_budget_and_file_limit(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((500, 1000), np.uint8)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", max_pixels=500_000).shape == (500, 1000, 3)
    with pytest.raises(ImageReadError, match=r"big.png: 1000x500 is 0.5 megapixels, over the "
                       r"decode budget of 0.4 megapixels \(about 1 MB decoded\); downscale it "
                       r"\(faces need far fewer pixels\) or raise the budget with --max-megapixels"):
        read_image(tmp_path / "big.png", max_pixels=400_000)
    assert max_file_bytes(1000) == 4000 + (16 << 20)
    padded = tmp_path / "padded.png"
    padded.write_bytes((tmp_path / "big.png").read_bytes() + bytes(max_file_bytes(10)))
    with pytest.raises(ImageReadError, match=r"padded.png: 17 MB, more than an image within the "
                                             r"decode budget can take \(17 MB\); not read"):
        read_image(padded, max_pixels=10)


def test_downscale_for_detection() -> None:
    image = np.zeros((300, 1000, 3), np.uint8)
    small, factor = downscale_for_detection(image, 500)
    assert small.shape == (150, 500, 3) and factor == 2.0
    assert downscale_for_detection(image, 1000)[1] == 1.0


def test_similarity_transform_by_hand() -> None:
    # Scale 2, rotation +90 degrees, translation (1, 1): (1, 0) -> (1, 3), (0, 1) -> (-1, 1).
    matrix = similarity_transform(np.array([[0, 0], [1, 0], [0, 1.0]]), np.array([[1, 1], [1, 3], [-1, 1.0]]))
    np.testing.assert_allclose(matrix, [[0, -2, 1], [2, 0, 1]], atol=1e-12)
    # Least squares: x stretched by 2, y by 1 -> best uniform scale (2+2+1+1)/4 = 1.5, no rotation.
    src = np.array([[-1, 0], [1, 0], [0, -1], [0, 1.0]])
    dst = np.array([[-2, 0], [2, 0], [0, -1], [0, 1.0]])
    np.testing.assert_allclose(similarity_transform(src, dst), [[1.5, 0, 0], [0, 1.5, 0]], atol=1e-12)
    # A mirror image cannot be reached by a similarity: the result is a rotation, not a reflection.
    mirrored = similarity_transform(src[:2], src[:2] * [-1, 1])
    assert np.linalg.det(mirrored[:, :2]) > 0
    with pytest.raises(ValueError, match=r"two \[N, 2\] arrays with N >= 2, got \(1, 2\)"):
        similarity_transform(np.zeros((1, 2)), np.zeros((1, 2)))


def test_align_face_puts_landmarks_on_template() -> None:
    template = np.array([[0.25, 0.25], [0.75, 0.25], [0.5, 0.5], [0.3, 0.75], [0.7, 0.75]])
    # Landmarks: the template at 80 px, rotated 30 degrees, shifted; a dot at each.
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (template * 80) @ rotation.T + [60, 20]
    image = np.zeros((160, 160, 3), np.uint8)
    for x, y in landmarks:
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
    crop = align_face(image, landmarks, template, 40)
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    for x, y in template * 40:
        assert crop[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].max() > 100
    assert crop[:6].max() == 0 and crop[14:26, :8].max() == 0  # nothing elsewhere


def test_template_from_meta() -> None:
    packaged = default_template()
    assert packaged.shape == (5, 2) and ((0 < packaged) & (packaged < 1)).all()
    assert packaged[0, 0] < packaged[2, 0] < packaged[1, 0]  # left eye, nose, right eye
    np.testing.assert_array_equal(template_from_meta({}), packaged)
    own = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]
    np.testing.assert_array_equal(template_from_meta({"align_template": own}), own)
    with pytest.raises(CheckpointError, match=r"'align_template' must be 5 \(x, y\) pairs .* shape \(2,\)"):
        template_from_meta({"align_template": [0.1, 0.2]})
