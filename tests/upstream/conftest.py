"""Loads upstream HyperscaleES from ``$HYPERSCALEES_SRC`` and keeps the parity ledger.

Without the variable every test in this directory is skipped, with the reason, and the reason
is repeated in the terminal summary.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.adapters.upstream import load_upstream
from conformance.tolerances import Comparison

ENV_VAR = "HYPERSCALEES_SRC"
SKIP_REASON = (
    f"{ENV_VAR} is not set: point it at an upstream HyperscaleES checkout's src/ directory "
    f"(e.g. `make upstream` then {ENV_VAR}=third_party/HyperscaleES/src) to run the upstream parity tests"
)


@dataclass
class Ledger:
    """What the upstream parity tests compared, summarised at the end of the session."""

    cases: int = 0
    arrays: int = 0
    elements: int = 0
    max_abs_diff: float = 0.0
    commit: str | None = None

    def record(self, comparisons: list[Comparison]) -> None:
        """Count the arrays of passed comparisons (:mod:`conformance.tolerances`)."""
        for c in comparisons:
            self.arrays += 1
            self.elements += c.total
            self.max_abs_diff = max(self.max_abs_diff, c.max_abs)


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


def _upstream_modules() -> dict:
    return {name: module for name, module in sys.modules.items()
            if name == "hyperscalees" or name.startswith("hyperscalees.")}


@pytest.fixture(scope="session")
def hs(upstream_src):
    """Upstream's ``hyperscalees`` package with only its core modules loaded (see
    ``conformance.adapters.upstream.load_upstream``); removed from ``sys.modules`` again at the
    end of the session."""
    saved_modules = _upstream_modules()
    package = load_upstream(upstream_src)
    LEDGER.commit = _commit(upstream_src)
    yield package
    for name in _upstream_modules():
        del sys.modules[name]
    sys.modules.update(saved_modules)
