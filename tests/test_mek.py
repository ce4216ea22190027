"""MEK and EAC numerics: presets, weights, smooth targets, consistency, gradients, 2B forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.losses import attention_consistency
from ferkit.methods import create_method
from ferkit.methods.mek import MineExtraKnowledge, mek_class_weights
from ferkit.models.classifier import FERClassifier, build_classifier

# RAF-DB basic train counts, canonical order: Surprise, Fear, Disgust, Happiness, Sadness, Anger,
# Neutral.
RAF_COUNTS = [1290, 281, 717, 4772, 1982, 705, 2524]


class PixelMLP(nn.Module):
    """Per-pixel MLP + non-overlapping pooling: exactly equivariant to a horizontal flip."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, channels, 1),
                                 nn.AvgPool2d(4))
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, C, H/4, W/4]


def _batch(n: int = 4, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=gen),
            "label": torch.arange(n) % 7, "index": torch.arange(n)}


def _mek(model: nn.Module | None = None, **params: object) -> MineExtraKnowledge:
    torch.manual_seed(0)
    model = model or build_classifier("tiny_cnn", 7)
    return create_method("mek", model, RAF_COUNTS, 100, params)  # type: ignore[return-value]


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_consistency_zero_for_flip_equivariant_backbone(preset: str) -> None:
    torch.manual_seed(0)
    method = _mek(FERClassifier(PixelMLP(), 7), preset=preset)
    out = method(_batch())
    assert out.logs["l_cons"].abs().item() < 1e-6
    assert torch.isfinite(out.loss)


# Hand-made maps [N=2, L=3, h=2, w=2] (row-major) and the aligned maps of the other view.
MAPS = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, -1.0, 2.0, 0.0, 1.5, 1.5, -2.0, 3.0,
                     0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0, 2.0, -1.0, 0.5, 0.0, 1.0]).view(2, 3, 2, 2)
ALIGNED = torch.tensor([1.5, 2.0, 2.0, 4.0, 0.0, -1.0, 2.0, 1.0, 1.0, 2.5, -2.0, 0.0,
                        1.0, 1.0, 1.0, -1.0, 2.0, 0.0, 2.5, 2.0, -1.0, 0.0, 0.5, 1.0]).view(
    2, 3, 2, 2)
WEIGHTS = [0.5, 1.0, 2.0]


def _hand_consistency(reduction: str) -> float:
    total = 0.0
    for i in range(2):
        for c in range(3):
            for y in range(2):
                for x in range(2):
                    d = MAPS[i, c, y, x].item() - ALIGNED[i, c, y, x].item()
                    if reduction == "mean":  # paper: (B A - B A~)^2 averaged over N*L*h*w
                        total += (WEIGHTS[c] * d) ** 2 / (2 * 3 * 2 * 2)
                    else:  # official: mean_i sum_l B_l mean_yx d^2
                        total += WEIGHTS[c] * d**2 / (2 * 2) / 2
    return total


@pytest.mark.parametrize("reduction", ["mean", "class_sum"])
def test_consistency_matches_hand_computation(reduction: str) -> None:
    got = attention_consistency(MAPS, ALIGNED, torch.tensor(WEIGHTS), reduction)
    assert got.item() == pytest.approx(_hand_consistency(reduction), rel=1e-6)


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_mek_l_cons_matches_loops_over_flipped_maps(preset: str) -> None:
    method = _mek(preset=preset).eval()  # eval: per-sample BN, so the views are independent
    batch = _batch(2)
    got = method.losses(batch)["l_cons"].item()
    model = method.model
    with torch.no_grad():
        images = torch.cat([batch["image"], batch["image"].flip(3)])
        fmap = model.backbone(images).double()
        maps = torch.einsum("bchw,kc->bkhw", fmap, model.head.weight.double())
    weights, (n, k, h, w) = method.class_weights.double(), maps[:2].shape
    total = 0.0
    for i in range(n):
        for c in range(k):
            for y in range(h):
                for x in range(w):
                    d = (maps[i, c, y, x] - maps[n + i, c, y, w - 1 - x]).item()
                    if preset == "paper":
                        total += (weights[c].item() * d) ** 2 / (n * k * h * w)
                    else:
                        total += weights[c].item() * d**2 / (h * w) / n
    assert got == pytest.approx(total, rel=1e-4)


