import sys

import pytest

from ferkit import BACKBONES, DATASETS, METHODS
from ferkit.registry import Registry, UnknownNameError


def test_register_create_names() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("one")(lambda scale=1: 1 * scale)
    assert reg.create("one", scale=3) == 3
    assert reg.names() == ["one"]
    assert "one" in reg and "two" not in reg


def test_unknown_name_suggests_close_match() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("resnet18")(lambda: 1)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'resnet81'. Did you mean 'resnet18'\?"):
        reg.get("resnet81")


def test_duplicate_registration_is_an_error() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)


def test_builtin_registries_are_populated() -> None:
    assert {"ferplus", "rafdb", "affectnet", "synthetic"} <= set(DATASETS.names())
    assert {"resnet18", "resnet50", "mobilenet_v2", "swin_t"} <= set(BACKBONES.names())
    assert {"ce", "cb"} <= set(METHODS.names())


@pytest.fixture
def widget_module(tmp_path, monkeypatch) -> str:
    """A registry backed by a catalogue, and a module registering one of its entries."""
    (tmp_path / "widgets_registry.py").write_text(
        "from ferkit.registry import Registry\n"
        "WIDGETS = Registry('widget', catalogue='widgets_catalogue:ENTRIES')\n")
    (tmp_path / "widgets_catalogue.py").write_text(
        "ENTRIES = {'cog': ('widgets_impl', {'teeth': 12}), 'gone': ('widgets_impl', {})}\n")
    (tmp_path / "widgets_impl.py").write_text(
        "from widgets_registry import WIDGETS\n"
        "@WIDGETS.register('cog', teeth=12)\n"
        "def cog(size=1):\n    return ('cog', size)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "widgets_impl"
    for name in ("widgets_registry", "widgets_catalogue", "widgets_impl"):
        sys.modules.pop(name, None)


def test_a_catalogued_entry_is_known_before_its_module_is_imported(widget_module: str) -> None:
    from widgets_registry import WIDGETS

    assert WIDGETS.names() == ["cog", "gone"] and "cog" in WIDGETS
    assert WIDGETS.info("cog") == {"teeth": 12}
    assert widget_module not in sys.modules
    assert WIDGETS.create("cog", size=3) == ("cog", 3)  # imports the module, which registers it
    assert widget_module in sys.modules
    assert WIDGETS.loaded_catalogue() == {"cog": (widget_module, {"teeth": 12})}


def test_a_stale_catalogue_entry_says_how_to_regenerate(widget_module: str) -> None:
    from widgets_registry import WIDGETS

    with pytest.raises(RuntimeError, match="widgets_impl registers no widget 'gone' although the "
                       "catalogue says it does; regenerate it: python -m ferkit.catalogue"):
        WIDGETS.get("gone")
    with pytest.raises(UnknownNameError, match="unknown widget 'cgo'. Did you mean 'cog'"):
        WIDGETS.info("cgo")
