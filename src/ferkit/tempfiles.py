"""Temporary files of atomic writes: one naming scheme, and the clean-up of dead writers' leftovers.

Every atomic write in ferkit (checkpoints, JSON/CSV records, decode caches) writes
``.NAME.tmpPID@HOST`` next to ``NAME`` and renames it into place when complete. A writer killed
before the rename (``kill -9``, out of memory, power loss) leaves that file behind; it is never
read, but it can be as large as a checkpoint or a whole decode cache.
:func:`remove_dead_temp_files` deletes such files when their writer, named by ``PID`` and
``HOST`` in the file name, is no longer alive on this host. Files of live writers and files
written on another host (a shared file system) are left alone. The name of older versions
(``NAME.tmpPID.npy``, ``.NAME.tmpPID``: no host) counts as this host's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# File names of atomic-write temp files: group "pid" (the writer), optional group "host".
TEMP_PATTERN = re.compile(r"\.tmp(?P<pid>\d+)(?:@(?P<host>[^/]+?))?(?:\.npy)?$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def temp_path(path: Path) -> Path:
    """The temporary name an atomic write of ``path`` uses in this process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}@{_host()}")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """The one atomic write: yield :func:`temp_path` of ``path`` to write; when the block ends
    without an error, rename it onto ``path``; the temporary file never outlives the block.

    Example:
        >>> with atomic_path(out) as tmp:
        ...     tmp.write_bytes(data)
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # absent, or in a folder that cannot be written
            tmp.unlink()


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (never a half-written file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie counts as dead writer-wise)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a zombie (killed, not yet reaped) writes nothing any more
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_dead_temp_files(folder: Path | str) -> list[Path]:
    """Delete the temp files in ``folder`` (not recursive) whose writer is dead on this host.

    Returns:
        The removed paths (each is also logged as a warning naming its size).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    host = _host()
    try:
        entries = list(folder.iterdir())
    except OSError:  # not listable: nothing this process could remove either
        return []
    for path in entries:
        match = TEMP_PATTERN.search(path.name)
        if match is None or not path.is_file():
            continue
        pid, writer_host = int(match["pid"]), match["host"]
        if (writer_host not in (None, host)) or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        except OSError as err:  # a read-only folder: leave it, reading is still possible
            log.warning("cannot remove %s, left by writer %d that died: %s", path, pid, err)
            continue
        log.warning("removed %s (%d bytes), left by writer %d that died before finishing it",
                    path, size, pid)
        removed.append(path)
    return removed
