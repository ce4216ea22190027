"""Content fingerprints of image files: what the decode cache is keyed by.

A file's fingerprint is its resolved absolute path plus a SHA-1 of its bytes: two copies of a
dataset in different folders, or a file whose pixels were rewritten with the same size and
modification time, never share a key, while touching a file (new mtime, same bytes) keeps it.
Files over :data:`FULL_HASH_LIMIT` (1 MiB; no face crop of a FER dataset comes close) are
fingerprinted by size, mtime and their first and last 64 KiB instead, so that a folder of large
photos is not read in full on every start.

Cost, measured on the full FERPlus ``FER2013Train`` folder (28,558 PNGs of 2,420 bytes), AMD
EPYC, 2 cores shared with training runs (loaded machine): 0.6-1.7 s (0.6-0.8 s at lighter load
with the files in the page cache; 1.2-1.7 s cold or at load average 5.8); ``os.stat`` of the same
files alone (the old name/size/mtime key) took 0.23-0.47 s. Threads made it slower.
Command: ``python benchmarks/cache_cost.py``; results in docs/benchmarks/cache.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

FULL_HASH_LIMIT = 1 << 20
EDGE_BYTES = 64 << 10


def file_digest(path: str) -> bytes:
    """SHA-1 of a file's bytes (head, tail, size and mtime for files over 1 MiB); b"missing"
    when it does not exist."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size <= FULL_HASH_LIMIT:
                return hashlib.sha1(handle.read()).digest()
            digest = hashlib.sha1(f"{stat.st_size}|{stat.st_mtime_ns}|".encode())
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(-EDGE_BYTES, os.SEEK_END)
            digest.update(handle.read(EDGE_BYTES))
            return digest.digest()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return b"missing"


def fingerprint_files(paths: Sequence[Path | str], salt: str = "") -> str:
    """Hex SHA-1 over ``salt`` and, in order, each file's resolved path and content digest.

    Folders are resolved once each (symlinks, ``..``), so the cost is one open and read per file.
    """
    digest = hashlib.sha1(f"{salt}|{len(paths)}\n".encode())
    resolved: dict[str, str] = {}
    for path in paths:
        folder, name = os.path.split(os.fspath(path))
        if folder not in resolved:
            resolved[folder] = os.path.realpath(folder or ".")
        full = os.path.join(resolved[folder], name)
        digest.update(full.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(file_digest(full))
    return digest.hexdigest()