def test_official_smooth_targets_rafdb_surprise_row() -> None:
    method = _mek(preset="official")
    row = method.targets(torch.tensor([0]))[0]
    expected = torch.tensor([0.700, 0.1427, 0.0559, 0.0084, 0.0202, 0.0569, 0.0159])
    assert torch.allclose(row, expected, atol=5e-5)
    assert row.sum().item() == pytest.approx(1.0, abs=1e-6)
    ratio = [0.1 * sum(RAF_COUNTS) / n for n in RAF_COUNTS]  # B_l = 0.1 N / n_l, unnormalised
    assert torch.allclose(method.class_weights, torch.tensor(ratio), rtol=1e-6)


def test_paper_weights_effective_number_by_hand() -> None:
    beta = 0.9999
    raw = [(1 - beta) / (1 - beta**n) for n in RAF_COUNTS]
    expected = [7 * r / sum(raw) for r in raw]
    got = _mek(preset="paper").class_weights
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert got.sum().item() == pytest.approx(7.0, abs=1e-5)
    assert torch.equal(got, mek_class_weights(RAF_COUNTS, "effective", beta))


def test_paper_smooth_targets() -> None:
    method = _mek(preset="paper")
    labels = torch.arange(7)
    targets = method.targets(labels)
    expected = 0.9 * F.one_hot(labels, 7).float() + 0.1 * method.class_weights[None] / 7
    assert torch.allclose(targets, expected, atol=1e-7)
    assert torch.allclose(targets.sum(1), torch.ones(7), atol=1e-6)


@pytest.mark.parametrize("detach_head", [True, False])
def test_consistency_gradients(detach_head: bool) -> None:
    method = _mek(detach_head=detach_head)
    method.losses(_batch())["l_cons"].backward()
    head_grad = method.model.head.weight.grad
    backbone_grad = method.model.backbone.last_stage[0][0].weight.grad
    assert backbone_grad is not None and backbone_grad.abs().sum() > 0
    if detach_head:
        assert head_grad is None or not head_grad.any()
    else:
        assert head_grad is not None and head_grad.abs().sum() > 0


@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("forward_mode, expected_calls", [("separate", [4, 4]), ("joint", [8])])
def test_forward_calls_and_finite_step(preset: str, forward_mode: str,
                                       expected_calls: list[int]) -> None:
    method = _mek(preset=preset, forward_mode=forward_mode)
    calls: list[int] = []
    method.model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    images = _batch()["image"].contiguous(memory_format=torch.channels_last)
    out = method({**_batch(), "image": images})
    assert calls == expected_calls
    assert out.logits.shape == (4, 7)
    assert set(out.logs) == {"l_cls", "l_cons", "cons_to_cls"}
    assert out.logs["cons_to_cls"] == pytest.approx(
        (method.lam * out.logs["l_cons"] / out.logs["l_cls"]).item())
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    out.loss.backward()
    assert out.loss.item() == pytest.approx(
        (out.logs["l_cls"] + method.lam * out.logs["l_cons"]).item(), rel=1e-6)


def test_presets_and_overrides() -> None:
    official = _mek(preset="official", lam=1.0)
    assert (official.lam, official.alpha, official.flipped_ce) == (1.0, 0.3, False)
    assert official.consistency_reduction == "class_sum" and official.smooth_form == "official"
    paper = _mek()
    assert (paper.lam, paper.alpha, paper.flipped_ce, paper.consistency_reduction) == \
        (2.0, 0.1, True, "mean")
    with pytest.raises(ValueError, match=r"^method.params.preset: 'offical' is not one of "
                                         r"\['paper', 'official'\]. Did you mean 'official'\?$"):
        _mek(preset="offical")
    with pytest.raises(ValueError, match="has no parameter 'lambda'"):
        _mek(**{"lambda": 1.0})


