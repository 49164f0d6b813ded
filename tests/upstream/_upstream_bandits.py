"""Upstream's ``environments/llm_bandits.py`` and ``llm_experiments/utils.py``, importable without
their optional dependencies.

Upstream's bandits module imports ``reasoning_gym``, ``datasets`` and ``math_verify`` at module
top. Whichever is not installed is replaced in ``sys.modules`` by a stand-in module for the import
only (its functions raise if called). ``llm_experiments/utils.py`` marks its scan carry with
``jax.lax.pvary``, which later JAX releases spell ``jax.lax.pcast(..., to="varying")``; where
``pvary`` is missing it is provided as that, for the import and the caller's runs alike.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import jax

OPTIONAL = {"reasoning_gym": ("create_dataset",), "datasets": ("load_dataset",), "math_verify": ("parse", "verify")}

__all__ = ["OPTIONAL", "import_upstream_bandits", "import_upstream_llm_utils"]


def _stand_in(name, functions):
    def missing(*args, **kwargs):
        raise RuntimeError(f"{name} is not installed (import-only stand-in)")

    module = types.ModuleType(name)
    for fn in functions:
        setattr(module, fn, missing)
    return module


def import_upstream_bandits() -> tuple[types.ModuleType, set[str]]:
    """``(hyperscalees.environments.llm_bandits, names of the packages given stand-ins)``; upstream
    must already be loaded (the ``hs`` fixture)."""
    missing = {}
    for name, functions in OPTIONAL.items():
        try:
            importlib.import_module(name)
        except ImportError:
            missing[name] = _stand_in(name, functions)
    saved = {name: sys.modules.get(name) for name in missing}
    sys.modules.update(missing)
    try:
        module = importlib.import_module("hyperscalees.environments.llm_bandits")
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module, set(missing)


def import_upstream_llm_utils(src: str | Path) -> types.ModuleType:
    """Upstream's ``llm_experiments/utils.py`` (``src`` is the checkout's ``src/``; the experiments
    sit beside it), imported as ``upstream_llm_experiments_utils`` after
    :func:`import_upstream_bandits`."""
    name = "upstream_llm_experiments_utils"
    if name in sys.modules:
        return sys.modules[name]
    import_upstream_bandits()
    if not hasattr(jax.lax, "pvary"):
        jax.lax.pvary = lambda x, axis_name: jax.lax.pcast(x, axis_name, to="varying")
    path = Path(src).resolve().parent / "llm_experiments" / "utils.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
