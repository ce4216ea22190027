"""Content fingerprints of image files: what the decode cache is keyed by.

A file's fingerprint is its resolved absolute path plus a SHA-1 of every one of its bytes,
whatever its size: two copies of a dataset in different folders, or a file whose pixels were
rewritten with the same size and modification time (anywhere in the file), never share a key,
while touching a file (new mtime, same bytes) keeps it. Files are read in
:data:`CHUNK_BYTES` pieces, so a large photo costs its read time, not its size in memory.

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

CHUNK_BYTES = 1 << 20


def file_digest(path: str) -> bytes:
    """SHA-1 of all of a file's bytes; b"missing" when it does not exist."""
    try:
        with open(path, "rb") as handle:
            digest = hashlib.sha1()
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
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
