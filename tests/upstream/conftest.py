"""Loads upstream HyperscaleES from ``$HYPERSCALEES_SRC`` and keeps the parity ledger.

Upstream's package ``__init__`` files pull in its RL and LLM code (gymnax, transformers, ...),
which this environment does not have, so the package objects ``hyperscalees``,
``hyperscalees.noiser`` and ``hyperscalees.models`` are created empty and only the core files
are executed: ``noiser/*.py`` and ``models/{base_model,common}.py``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ENV_VAR = "HYPERSCALEES_SRC"
SKIP_REASON = (
    f"{ENV_VAR} is not set: point it at an upstream HyperscaleES checkout's src/ directory "
    f"(e.g. `make upstream` then {ENV_VAR}=third_party/HyperscaleES/src) to run the upstream parity tests"
)
NOISER_FILES = ("base_noiser", "open_es", "eggroll", "alteggroll", "sparse", "eggroll_baseline_subtraction")
MODEL_FILES = ("base_model", "common")


@dataclass
class Ledger:
    """What the upstream parity tests compared, summarised at the end of the session."""

    cases: int = 0
    arrays: int = 0
    elements: int = 0
    max_abs_diff: float = 0.0
    commit: str | None = None

    def record(self, got, expected) -> float:
        g = np.asarray(got).astype(np.float64)
        e = np.asarray(expected).astype(np.float64)
        both_nan = np.isnan(g) & np.isnan(e)
        diff = np.where(both_nan | (g == e), 0.0, np.abs(g - e))
        worst = float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0
        self.arrays += 1
        self.elements += int(g.size)
        self.max_abs_diff = max(self.max_abs_diff, worst)
        return worst


LEDGER = Ledger()


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SKIP_REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"upstream parity: {len(skipped)} tests skipped: {SKIP_REASON}")
    if LEDGER.arrays:
        terminalreporter.write_line(
            f"upstream parity (HyperscaleES {LEDGER.commit}): {LEDGER.cases} cases, "
            f"{LEDGER.arrays} arrays / {LEDGER.elements} elements compared, "
            f"largest |difference| {LEDGER.max_abs_diff:g}"
        )


def pytest_collection_modifyitems(config, items):
    if os.environ.get(ENV_VAR):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ledger():
    return LEDGER


def _package(name: str, directory: Path) -> types.ModuleType:
    """An importable package object for ``directory`` whose ``__init__`` is not run."""
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


def _commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return out.stdout.strip()


@pytest.fixture(scope="session")
def upstream_src() -> Path:
    src = os.environ.get(ENV_VAR)
    if not src:
        pytest.skip(SKIP_REASON)
    root = Path(src) / "hyperscalees"
    if not (root / "noiser" / "eggroll.py").is_file():
        pytest.fail(f"{ENV_VAR}={src} has no hyperscalees/noiser/eggroll.py; point it at the checkout's src/")
    return Path(src)


@pytest.fixture(scope="session")
def hs(upstream_src):
    """Upstream's ``hyperscalees`` package with only its core modules loaded.

    Removed from ``sys.modules`` again at the end of the session; ``sparse.py``'s addition to
    ``sys.path`` is undone right away.
    """
    root = upstream_src / "hyperscalees"
    names = ["hyperscalees", "hyperscalees.noiser", "hyperscalees.models"]
    names += [f"hyperscalees.noiser.{n}" for n in NOISER_FILES] + [f"hyperscalees.models.{n}" for n in MODEL_FILES]
    saved_modules = {n: sys.modules[n] for n in names if n in sys.modules}
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
    LEDGER.commit = _commit(upstream_src)
    yield package
    for name in names:
        sys.modules.pop(name, None)
    sys.modules.update(saved_modules)