def test_ablations_reduce_to_expected_losses() -> None:
    batch = _batch()
    plain = _mek(use_rac=False, use_rsl=False, flipped_ce=False)
    ce = create_method("ce", build_classifier("tiny_cnn", 7), RAF_COUNTS, 100)
    ce.model.load_state_dict(plain.model.state_dict())
    assert plain(batch).loss.item() == pytest.approx(ce(batch).loss.item(), rel=1e-6)

    method = _mek(use_rac=False).eval()  # RSL only: soft CE of both views, no l_cons
    out = method(batch)
    logits = method.model(torch.cat([batch["image"], batch["image"].flip(3)])).logits
    targets = method.targets(batch["label"]).repeat(2, 1)
    by_hand = -(targets * logits.log_softmax(1)).sum(1).view(2, -1).mean(1).sum()
    assert "l_cons" not in out.logs
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)

    method = _mek(use_rsl=False).eval()  # RAC only: one-hot CE (both views) + lam * l_cons
    terms = method.losses(batch)
    by_hand = sum(F.cross_entropy(part, batch["label"]) for part in logits.chunk(2))
    assert terms["l_cls"].item() == pytest.approx(by_hand.item(), rel=1e-5)


@pytest.mark.parametrize("transform", ["scale", "intensity"])
def test_transforms_run(transform: str) -> None:
    out = _mek(transform=transform, normalize_maps=True)(_batch())
    assert torch.isfinite(out.loss) and out.logs["l_cons"] > 0
    out.loss.backward()


def test_scale_view_with_factor_one_is_identity() -> None:
    out = _mek(transform="scale", scale_factor=1.0).eval()(_batch())
    assert out.logs["l_cons"].item() < 1e-8


