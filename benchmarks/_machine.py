"""Shared by the speed benchmarks: the machine's load average, measured before and after a run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


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
