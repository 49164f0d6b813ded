"""Import upstream HyperscaleES's core files without running its package ``__init__`` files.

Upstream's ``hyperscalees/__init__.py`` and ``models/__init__.py`` import its RL and LLM code
(gymnax, transformers, ...), absent here, so the packages ``hyperscalees``,
``hyperscalees.noiser`` and ``hyperscalees.models`` are created empty and only
``noiser/*.py`` and ``models/{base_model,common}.py`` are executed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import types
from pathlib import Path

NOISER_FILES = ("base_noiser", "open_es", "eggroll", "alteggroll", "sparse", "eggroll_baseline_subtraction")
MODEL_FILES = ("base_model", "common")
MODULE_NAMES = (
    ["hyperscalees", "hyperscalees.noiser", "hyperscalees.models"]
    + [f"hyperscalees.noiser.{n}" for n in NOISER_FILES]
    + [f"hyperscalees.models.{n}" for n in MODEL_FILES]
)


def _package(name: str, directory: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return module


def _module(package: types.ModuleType, name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"{package.__name__}.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    setattr(package, name, module)
    return module


def load(src: Path) -> types.ModuleType:
    """Register and return ``hyperscalees`` from ``src`` (a checkout's ``src/`` directory).

    ``sparse.py`` appends to ``sys.path`` on import; that is undone, and import-time output
    is swallowed.
    """
    root = Path(src) / "hyperscalees"
    saved_path = list(sys.path)
    try:
        package = _package("hyperscalees", root)
        package.noiser = _package("hyperscalees.noiser", root / "noiser")
        package.models = _package("hyperscalees.models", root / "models")
        with contextlib.redirect_stdout(io.StringIO()):
            for name in NOISER_FILES:
                _module(package.noiser, name, root / "noiser" / f"{name}.py")
            for name in MODEL_FILES:
                _module(package.models, name, root / "models" / f"{name}.py")
    finally:
        sys.path[:] = saved_path
    return package
