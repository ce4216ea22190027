"""Benchmark protocols: a YAML recipe of dataset x imbalance factors x methods x seeds.

Schema (every key is checked when the file is loaded; errors name the file and the key)::

    name: ferplus-cpu                 # optional; defaults to the file's stem
    description: one paragraph        # optional
    extends: ferplus-cpu              # optional; inherit that protocol's base and method_overrides
    base:                             # RunConfig overrides shared by every run (like a recipe)
      data: {dataset: ferplus, image_size: 112}
      train: {epochs: 8}
    method_overrides:                 # optional; per registered method name, applied after base
      eac: {data.augment.flip: 0.0, data.augment.erasing: 1.0}
    settings:
      - imbalance_factor: 100         # number >= 1, or null for the full training set
        name: if100                   # optional; default "if<IF>" or "full"
        seeds: [0, 1]
        methods:
          - ce                        # a registered method with default parameters
          - {name: mek, label: mek-paper, params: {preset: paper}, overrides: {...}}

Override mappings (``base``, ``method_overrides``, a method's ``overrides``) accept nested
mappings, dotted keys (``data.augment.flip: 0.0``) or both. The harness owns ``method``, ``seed``,
``output_dir``, ``data.imbalance_factor`` and ``data.root``; setting them there is an error.

``extends`` names another protocol (a file next to this one, or a known name): its ``base`` and
``method_overrides`` come first and this file's are merged over them (settings are never
inherited), so a study shares one definition of its training recipe with the protocol it extends.

A run's config resolves as: dataclass defaults -> ``base`` -> ``method_overrides[name]`` -> the
method entry's ``overrides`` -> the setting (imbalance factor), the method (name, params), the seed
and the output folder -> ``--root`` -> ``--set`` overrides from the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.config import (
    ConfigError,
    RunConfig,
    config_from_dict,
    load_yaml,
    parse_overrides,
    validate,
)
from ferkit.config_yaml import bench_dirs, protocol_names  # noqa: F401 (re-exported)
from ferkit.methods import METHODS, check_method_params
from ferkit.nested import deep_merge, set_dotted
from ferkit.registry import suggest

TOP_KEYS = ("name", "description", "extends", "base", "method_overrides", "settings")
SETTING_KEYS = ("name", "imbalance_factor", "methods", "seeds")
METHOD_KEYS = ("name", "label", "params", "overrides")
OWNED_KEYS = ("method", "seed", "output_dir", "data.imbalance_factor", "data.root")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ProtocolError(ConfigError):
    """An invalid benchmark protocol; the message lists every problem with its file and key."""


@dataclass(frozen=True)
class MethodSpec:
    """One method entry of a setting: registered ``name``, table ``label``, its parameters and
    extra RunConfig overrides (nested mapping)."""

    name: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Setting:
    """One imbalance factor (None = full training set) with its methods and seeds."""

    name: str
    imbalance_factor: float | None
    methods: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class RunSpec:
    """One training run of a protocol: setting x method x seed."""

    setting: Setting
    method: MethodSpec
    seed: int

    @property
    def id(self) -> str:
        """``<setting>/<method-label>/seed<k>``: also the run's folder under ``out_dir/runs``."""
        return f"{self.setting.name}/{self.method.label}/seed{self.seed}"


@dataclass
class Protocol:
    """A validated benchmark protocol (see the module docstring for the YAML schema)."""

    name: str
    description: str
    base: dict[str, Any]
    settings: list[Setting]
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    def runs(self) -> list[RunSpec]:
        """Every run, in protocol order (setting, then method, then seed)."""
        return [RunSpec(s, m, seed) for s in self.settings for m in s.methods for seed in s.seeds]

    def resolve(self, run: RunSpec, output_dir: str | Path, root: str | None = None,
                overrides: list[str] | None = None) -> RunConfig:
        """The RunConfig of one run (resolution order in the module docstring).

        Raises:
            ConfigError: the resolved values are invalid (e.g. a bad ``--set``).
        """
        values = deep_merge(self.base, self.method_overrides.get(run.method.name, {}))
        values = deep_merge(values, run.method.overrides)
        owned = {"data": {"imbalance_factor": run.setting.imbalance_factor},
                 "method": {"name": run.method.name, "params": dict(run.method.params)},
                 "seed": run.seed, "output_dir": str(output_dir)}
        if root is not None:
            owned["data"]["root"] = str(root)
        values = deep_merge(values, owned)
        cli = parse_overrides(list(overrides or []))
        fixed = [key for key in _owned(cli) if key != "data.root"]
        if fixed:
            raise ConfigError(f"--set {', '.join(fixed)}: set by the protocol (per setting, "
                              "method and seed); edit the protocol file instead")
        values = deep_merge(values, cli)
        cfg = config_from_dict(values)
        errors = validate(cfg)
        if errors:
            raise ConfigError(f"invalid configuration for run {run.id}:\n  - "
                              + "\n  - ".join(errors))
        return cfg


