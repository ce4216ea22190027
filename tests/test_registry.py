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
