"""Methods scn, rul, bbn, ldam, logit_adjust, focal, fan: hand-checked values and contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferkit.cam import class_activation_maps
from ferkit.engine.checkpoint import ModelMeta, load_checkpoint, load_weights, save_checkpoint
from ferkit.methods import METHODS, create_method
from ferkit.methods.bbn import cumulative_alpha, reversed_sample_weights
from ferkit.methods.ldam import CosineClassifier, ldam_margins
from ferkit.methods.rul import mixed_cross_entropy, relative_mix
from ferkit.methods.scn import rank_regularization
from ferkit.models import BACKBONES, build_classifier
from ferkit.models.cbam import CBAM

NUM_CLASSES, NUM_SAMPLES, BATCH = 3, 40, 8
COUNTS = [24, 12, 4]
LABELS = np.array([0] * 24 + [1] * 12 + [2] * 4)
INVERSE = torch.tensor([1 / 24, 1 / 12, 1 / 4]) * 3 / (1 / 24 + 1 / 12 + 1 / 4)  # mean 1
MINE = ["scn", "rul", "bbn", "ldam", "logit_adjust", "focal", "fan"]


def make_method(name: str, backbone: str = "tiny_cnn", **params: object):
    torch.manual_seed(0)
    model = build_classifier(backbone, NUM_CLASSES)
    return create_method(name, model, COUNTS, NUM_SAMPLES, params)


def record(name: str) -> ModelMeta:
    """Checkpoint metadata of a tiny_cnn method built by :func:`make_method`."""
    return ModelMeta(class_names=tuple(map(str, range(NUM_CLASSES))), num_classes=NUM_CLASSES,
                     image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, backbone="tiny_cnn",
                     method=name, class_counts=tuple(COUNTS), num_samples=NUM_SAMPLES)


def make_batch(method, seed: int = 0, size: int = 32) -> dict:
    """A batch shaped like the engine's, with every extra stream the method asks for."""
    generator = torch.Generator().manual_seed(seed)

    def take(index: torch.Tensor) -> dict:
        return {"image": torch.randn(len(index), 3, size, size, generator=generator),
                "label": torch.as_tensor(LABELS[index.numpy()]), "index": index}

    batch = take(torch.randperm(NUM_SAMPLES, generator=generator)[:BATCH])
    for name, sampler in method.samplers(LABELS).items():
        batch[name] = take(sampler(generator)[:BATCH])
    return batch


# -- the contract every method keeps --------------------------------------------------------

@pytest.mark.parametrize("name", MINE)
def test_step_state_and_predict(name: str, tmp_path) -> None:
    method = make_method(name)
    batch = make_batch(method)
    out = method(batch)
    assert out.logits.shape == (BATCH, NUM_CLASSES) and torch.isfinite(out.loss)
    out.loss.backward()
    for key, param in method.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), key
    method.eval()
    with torch.no_grad():
        expected = method.predict(batch["image"])
    assert expected.shape == (BATCH, NUM_CLASSES)
    save_checkpoint(tmp_path / "m.safetensors", method, record(name))
    fresh = make_method(name)
    load_weights(fresh, load_checkpoint(tmp_path / "m.safetensors"))  # strict: no key missing
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval().predict(batch["image"]), expected)


# -- LDAM-DRW -----------------------------------------------------------------------------------

def test_ldam_margins_by_hand() -> None:
    expected = torch.tensor([0.5 * 100**-0.25, 0.5 * 10**-0.25, 0.5])  # [0.1581, 0.2812, 0.5]
    torch.testing.assert_close(ldam_margins([100, 10, 1], 0.5), expected)


def test_cosine_classifier_value_and_weight_shape() -> None:
    head = CosineClassifier(2, 2, scale=30.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 5.0]]))
    torch.testing.assert_close(head(torch.tensor([[3.0, 4.0]])), torch.tensor([[18.0, 24.0]]))
    method = make_method("ldam")
    assert method.model.head.weight.shape == (NUM_CLASSES, method.model.num_features)
    out = method.model(torch.randn(2, 3, 32, 32))
    assert class_activation_maps(out.feature_map, method.model.head.weight).shape[1] == 3


