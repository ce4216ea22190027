"""ferkit.nested: the one implementation of merging, flattening and dotted setting."""

from __future__ import annotations

import pytest

from ferkit.nested import deep_merge, flatten, set_dotted


def test_deep_merge_merges_key_by_key_but_whole_keys_are_replaced() -> None:
    base = {"a": {"x": 1, "y": 2}, "params": {"p": 1, "q": 2}, "k": 0}
    update = {"a": {"y": 3}, "params": {"q": 5}, "n": 1}
    assert deep_merge(base, update) == {"a": {"x": 1, "y": 3}, "params": {"p": 1, "q": 5},
                                        "k": 0, "n": 1}
    assert deep_merge(base, update, whole=("params",))["params"] == {"q": 5}
    assert base["a"] == {"x": 1, "y": 2}  # inputs untouched


def test_flatten_keeps_whole_keys_and_empty_mappings_as_leaves() -> None:
    values = {"train": {"epochs": 2, "amp": "none"}, "method": {"params": {"lam": 1}}, "e": {}}
    assert flatten(values) == {"train.epochs": 2, "train.amp": "none", "method.params.lam": 1,
                               "e": {}}
    assert flatten(values, whole=("params",))["method.params"] == {"lam": 1}


def test_set_dotted_builds_the_way_and_names_a_conflict() -> None:
    tree: dict = {}
    set_dotted(tree, "data.augment.flip", 0.0)
    set_dotted(tree, "data.root", "r")
    assert tree == {"data": {"augment": {"flip": 0.0}, "root": "r"}}
    with pytest.raises(TypeError, match="^root$"):
        set_dotted(tree, "data.root.x", 1)
