"""The benchmark harness: protocols (dataset x imbalance factors x methods x seeds), resumable
runs and honest result tables. ``ferkit bench PROTOCOL --root DATA --out DIR`` calls
:func:`run_protocol`."""

from ferkit.bench.protocol import (
    MethodSpec,
    Protocol,
    ProtocolError,
    RunSpec,
    Setting,
    find_protocol,
    load_protocol,
    parse_protocol,
)
from ferkit.bench.records import Attempt, PlannedRun, RunRecord
from ferkit.bench.runner import BenchError, format_summary, plan_runs, run_protocol, train_command

__all__ = ["Attempt", "BenchError", "MethodSpec", "PlannedRun", "Protocol", "ProtocolError",
           "RunRecord", "RunSpec", "Setting",
           "find_protocol", "format_summary", "load_protocol", "parse_protocol", "plan_runs",
           "run_protocol", "train_command"]