def test_ldam_loss_before_and_after_drw() -> None:
    method = make_method("ldam")
    batch = make_batch(method)
    labels = batch["label"]
    margins = ldam_margins(COUNTS, 0.5)
    method.on_epoch_start(7, 10)  # DRW from epoch int(0.8 * 10) = 8
    out = method(batch)
    shifted = out.logits - 30.0 * F.one_hot(labels, 3) * margins[labels][:, None]
    torch.testing.assert_close(out.loss, F.cross_entropy(shifted, labels))
    method.on_epoch_start(8, 10)
    out = method(batch)
    beta = 0.9999
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in COUNTS])
    weights = raw * 3 / raw.sum()
    shifted = out.logits - 30.0 * F.one_hot(labels, 3) * margins[labels][:, None]
    # the authors' F.cross_entropy(weight=w): divided by sum of w_{y_i}
    torch.testing.assert_close(out.loss, F.cross_entropy(shifted, labels, weight=weights))


# -- logit adjustment and focal -----------------------------------------------------------------

def test_logit_adjust_loss_by_hand() -> None:
    method = make_method("logit_adjust", tau=1.0)
    batch = make_batch(method)
    out = method(batch)
    prior = torch.tensor(COUNTS, dtype=torch.float32) / sum(COUNTS)
    total = 0.0
    for logit, label in zip(out.logits.detach(), batch["label"], strict=True):
        adjusted = [float(logit[k]) + math.log(float(prior[k])) for k in range(3)]
        total += math.log(sum(math.exp(a) for a in adjusted)) - adjusted[int(label)]
    assert out.loss.item() == pytest.approx(total / BATCH, rel=1e-5)
    images = batch["image"][:2]
    method.eval()
    torch.testing.assert_close(method.predict(images), method.model(images).logits)
    posthoc = make_method("logit_adjust", posthoc=True).eval()
    torch.testing.assert_close(posthoc.predict(images),
                               posthoc.model(images).logits - prior.log())


def test_focal_loss_by_hand_with_inverse_weights() -> None:
    method = make_method("focal", class_weight="inverse")
    torch.testing.assert_close(method.class_weights, INVERSE)
    batch = make_batch(method)
    out = method(batch)
    probs = out.logits.detach().softmax(dim=1)
    total = 0.0
    for p, label in zip(probs, batch["label"], strict=True):
        p_y = float(p[label])
        total += -float(method.class_weights[label]) * (1 - p_y) ** 2 * math.log(p_y)
    assert out.loss.item() == pytest.approx(total / BATCH, rel=1e-5)


# -- SCN ----------------------------------------------------------------------------------------

def test_scn_rank_regularisation_by_hand() -> None:
    alpha = torch.tensor([0.48, 0.6, 0.42, 0.56, 0.5, 0.46, 0.58, 0.54, 0.44, 0.52])
    # high 7: 0.6..0.48, mean 0.54; low 3: 0.46, 0.44, 0.42, mean 0.44; 0.15 - 0.10 = 0.05
    assert rank_regularization(alpha, 0.7, 0.15).item() == pytest.approx(0.05, abs=1e-6)
    assert rank_regularization(alpha, 0.7, 0.05).item() == 0.0


def test_scn_relabels_low_group_and_survive_checkpoint(tmp_path) -> None:
    method = make_method("scn", relabel_epoch=0, margin2=-1.0)  # every low sample relabelled
    batch = make_batch(method)
    out = method(batch)
    changed = method.labels >= 0
    assert int(changed.sum()) == BATCH - int(BATCH * 0.7) == int(out.logs["relabelled"])
    assert set(torch.nonzero(changed).flatten().tolist()) <= set(batch["index"].tolist())
    save_checkpoint(tmp_path / "scn.safetensors", method, record("scn"))
    fresh = make_method("scn", relabel_epoch=0, margin2=-1.0)
    load_weights(fresh, load_checkpoint(tmp_path / "scn.safetensors"))
    assert torch.equal(fresh.labels, method.labels)
    index = batch["index"]
    torch.testing.assert_close(fresh.current_labels(index, batch["label"]),
                               torch.where(method.labels[index] >= 0, method.labels[index],
                                           batch["label"]))
    inactive = make_method("scn")  # relabel_epoch 10: nothing before epoch 10
    inactive(batch)
    assert (inactive.labels == -1).all()