def expand_dotted(values: dict[str, Any]) -> dict[str, Any]:
    """``{"data.augment.flip": 0.0, "train": {"epochs": 2}}`` -> fully nested mapping."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and str(key).split(".")[-1] not in ("params", "options"):
            value = expand_dotted(value)
        nested: dict[str, Any] = {}
        set_dotted(nested, str(key), value)
        out = deep_merge(out, nested)
    return out


def _owned(values: dict[str, Any]) -> list[str]:
    found = []
    for key in OWNED_KEYS:
        node: Any = values
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            found.append(key)
    return found


class _Checker:
    """Collects every problem of one protocol file before raising."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.errors = path, []

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def keys(self, key: str, values: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for name in values:
            if name not in allowed:
                self.error(f"{key}{name}", f"unknown key.{suggest(str(name), allowed)} "
                           f"Allowed: {', '.join(allowed)}")

    def overrides(self, key: str, values: Any) -> dict[str, Any]:
        """Check an override mapping: a mapping, no harness-owned keys, valid RunConfig keys."""
        if values is None:
            return {}
        if not isinstance(values, dict):
            self.error(key, f"expected a mapping of config overrides, got {values!r}")
            return {}
        nested = expand_dotted(values)
        for owned in _owned(nested):
            self.error(f"{key}.{owned}", "is set by the harness (per setting, method, seed or "
                       "--root); remove it here")
        try:
            config_from_dict(nested)
        except ConfigError as err:
            for line in str(err).splitlines()[1:]:
                self.error(key, line.strip().removeprefix("- "))
        return nested

    def method(self, key: str, entry: Any) -> MethodSpec | None:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            self.error(key, f"expected a method name or a mapping with 'name', got {entry!r}")
            return None
        self.keys(f"{key}.", entry, METHOD_KEYS)
        name, params = entry["name"], entry.get("params") or {}
        label = str(entry.get("label") or name)
        if name not in METHODS:
            self.error(f"{key}.name", METHODS.unknown(name))
        elif not isinstance(params, dict):
            self.error(f"{key}.params", f"expected a mapping, got {params!r}")
            params = {}
        else:
            for problem in check_method_params(name, params):
                self.error(f"{key}.params", problem)
        if not SAFE_NAME.match(label):
            self.error(f"{key}.label", f"'{label}' must be letters, digits, '.', '_', '+', '-'")
        overrides = self.overrides(f"{key}.overrides", entry.get("overrides"))
        return MethodSpec(name, label, dict(params), overrides)

    def setting(self, key: str, entry: Any) -> Setting | None:
        if not isinstance(entry, dict):
            self.error(key, f"expected a mapping with methods and seeds, got {entry!r}")
            return None
        self.keys(f"{key}.", entry, SETTING_KEYS)
        factor = entry.get("imbalance_factor")
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))
                                   or factor < 1):
            self.error(f"{key}.imbalance_factor", f"expected a number >= 1 or null, got {factor!r}")
            factor = None
        name = str(entry.get("name") or (f"if{factor:g}" if factor else "full"))
        if not SAFE_NAME.match(name):
            self.error(f"{key}.name", f"'{name}' must be letters, digits, '.', '_', '+', '-'")
        seeds = entry.get("seeds")
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            self.error(f"{key}.seeds", f"expected a non-empty list of integers, got {seeds!r}")
            seeds = []
        elif len(set(seeds)) != len(seeds):
            self.error(f"{key}.seeds", f"repeated seed in {seeds}")
        methods_in = entry.get("methods")
        if not isinstance(methods_in, list) or not methods_in:
            self.error(f"{key}.methods", f"expected a non-empty list, got {methods_in!r}")
            methods_in = []
        methods = [self.method(f"{key}.methods[{i}]", m) for i, m in enumerate(methods_in)]
        valid = [m for m in methods if m is not None]
        labels = [m.label for m in valid]
        for label in sorted({x for x in labels if labels.count(x) > 1}):
            self.error(f"{key}.methods", f"label '{label}' is used twice; give each entry a "
                       "distinct 'label'")
        return Setting(name, float(factor) if factor else None, tuple(valid), tuple(seeds))


