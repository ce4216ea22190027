"""The import graph of ``src/ferkit``: no cycle, and the config layer imports nothing above it.

Read from the source with ``ast`` (every ``import``, function-local ones included; only
``if TYPE_CHECKING:`` blocks are left out, they never run), so a loop hidden in a function body
counts too. An edge goes to the module an import names (``from ferkit.data import x`` is
``ferkit.data``, or ``ferkit.data.x`` when that is a module).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# CONTRIBUTING.md's table: a module (or package) may import its own layer and those below
LAYERS = {
    "ferkit._version": 0, "ferkit.errors": 0, "ferkit.registry": 0, "ferkit.tempfiles": 0,
    "ferkit.nested": 0, "ferkit.ranges": 0, "ferkit.run_files": 0, "ferkit.lazy": 0,
    "ferkit.config": 1, "ferkit.config_types": 1, "ferkit.config_checks": 1,
    "ferkit.config_yaml": 1,
    "ferkit.params": 2, "ferkit.provenance": 2, "ferkit.metrics": 2, "ferkit.cam": 2,
    "ferkit.losses": 2, "ferkit.plots": 2,
    "ferkit.data": 3, "ferkit.models": 3, "ferkit.methods": 3, "ferkit._registered": 3,
    "ferkit.checks": 4, "ferkit.config_doc": 4, "ferkit.catalogue": 4,
    "ferkit.engine": 5,
    "ferkit.inference": 6, "ferkit.run_folder": 6, "ferkit.evaluation": 6,
    "ferkit.api": 7, "ferkit.bench": 8, "ferkit.cli": 9,
}
# the bottom layer: it may import only these (stdlib-only helpers) and each other
CONFIG_LAYER = {"ferkit.config", "ferkit.config_checks", "ferkit.config_types",
                "ferkit.config_yaml"}
FOUNDATION = {"ferkit._version", "ferkit.errors", "ferkit.nested", "ferkit.ranges",
              "ferkit.registry", "ferkit.run_files", "ferkit.tempfiles"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "ferkit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}


def import_graph() -> dict[str, set[str]]:
    """ferkit module -> the ferkit modules it imports anywhere (TYPE_CHECKING blocks aside)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        graph[module] = {
            target for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in type_only
            for target in _targets(module, path.name == "__init__.py", node, modules)
            if target in modules and target != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import loop as ``[a, b, ..., a]``, or ``[]`` when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (loop := visit(start)):
            return loop
    return []


def test_find_cycle_finds_a_loop_and_only_a_loop() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_function_local_imports() -> None:
    graph = import_graph()
    assert "ferkit.api" in graph["ferkit.cli"]  # imported only inside the command handlers
    assert "ferkit.checks" in graph["ferkit.cli"]


def test_no_import_cycle() -> None:
    loop = find_cycle(import_graph())
    assert not loop, "import cycle: " + " -> ".join(loop)


def layer(module: str) -> int | None:
    """The layer of ``module`` (its own entry, else its package's), None when unlisted."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    return None


def test_imports_point_down_the_layers() -> None:
    upward = [f"{module} ({layer(module)}) -> {target} ({layer(target)})"
              for module, targets in import_graph().items() for target in targets
              if None not in (layer(module), layer(target)) and layer(target) > layer(module)]
    assert not upward, "imports up the layers of CONTRIBUTING.md: " + "; ".join(sorted(upward))


@pytest.mark.parametrize("module", sorted(CONFIG_LAYER))
def test_config_layer_imports_nothing_above_it(module: str) -> None:
    above = import_graph()[module] - CONFIG_LAYER - FOUNDATION
    assert not above, f"{module} imports {sorted(above)}, above the config layer"


@pytest.mark.parametrize("module", sorted(FOUNDATION))
def test_foundation_imports_nothing_of_ferkit(module: str) -> None:
    allowed = set() if module == "ferkit.errors" else {"ferkit.errors"}  # the user-error types
    assert import_graph()[module] <= allowed
