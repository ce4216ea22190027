"""Every benchmark protocol in configs/bench loads, and each of its runs resolves to a config that
passes the registry checks (dataset and its options, backbone, method parameters by type and
range). A new protocol file is covered by adding it; nothing to write here."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.bench import load_protocol
from ferkit.checks import check_config

PROTOCOLS = sorted((Path(__file__).resolve().parents[1] / "configs" / "bench").glob("*.yaml"))


def test_protocols_exist() -> None:
    assert PROTOCOLS, "configs/bench holds no protocol"


@pytest.mark.parametrize("path", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_every_run_of_the_protocol_passes_the_config_checks(path: Path, tmp_path: Path) -> None:
    protocol = load_protocol(path)
    runs = list(protocol.runs())
    assert runs, f"{path.name} expands to no run"
    for spec in runs:
        cfg = protocol.resolve(spec, tmp_path / spec.id, str(tmp_path), [])
        check_config(cfg)
        assert cfg.method.name == spec.method.name and cfg.seed == spec.seed
