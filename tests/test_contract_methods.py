"""Contract tests over what is registered: every method on every backbone. One training step on
a tiny input: finite loss, gradients reach the backbone and the trainable head, the real
checkpoint writer/reader gives equal logits, and the Predictor path works. A new method or
backbone is covered by registering it; nothing to write here.

Input sizes are each backbone's registered ``min_input_size`` (32 px for the tiny CNN, 64 px for
the other CNNs, the fixed input grid of Swin: those cases are marked ``slow``, ``-m 'not slow'``
leaves them out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit import BACKBONES, METHODS
from ferkit.data.labels import CANONICAL_7
from ferkit.engine.checkpoint import save_checkpoint
from ferkit.inference import Predictor
from ferkit.methods import create_method
from ferkit.models import build_classifier
from ferkit.models.backbones import backbone_info

COUNTS = [9, 3, 5, 12, 8, 4, 10]
TINY_OPTIONS = {"tiny_cnn": {"width": 4}}
PAIRS = sorted((name, backbone) for name in METHODS.names() for backbone in BACKBONES.names())


def input_size(backbone: str) -> int:
    """Smallest input the backbone is built and tested at, as its registration declares."""
    return backbone_info(backbone).min_input_size


def _case(name: str, backbone: str) -> object:
    """Backbones with a 112/224 px grid (Swin, seconds per step on a CPU) are marked slow."""
    marks = [pytest.mark.slow] if input_size(backbone) > 64 else []
    return pytest.param(name, backbone, marks=marks, id=f"{name}-{backbone}")


def _batch(labels: np.ndarray, index: torch.Tensor, size: int, generator: torch.Generator) -> dict:
    return {"image": torch.randn(len(index), 3, size, size, generator=generator),
            "label": torch.as_tensor(labels[index.numpy()]), "index": index}


def _meta(method_name: str, backbone: str, size: int) -> dict:
    """What ``api.train`` stores for the Predictor (the keys it reads)."""
    return {"class_names": list(CANONICAL_7), "num_classes": 7, "image_size": size, "channels": 3,
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "backbone": backbone,
            "backbone_options": TINY_OPTIONS.get(backbone, {}), "method": method_name,
            "method_params": {}, "class_counts": COUNTS, "num_samples": sum(COUNTS)}


@pytest.mark.parametrize(("name", "backbone"), [_case(*pair) for pair in PAIRS])
def test_step_gradients_checkpoint_and_predict(name: str, backbone: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    size = input_size(backbone)
    batch_size = 4 if size <= 64 else 2  # Swin's fixed 112/224 grid: keep the step short
    labels = np.repeat(np.arange(7), COUNTS)
    model = build_classifier(backbone, 7, **TINY_OPTIONS.get(backbone, {}))
    method = create_method(name, model, COUNTS, len(labels))
    method.on_epoch_start(0, 10)
    method.train()
    generator = torch.Generator().manual_seed(0)
    batch = _batch(labels, torch.randperm(len(labels), generator=generator)[:batch_size], size,
                   generator)
    for stream, sampler in method.samplers(labels).items():
        batch[stream] = _batch(labels, sampler(generator)[:batch_size], size, generator)

    out = method(batch)
    assert out.logits.shape == (batch_size, 7)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    backbone_params = {id(p) for p in method.model.backbone.parameters()}
    grads = {id(p): p.grad for p in method.parameters() if p.requires_grad}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    reached = {key for key, g in grads.items() if g is not None and g.abs().sum() > 0}
    assert reached & backbone_params, f"{name} on {backbone}: no gradient reaches the backbone"
    assert reached - backbone_params, f"{name} on {backbone}: no gradient reaches the head"

    method.eval()
    images = torch.randn(2, 3, size, size, generator=generator)
    with torch.no_grad():
        expected = method.predict(images)
    path = save_checkpoint(tmp_path / "best.safetensors", method, _meta(name, backbone, size))
    predictor = Predictor.from_checkpoint(path, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(predictor.method.predict(images), expected, rtol=0, atol=1e-5)

    faces = [np.full((size + 8, size + 8, 3), value, np.uint8) for value in (40, 200)]
    results = predictor.predict(faces)
    assert [r["label"] in CANONICAL_7 for r in results] == [True, True]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)
