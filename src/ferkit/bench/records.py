"""Typed benchmark records: one run's ``bench_run.json`` and the harness's plan of a run.

:class:`RunRecord` and :class:`Attempt` read and write exactly the JSON that earlier versions
wrote (same keys, same order, ``ended`` / ``wall_clock_s`` only once known), so published result
folders still load; keys this version does not know are kept in ``extra`` and written back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.bench.protocol import RunSpec
from ferkit.config import RunConfig
from ferkit.run_files import RunFiles


def _split_known(cls: type, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return ({k: v for k, v in values.items() if k in names},
            {k: v for k, v in values.items() if k not in names})


def _to_json(obj: Any, optional: tuple[str, ...]) -> dict[str, Any]:
    """Fields in declaration order, ``optional`` ones only when set, then the unknown extras."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "extra"}
    for key in optional:
        if out[key] is None:
            del out[key]
    return {**out, **obj.extra}


@dataclass
class Attempt:
    """One training attempt of a run: when, how it ended, on what code and machine."""

    started: str
    status: str
    provenance: dict[str, Any]
    ended: str | None = None
    wall_clock_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Attempt:
        known, extra = _split_known(cls, values)
        known.setdefault("provenance", {})
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return _to_json(self, ("ended", "wall_clock_s"))


@dataclass
class RunRecord:
    """The harness's record of one run (``bench_run.json``)."""

    id: str
    setting: str
    label: str
    method: str
    params: dict[str, Any]
    seed: int
    config: dict[str, Any]
    command: str
    bench_command: str
    status: str
    error: str | None
    attempts: list[Attempt]
    wall_clock_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> RunRecord:
        known, extra = _split_known(cls, values)
        defaults = {"id": "", "setting": "", "label": "", "method": "", "params": {}, "seed": 0,
                    "config": {}, "command": "", "bench_command": "", "status": "pending",
                    "error": None}
        known = {**defaults, **known}
        known["attempts"] = [Attempt.from_json(a) for a in known.get("attempts") or []]
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self, ("wall_clock_s",))
        out["attempts"] = [a.to_json() for a in self.attempts]
        return out

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        """The record at ``path``, or None when it is missing or not valid JSON."""
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls.from_json(values) if isinstance(values, dict) else None


@dataclass
class PlannedRun:
    """A run of a protocol as the harness sees it: its spec, resolved config, folder, status on
    disk (see :func:`ferkit.bench.runner.plan_runs`), stored config changes and record."""

    spec: RunSpec
    config: RunConfig
    dir: Path
    status: str
    changes: list[str]
    record: RunRecord | None
    results: dict[str, Any] | None = None  # results.json of a finished run, read by the report

    @property
    def id(self) -> str:
        return self.spec.id

    def read_results(self) -> dict[str, Any] | None:
        """``results.json`` when the run is finished and the file readable, else None."""
        path = RunFiles(self.dir).results
        if self.status != "finished" or not path.is_file():
            return None
        return json.loads(path.read_text())


__all__ = ["Attempt", "PlannedRun", "RunRecord"]
