"""Output folders and files given by the user (``--output-dir``, ``--out``, ``--annotate``,
``--cam-dir``, ``--summary``): checked before any work is done, so a path under an existing file
is one clear line, not a ``FileExistsError`` traceback after the work."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ferkit.errors import UsageError


class OutputPathError(UsageError):
    """An output path that cannot be a folder (it, or a folder above it, is a file)."""


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be (or become) a folder, or None when it can."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return None
        if candidate.exists() or candidate.is_symlink():
            what = "an existing file" if candidate == path else f"under the file {candidate}"
            return f"{path} is {what}, not a folder"
    return None


def check_output_folder(path: str | Path, option: str) -> Path:
    """``path`` as a Path, after checking that it is or can become a folder.

    Raises:
        OutputPathError: naming ``option`` and the file in the way.
    """
    problem = folder_problem(path)
    if problem:
        raise OutputPathError(f"{option}: {problem}; choose another path")
    return Path(path)


def make_output_folder(path: str | Path, option: str) -> Path:
    """Create the folder ``path`` (and its parents) after :func:`check_output_folder`.

    Raises:
        OutputPathError: ``path`` cannot be a folder or cannot be created (permissions).
    """
    path = check_output_folder(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"{option}: cannot create the folder {path} "
                              f"({err.strerror or type(err).__name__}); choose another path") from err
    return path


def open_output_file(path: str | Path, option: str) -> TextIO:
    """``path`` opened for writing text, its folder created; a path that cannot be written is
    one :class:`OutputPathError` naming ``option``, not an ``OSError`` traceback."""
    path = Path(path)
    make_output_folder(path.parent, option)
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as err:
        raise OutputPathError(f"{option}: cannot write {path} "
                              f"({err.strerror or type(err).__name__}); choose another path") from err
