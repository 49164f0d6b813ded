"""The harness's import layering: two use cases (``run``, ``certify-ports``) over one engine.

Every import of a ``conformance`` module by another, at module level or inside a function, is read
from the source with ``ast``. ``from package import name`` counts as an import of the submodule
``package.name`` when there is one, else of ``package``. Layers, lowest first: the shared
vocabulary, ``adapters/``, ``checks/``, the engine (``reference``, ``runner``, ``parallel``, ``gate``),
``report/``, ``certify/``, ``commands/``, the entry points. A module imports only from its own
layer or lower ones, the graph has no cycle, and a function-level import is allowed only where
listed below with its reason (never to dodge a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import conformance

PACKAGE = Path(conformance.__file__).parent
ROOT = conformance.__name__

LAYERS = (
    ("vocabulary", ("spec", "trees", "inputs", "tolerances", "results", "golden", "prng_vectors", "components", "stats",
                    "known_differences", "hypothesis_support", "environment", "bugs", "case_data", "llm_flips")),
    ("adapters", ("adapters",)),
    ("checks", ("checks", "trainer_checks")),
    ("engine", ("reference", "runner", "parallel", "gate", "needs")),
    ("report", ("report",)),
    ("certify", ("certify",)),
    ("commands", ("commands",)),
    ("entry", ("", "cli", "__main__")),
)

# (importer, imported): why the import waits for the function that needs it.
DEFERRED = {
    **{("adapters", f"adapters.{backend}"): "a backend needs torch or JAX, which may be missing: BackendUnavailable"
       for backend in ("jax_reference", "eggroll_torch", "eggroll_torch_trainer", "upstream")},
    ("commands.run", "adapters.trainer_eggroll_torch"): "EggrollTrainer needs torch, which may be missing",
    **{(module, "hypothesis_support"): "imported beside hypothesis, a test extra, when a property is generated"
       for module in ("checks.noise", "checks.normalization", "checks.update", "runner")},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name relative to conformance ("" for the package): (path, is a package)}``."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _absolute(name: str) -> str:
    return f"{ROOT}.{name}" if name else ROOT


def _imports(modules: dict) -> dict[str, dict[str, bool]]:
    """``{importer: {imported: True when every import of it is inside a function}}``."""
    known = {_absolute(m): m for m in modules}
    graph: dict[str, dict[str, bool]] = {m: {} for m in modules}
    for module, (path, is_package) in modules.items():
        here = _absolute(module) if is_package else _absolute(module).rpartition(".")[0]

        def visit(node, deferred: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inside = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                targets = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = here
                    for _ in range(child.level - 1):
                        base = base.rpartition(".")[0]
                    source = (base + (f".{child.module}" if child.module else "")) if child.level else child.module
                    targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in child.names]
                for target in targets:
                    while target and target not in known:
                        target = target.rpartition(".")[0]
                    if target and known[target] != module:
                        imported = known[target]
                        graph[module][imported] = graph[module].get(imported, True) and inside
                visit(child, inside)

        visit(ast.parse(path.read_text()), False)
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"conformance.{module} is in no layer: add it to LAYERS in {__file__}")


MODULES = _modules()
GRAPH = _imports(MODULES)


def test_the_graph_sees_the_known_imports():
    assert GRAPH["commands.run"].get("runner") is False
    assert GRAPH["report.claims"].get("checks") is False
    assert GRAPH["adapters"].get("adapters.jax_reference") is True


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_its_layer_or_lower(module):
    rank = _layer(module)
    upward = [f"{imported} ({LAYERS[_layer(imported)][0]})" for imported in GRAPH[module]
              if _layer(imported) > rank]
    assert not upward, f"conformance.{module} ({LAYERS[rank][0]}) imports from higher layers: {upward}"


@pytest.mark.parametrize("lower, higher", [
    ("checks", ("report", "certify", "commands", "runner", "gate", "reference")),
    ("adapters", ("checks", "report", "certify", "commands", "runner", "gate", "reference")),
    ("report", ("certify", "commands")),
])
def test_named_packages_stay_below(lower, higher):
    bad = sorted({f"{module} -> {imported}" for module, imports in GRAPH.items() if module.split(".")[0] == lower
                  for imported in imports if imported.split(".")[0] in higher})
    assert not bad, f"{lower}/ imports from above it: {bad}"


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in GRAPH[module]:
            if state.get(imported) == "open":
                cycle = path[path.index(imported):] + [imported]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_function_level_imports_are_listed_with_their_reason():
    deferred = {(module, imported) for module, imports in GRAPH.items() for imported, lazy in imports.items() if lazy}
    assert deferred <= set(DEFERRED), f"unlisted function-level imports: {sorted(deferred - set(DEFERRED))}"
