"""Backend ``upstream``: the real HyperscaleES, loaded from ``$HYPERSCALEES_SRC``.

Upstream's package ``__init__`` imports its RL and LLM stacks (gymnax, transformers, ...). The
loader registers empty package objects for ``hyperscalees``, ``hyperscalees.noiser`` and
``hyperscalees.models`` whose ``__path__`` points at the checkout, so importing
``hyperscalees.noiser.eggroll`` runs only that file (and what it imports) with jax and optax.
Upstream's ``noiser/__init__`` is skipped too, so ``all_noisers`` is rebuilt here from the
same seven names. Other code that needs upstream (``tests/upstream``) can call
:func:`load_upstream` as well.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

from . import base
from .jax_api import JaxApi, JaxApiAdapter, jax_device, library_versions

ENV_VAR = "HYPERSCALEES_SRC"
_NOISER_MODULES = {"noop": ("base_noiser", "Noiser"), "open_es": ("open_es", "OpenES"),
                   "eggroll": ("eggroll", "EggRoll"),
                   "eggrollbs": ("eggroll_baseline_subtraction", "EggRollBS"),
                   "alteggroll": ("alteggroll", "EggRoll"), "reeggroll": ("eggroll", "EggRoll"),
                   "sparse": ("sparse", "Sparse")}


def upstream_src(src: str | os.PathLike | None = None) -> Path:
    """The directory that contains upstream's ``hyperscalees`` package.

    ``src`` defaults to ``$HYPERSCALEES_SRC``; raises ``LookupError`` saying how to set it.
    """
    src = src or os.environ.get(ENV_VAR)
    if not src:
        raise LookupError(f"set {ENV_VAR}=<HyperscaleES checkout>/src (or run 'make upstream')")
    path = Path(src)
    if not (path / "hyperscalees" / "noiser" / "eggroll.py").is_file():
        raise LookupError(f"{ENV_VAR}={src} does not contain hyperscalees/noiser/eggroll.py")
    return path


def _stub_package(name: str, directory: Path) -> None:
    existing = sys.modules.get(name)
    if existing is not None and list(getattr(existing, "__path__", [])) == [str(directory)]:
        return
    module = types.ModuleType(name)
    module.__path__ = [str(directory)]
    module.__package__ = name
    sys.modules[name] = module


def load_upstream(src: str | os.PathLike | None = None) -> types.SimpleNamespace:
    """Import upstream's noisers and ``models.common`` without its package ``__init__`` files.

    Returns a namespace with ``all_noisers`` (name -> class), ``common`` (``models.common``),
    ``base_model`` and ``noiser_modules`` (name -> module).
    """
    root = upstream_src(src) / "hyperscalees"
    _stub_package("hyperscalees", root)
    _stub_package("hyperscalees.noiser", root / "noiser")
    _stub_package("hyperscalees.models", root / "models")
    modules = {name: importlib.import_module(f"hyperscalees.noiser.{mod}")
               for name, (mod, _) in _NOISER_MODULES.items()}
    noisers = {name: getattr(modules[name], cls) for name, (_, cls) in _NOISER_MODULES.items()}
    return types.SimpleNamespace(
        all_noisers=noisers, noiser_modules=modules,
        common=importlib.import_module("hyperscalees.models.common"),
        base_model=importlib.import_module("hyperscalees.models.base_model"),
    )


def upstream_commit(src: str | os.PathLike | None = None) -> str:
    """Short commit of the checkout ``src`` lives in, or ``"unknown"`` when it is not a git tree."""
    try:
        out = subprocess.run(["git", "-C", str(upstream_src(src)), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError, LookupError):
        return "unknown"
    return out.stdout.strip()


class UpstreamAdapter(JaxApiAdapter):
    """Real HyperscaleES driven through its own API (needs ``$HYPERSCALEES_SRC``)."""

    name = "upstream"

    def __init__(self, src: str | os.PathLike | None = None):
        self._src = upstream_src(src)
        self._loaded = load_upstream(self._src)

    def api(self) -> JaxApi:
        from jax_reference.examples.mlp_e2e import run_mlp_example

        return JaxApi(self._loaded.all_noisers, self._loaded.common, run_mlp_example)

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(self.name, f"HyperscaleES {upstream_commit(self._src)}", jax_device(),
                                library_versions(), notes=str(self._src))
