"""Shared fixtures: tiny synthetic runs on the CPU, and the location of the real data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ferkit.checks import load_config
from ferkit.config import RunConfig

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread per test process, and decode caches in a temporary folder, not ~/.cache."""
    torch.set_num_threads(1)
    monkeypatch.setenv("FERKIT_CACHE", str(tmp_path_factory.getbasetemp() / "ferkit-cache"))


def tiny_overrides(output_dir: Path, **extra: object) -> list[str]:
    """Overrides for a seconds-long synthetic run with the tiny CNN at 32x32."""
    values: dict[str, object] = {
        "output_dir": str(output_dir),
        "data.dataset": "synthetic",
        "data.image_size": 32,
        "data.batch_size": 16,
        "data.cache_dir": "memory",
        "data.options": "{size: 32, num_train: 96, num_val: 40, num_test: 40}",
        "model.backbone": "tiny_cnn",
        "model.options": "{width: 8}",
        "optim.lr": 0.003,
        "train.epochs": 2,
        "train.progress": False,
        "train.tensorboard": False,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> RunConfig:
    return load_config(None, tiny_overrides(tmp_path / "run"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ferkit checkpoint: ``tiny_cnn`` trained one epoch on synthetic 32x32 faces."""
    from ferkit import api

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-run")
    api.train(load_config(None, tiny_overrides(out, **{"train.epochs": 1})))
    return out / "best.safetensors"


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint: Path):
    """A torch Predictor of :func:`tiny_checkpoint` on the CPU (its synthetic-data warning
    silenced); a test module may define its own ``predictor`` instead."""
    import warnings

    from ferkit.inference.predictor import Predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Predictor.from_checkpoint(tiny_checkpoint, device="cpu")
