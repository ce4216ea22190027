"""Every registered method: a training step with finite loss and gradients, and a checkpoint ->
resume round trip through the real engine with its state intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import tiny_overrides

from ferkit import METHODS, api, load_config
from ferkit.engine.checkpoint import load_checkpoint, load_weights
from ferkit.methods import create_method
from ferkit.models import build_classifier
from ferkit.run_folder import RunFolderError

COUNTS = [30, 6, 12, 60, 25, 10, 40]


def _stream_batch(labels: np.ndarray, sampler, generator: torch.Generator, size: int) -> dict:
    index = sampler(generator)[:size]
    return {"image": torch.randn(size, 3, 32, 32, generator=generator),
            "label": torch.as_tensor(labels[index.numpy()]), "index": index}


@pytest.mark.parametrize("name", METHODS.names())
def test_one_step_has_finite_loss_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    labels = np.repeat(np.arange(7), COUNTS)
    method = create_method(name, build_classifier("tiny_cnn", 7, width=4), COUNTS, len(labels))
    method.on_epoch_start(0, 10)
    method.train()
    generator = torch.Generator().manual_seed(0)
    index = torch.randperm(len(labels), generator=generator)[:8]
    batch = {"image": torch.randn(8, 3, 32, 32, generator=generator),
             "label": torch.as_tensor(labels[index.numpy()]), "index": index}
    for stream, sampler in method.samplers(labels).items():
        batch[stream] = _stream_batch(labels, sampler, generator, 8)
    out = method(batch)
    assert out.logits.shape == (8, 7)
    assert torch.isfinite(out.loss) and out.loss.ndim == 0
    out.loss.backward()
    first_conv = method.model.backbone.stem[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    grads = [p.grad for p in method.parameters() if p.requires_grad and p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    method.eval()
    with torch.no_grad():
        assert method.predict(batch["image"]).shape == (8, 7)


@pytest.mark.parametrize("name", METHODS.names())
def test_checkpoint_resume_keeps_method_state(name: str, tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path / "run", **{"method.name": name, "train.epochs": 1,
                                                    "data.options": "{size: 32, num_train: 64, "
                                                    "num_val: 24, num_test: 8}"})
    cfg = load_config(None, overrides)
    result = api.train(cfg)
    train_logs = result.history[-1]["train"]
    assert np.isfinite(train_logs["loss"])
    # training accuracy only where the training logits score single images (not BBN, RUL, fan)
    assert ("accuracy" in train_logs) == METHODS.get(name).per_image_train_logits
    assert 0.0 <= train_logs.get("accuracy", 0.0) <= 1.0
    ckpt = load_checkpoint(Path(cfg.output_dir) / "last.safetensors")
    meta = ckpt.meta
    fresh = create_method(name, build_classifier("tiny_cnn", 7, width=8), list(meta.class_counts),
                          meta.num_samples)
    load_weights(fresh, ckpt)  # strict: every buffer and parameter is in the checkpoint
    saved = fresh.state_dict()
    for key, value in ckpt.state_dict.items():
        assert torch.equal(saved[key], value), key
    more = load_config(None, overrides + ["train.epochs=2"])
    if METHODS.get(name).schedule_uses_num_epochs:  # BBN, LDAM-DRW: the total sets the schedule
        with pytest.raises(RunFolderError, match=rf"train.epochs: 1 -> 2 \(method '{name}'"):
            api.train(more)
    else:
        assert len(api.train(more).history) == 2
