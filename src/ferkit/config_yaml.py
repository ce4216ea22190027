"""Reading configuration YAML: duplicate keys refused, exponent floats read as floats, errors that
name the source and line; ``--set key=value`` overrides parsed the same way."""

from __future__ import annotations

import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ferkit.errors import ConfigError
from ferkit.nested import set_dotted


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a repeated key (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (line {line}; first on line {seen[key]}): "
                    "the first block would be dropped silently; merge them into one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads exponent floats without a dot (1e-3, 5E+4) as strings; YAML 1.2 and
# every user mean a float. One resolver, so recipes, --set values, method.params and
# data.options all read them alike.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text, refusing duplicate keys; errors name ``source`` and the line.

    Raises:
        ConfigError: not valid YAML, or a mapping repeats a key.
    """
    try:
        loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"{source}: not valid YAML: {detail}") from err
    _check_expanded_size(loaded, source)
    return loaded


# Values a config may hold once YAML aliases (&a / *a) are expanded: far above any recipe, far
# below what a nested alias "bomb" expands to (which copying the config would try to build).
MAX_EXPANDED_VALUES = 100_000


def _check_expanded_size(value: Any, source: str) -> None:
    """Refuse YAML whose aliases expand to more than :data:`MAX_EXPANDED_VALUES` values, or that
    refers to itself; counted over shared nodes once each, so the check itself stays cheap."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise ConfigError(f"{source}: a YAML alias refers to a mapping or list that contains "
                              "it; write the values out")
        active.add(id(node))
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1 + sum(size(child) for child in children)
        active.discard(id(node))
        sizes[id(node)] = total
        if total > MAX_EXPANDED_VALUES:
            raise ConfigError(f"{source}: YAML aliases (&name / *name) expand this to more than "
                              f"{MAX_EXPANDED_VALUES:,} values; a config is far smaller. Write "
                              "the values out instead of nesting aliases")
        return total

    size(value)


def read_yaml_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file: byte {err.start} is "
                          f"{err.object[err.start:err.start + 1]!r}; give a recipe such as "
                          "configs/quickstart.yaml") from err
    return load_yaml(text, str(path))


def recipes_dir() -> Path:
    """The recipes shipped in the package (``configs/`` of the source tree)."""
    return Path(str(resources.files("ferkit").joinpath("recipes")))


def recipe_names() -> list[str]:
    """Names of the packaged training recipes (``--config NAME``)."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or a packaged recipe named ``NAME``, ``NAME.yaml`` or
    ``configs/NAME.yaml`` (the form that works in a checkout, so it works anywhere).

    Raises:
        ConfigError: neither; the message lists the packaged recipes (closest first).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    candidate = recipes_dir() / f"{name}.yaml"
    if candidate.is_file() and path.parent in (Path("."), Path("configs")):
        return candidate
    names = recipe_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"config '{name_or_path}' is neither a file nor a packaged recipe; {hint}"
                      f"recipes: {', '.join(names)} (ferkit list shows them)")


def bench_dirs() -> list[Path]:
    """Folders searched for benchmark protocols by name: ``./configs/bench`` and the packaged
    ones (the checkout's ``configs/bench``)."""
    dirs = [Path.cwd() / "configs" / "bench", recipes_dir() / "bench"]
    return list(dict.fromkeys(d.resolve() for d in dirs))


def protocol_names() -> list[str]:
    """Every benchmark protocol known by name (``ferkit bench NAME``)."""
    return sorted({p.stem for d in bench_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=40", "method.params.lam=2"]`` -> nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value (e.g. train.epochs=40)")
        key, raw = item.split("=", 1)
        value = load_yaml(raw, f"--set {item}") if raw.strip() else None
        try:
            set_dotted(nested, key.strip(), value)
        except TypeError as err:
            raise ConfigError(f"--set {item}: '{err}' was also set to a value by another "
                              "--set; set either the mapping or its keys") from None
    return nested


__all__ = ["ConfigError", "bench_dirs", "find_recipe", "load_yaml", "parse_overrides", "protocol_names",
           "read_yaml_file", "recipe_names", "recipes_dir"]
