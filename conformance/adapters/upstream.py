"""Backend ``upstream``: the real HyperscaleES, loaded from ``$HYPERSCALEES_SRC``.

Upstream's package ``__init__`` imports its RL and LLM stacks (gymnax, transformers, ...).
:func:`load_upstream`, the one loader of upstream (``tests/upstream`` uses it too), registers
empty package objects for ``hyperscalees``, ``hyperscalees.noiser`` and ``hyperscalees.models``
whose ``__path__`` points at the checkout, so importing ``hyperscalees.noiser.eggroll`` runs only
that file (and what it imports) with jax and optax. Upstream's ``noiser/__init__`` is skipped
too, so its ``all_noisers`` is rebuilt here from :data:`conformance.spec.NOISERS`.
``models/rl.py`` is loaded as well wherever its own dependencies (gymnax, distrax: the ``rl``
extra) are importable, see :data:`OPTIONAL_MODEL_MODULES`. The language models
(``models/llm/{llm, rwkv7, qrwkv6}.py``, :data:`LLM_MODULES`) are loaded the same way, skipping
``models/llm/__init__`` (which imports the tokenizers and Hugging Face hub); their
``load_from_torch`` reads torch tensors.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import subprocess
import sys
import types
from pathlib import Path

from ..spec import NOISERS
from . import base
from .jax_api import JaxApi, JaxApiAdapter, jax_device, library_versions

ENV_VAR = "HYPERSCALEES_SRC"
MODEL_MODULES = ("base_model", "common")
# Model modules loaded only when every package they import is installed.
OPTIONAL_MODEL_MODULES = {"rl": ("gymnax", "distrax")}
LLM_MODULES = ("llm", "rwkv7", "qrwkv6")


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


def _stub_package(name: str, directory: Path) -> types.ModuleType:
    existing = sys.modules.get(name)
    if existing is not None and list(getattr(existing, "__path__", [])) == [str(directory)]:
        return existing
    module = types.ModuleType(name)
    module.__path__ = [str(directory)]
    module.__package__ = name
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def load_upstream(src: str | os.PathLike | None = None) -> types.ModuleType:
    """Import upstream's noiser modules, ``models.{base_model, common}`` (plus each of
    :data:`OPTIONAL_MODEL_MODULES` whose dependencies are importable) and ``models.llm``'s
    :data:`LLM_MODULES` without its package ``__init__`` files; returns the ``hyperscalees``
    package, whose ``noiser.<module>``, ``models.<module>`` and ``models.llm.<module>``
    attributes are those modules.

    The modules stay registered in ``sys.modules`` (their own imports need them). ``sparse.py``
    appends to ``sys.path`` on import; that is undone, and import-time output is swallowed.
    """
    root = upstream_src(src) / "hyperscalees"
    package = _stub_package("hyperscalees", root)
    _stub_package("hyperscalees.noiser", root / "noiser")
    _stub_package("hyperscalees.models", root / "models")
    saved_path = list(sys.path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for module in dict.fromkeys(module for module, _ in NOISERS.values()):
                importlib.import_module(f"hyperscalees.noiser.{module}")
            for module in MODEL_MODULES + optional_model_modules():
                importlib.import_module(f"hyperscalees.models.{module}")
            _stub_package("hyperscalees.models.llm", root / "models" / "llm")
            for module in LLM_MODULES:
                importlib.import_module(f"hyperscalees.models.llm.{module}")
    finally:
        sys.path[:] = saved_path
    return package


def optional_model_modules() -> tuple[str, ...]:
    """The :data:`OPTIONAL_MODEL_MODULES` whose dependencies are all installed here."""
    return tuple(module for module, needs in OPTIONAL_MODEL_MODULES.items()
                 if all(importlib.util.find_spec(name) is not None for name in needs))


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
        package = load_upstream(self._src)
        self._noisers = {name: getattr(getattr(package.noiser, module), cls)
                         for name, (module, cls) in NOISERS.items()}
        self._common = package.models.common
        self._rl = getattr(package.models, "rl", None)
        self._llm = package.models.llm

    def api(self) -> JaxApi:
        from jax_reference.examples.mlp_e2e import run_mlp_example

        return JaxApi(self._noisers, self._common, run_mlp_example, self._rl, self._llm)

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(self.name, f"HyperscaleES {upstream_commit(self._src)}", jax_device(),
                                library_versions(), notes=str(self._src))
