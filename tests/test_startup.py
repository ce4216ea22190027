"""Start-up: the CLI's help, argument errors, ``ferkit list`` and ``ferkit config`` (printing the
reference, checking a configuration) answer without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("ferkit", run_name="__main__")
except SystemExit as stop:
    print("exit", stop.code, file=sys.stderr)
print("torch imported:", "torch" in sys.modules)
"""


# every registry's names and facts, and a parameter check, with nothing imported beforehand
FACTS_PROBE = """
import sys
from ferkit import BACKBONES, DATASETS, METHODS
from ferkit.methods import check_method_params
facts = {r.kind: {n: r.info(n) for n in r.names()} for r in (BACKBONES, DATASETS, METHODS)}
print(facts["backbone"]["resnet18"].output_strides, check_method_params("mek", {"lam": -1}))
print("torch imported:", "torch" in sys.modules)
"""


def _python(code: str) -> tuple[str, str]:
    """Run ``python -c CODE`` in a fresh interpreter on this tree; its stdout and stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    return done.stdout, done.stderr


def _modules_after(argv: list[str]) -> tuple[str, str]:
    """Run ``python -m ferkit ARGV`` in a fresh interpreter; its stdout and stderr."""
    return _python(PROBE.format(argv=["ferkit", *argv]))


def test_registry_names_and_facts_do_not_import_torch() -> None:
    out, err = _python(FACTS_PROBE)
    assert "(8, 16, 32) ['method.params.lam: must be >= 0, got -1']" in out, err
    assert out.rstrip().endswith("torch imported: False")


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["--version"]])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    out, err = _modules_after(argv)
    assert "exit 0" in err
    assert out.rstrip().endswith("torch imported: False")


@pytest.mark.parametrize(("argv", "shown"), [
    (["list"], "methods: bbn, cb, ce"), (["config"], "  mek: preset: str = 'paper'"),
    (["config", "--keys-only"], "method.params ")])
def test_list_and_config_do_not_import_torch(argv: list[str], shown: str) -> None:
    out, err = _modules_after(argv)
    assert "exit 0" in err and shown in out
    assert out.rstrip().endswith("torch imported: False")


def test_config_check_does_not_import_torch() -> None:
    out, err = _modules_after(["config", "--config", "quickstart", "--set", "method.name=mek",
                               "--set", "method.params.lam=0.5"])
    assert "exit 0" in err and "name: mek\n  params:\n    lam: 0.5\n" in out
    assert out.rstrip().endswith("torch imported: False")
    out, err = _modules_after(["config", "--set", "method.name=mek", "--set",
                               "method.params.alpha=1", "--set", "model.backbone=resnet81"])
    assert "exit 2" in err and "method.params.alpha: must be in [0, 1), got 1 (--set)" in err
    assert "unknown backbone 'resnet81'. Did you mean 'resnet18'?" in err
    assert out.rstrip().endswith("torch imported: False")


def test_argument_error_does_not_import_torch() -> None:
    out, err = _modules_after(["predict", "--batch-size", "x"])
    assert "argument --batch-size: expected a whole number above 0, got 'x'" in err and "exit 2" in err
    assert out.rstrip().endswith("torch imported: False")


def test_public_names_still_import() -> None:
    import ferkit

    assert ferkit.Predictor.__name__ == "Predictor" and callable(ferkit.train)
    assert "BACKBONES" in dir(ferkit)
    with pytest.raises(AttributeError, match="module 'ferkit' has no attribute 'nope'"):
        ferkit.nope  # noqa: B018

