"""The alignment and prior benchmark scripts on a few real FER2013Valid crops with a tiny model."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from tests.conftest import SHARED_DATA

from ferkit.inference.faces import DetectorWeightsError
from ferkit.inference.predictor import Predictor

FERPLUS = SHARED_DATA / "ferplus"
pytestmark = pytest.mark.skipif(not (FERPLUS / "FER2013Valid").is_dir(),
                                reason=f"FERPlus not found under {FERPLUS}")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint: Path) -> Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Predictor.from_checkpoint(tiny_checkpoint, device="cpu")


def test_align_accuracy_rows(predictor: Predictor, tmp_path: Path) -> None:
    import align_accuracy
    from _fer_crops import replace_section

    try:
        result = align_accuracy.measure(predictor, str(FERPLUS), limit=12)
    except DetectorWeightsError as err:
        pytest.skip(str(err))
    assert result["images"] == 12 and 8 <= result["detected"] <= 12
    names = [(name, subset, s["n"]) for name, subset, s in result["rows"]]
    assert names[0] == ("crops classified directly", "all", 12)
    assert names[3] == ("detect -> align -> classify", "detected only", result["detected"])
    doc = tmp_path / "alignment.md"
    doc.write_text("# A\n\n<!-- accuracy:start -->\nold\n<!-- accuracy:end -->\n\ntail\n")
    replace_section(doc, "accuracy", align_accuracy.table(result, "cmd", predictor.meta, 1.0, "abc"), "A")
    text = doc.read_text()
    assert "old" not in text and text.endswith("<!-- accuracy:end -->\n\ntail\n")
    assert "| crops classified directly | all | 12 |" in text


def test_prior_table_rows(predictor: Predictor) -> None:
    import prior_table

    logits, targets = prior_table.logits_on_valid(predictor, str(FERPLUS), limit=20)
    assert logits.shape == (20, 7) and len(targets) == 20
    rows = prior_table.rows(predictor, logits, targets)
    assert [(p, t) for p, t, _ in rows] == list(prior_table.SETTINGS)
    text = prior_table.document(rows, "cmd", {**predictor.meta, "epoch": 1}, 1.0, "abc")
    assert "| train | - |" in text and "| uniform | 0.5 |" in text


def test_prior_choice_on_one_half_reported_on_the_other() -> None:
    import prior_table

    targets = [0] * 8 + [1] * 4 + [2] * 2
    first, second = prior_table.halves(targets)
    assert sorted(first + second) == list(range(14)) and not set(first) & set(second)
    assert [sum(targets[i] == k for i in first) for k in range(3)] == [4, 2, 1]  # stratified
    # class 2 is under-predicted: its logit is 1 below the winning class, so only tau * log(8/2)
    # = tau * 1.386 > 1, i.e. tau >= 0.75 on the grid, recovers it (tau >= 1.45 breaks class 0)
    logits = torch.zeros(14, 3)
    logits[:8, 0] = 2.0
    logits[8:12, 1] = 2.0
    logits[12:, 0], logits[12:, 2] = 1.0, 0.0
    counts = [8, 4, 2]
    name, tau, result = prior_table.choose({"plain": logits}, targets, counts, first, max_drop=0.5)
    assert (name, tau) == ("plain", 0.75) and result["mean_class_accuracy"] == 1.0
    # with no overall accuracy to give, the rule keeps tau at 0 when nothing is gained
    name, tau, _ = prior_table.choose({"plain": logits[:12, :2]}, targets[:12], [8, 4],
                                      list(range(12)), max_drop=0.0)
    assert (name, tau) == ("plain", 0.0)
