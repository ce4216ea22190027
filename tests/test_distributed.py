"""The same fit() under torchrun: 2 CPU processes with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import tiny_overrides


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    overrides = tiny_overrides(out, **{"train.epochs": 2, "train.device": "cpu"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "ferkit", "train", *sum((["--set", o] for o in overrides), [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    # 96 training images, 2 ranks x batch 16 -> 3 steps per rank per epoch, 96 images per epoch.
    assert (out / "last.safetensors").is_file() and (out / "results.json").is_file()
    assert proc.stdout.count("finished 2 epochs") == 1  # rank 0 alone reports
    assert proc.stderr.count("INFO ferkit.engine.train: epoch 2") == 1