# -- RUL and fan ----------------------------------------------------------------------------------

def test_rul_mixing_weights_by_hand() -> None:
    mu = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    z, own = relative_mix(mu, torch.tensor([1.0, 3.0, 2.0]), torch.tensor([1, 0, 2]))
    torch.testing.assert_close(own, torch.tensor([0.25, 0.75, 0.5]))
    torch.testing.assert_close(z, torch.tensor([[0.25, 0.75], [0.25, 0.75], [2.0, 2.0]]))
    logits, labels = torch.randn(3, 4), torch.tensor([0, 3, 1])
    partner = torch.tensor([1, 0, 2])
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits, labels[partner]))
    torch.testing.assert_close(mixed_cross_entropy(logits, labels, partner), expected)


def test_rul_param_groups_and_fixed_map_size() -> None:
    method = make_method("rul", feature_hw=4)
    groups = method.param_groups(2e-4)
    assert [g["lr"] for g in groups] == [2e-4, pytest.approx(2e-3)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in method.fc.parameters()}
    assert all(not p.requires_grad for p in method.model.head.parameters())
    method(make_batch(method))
    with pytest.raises(ValueError, match="input size changed"):
        method(make_batch(method, size=64))


def test_cbam_shapes() -> None:
    cbam = CBAM(32, reduction=16, kernel_size=7)
    x = torch.randn(2, 32, 5, 5)
    assert cbam(x).shape == x.shape
    assert cbam.channel.mlp[0].out_features == 2 and cbam.spatial.conv.in_channels == 2
    method = make_method("fan")
    assert method.refine(torch.randn(2, 128, 4, 4)).shape == (2, 128, 4, 4)
    torch.testing.assert_close(method.class_weights, INVERSE)


def test_fan_every_block_needs_resnet() -> None:
    with pytest.raises(ValueError, match="needs a ResNet backbone"):
        make_method("fan", cbam_placement="every_block")


@pytest.mark.skipif("resnet18" not in BACKBONES, reason="resnet18 not registered")
def test_fan_every_block_on_resnet18() -> None:
    method = make_method("fan", backbone="resnet18", cbam_placement="every_block")
    assert sum(isinstance(m, CBAM) for m in method.modules()) == 8
    out = method(make_batch(method))
    out.loss.backward()
    assert method.model.backbone.layer4[1].bn2[1].spatial.conv.weight.grad is not None


# -- BBN ------------------------------------------------------------------------------------------

def test_bbn_alpha_schedule() -> None:
    assert [cumulative_alpha(e, 10) for e in (0, 5, 9)] == pytest.approx([1.0, 0.75, 0.19])
    method = make_method("bbn")
    method.on_epoch_start(5, 10)
    assert method.alpha == pytest.approx(0.75)


def test_bbn_reversed_sampler_draws_rare_classes_more() -> None:
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    np.testing.assert_allclose(reversed_sample_weights(labels, 3), [80 / 80**2, 80 / 15**2,
                                                                    80 / 5**2])
    sampler = make_method("bbn").samplers(labels)["reversed"]
    drawn = torch.cat([sampler(torch.Generator().manual_seed(s)) for s in range(40)])
    freq = np.bincount(labels[drawn.numpy()], minlength=3) / len(drawn)
    expected = np.array([1, 80 / 15, 16]) / (1 + 80 / 15 + 16)  # proportional to n_max / n_l
    np.testing.assert_allclose(freq, expected, atol=0.03)
    assert freq[2] > freq[1] > freq[0]


def test_bbn_uses_the_reversed_stream() -> None:
    method = make_method("bbn")
    batch = make_batch(method)
    with pytest.raises(KeyError, match="reversed"):
        method({k: v for k, v in batch.items() if k != "reversed"})
    method.on_epoch_start(5, 10)  # alpha 0.75
    out = method(batch)
    expected = (0.75 * F.cross_entropy(out.logits, batch["label"])
                + 0.25 * F.cross_entropy(out.logits, batch["reversed"]["label"]))
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert method.model.backbone.rebalancing[0][0].weight.grad.abs().sum() > 0
    assert method.model.head.weight.shape == (NUM_CLASSES, 2 * 128)


def test_every_method_is_registered() -> None:
    assert set(MINE) <= set(METHODS.names())
