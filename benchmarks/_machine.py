"""Shared by the speed benchmarks: the machine's load average, measured before and after a run,
the first lines of a results page, and timing alternated between the things compared."""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ferkit.provenance import provenance


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages now."""
    return os.getloadavg()


@dataclass
class LoadRecord:
    """The load average at the start of a benchmark (on creation) and at its end (:meth:`stop`)."""

    before: tuple[float, float, float] = field(default_factory=load_average)
    after: tuple[float, float, float] | None = None

    def stop(self) -> None:
        self.after = load_average()

    def describe(self) -> str:
        """One sentence for a benchmark page: both measurements and the core count."""
        def fmt(load: tuple[float, float, float] | None) -> str:
            return "not measured" if load is None else " / ".join(f"{v:.2f}" for v in load)

        return (f"Load average (1 / 5 / 15 min) measured before the run: {fmt(self.before)}; after "
                f"it: {fmt(self.after)}, on {os.cpu_count()} cores (a load above the core count "
                "means the benchmark shared its core with other work).")


def page_header(title: str, command: str, load: LoadRecord, *details: str) -> list[str]:
    """Title, command, commit, versions, hardware and date, ``details`` lines, and the load."""
    info = provenance()
    return [f"# {title}", "", f"Command: `{command}`  ",
            f"Commit {info['git_commit']}, torch {info['torch_version']}, Python "
            f"{sys.version.split()[0]}, {info['hardware']}, {datetime.date.today()}.  ",
            *(f"{line}  " for line in details), load.describe(), ""]


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median ms of each function, run in alternation so a change of machine load hits all alike;
    ``clock``: wall time (default) or ``time.process_time`` (CPU time of this process)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}
