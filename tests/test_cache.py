"""The decode cache cannot serve the wrong pixels: content keys, damage detection, temp clean-up."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data import FERDataset
from ferkit.data.affectnet import AffectNet
from ferkit.data.cache import HEADER_BYTES, MAGIC, cache_path, cached_images, open_cache
from ferkit.data.fingerprint import CHUNK_BYTES, fingerprint_files
from ferkit.data.labels import CANONICAL_7
from ferkit.tempfiles import pid_alive, remove_dead_temp_files, temp_path


class Files(FERDataset):
    """Grayscale PNG files; counts decodes."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(paths, np.arange(len(paths)) % 7, CANONICAL_7, channels=1, name="files")
        self.decodes = 0

    def load_image(self, index: int) -> np.ndarray:
        self.decodes += 1
        return super().load_image(index)


def _write_pngs(folder: Path, invert: bool = False, count: int = 8) -> list[Path]:
    """Uncompressed PNGs: the file size depends only on the image size, as with FERPlus's."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
        path = folder / f"fer{i:07d}.png"
        Image.fromarray(255 - pixels if invert else pixels).save(path, compress_level=0)
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
        paths.append(path)
    return paths


@pytest.fixture()
def pngs(tmp_path: Path) -> list[Path]:
    return _write_pngs(tmp_path / "copy_a")


def test_inverted_copy_with_equal_names_sizes_mtimes_gets_its_own_cache(tmp_path: Path,
                                                                        pngs: list[Path]) -> None:
    inverted = _write_pngs(tmp_path / "copy_b", invert=True)
    assert [p.stat().st_size for p in pngs] == [p.stat().st_size for p in inverted]
    assert [p.stat().st_mtime_ns for p in pngs] == [p.stat().st_mtime_ns for p in inverted]
    first = cached_images(Files(pngs), 12, tmp_path / "cache")
    second_ds = Files(inverted)
    second = cached_images(second_ds, 12, tmp_path / "cache")
    assert second_ds.decodes == 8  # decoded, not served from the first copy's cache
    np.testing.assert_array_equal(second, 255 - np.asarray(first))
    assert len(list((tmp_path / "cache").glob("*.fkcache"))) == 2


def test_rewritten_in_place_same_size_and_mtime_rebuilds(tmp_path: Path, pngs: list[Path]) -> None:
    before = np.array(cached_images(Files(pngs), 12, tmp_path / "cache"))
    _write_pngs(pngs[0].parent, invert=True)  # same names, sizes and mtimes, inverted pixels
    again = Files(pngs)
    after = cached_images(again, 12, tmp_path / "cache")
    assert again.decodes == 8
    np.testing.assert_array_equal(after, 255 - before)


def test_fingerprint_sensitivity(tmp_path: Path, pngs: list[Path]) -> None:
    key = fingerprint_files(pngs)
    assert fingerprint_files(pngs) == key  # deterministic
    os.utime(pngs[2], ns=(5, 5))
    assert fingerprint_files(pngs) == key  # a new mtime alone keeps the key: same bytes
    assert fingerprint_files(pngs[::-1]) != key  # order is part of the key
    assert fingerprint_files(pngs, salt="other") != key
    copy = tmp_path / "copy_c"
    shutil.copytree(pngs[0].parent, copy)  # identical bytes and mtimes, another folder
    assert fingerprint_files([copy / p.name for p in pngs]) != key
    (tmp_path / "link").symlink_to(pngs[0].parent)  # the same files through a symlink
    assert fingerprint_files([tmp_path / "link" / p.name for p in pngs]) == key
    data = bytearray(pngs[5].read_bytes())
    data[-20] ^= 1  # one bit, same size and mtime
    pngs[5].write_bytes(bytes(data))
    os.utime(pngs[5], ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert fingerprint_files(pngs) != key
    pngs[6].unlink()
    assert fingerprint_files(pngs) != fingerprint_files(pngs[:6] + pngs[7:])


def test_fingerprint_of_large_files_covers_every_byte(tmp_path: Path) -> None:
    """A file of several read chunks edited in the middle, size and mtime restored: new key."""
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(3 * CHUNK_BYTES + 10))
    key = fingerprint_files([big])
    stat = big.stat()
    for offset in (CHUNK_BYTES + 7, 3 * CHUNK_BYTES + 9):  # the middle, then the last byte
        with open(big, "r+b") as handle:
            handle.seek(offset)
            handle.write(b"\1")
        os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert big.stat().st_size == stat.st_size and fingerprint_files([big]) != key
        key = fingerprint_files([big])


def test_subset_and_crop_keys(pngs: list[Path]) -> None:
    full = Files(pngs)
    assert full.subset(np.arange(8)).cache_key() == full.cache_key()
    assert full.subset([1, 2]).cache_key() != full.subset([1, 3]).cache_key()
    assert full.subset([1, 2]).subset([1]).cache_key() == full.subset([2]).cache_key()
    boxes = np.tile([[0, 0, 6, 6]], (8, 1))
    crop = AffectNet(pngs, np.zeros(8), CANONICAL_7, boxes=boxes, crop_face=True)
    whole = AffectNet(pngs, np.zeros(8), CANONICAL_7, boxes=boxes, crop_face=False)
    moved = AffectNet(pngs, np.zeros(8), CANONICAL_7, boxes=boxes + 1, crop_face=True)
    assert len({crop.cache_key(), whole.cache_key(), moved.cache_key()}) == 3


def _header(path: Path) -> dict:
    return json.loads(path.read_bytes()[len(MAGIC):HEADER_BYTES])


def _rewrite_header(path: Path, **changes: object) -> None:
    header = {**_header(path), **changes}
    raw = MAGIC + json.dumps(header).encode()
    with open(path, "r+b") as handle:
        handle.write(raw + b" " * (HEADER_BYTES - len(raw)))


def _damage(path: Path, case: str) -> None:
    size = path.stat().st_size
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        os.truncate(path, size - 7)
    elif case == "truncated_header":
        os.truncate(path, 100)
    elif case == "appended":
        with open(path, "ab") as handle:
            handle.write(b"x")
    elif case in ("broken_header", "no_magic", "pixels"):
        offset = {"broken_header": len(MAGIC) + 3, "no_magic": 0, "pixels": HEADER_BYTES + 50}
        with open(path, "r+b") as handle:
            handle.seek(offset[case])
            handle.write(b"\xff\x00{")
    elif case == "wrong_shape":
        _rewrite_header(path, shape=[8, 1, 6, 24])
    elif case == "wrong_type":
        _rewrite_header(path, shape="8x1x12x12")
    elif case == "old_format":
        _rewrite_header(path, format=1)
    elif case == "other_key":
        _rewrite_header(path, key="0" * 40)


DAMAGE = {
    "empty": "empty, shorter than its 4096-byte header",
    "truncated": r"bytes, expected \d+ \(truncated or appended to\)",
    "truncated_header": "100 bytes, shorter than its 4096-byte header",
    "appended": r"bytes, expected \d+ \(truncated or appended to\)",
    "broken_header": r"broken header \(",
    "no_magic": "no ferkit cache header",
    "pixels": "pixel checksum mismatch",
    "wrong_shape": r"shape \(8, 1, 6, 24\), expected \(8, 1, 12, 12\)",
    "wrong_type": "broken header .fields of the wrong type",
    "old_format": "format 1, this ferkit writes 2",
    "other_key": "key 00000000000000000000..., expected",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_cache_is_named_and_rebuilt(tmp_path: Path, pngs: list[Path], case: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    dataset = Files(pngs)
    good = np.array(cached_images(dataset, 12, tmp_path / "cache"))
    path, key = cache_path(dataset, 12, tmp_path / "cache")
    _damage(path, case)
    with caplog.at_level(logging.WARNING, logger="ferkit.data.cache"):
        again = cached_images(dataset, 12, tmp_path / "cache")
    assert dataset.decodes == 16  # rebuilt from the images
    np.testing.assert_array_equal(again, good)
    (record,) = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert str(path) in record.getMessage() and "rebuilding it" in record.getMessage()
    assert re.search(DAMAGE[case], record.getMessage()), record.getMessage()
    np.testing.assert_array_equal(open_cache(path, key, good.shape), good)  # the rebuilt file


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def test_dead_writers_temp_files_are_removed(tmp_path: Path, pngs: list[Path]) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = _dead_pid()
    host = temp_path(cache / "x").name.rsplit("@", 1)[1]
    doomed = [cache / f".a.fkcache.tmp{dead}@{host}", cache / f"old_48x48x1_n9.tmp{dead}.npy",
              cache / f".last.safetensors.tmp{dead}"]
    kept = [cache / f".b.fkcache.tmp{os.getpid()}@{host}",  # this process: a live writer
            cache / f".c.fkcache.tmp{os.getppid()}@{host}",  # a live process
            cache / f".d.fkcache.tmp{dead}@elsewhere",  # another host's writer: unknown
            cache / "notes.tmp.txt"]
    for path in doomed + kept:
        path.write_bytes(b"partial")
    cached_images(Files(pngs), 12, cache)
    assert all(not p.exists() for p in doomed) and all(p.exists() for p in kept)
    assert remove_dead_temp_files(tmp_path / "absent") == []


def _memory_decode(pngs: list[Path]) -> np.ndarray:
    return cached_images(Files(pngs), 12, None)


def test_unusable_cache_folder_decodes_in_memory_with_a_warning(
        tmp_path: Path, pngs: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    dataset = Files(pngs)
    with caplog.at_level(logging.WARNING, logger="ferkit.data.cache"):
        images = cached_images(dataset, 12, blocker / "cache")
    np.testing.assert_array_equal(images, _memory_decode(pngs))
    assert dataset.decodes == 8 and blocker.read_text().startswith("a file")
    (record,) = caplog.records
    message = record.getMessage()
    assert f"cannot write the decode cache in {blocker / 'cache'}" in message
    assert "into memory" in message and "data.cache_dir" in message and "$FERKIT_CACHE" in message


def test_full_disk_fails_before_decoding_and_leaves_nothing(
        tmp_path: Path, pngs: list[Path], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's space is reserved up front: with no space left, nothing is decoded into a
    half-written map (which would crash with SIGBUS) and no partial file stays behind."""
    reserved = []

    def no_space(fd: int, offset: int, length: int) -> None:
        reserved.append(length)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    dataset = Files(pngs)
    with caplog.at_level(logging.WARNING, logger="ferkit.data.cache"):
        images = cached_images(dataset, 12, tmp_path / "cache")
    assert reserved == [HEADER_BYTES + 8 * 12 * 12]
    assert dataset.decodes == 8  # decoded once, into memory
    np.testing.assert_array_equal(images, _memory_decode(pngs))
    assert list((tmp_path / "cache").iterdir()) == []
    assert os.strerror(errno.ENOSPC) in caplog.records[0].getMessage()


def test_read_only_folder_still_serves_its_valid_cache(
        tmp_path: Path, pngs: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    good = np.array(cached_images(Files(pngs), 12, cache))
    cache.chmod(0o555)
    try:
        dataset = Files(pngs)
        with caplog.at_level(logging.WARNING, logger="ferkit.data.cache"):
            again = cached_images(dataset, 12, cache)
    finally:
        cache.chmod(0o755)
    assert dataset.decodes == 0 and caplog.records == []
    np.testing.assert_array_equal(again, good)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders: the permission check never fires")
def test_read_only_folder_without_a_cache_decodes_in_memory(
        tmp_path: Path, pngs: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o555)
    try:
        with caplog.at_level(logging.WARNING, logger="ferkit.data.cache"):
            images = cached_images(Files(pngs), 12, cache)
    finally:
        cache.chmod(0o755)
    np.testing.assert_array_equal(images, _memory_decode(pngs))
    assert "Permission denied" in caplog.records[0].getMessage()
