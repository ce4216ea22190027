"""The GPU check script's whole path on CPU at a tiny size, so it cannot fail for a typo on the day."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FERPLUS = ROOT.parent / "shared" / "data" / "ferplus"


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _fake_pack(folder: Path, module) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    labels = np.arange(70) % 7
    np.savez_compressed(folder / module.PACK_NAME,
                        class_names=np.array(["surprise", "fear", "disgust", "happiness",
                                              "sadness", "anger", "neutral"]),
                        train_images=rng.integers(0, 255, (70, 48, 48), dtype=np.uint8),
                        train_labels=labels, val_images=rng.integers(0, 255, (21, 48, 48),
                                                                     dtype=np.uint8),
                        val_labels=labels[:21])


def test_run_writes_results_for_every_method(tmp_path: Path) -> None:
    module = _script()
    _fake_pack(tmp_path / "pack", module)
    out = tmp_path / "out"
    module.main(["run", "--pack", str(tmp_path / "pack"), "--out", str(out), "--size", "32",
                 "--batch-size", "8", "--iters", "1", "--device", "cpu", "--epochs", "1",
                 "--backbone", "tiny_cnn", "--official"])
    summary = json.loads((out / "gpu_check.json").read_text())
    assert [r["label"] for r in summary["runs"]] == ["ce", "cb", "mek", "mek-official"]
    assert summary["maps"] == "4x4" and {r["maps"] for r in summary["runs"]} == {"4x4"}
    assert summary["epochs"] == 1 and summary["init"] == "random"
    assert set(summary["throughput_images_per_s"]) == {"ce", "mek"}
    assert summary["mek_over_ce_step_cost"] > 0
    assert "| mek | 4x4 | 1 (last) |" in (out / "gpu_check.md").read_text()
    assert "| mek-official | 4x4 | 1 (last) |" in (out / "gpu_check.md").read_text()
    assert not list(out.rglob("*.safetensors")), "checkpoints must not come back"


@pytest.mark.skipif(not FERPLUS.is_dir(), reason="../shared/data/ferplus is not present")
def test_pack_from_real_data(tmp_path: Path) -> None:
    module = _script()
    path = module.pack(str(FERPLUS), tmp_path / "pack", limit=30)
    packed = np.load(path)
    assert packed["train_images"].shape == (30, 48, 48) and packed["val_images"].dtype == np.uint8
    assert list(packed["class_names"])[0] == "surprise"