def test_eac_equals_ce_plus_five_mse_by_hand() -> None:
    torch.manual_seed(0)
    method = create_method("eac", build_classifier("tiny_cnn", 7), RAF_COUNTS, 100).eval()
    batch = _batch()
    out = method(batch)
    model = method.model
    with torch.no_grad():
        result = model(torch.cat([batch["image"], batch["image"].flip(3)]))
        maps = torch.einsum("bchw,kc->bkhw", result.feature_map, model.head.weight)
        original, flipped = maps.chunk(2)
        mse = ((original - flipped.flip(3)) ** 2).mean()
        ce = F.cross_entropy(result.logits[:4], batch["label"])
    assert method.lam == 5.0
    assert out.logs["l_cons"].item() == pytest.approx(mse.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(ce.item() + 5 * mse.item(), rel=1e-5)
    assert not math.isnan(out.loss.item())


def test_bf16_autocast_losses_are_float32() -> None:
    method = _mek(preset="official")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = method.losses(_batch())
    assert terms["logits"].dtype == torch.bfloat16
    assert terms["l_cls"].dtype == torch.float32 and terms["l_cons"].dtype == torch.float32
    assert torch.isfinite(terms["l_cls"] + terms["l_cons"])


@pytest.mark.parametrize("reduction", ["mean", "class_sum"])
def test_absolute_error_reading_of_eq5(reduction: str) -> None:
    """The literal Eq. 5: |.| instead of (.)^2, with the same reductions."""
    total = 0.0
    for i in range(2):
        for c in range(3):
            for y in range(2):
                for x in range(2):
                    d = abs(MAPS[i, c, y, x].item() - ALIGNED[i, c, y, x].item())
                    if reduction == "mean":
                        total += WEIGHTS[c] * d / (2 * 3 * 2 * 2)
                    else:
                        total += WEIGHTS[c] * d / (2 * 2) / 2
    got = attention_consistency(MAPS, ALIGNED, torch.tensor(WEIGHTS), reduction, "absolute")
    assert got.item() == pytest.approx(total, rel=1e-6)
    method = _mek(consistency_error="absolute")
    assert method.consistency_error == "absolute" and torch.isfinite(method(_batch()).loss)
    with pytest.raises(ValueError, match=r"^method.params.consistency_error: 'l1' is not one of "
                                         r"\['squared', 'absolute'\]"):
        _mek(consistency_error="l1")


def test_weights_norm_sets_the_scale_of_b() -> None:
    counts = [1028, 102, 47, 2214, 477, 221, 4772]  # FERPlus RAF-DB-shaped IF100 subset
    raw = [(1 - 0.9999) / (1 - 0.9999**n) for n in counts]
    by_sum = mek_class_weights(counts, "effective", norm="sum")
    by_max = mek_class_weights(counts, "effective", norm="max")
    none = mek_class_weights(counts, "effective", norm="none")
    assert by_sum.tolist() == pytest.approx([r * 7 / sum(raw) for r in raw], rel=1e-5)
    assert by_max.tolist() == pytest.approx([r / max(raw) for r in raw], rel=1e-5)
    assert none.tolist() == pytest.approx(raw, rel=1e-5)
    # the effective-lambda factor stated in the docstring (B enters the paper consistency squared)
    assert (by_sum.pow(2).sum() / by_max.pow(2).sum()).item() == pytest.approx(14.1, abs=0.1)
    assert _mek(weights_norm="max").class_weights.max().item() == pytest.approx(1.0)
    assert _mek(preset="official").class_weights.tolist() == pytest.approx(
        [0.1 * sum(RAF_COUNTS) / n for n in RAF_COUNTS], rel=1e-5)
    with pytest.raises(ValueError, match=r"^method.params.weights_norm: 'l2' is not one of "
                                         r"\['sum', 'max', 'none'\]"):
        _mek(weights_norm="l2")


def _bn_model() -> FERClassifier:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.AvgPool2d(4))
    backbone.num_features = 8  # type: ignore[assignment]
    return FERClassifier(backbone, 7)


@pytest.mark.parametrize("method_name", ["mek", "eac"])
def test_forward_modes_equal_without_batch_statistics(method_name: str) -> None:
    """In eval mode (or with LayerNorm) one 2B batch and two B batches compute the same thing;
    in train mode with BatchNorm they differ, which is why the authors' way is the default."""
    batch = _batch()
    losses, running = {}, {}
    for train in (False, True):
        for mode in ("separate", "joint"):
            method = create_method(method_name, _bn_model(), RAF_COUNTS, 100,
                                   {"forward_mode": mode})
            method.train(train)
            losses[train, mode] = method(batch).loss.item()
            running[train, mode] = method.model.backbone[1].running_var.clone()
    assert losses[False, "separate"] == pytest.approx(losses[False, "joint"], rel=1e-5)
    # train mode: each view normalised by its own statistics, running stats updated twice
    assert losses[True, "separate"] != losses[True, "joint"]
    assert (running[True, "separate"] - running[True, "joint"]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"^method.params.forward_mode: '2b' is not one of "
                                         r"\['separate', 'joint'\]"):
        create_method(method_name, _bn_model(), RAF_COUNTS, 100, {"forward_mode": "2b"})


def test_preset_overrides_are_checked_with_the_config_before_any_data() -> None:
    """consistency_reduction and smooth_form are declared once (param_constraints), so a bad
    value fails ``ferkit train``'s config check, not the constructor after the datasets."""
    from ferkit.checks import load_config
    from ferkit.config import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(None, ["method.name=mek", "method.params.consistency_reduction=sum",
                           "method.params.smooth_form=offical"])
    assert ("method.params.consistency_reduction: 'sum' is not one of ['mean', 'class_sum']"
            in str(err.value))
    assert ("method.params.smooth_form: 'offical' is not one of ['paper', 'official']. "
            "Did you mean 'official'? (--set)" in str(err.value))
