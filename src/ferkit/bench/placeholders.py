"""Machine paths out of benchmark records and reports: ``$ROOT`` (the dataset root) and ``$OUT``
(the results folder) stand for them, so a published page names no machine's folders.

A command shown as ``ferkit train --set data.root=$ROOT ... --output-dir $OUT/runs/if100/ce/seed0``
runs as is after ``ROOT=path/to/data OUT=path/to/results``. Old records that hold absolute paths
are rendered the same way (:func:`record_pairs` reads the paths they were made with).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

ROOT, OUT = "$ROOT", "$OUT"
NOTE = (f"Commands use `{ROOT}` for the dataset root and `{OUT}` for the results folder: set both "
        f"first, e.g. `ROOT=path/to/data OUT=path/to/results`.")


def pairs(root: str | Path | None, out_dir: str | Path | None) -> list[tuple[str, str]]:
    """``(absolute path, placeholder)`` for ``root`` and ``out_dir`` as given and resolved,
    longest first (so a results folder inside the data root is replaced whole)."""
    found: dict[str, str] = {}
    for path, name in ((root, ROOT), (out_dir, OUT)):
        if path is None or str(path) in ("", ROOT, OUT):
            continue
        for variant in (str(path), os.path.abspath(path), str(Path(path).resolve())):
            found.setdefault(variant.rstrip("/") or "/", name)
    return sorted(found.items(), key=lambda item: -len(item[0]))


def record_pairs(record: dict[str, Any] | None, run_id: str) -> list[tuple[str, str]]:
    """The root and results folder a stored record was made with (``config`` of the record)."""
    config = (record or {}).get("config") or {}
    root = (config.get("data") or {}).get("root")
    output_dir = str(config.get("output_dir") or "")
    suffix = f"/runs/{run_id}"
    out_dir = output_dir[: -len(suffix)] if output_dir.endswith(suffix) else None
    found = pairs(root, out_dir)
    try:  # the protocol file named in the record's bench command
        protocol = Path(shlex.split((record or {}).get("bench_command") or "")[2])
    except (IndexError, ValueError):
        protocol = None
    if protocol is not None and protocol.is_absolute() and protocol.parent.name == "bench" \
            and protocol.parent.parent.name == "configs":
        found.append((str(protocol), f"configs/bench/{protocol.name}"))
    return sorted(found, key=lambda item: -len(item[0]))


def substitute(text: str | None, replacements: list[tuple[str, str]]) -> str | None:
    """``text`` with each absolute path replaced by its placeholder (whole path parts only)."""
    if text is None:
        return None
    for path, name in replacements:
        start = 0
        while (i := text.find(path, start)) >= 0:
            end = i + len(path)
            if end < len(text) and text[end] not in "/ '\"\n,;:)]}":
                start = end  # /data/ferplus2 is not /data/ferplus
                continue
            text = text[:i] + name + text[end:]
            start = i + len(name)
    return text


def join(parts: list[str]) -> str:
    """``shlex.join`` that leaves ``$ROOT`` / ``$OUT`` expandable (double quotes where needed)."""
    out = []
    for part in parts:
        if ROOT in part or OUT in part:
            plain = part.replace(ROOT, "x").replace(OUT, "x")
            out.append(part if shlex.quote(plain) == plain
                       else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(shlex.quote(part))
    return " ".join(out)


def display_path(path: str | Path | None, search: list[Path]) -> str | None:
    """A protocol file as a reader can find it: relative to the working folder, else
    ``configs/bench/NAME`` when it is a packaged protocol, else its file name."""
    if path is None:
        return None
    path = Path(path)
    resolved = path.resolve()
    if not path.is_absolute():
        return str(path)
    if any(resolved.parent == folder for folder in search):
        return f"configs/bench/{path.name}"
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name
