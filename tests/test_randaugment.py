"""RandAugment operations on known images, the erasing fills and colour jitter."""

from __future__ import annotations

import pytest
import torch

from ferkit.data.randaugment import OPS, apply_op, op_value, rand_augment
from ferkit.data.transforms import AugmentConfig, augment_batch


def _dot(size: int = 16, y: int = 5, x: int = 5) -> torch.Tensor:
    image = torch.zeros(1, 3, size, size)
    image[:, :, y, x] = 1.0
    return image


def test_translate_moves_content_by_whole_pixels() -> None:
    moved = apply_op(_dot(), "TranslateX", 2.0)
    assert moved[0, 0].nonzero().tolist() == [[5, 7]]
    moved = apply_op(_dot(), "TranslateY", -3.0)
    assert moved[0, 0].nonzero().tolist() == [[2, 5]]


def test_rotate_is_counter_clockwise_like_pil() -> None:
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_op(image, "Rotate", 90.0), torch.rot90(image, 1, dims=(2, 3)))


def test_shear_keeps_the_centre_row_and_zero_is_identity() -> None:
    image = torch.rand(1, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(apply_op(image, "ShearX", 0.0), image)
    sheared = apply_op(image, "ShearX", 0.3)
    assert torch.equal(sheared[:, :, 4], image[:, :, 4])
    assert not torch.equal(sheared, image)


def test_photometric_operations_on_known_values() -> None:
    image = torch.tensor([0.2, 0.5, 0.8]).view(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    assert apply_op(image, "Brightness", 0.5)[0, 0, 0].tolist() == pytest.approx([0.3, 0.75, 1.0])
    assert apply_op(image, "Solarize", 0.5)[0, 0, 0].tolist() == pytest.approx([0.2, 0.5, 0.2])
    assert apply_op(image, "AutoContrast", 0.0)[0, 0, 0].tolist() == pytest.approx([0, 0.5, 1])
    # Contrast -1 leaves the mean grey level everywhere; Color on a grey image changes nothing
    assert apply_op(image, "Contrast", -1.0).sub(0.5).abs().max().item() < 1e-6
    assert torch.allclose(apply_op(image, "Color", 0.7), image)
    # Posterize to 4 bits: 51 -> 48, 128 -> 128, 204 -> 192 (of 255)
    posterized = apply_op(image, "Posterize", 4.0)[0, 0, 0] * 255
    assert posterized.tolist() == pytest.approx([48, 128, 192])


def test_sharpness_and_equalize() -> None:
    flat = torch.full((1, 3, 6, 6), 0.4)
    assert torch.allclose(apply_op(flat, "Sharpness", 0.9), flat)
    # PIL's rule on a two-level image (512 pixels of 50, 512 of 100): step = 512 // 255 = 2,
    # lut[50] = (1 + 0) // 2 = 0, lut[100] = (1 + 512) // 2 -> 255
    two_level = torch.full((1, 3, 32, 32), 50 / 255)
    two_level[:, :, 16:] = 100 / 255
    equalized = apply_op(two_level, "Equalize", 0.0) * 255
    assert equalized[0, 0, 0, 0].item() == pytest.approx(0) and \
        equalized[0, 0, -1, 0].item() == pytest.approx(255)


def test_op_values_at_magnitude_9_of_31() -> None:
    assert op_value("Rotate", 9, 31, 112) == pytest.approx(9.0)
    assert op_value("ShearX", 9, 31, 112) == pytest.approx(0.09)
    assert op_value("TranslateX", 9, 31, 112) == pytest.approx(150 / 331 * 112 * 0.3)
    assert op_value("Posterize", 9, 31, 112) == 7.0
    assert op_value("Solarize", 9, 31, 112) == pytest.approx(0.7)


def test_rand_augment_seeded_in_range_and_checked() -> None:
    images = torch.rand(16, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    out1 = rand_augment(images, 2, 9, 31, torch.Generator().manual_seed(5))
    out2 = rand_augment(images, 2, 9, 31, torch.Generator().manual_seed(5))
    assert torch.equal(out1, out2) and out1.shape == images.shape
    assert 0 <= out1.min().item() and out1.max().item() <= 1
    assert not torch.equal(out1, images)
    assert len(OPS) == 14
    with pytest.raises(ValueError, match="magnitude must be in"):
        rand_augment(images, 2, 31, 31, torch.Generator())


def _erase_all(fill: str) -> torch.Tensor:
    cfg = AugmentConfig(crop="none", flip=0.0, erasing=1.0, erasing_scale=(0.99, 1.0),
                        erasing_fill=fill)
    images = torch.full((64, 3, 16, 16), 0.9)
    return augment_batch(images, cfg, torch.Generator().manual_seed(0),
                         mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))


def test_erasing_fills() -> None:
    assert (_erase_all("zero") == 0).float().mean() > 0.5
    mean_fill = _erase_all("mean")
    erased = mean_fill[:, 0] != 0.9
    assert mean_fill[:, 0][erased].unique().tolist() == pytest.approx([0.5])
    assert mean_fill[:, 2][erased].unique().tolist() == pytest.approx([0.3])
    random_fill = _erase_all("random")[:, 1]
    values = random_fill[random_fill != 0.9]
    assert values.mean().item() == pytest.approx(0.4, abs=0.01)
    assert values.std().item() == pytest.approx(0.2, abs=0.01)


def test_saturation_jitter_keeps_grey_images() -> None:
    cfg = AugmentConfig(crop="none", flip=0.0, erasing=0.0, saturation=0.4)
    grey = torch.full((4, 3, 8, 8), 0.3)
    assert torch.allclose(augment_batch(grey, cfg, torch.Generator().manual_seed(0)), grey)
    colour = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(augment_batch(colour, cfg, torch.Generator().manual_seed(0)), colour)