def parse_protocol(data: Any, path: Path | None = None, parent: Protocol | None = None
                   ) -> Protocol:
    """Validate a protocol mapping (as loaded from YAML) into a :class:`Protocol`.

    ``parent`` is the protocol named by ``extends`` (resolved by :func:`load_protocol`): its
    ``base`` and ``method_overrides`` lie under this mapping's.

    Raises:
        ProtocolError: listing every problem, each with its key (``settings[1].methods[0].name``).
    """
    where = f" {path}" if path else ""
    if not isinstance(data, dict):
        raise ProtocolError(f"invalid benchmark protocol{where}: expected a mapping at the top "
                            f"level with keys {', '.join(TOP_KEYS)}")
    check = _Checker(path)
    check.keys("", data, TOP_KEYS)
    if "extends" in data and parent is None:
        check.error("extends", "is resolved only when the protocol is read from a file "
                    "(load_protocol)")
    base = check.overrides("base", data.get("base"))
    if parent is not None:
        base = deep_merge(parent.base, base)
    extra = data.get("method_overrides") or {}
    method_overrides: dict[str, dict[str, Any]] = {}
    if not isinstance(extra, dict):
        check.error("method_overrides", f"expected a mapping of method name -> overrides, got "
                    f"{extra!r}")
        extra = {}
    for name, values in extra.items():
        if name not in METHODS:
            check.error(f"method_overrides.{name}", METHODS.unknown(str(name)))
        method_overrides[name] = check.overrides(f"method_overrides.{name}", values)
    if parent is not None:
        for name, values in parent.method_overrides.items():
            method_overrides[name] = deep_merge(values, method_overrides.get(name, {}))
    settings_in = data.get("settings")
    if not isinstance(settings_in, list) or not settings_in:
        check.error("settings", "expected a non-empty list of settings")
        settings_in = []
    settings = [check.setting(f"settings[{i}]", s) for i, s in enumerate(settings_in)]
    valid = [s for s in settings if s is not None]
    names = [s.name for s in valid]
    for name in sorted({x for x in names if names.count(x) > 1}):
        check.error("settings", f"two settings are named '{name}'; give one a distinct 'name'")
    default_name = path.stem if path else "protocol"
    protocol = Protocol(str(data.get("name") or default_name), str(data.get("description") or ""),
                        base, valid, method_overrides, path)
    if not check.errors:  # the composed configs too (e.g. two override layers that clash)
        for run in {(r.setting.name, r.method.label): r for r in protocol.runs()}.values():
            try:
                protocol.resolve(run, "unused")
            except ConfigError as err:
                check.error(f"run {run.id}", " ".join(str(err).split()))
    if check.errors:
        raise ProtocolError(f"invalid benchmark protocol{where}:\n  - "
                            + "\n  - ".join(check.errors))
    return protocol


def load_protocol(path: str | Path, _chain: tuple[Path, ...] = ()) -> Protocol:
    """Read and validate a protocol YAML file (and the protocol it ``extends``, if any).

    Raises:
        ProtocolError: the file is missing, not YAML, or invalid (every problem listed), or its
            ``extends`` chain is missing or circular.
    """
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(f"benchmark protocol not found: {path}")
    try:  # duplicate keys are refused, as in recipes
        data = load_yaml(path.read_text(), f"benchmark protocol {path}")
    except (ConfigError, UnicodeDecodeError) as err:
        raise ProtocolError(str(err) if isinstance(err, ConfigError) else
                            f"benchmark protocol {path}: not a text YAML file ({err})") from err
    parent = None
    if isinstance(data, dict) and data.get("extends") is not None:
        name = str(data["extends"])
        sibling = path.parent / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
        parent_path = sibling if sibling.is_file() else find_protocol(name)
        chain = (*_chain, path.resolve())
        if parent_path.resolve() in chain:
            raise ProtocolError(f"benchmark protocol {path}: extends '{name}' ({parent_path}) "
                                "makes a cycle: " + " -> ".join(str(p) for p in chain))
        parent = load_protocol(parent_path, chain)
    return parse_protocol(data, path, parent)


def find_protocol(name_or_path: str | Path) -> Path:
    """A protocol file from a path, or a name such as ``ferplus-cpu`` in :func:`bench_dirs`.

    Raises:
        ProtocolError: nothing matches; the message lists the known protocol names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in bench_dirs():
        candidate = folder / f"{path.name}.yaml"
        if candidate.is_file() and path.suffix not in (".yaml", ".yml"):
            return candidate
    known = protocol_names()
    raise ProtocolError(f"benchmark protocol '{name_or_path}' is neither a file nor a known name."
                        f"{suggest(path.stem, known)} Known: {', '.join(known) or '(none)'} "
                        f"(searched {', '.join(str(d) for d in bench_dirs())})")
