"""The generated catalogue of registrations (``ferkit/_registered.py``) equals the registrations.

The registries answer names and facts from that file until an entry's module is imported, so a
stale file would list a method that does not exist or check a parameter against an old default.
"""

from __future__ import annotations

import pytest

from ferkit.catalogue import PATH, REGISTRIES, catalogue_source, import_registering_modules


def test_the_file_is_what_the_registrations_generate() -> None:
    assert PATH.read_text(encoding="utf-8") == catalogue_source(), (
        f"{PATH.name} differs from the registrations: run python -m ferkit.catalogue")


@pytest.mark.parametrize("variable", sorted(REGISTRIES))
def test_every_entry_reads_back_as_registered(variable: str) -> None:
    import_registering_modules()
    registry = REGISTRIES[variable]
    loaded = registry.loaded_catalogue("ferkit.")
    assert sorted(loaded) == registry.names()  # nothing catalogued that no module registers
    for name, (module, facts) in registry.catalogued().items():
        assert (module, facts) == loaded[name], f"{registry.kind} '{name}'"
        assert registry.info(name) == facts
