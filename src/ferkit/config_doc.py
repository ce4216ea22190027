"""``ferkit config``: every config key with its type, default and one-line help.

Generated from the dataclasses in :mod:`ferkit.config` and the ``Attributes:`` sections of their
Google-style docstrings, so the listing cannot drift from the code: a key whose docstring says
nothing is listed with ``(undocumented)`` and fails the tests. The registered methods' parameters
and datasets' options (from their typed signatures) follow.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any

from ferkit.config import CHOICES, RunConfig
from ferkit.params import Param, type_name

UNDOCUMENTED = "(undocumented)"


@dataclass(frozen=True)
class KeyDoc:
    """One documented config key."""

    key: str
    type: str
    default: Any
    help: str


def attribute_help(cls: type) -> dict[str, str]:
    """``name -> first sentence`` from the ``Attributes:`` (or ``Args:``) section of a docstring.

    An entry may name several attributes (``mean, std: ...``); continuation lines are joined.
    """
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^(?:Attributes|Args):\n(.*?)(?=^\S|\Z)", doc, re.M | re.S)
    if not match:
        return {}
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in match.group(1).splitlines():
        entry = re.match(r"^    (\w+(?:, \w+)*):\s*(.*)$", line)  # "name:" or "a, b:"
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            for name in names:
                helps[name] = entry.group(2).strip()
        elif line.strip() and names:
            for name in names:
                helps[name] += " " + line.strip()
    return {name: _first_sentence(text) for name, text in helps.items()}


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=\.)\s+(?=[A-Z(])", text, maxsplit=1)[0].rstrip(".")


def config_keys(cls: type = RunConfig, prefix: str = "") -> list[KeyDoc]:
    """Every leaf key of a config dataclass (nested dataclasses expanded), in field order."""
    hints = typing.get_type_hints(cls)
    helps = attribute_help(cls)
    default_obj = cls()
    keys: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        hint, value = hints[f.name], getattr(default_obj, f.name)
        if dataclasses.is_dataclass(hint):
            keys += config_keys(hint, f"{prefix}{f.name}.")
            continue
        help_text = helps.get(f.name, UNDOCUMENTED)
        allowed = CHOICES.get(prefix + f.name)
        if allowed:
            help_text += f"; one of: {', '.join(map(str, allowed))}"
        keys.append(KeyDoc(prefix + f.name, type_name(hint), value, help_text))
    return keys


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header).rstrip(), *(line.format(*row).rstrip() for row in rows)]


def _default(value: Any) -> str:
    return "None" if value is None else repr(list(value) if isinstance(value, tuple) else value)


def _params_lines(title: str, entries: dict[str, dict[str, Param]]) -> list[str]:
    lines = ["", title]
    for owner, params in entries.items():
        shown = ", ".join(f"{p.name}: {p.type_name} = {_default(p.default)}"
                          for p in params.values())
        lines.append(f"  {owner}: {shown or '(none)'}")
    return lines


def format_config_doc(registered: bool = True) -> str:
    """The text ``ferkit config`` prints: a key/type/default/help table, then (``registered``)
    each method's parameters and each dataset's options."""
    rows = [(k.key, k.type, _default(k.default), k.help) for k in config_keys()]
    lines = ["Config keys (set in a recipe YAML or with --set KEY=VALUE):", "",
             *_table(("key", "type", "default", "help"), rows)]
    if registered:
        from ferkit.data.options import DATASETS, settable_options
        from ferkit.methods import METHODS

        methods = {n: METHODS.info(n).params for n in METHODS.names()}
        datasets = {n: settable_options(n) for n in DATASETS.names()}
        lines += _params_lines("method.params, per method.name:", methods)
        lines += _params_lines("data.options, per data.dataset:", datasets)
    return "\n".join(lines)


__all__ = ["KeyDoc", "attribute_help", "config_keys", "format_config_doc"]
