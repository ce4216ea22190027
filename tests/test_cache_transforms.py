"""Decode cache, batch augmentations and the batch loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.data import FERDataset
from ferkit.data.cache import cached_images, resize_image
from ferkit.data.labels import CANONICAL_7
from ferkit.data.loader import BatchLoader, class_weighted_sampler, shuffle_sampler
from ferkit.data.transforms import AugmentConfig, augment_batch, to_float


class CountingDataset(FERDataset):
    """A file-backed dataset that counts its decodes."""

    def __init__(self, paths: list[Path], channels: int = 3) -> None:
        super().__init__(paths, np.arange(len(paths)) % 7, CANONICAL_7, channels=channels,
                         name="counting")
        self.decodes = 0

    def load_image(self, index: int) -> np.ndarray:
        self.decodes += 1
        return super().load_image(index)


@pytest.fixture()
def image_files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        path = tmp_path / "img" / f"{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 26, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_cache_builds_once_per_size(tmp_path: Path, image_files: list[Path]) -> None:
    ds = CountingDataset(image_files)
    first = cached_images(ds, 24, tmp_path / "cache", workers=2)
    assert ds.decodes == 10 and first.shape == (10, 3, 24, 24) and first.dtype == np.uint8
    second = cached_images(ds, 24, tmp_path / "cache", workers=2)
    assert ds.decodes == 10  # read from disk, nothing decoded
    assert isinstance(second, np.memmap)
    np.testing.assert_array_equal(first, second)
    cached_images(ds, 16, tmp_path / "cache", workers=2)
    assert ds.decodes == 20  # a new size is a new cache
    assert len(list((tmp_path / "cache").glob("*.fkcache"))) == 2
    assert not list((tmp_path / "cache").glob("*tmp*"))


def test_cache_content_equals_decoded(tmp_path: Path, image_files: list[Path]) -> None:
    ds = CountingDataset(image_files, channels=1)
    cache = cached_images(ds, 20, tmp_path / "cache", workers=2)
    for index in (0, 5, 9):
        expected = resize_image(ds.load_image(index), 20).transpose(2, 0, 1)
        np.testing.assert_array_equal(cache[index], expected)
    in_memory = cached_images(ds, 20, None, workers=1)
    np.testing.assert_array_equal(in_memory, cache)


def test_cache_key_follows_file_changes(tmp_path: Path, image_files: list[Path]) -> None:
    ds = CountingDataset(image_files)
    key = ds.cache_key()
    Image.fromarray(np.zeros((31, 26, 3), np.uint8)).save(image_files[3])
    assert CountingDataset(image_files).cache_key() != key
    sub = ds.subset([1, 2, 3])
    assert sub.cache_key() != ds.cache_key() and len(sub) == 3


def _images(batch: int = 6, channels: int = 1, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, channels, size, size), generator=generator,
                         dtype=torch.uint8)


def test_augment_shapes_ranges_determinism() -> None:
    images = to_float(_images())
    assert images.shape == (6, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    cfg = AugmentConfig(noise=0.5, brightness=0.2, contrast=0.2, erasing=0.5)
    out_a = augment_batch(images, cfg, torch.Generator().manual_seed(5))
    out_b = augment_batch(images, cfg, torch.Generator().manual_seed(5))
    out_c = augment_batch(images, cfg, torch.Generator().manual_seed(6))
    assert out_a.shape == images.shape and out_a.dtype == torch.float32
    assert out_a.min() >= 0 and out_a.max() <= 1
    torch.testing.assert_close(out_a, out_b)
    assert not torch.equal(out_a, out_c)


def test_augment_identity_and_flip() -> None:
    images = to_float(_images(channels=3))
    off = AugmentConfig(crop="none", flip=0.0, erasing=0.0)
    torch.testing.assert_close(augment_batch(images, off, torch.Generator().manual_seed(0)), images)
    flip = AugmentConfig(crop="none", flip=1.0, erasing=0.0)
    flipped = augment_batch(images, flip, torch.Generator().manual_seed(0))
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown crop"):
        augment_batch(images, AugmentConfig(crop="zoom"), torch.Generator().manual_seed(0))


def _loader(**kwargs: object) -> BatchLoader:
    images = np.arange(23, dtype=np.uint8).reshape(23, 1, 1, 1).repeat(4, axis=2).repeat(4, axis=3)
    labels = np.arange(23) % 7
    return BatchLoader(images, labels, batch_size=5, **kwargs)


def _epoch(loader: BatchLoader, epoch: int, seed: int) -> list[int]:
    loader.set_epoch(epoch, seed)
    return [i for batch in loader for i in batch["index"].tolist()]


def test_loader_order_reproducible() -> None:
    loader = _loader(sampler=shuffle_sampler(23), drop_last=True)
    assert len(loader) == 4
    first = _epoch(loader, 2, seed=7)
    assert first == _epoch(_loader(sampler=shuffle_sampler(23), drop_last=True), 2, seed=7)
    assert first != _epoch(loader, 3, seed=7) and first != _epoch(loader, 2, seed=8)
    assert len(first) == 20 and len(set(first)) == 20
    batch = next(iter(loader))
    # Images, labels and indices stay aligned in the sampled order.
    assert batch["image"][:, 0, 0, 0].tolist() == batch["index"].tolist()
    assert batch["label"].tolist() == (batch["index"] % 7).tolist()


def test_loader_sequential_streams_and_shards() -> None:
    assert _epoch(_loader(), 0, seed=0) == list(range(23))
    assert len(_loader()) == 5
    weights = np.ones(7)
    loader = _loader(sampler=shuffle_sampler(23),
                     streams={"reversed": class_weighted_sampler(np.arange(23) % 7, weights)})
    loader.set_epoch(1, 3)
    batch = next(iter(loader))
    assert set(batch["reversed"]) == {"image", "label", "index"}
    shards = [_epoch(_loader(sampler=shuffle_sampler(23), rank=r, world_size=2), 0, seed=1)
              for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(23))
